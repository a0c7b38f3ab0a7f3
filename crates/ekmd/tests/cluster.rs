//! One ekmd per node on a real 3-member etcd cluster, with the AKV emulator as the vault:
//! keys created through any node are served by every node; a delete is seen everywhere within
//! a second; a node with another protection key refuses to start; a dead node shows as
//! unreachable; with etcd quorum lost the sockets keep serving and writes fail cleanly; no
//! secret is in etcd in the clear.

mod common;

use common::free_port;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ekm_etcd::testing::EtcdCluster;
use serde_json::{Value, json};

const TENANT: &str = "tenant-cl";
const APP: &str = "app-cl";
/// A canary client secret: must never appear in etcd.
const SECRET: &str = "canary-client-secret-5f2c8e";

struct Vault {
    emu: akv_emulator::Emulator,
    ca: PathBuf,
    key_id: String,
}

fn vault(dir: &Path) -> Vault {
    let emu = akv_emulator::Emulator::start().unwrap();
    emu.add_secret_app(TENANT, APP, SECRET);
    let v = emu.add_key("key1", 2048).unwrap();
    let ca = dir.join("vault-ca.pem");
    std::fs::write(&ca, emu.ca_pem()).unwrap();
    Vault {
        key_id: emu.key_id("myvault", "key1", &v),
        emu,
        ca,
    }
}

fn topology_toml() -> String {
    let mut s = "[cluster]\nname = \"cluster1\"\nuuid = \"00000000-0000-0000-0000-000000000001\"\n"
        .to_owned();
    for i in 1..=3 {
        s.push_str(&format!(
            "[[nodes]]\nname = \"node{i}\"\nuuid = \"00000000-0000-0000-0000-00000000001{i}\"\n"
        ));
    }
    s.push_str("[[svms]]\nname = \"vs0\"\nuuid = \"00000000-0000-0000-0000-000000000021\"\n");
    s
}

struct Node {
    name: String,
    child: Option<Child>,
    url: String,
    data: PathBuf,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The tests run one at a time: each starts 3 etcd members and 3 ekmd processes, and the
/// delete-within-a-second check must not compete with another test's cluster for 2 cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Lab {
    _serial: std::sync::MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
    etcd: EtcdCluster,
    vault: Vault,
    nodes: Vec<Node>,
    /// Extra `ekmd serve` arguments for every node.
    extra: Vec<String>,
}

