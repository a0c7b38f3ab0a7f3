//! An AWS KMS scope on a real 3-member etcd cluster, one ekmd per node with `--backend aws`
//! (AWS's SDK against moto over HTTPS, its host pinned): keys made through any node are served
//! by every node, each node's `amazon_reachability` is reported, and a rekey-internal whose
//! node is SIGKILLed part-way is finished by another node with one KMS Encrypt in all; the secret
//! access key and the keys' material are in no etcd value.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ekm_etcd::testing::EtcdCluster;
use serde_json::{Value, json};

mod common;

struct Node {
    name: String,
    child: Option<Child>,
    url: String,
    data: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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

fn spawn(dir: &Path, etcd: &EtcdCluster, moto: &ekm_aws::testing::Moto, name: &str) -> Node {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let port = common::free_port();
    let log = std::fs::File::create(dir.join(format!("{name}-{port}.log"))).unwrap();
    let (child, line) = common::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ekmd"))
            .args(["serve", "--plain-http", "--node", name, "--store", "etcd"])
            .arg("--etcd-endpoints")
            .arg(etcd.endpoints().join(","))
            .arg("--data-dir")
            .arg(&data)
            .arg("--topology")
            .arg(dir.join("topology.toml"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--backend", "aws"])
            .arg("--aws-ca-file")
            .arg(moto.ca_file())
            .args([
                "--aws-resolve",
                &format!("{}={}", ekm_aws::testing::HOST, moto.addr()),
            ])
            .args(["--rekey-batch", "1", "--backend-probe-interval", "0"])
            .env("EKMD_ADMIN_USER", "admin")
            .env("EKMD_ADMIN_PASSWORD", "admin-pw")
            .stderr(log),
    );
    assert!(line.contains("listening"), "{name}: {line}");
    Node {
        name: name.into(),
        child: Some(child),
        url: format!("http://127.0.0.1:{port}"),
        data,
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
    (status, resp.json().unwrap_or(Value::Null))
}

fn socket_read(n: &Node, id: &str) -> Vec<u8> {
    let mut s = UnixStream::connect(n.data.join("ekmd.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /keys/{id} HTTP/1.1\r\nHost: ekmd\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{}: {resp}", n.name);
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: Value = serde_json::from_str(body).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(v["key"].as_str().unwrap())
        .unwrap()
}

fn job(n: &Node, uuid: &str) -> Value {
    call(n, "GET", &format!("/api/cluster/jobs/{uuid}"), None).1
}

#[test]
fn an_aws_scope_on_etcd_is_served_by_every_node_and_a_killed_rekey_is_finished() {
    let Some(moto) = ekm_aws::testing::Moto::start_or_skip("aws scopes on etcd") else {
        return;
    };
    let (key, _) = moto.create_key().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("topology.toml"), topology_toml()).unwrap();
    let etcd = EtcdCluster::start(3).expect("etcd cluster");
    let mut nodes = vec![spawn(dir.path(), &etcd, &moto, "node1")];
    for j in 2..=3 {
        let d = dir.path().join(format!("node{j}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            dir.path().join("node1/protection.key"),
            d.join("protection.key"),
        )
        .unwrap();
        nodes.push(spawn(dir.path(), &etcd, &moto, &format!("node{j}")));
    }
    let (s, v) = call(
        &nodes[0],
        "POST",
        "/api/security/aws-kms?return_records=true",
        Some(
            json!({"svm": {"name": "vs0"}, "region": ekm_aws::testing::REGION, "key_id": key,
                    "access_key_id": ekm_aws::testing::ACCESS_KEY_ID,
                    "secret_access_key": ekm_aws::testing::CANARY_SECRET, "timeout": 5}),
        ),
    );
    assert_eq!(s, 201, "{v}");
    let config = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let ids: Vec<String> = (0..60)
        .map(|i| {
            let (s, v) = call(
                &nodes[i % 3],
                "POST",
                &format!("/api/security/aws-kms/{config}/keys"),
                Some(json!({"key_tag": format!("vol{i}")})),
            );
            assert_eq!(s, 201, "{v}");
            v["key_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let before: Vec<Vec<u8>> = ids.iter().map(|id| socket_read(&nodes[1], id)).collect();
    for (id, m) in ids.iter().zip(&before).step_by(7) {
        assert_eq!(&socket_read(&nodes[2], id), m, "node3 serves {id}");
    }
    let (_, v) = call(
        &nodes[1],
        "GET",
        &format!("/api/security/aws-kms/{config}?fields=amazon_reachability,state"),
        None,
    );
    assert_eq!(v["amazon_reachability"]["reachable"], true, "{v}");

    // A rekey-internal whose node dies part-way is finished by another node.
    let encrypts = |m: &ekm_aws::testing::Moto| {
        m.kms_calls()
            .iter()
            .filter(|c| c.as_str() == "Encrypt")
            .count()
    };
    let before_encrypts = encrypts(&moto);
    let (s, v) = call(
        &nodes[0],
        "POST",
        &format!("/api/security/aws-kms/{config}/rekey-internal"),
        None,
    );
    assert_eq!(s, 202, "{v}");
    let uuid = v["job"]["uuid"].as_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let j = job(&nodes[1], &uuid);
        assert_ne!(
            j["state"], "success",
            "the job ended before node1 was killed: {j}"
        );
        if j["progress"]["processed"].as_u64().unwrap_or(0) >= 5 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress: {j}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Some(mut c) = nodes[0].child.take() {
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }
    let started = Instant::now();
    let j = loop {
        let j = job(&nodes[1], &uuid);
        if j["state"] == "success" || j["state"] == "failure" {
            break j;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "job still {j}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(j["state"], "success", "{j}");
    assert_eq!(
        encrypts(&moto) - before_encrypts,
        1,
        "one KMS Encrypt per rekey, takeover included"
    );
    for (id, m) in ids.iter().zip(&before) {
        for n in &nodes[1..] {
            assert_eq!(&socket_read(n, id), m, "{} serves {id} unchanged", n.name);
        }
    }
    // Nothing secret in etcd: not the secret access key, not a key's material in any encoding.
    let dump = etcd.dump("/ekm/");
    assert!(!dump.is_empty());
    let mut canaries = vec![ekm_aws::testing::CANARY_SECRET.as_bytes().to_vec()];
    for m in &before {
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
