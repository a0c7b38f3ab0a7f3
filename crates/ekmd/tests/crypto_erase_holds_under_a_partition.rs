//! Crypto-erase under a partition: three ekmd on a real 3-member etcd cluster, node3 reaching
//! etcd only through relays this test can cut. A delete on node1 while node3 is cut off is
//! not called done: it answers 202 with an erase job naming node3, and `GET` of the key says
//! "erase pending on node3". Once the relays are restored, node3's watch delivers the delete,
//! node3 evicts the key and acknowledges, the job completes, and no node serves the key.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::free_port;
use common::relay::Relay;
use ekm_etcd::testing::EtcdCluster;
use serde_json::{Value, json};

struct Node {
    name: String,
    child: Child,
    url: String,
    data: PathBuf,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    s
}

fn spawn(dir: &Path, name: &str, endpoints: &[String]) -> Node {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let log = dir.join(format!("{name}.log"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ekmd"));
    cmd.args(["serve", "--plain-http", "--node", name, "--store", "etcd"])
        .arg("--etcd-endpoints")
        .arg(endpoints.join(","))
        .arg("--data-dir")
        .arg(&data)
        .arg("--topology")
        .arg(dir.join("topology.toml"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--backend",
            "fake",
        ])
        .arg("--fake-vault")
        .arg(dir.join("fake-vault.json"))
        .env("EKMD_ADMIN_USER", "admin")
        .env("EKMD_ADMIN_PASSWORD", "admin-pw")
        .stderr(std::fs::File::create(&log).unwrap());
    let (child, line) = common::spawn_listening(&mut cmd);
    assert!(
        line.contains("listening"),
        "{name} did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    Node {
        name: name.into(),
        child,
        url: format!("http://127.0.0.1:{port}"),
        data,
        log,
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

/// Whether the node's data-path socket serves key `id`.
fn serves(n: &Node, id: &str) -> bool {
    let mut s = UnixStream::connect(n.data.join("ekmd.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /keys/{id} HTTP/1.1\r\nHost: ekmd\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.starts_with("HTTP/1.1 200")
}

fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_delete_while_a_node_is_cut_off_is_pending_on_it_until_it_has_evicted_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdCluster::start(3).expect("etcd cluster");
    std::fs::write(dir.path().join("topology.toml"), topology_toml()).unwrap();
    let direct = etcd.endpoints();
    let relays: Vec<Relay> = direct
        .iter()
        .map(|e| Relay::start(e.trim_start_matches("http://").to_owned()))
        .collect();
    let relayed: Vec<String> = relays
        .iter()
        .map(|r| format!("http://127.0.0.1:{}", r.port))
        .collect();
    let node1 = spawn(dir.path(), "node1", &direct);
    for n in ["node2", "node3"] {
        let d = dir.path().join(n);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            dir.path().join("node1/protection.key"),
            d.join("protection.key"),
        )
        .unwrap();
    }
    let node2 = spawn(dir.path(), "node2", &direct);
    let node3 = spawn(dir.path(), "node3", &relayed);
    let (s, v) = call(
        &node1,
        "POST",
        "/api/security/azure-key-vaults?return_records=true",
        Some(json!({"client_id": "c", "tenant_id": "t",
            "name": "https://keyvault-test.vault.azure.net/", "key_id": common::KEY,
            "client_secret": "s"})),
    );
    assert_eq!(s, 201, "{v}");
    let config = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let keys = format!("/api/security/azure-key-vaults/{config}/keys");
    // A key every node serves, and a control key deleted with every node connected.
    let mk = |tag: &str| {
        let (s, v) = call(&node1, "POST", &keys, Some(json!({"key_tag": tag})));
        assert_eq!(s, 201, "{v}");
        v["key_id"].as_str().unwrap().to_owned()
    };
    let (victim, control) = (mk("vol1"), mk("vol2"));
    for n in [&node1, &node2, &node3] {
        until(
            &format!("{} serves the keys", n.name),
            Duration::from_secs(30),
            || serves(n, &victim) && serves(n, &control),
        );
    }
    // Every node connected: the erase completes at once and the DELETE says so.
    let (s, v) = call(&node1, "DELETE", &format!("{keys}/{control}"), None);
    assert_eq!(s, 200, "{v}");
    assert!(
        !serves(&node3, &control),
        "node3 still serves a key deleted with a 200"
    );

    // node3 cut off from etcd.
    for r in &relays {
        r.cut();
    }
    std::thread::sleep(Duration::from_millis(500));
    let (s, v) = call(&node1, "DELETE", &format!("{keys}/{victim}"), None);
    assert_eq!(
        s,
        202,
        "a delete node3 has not seen is not complete: {v}; node3's log:\n{}",
        std::fs::read_to_string(&node3.log).unwrap_or_default()
    );
    let job = v["job"]["uuid"].as_str().unwrap().to_owned();
    let (_, j) = call(&node1, "GET", &format!("/api/cluster/jobs/{job}"), None);
    assert_eq!(j["state"], "running", "{j}");
    let message = j["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("node3") && !message.contains("node1") && !message.contains("node2"),
        "the job names the node still holding the key: {j}"
    );
    let (s, k) = call(&node2, "GET", &format!("{keys}/{victim}"), None);
    assert_eq!(s, 200, "{k}");
    assert_eq!(k["state"], "erase_pending", "{k}");
    assert!(
        k["message"]
            .as_str()
            .unwrap_or_default()
            .contains("erase pending on node3"),
        "{k}"
    );
    assert!(!serves(&node1, &victim) && !serves(&node2, &victim));

    // Back: node3 evicts and acknowledges; the job completes; no node serves the key.
    for r in &relays {
        r.restore();
    }
    until("the erase job completes", Duration::from_secs(90), || {
        call(&node1, "GET", &format!("/api/cluster/jobs/{job}"), None).1["state"] == "success"
    });
    for n in [&node1, &node2, &node3] {
        assert!(!serves(n, &victim), "{} serves an erased key", n.name);
    }
    let (s, k) = call(&node1, "GET", &format!("{keys}/{victim}"), None);
    assert_eq!(s, 404, "an erased key is gone: {k}");
}