impl Lab {
    fn start() -> Lab {
        Lab::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Lab {
        // A test that failed poisons the lock; the next one runs all the same.
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let etcd = EtcdCluster::start(3).expect("etcd cluster");
        let vault = vault(dir.path());
        std::fs::write(dir.path().join("topology.toml"), topology_toml()).unwrap();
        let mut lab = Lab {
            _serial: serial,
            dir,
            etcd,
            vault,
            nodes: Vec::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 1..=3 {
            let node = lab.spawn(&format!("node{i}"), None).expect("node starts");
            lab.nodes.push(node);
            if i == 1 {
                // The first node created the protection key: the others get a copy.
                for j in 2..=3 {
                    let d = lab.dir.path().join(format!("node{j}"));
                    std::fs::create_dir_all(&d).unwrap();
                    std::fs::copy(
                        lab.dir.path().join("node1/protection.key"),
                        d.join("protection.key"),
                    )
                    .unwrap();
                }
            }
        }
        lab
    }

    /// Starts ekmd for `name`; `Err(stderr)` if it exits instead of listening.
    fn spawn(&self, name: &str, pk: Option<&Path>) -> Result<Node, String> {
        self.spawn_trusting(name, pk, &self.vault.ca)
    }

    /// As [`Lab::spawn`], trusting `vault_ca` for the vault's TLS (another CA: this node
    /// cannot reach AKV, the others can).
    fn spawn_trusting(
        &self,
        name: &str,
        pk: Option<&Path>,
        vault_ca: &Path,
    ) -> Result<Node, String> {
        let data = self.dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        let port = free_port();
        let log = self.dir.path().join(format!("{name}-{port}.log"));
        let addr = self.vault.emu.addr().to_string();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ekmd"));
        cmd.args(["serve", "--plain-http", "--node", name, "--store", "etcd"])
            .arg("--etcd-endpoints")
            .arg(self.etcd.endpoints().join(","))
            .arg("--data-dir")
            .arg(&data)
            .arg("--topology")
            .arg(self.dir.path().join("topology.toml"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--backend",
                "azure",
            ])
            .arg("--azure-ca-file")
            .arg(vault_ca)
            .args(["--azure-authority-host", &self.vault.emu.authority()])
            .args([
                "--azure-resolve",
                &format!("{}={addr}", akv_emulator::LOGIN_HOST),
            ])
            .args([
                "--azure-resolve",
                &format!("myvault.vault.localhost={addr}"),
            ])
            .env("EKMD_ADMIN_USER", "admin")
            .env("EKMD_ADMIN_PASSWORD", "admin-pw")
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(pk) = pk {
            cmd.arg("--protection-key-file").arg(pk);
        }
        cmd.args(&self.extra);
        let (mut child, line) = common::spawn_listening(&mut cmd);
        if !line.contains("listening") {
            let _ = child.wait();
            return Err(std::fs::read_to_string(&log).unwrap_or_default());
        }
        Ok(Node {
            name: name.into(),
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            data,
            log,
        })
    }
}

fn call(n: &Node, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut r = client
        .request(method.parse().unwrap(), format!("{}{path}", n.url))
        .basic_auth("admin", Some("admin-pw"));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The value of the series `name` (with its labels, as exposed) in the node's `/metrics`.
fn metric(n: &Node, series: &str) -> Option<f64> {
    let text = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/metrics", n.url))
        .basic_auth("admin", Some("admin-pw"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `GET /keys/{id}` over the node's data-path socket: the material, or `None` when not found.
fn socket_read(n: &Node, id: &str) -> Option<Vec<u8>> {
    let mut s = UnixStream::connect(n.data.join("ekmd.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /keys/{id} HTTP/1.1\r\nHost: ekmd\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    if !resp.starts_with("HTTP/1.1 200") {
        return None;
    }
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: Value = serde_json::from_str(body).ok()?;
    base64::engine::general_purpose::STANDARD
        .decode(v["key"].as_str()?)
        .ok()
}

fn create_config(lab: &Lab) -> String {
    let (s, v) = call(
        &lab.nodes[0],
        "POST",
        "/api/security/azure-key-vaults?return_records=true",
        Some(json!({
            "client_id": APP, "tenant_id": TENANT,
            "name": format!("{}/", lab.vault.emu.vault_url("myvault")),
            "key_id": lab.vault.key_id, "client_secret": SECRET,
        })),
    );
    assert_eq!(s, 201, "{v}");
    v["records"][0]["uuid"].as_str().unwrap().to_owned()
}

fn create_key(n: &Node, config: &str, tag: &str) -> String {
    let (s, v) = call(
        n,
        "POST",
        &format!("/api/security/azure-key-vaults/{config}/keys"),
        Some(json!({"key_tag": tag})),
    );
    assert_eq!(
        s,
        201,
        "{} answered {v}; its log:\n{}",
        n.name,
        std::fs::read_to_string(&n.log).unwrap_or_default()
    );
    v["key_id"]
        .as_str()
        .or(v["records"][0]["key_id"].as_str())
        .unwrap()
        .to_owned()
}

#[test]
fn keys_are_shared_deletes_are_seen_everywhere_and_no_secret_is_in_etcd() {
    let lab = Lab::start();
    let config = create_config(&lab);
    // Round-robin creates through the three nodes.
    let ids: Vec<String> = (0..30)
        .map(|i| create_key(&lab.nodes[i % 3], &config, &format!("vol{i}")))
        .collect();
    let mut materials = Vec::new();
    for id in &ids {
        let m: Vec<Vec<u8>> = lab
            .nodes
            .iter()
            .map(|n| socket_read(n, id).unwrap_or_else(|| panic!("{} does not serve {id}", n.name)))
            .collect();
        assert!(
            m.iter().all(|x| x == &m[0] && x.len() == 32),
            "key {id} differs between nodes"
        );
        materials.push(m[0].clone());
    }
    // Every node lists every key (REST through any node).
    for n in &lab.nodes {
        let (_, v) = call(
            n,
            "GET",
            &format!("/api/security/azure-key-vaults/{config}/keys"),
            None,
        );
        assert_eq!(v["num_records"], 30, "{}: {v}", n.name);
    }
    // A delete through node 1 is seen by nodes 2 and 3 (which hold the key in memory) within 1 s.
    let victim = &ids[4];
    let (s, _) = call(
        &lab.nodes[0],
        "DELETE",
        &format!("/api/security/azure-key-vaults/{config}/keys/{victim}"),
        None,
    );
    assert_eq!(s, 200);
    let deleted = Instant::now();
    for n in &lab.nodes[1..] {
        while socket_read(n, victim).is_some() {
            assert!(
                deleted.elapsed() < Duration::from_secs(1),
                "{} still serves a key deleted {:?} ago",
                n.name,
                deleted.elapsed()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Nothing secret in etcd: not the client secret, not a key's material in any encoding.
    let dump = lab.etcd.dump("/ekm/");
    assert!(!dump.is_empty());
    let mut canaries = vec![SECRET.as_bytes().to_vec()];
    for m in &materials {
        canaries.push(m.clone());
        canaries.push(hex::encode(m).into_bytes());
        canaries.push(
            base64::engine::general_purpose::STANDARD
                .encode(m)
                .into_bytes(),
        );
    }
    for c in &canaries {
        assert!(
            !dump.windows(c.len()).any(|w| w == c.as_slice()),
            "a secret is in etcd in the clear"
        );
    }
}

#[test]
fn a_node_with_another_protection_key_refuses_to_start() {
    let lab = Lab::start();
    create_config(&lab);
    let other = lab.dir.path().join("other.key");
    ekm_store::protection_key::load_or_create(&other).unwrap();
    let err = lab
        .spawn("node3", Some(&other))
        .err()
        .expect("a node with another protection key must not start");
    assert!(
        err.contains("other.key"),
        "the message names the file: {err}"
    );
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn a_dead_node_shows_unreachable_and_quorum_loss_keeps_the_data_path_serving() {
    let mut lab = Lab::start();
    let config = create_config(&lab);
    let id = create_key(&lab.nodes[0], &config, "vol1");
    let material = socket_read(&lab.nodes[1], &id).expect("node2 serves it");
    socket_read(&lab.nodes[2], &id).expect("node3 serves it");
    // node3 dies: within 30 s every node reports it unreachable, the others reachable.
    let mut node3 = lab.nodes.pop().unwrap();
    if let Some(mut c) = node3.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let fields = "fields=ekmip_reachability,state";
    let died = Instant::now();
    loop {
        let (_, v) = call(
            &lab.nodes[0],
            "GET",
            &format!("/api/security/azure-key-vaults/{config}?{fields}"),
            None,
        );
        let r = v["ekmip_reachability"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let reach = |name: &str| {
            r.iter()
                .find(|e| e["node"]["name"] == name)
                .map(|e| e["reachable"] == true)
        };
        if reach("node3") == Some(false) {
            assert_eq!(reach("node1"), Some(true), "{v}");
            assert_eq!(reach("node2"), Some(true), "{v}");
            assert_eq!(v["state"]["available"], false, "{v}");
            break;
        }
        assert!(
            died.elapsed() < Duration::from_secs(30),
            "node3 still reachable: {v}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Quorum lost (2 of 3 etcd members down): sockets serve what they hold, writes fail
    // cleanly with ONTAP's error JSON within seconds, and work again when quorum returns.
    lab.etcd.kill(1);
    lab.etcd.kill(2);
    assert_eq!(
        socket_read(&lab.nodes[1], &id).as_deref(),
        Some(&material[..])
    );
    let t = Instant::now();
    let (s, v) = call(
        &lab.nodes[0],
        "POST",
        &format!("/api/security/azure-key-vaults/{config}/keys"),
        Some(json!({"key_tag": "during-outage"})),
    );
    assert!(s >= 500, "a write without quorum must fail: {s} {v}");
    // ... and the operator sees it in the metrics.
    assert!(
        metric(
            &lab.nodes[0],
            r#"ekm_etcd_requests_total{kind="read",outcome="failed"}"#
        ) >= Some(1.0),
        "failed etcd requests are counted"
    );
    assert!(v["error"]["code"].is_string(), "ONTAP error JSON: {v}");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(
        socket_read(&lab.nodes[0], &id).as_deref(),
        Some(&material[..])
    );
    lab.etcd.restart(1).unwrap();
    lab.etcd.restart(2).unwrap();
    lab.etcd.wait_healthy(Duration::from_secs(30)).unwrap();
    let back = Instant::now();
    loop {
        let (s, v) = call(
            &lab.nodes[0],
            "POST",
            &format!("/api/security/azure-key-vaults/{config}/keys"),
            Some(json!({"key_tag": "after-outage"})),
        );
        if s == 201 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "writes did not recover: {s} {v}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(node3);
}

fn job(n: &Node, uuid: &str) -> Value {
    call(n, "GET", &format!("/api/cluster/jobs/{uuid}"), None).1
}

fn wait_job(n: &Node, uuid: &str, within: Duration) -> Value {
    let start = Instant::now();
    loop {
        let j = job(n, uuid);
        if j["state"] == "success" || j["state"] == "failure" {
            return j;
        }
        assert!(start.elapsed() < within, "job {uuid} still {j}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill(n: &mut Node) {
    if let Some(mut c) = n.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

#[test]
fn a_rekey_whose_node_dies_is_finished_by_another_node_with_one_wrap() {
    // The vault's counters count this rekey's wraps only: no periodic reachability checks
    // (each is a wrap and an unwrap) during the test.
    let mut lab = Lab::start_with(&["--rekey-batch", "1", "--backend-probe-interval", "0"]);
    let config = create_config(&lab);
    let ids: Vec<String> = (0..300)
        .map(|i| create_key(&lab.nodes[i % 3], &config, &format!("vol{i}")))
        .collect();
    let before: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| socket_read(&lab.nodes[1], id).unwrap())
        .collect();
    let wraps = lab.vault.emu.counters().wraps;
    let (s, v) = call(
        &lab.nodes[0],
        "POST",
        &format!("/api/security/azure-key-vaults/{config}/rekey-internal"),
        None,
    );
    assert_eq!(s, 202, "{v}");
    let uuid = v["job"]["uuid"].as_str().unwrap().to_owned();
    // node1 dies part-way through the pass.
    let started = Instant::now();
    loop {
        let j = job(&lab.nodes[1], &uuid);
        let done = j["progress"]["processed"].as_u64().unwrap_or(0);
        assert_ne!(
            j["state"], "success",
            "the job ended before node1 could be killed: {j}"
        );
        if done >= 20 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress: {j}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    kill(&mut lab.nodes[0]);
    let killed_at = job(&lab.nodes[1], &uuid);
    assert_eq!(killed_at["state"], "running", "{killed_at}");
    // node2 or node3 takes it over once node1's lease expires, and finishes it.
    let j = wait_job(&lab.nodes[1], &uuid, Duration::from_secs(90));
    assert_eq!(j["state"], "success", "{j}");
    assert_eq!(
        lab.vault.emu.counters().wraps - wraps,
        1,
        "one external wrap per rekey, takeover included"
    );
    for (id, material) in ids.iter().zip(&before) {
        for n in &lab.nodes[1..] {
            assert_eq!(
                socket_read(n, id).as_ref(),
                Some(material),
                "{} serves {id} changed",
                n.name
            );
        }
    }
    let (_, keys) = call(
        &lab.nodes[2],
        "GET",
        &format!("/api/security/azure-key-vaults/{config}/keys?fields=*"),
        None,
    );
    assert_eq!(keys["num_records"], 300);
}

#[test]
fn restore_through_any_node_unlocks_every_live_node_with_one_unwrap_each() {
    // Unwraps counted are the restore's only: no periodic reachability checks.
    let mut lab = Lab::start_with(&["--backend-probe-interval", "0"]);
    let config = create_config(&lab);
    let id = create_key(&lab.nodes[0], &config, "vol1");
    for n in &lab.nodes {
        socket_read(n, &id).expect("served");
    }
    // node3 restarts while the vault key is disabled: it cannot unlock the KEK at start-up.
    let version = lab.vault.key_id.rsplit('/').next().unwrap().to_owned();
    kill(&mut lab.nodes[2]);
    lab.vault.emu.set_enabled("key1", &version, false);
    let node3 = lab.spawn("node3", None).expect("node3 restarts");
    lab.nodes[2] = node3;
    let fields = "fields=state";
    let status = |lab: &Lab| {
        call(
            &lab.nodes[0],
            "GET",
            &format!("/api/security/azure-key-vaults/{config}?{fields}"),
            None,
        )
        .1
    };
    // Its start-up unlock (in the background) fails and is recorded.
    let t = Instant::now();
    while status(&lab)["state"]["message"]
        .as_str()
        .is_none_or(|m| !m.contains("node3"))
    {
        assert!(t.elapsed() < Duration::from_secs(20), "{}", status(&lab));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status(&lab)["state"]["cluster_state"], false);
    lab.vault.emu.set_enabled("key1", &version, true);
    let unwraps = lab.vault.emu.counters().unwraps;
    let (s, v) = call(
        &lab.nodes[1],
        "POST",
        &format!("/api/security/azure-key-vaults/{config}/restore?return_timeout=60"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        lab.vault.emu.counters().unwraps - unwraps,
        1,
        "one unwrap, by node3"
    );
    let (_, v) = call(
        &lab.nodes[0],
        "GET",
        &format!("/api/security/azure-key-vaults/{config}?{fields}"),
        None,
    );
    assert_eq!(v["state"]["cluster_state"], true, "{v}");
    assert!(socket_read(&lab.nodes[2], &id).is_some());
}

#[test]
fn the_etcd_leader_killed_during_creates_loses_no_acknowledged_key() {
    let mut lab = Lab::start();
    let config = create_config(&lab);
    let mut acknowledged = Vec::new();
    let mut killed = None;
    for i in 0..120 {
        if i == 40 {
            let leader = lab.etcd.leader().expect("a leader");
            lab.etcd.kill(leader);
            killed = Some(leader);
        }
        let (s, v) = call(
            &lab.nodes[i % 3],
            "POST",
            &format!("/api/security/azure-key-vaults/{config}/keys"),
            Some(json!({"key_tag": format!("vol{i}")})),
        );
        if s == 201 {
            acknowledged.push(v["key_id"].as_str().unwrap().to_owned());
        } else {
            assert!(s >= 500 && v["error"]["code"].is_string(), "{s} {v}");
        }
    }
    assert!(
        acknowledged.len() >= 100,
        "only {} creates succeeded",
        acknowledged.len()
    );
    lab.etcd.restart(killed.unwrap()).unwrap();
    for id in &acknowledged {
        for n in &lab.nodes {
            assert!(
                socket_read(n, id).is_some(),
                "{} lost acknowledged key {id}",
                n.name
            );
        }
    }
}

#[test]
fn akv_unreachable_from_one_node_is_reported_by_every_node() {
    let mut lab = Lab::start();
    let config = create_config(&lab);
    create_key(&lab.nodes[0], &config, "vol1");
    // node3 restarts trusting another CA for the vault: AKV is unreachable from it alone.
    let mut node3 = lab.nodes.pop().unwrap();
    if let Some(mut c) = node3.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let other_ca = lab.dir.path().join("other-ca.pem");
    std::fs::write(
        &other_ca,
        akv_emulator::Emulator::start().expect("emulator").ca_pem(),
    )
    .unwrap();
    lab.nodes.push(
        lab.spawn_trusting("node3", None, &other_ca)
            .expect("node3 starts"),
    );
    let reachability = |n: &Node| {
        let (s, v) = call(
            n,
            "GET",
            &format!("/api/security/azure-key-vaults/{config}?fields=azure_reachability"),
            None,
        );
        assert_eq!(s, 200, "{v}");
        v["azure_reachability"].clone()
    };
    let t = Instant::now();
    for n in &lab.nodes {
        // node1 and node2 reach AKV themselves; they see node3's own report.
        loop {
            let r = reachability(n);
            if r["reachable"] == false {
                let m = r["message"].as_str().unwrap_or_default();
                assert!(
                    m.starts_with("AKV service is not reachable from all nodes"),
                    "{r}"
                );
                assert!(m.contains("node3"), "{} names node3: {r}", n.name);
                if m.contains("node1:") || m.contains("node2:") {
                    // node2 (or node1) has not published its own check yet: wait for it.
                    assert!(
                        t.elapsed() < Duration::from_secs(45),
                        "{r}; node2's log:\n{}",
                        std::fs::read_to_string(&lab.nodes[1].log).unwrap_or_default()
                    );
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(45),
                "{} still says AKV is reachable from all nodes: {r}; node2's log:\n{}",
                n.name,
                std::fs::read_to_string(&lab.nodes[1].log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(
        metric(
            &lab.nodes[0],
            r#"ekm_etcd_requests_total{kind="txn",outcome="ok"}"#
        ) >= Some(1.0),
        "etcd transactions are counted"
    );
    // node3 dies: a dead node is not counted (state and ekmip_reachability name it).
    let mut node3 = lab.nodes.pop().unwrap();
    if let Some(mut c) = node3.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let died = Instant::now();
    loop {
        let r = reachability(&lab.nodes[0]);
        if r["reachable"] == true {
            break;
        }
        assert!(
            died.elapsed() < Duration::from_secs(45),
            "node3 is dead, yet still counted: {r}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
