//! `ekmip_reachability` reports each node's real KMIP server: with `--kmip-listen`, a node is
//! reachable when it is up, holds the configuration's KEK and its listener answers the
//! Discover Versions self-probe; without it, reachable when up and holding the KEK, saying KMIP
//! is off. A listener that does not answer, and a node whose KEK is locked, are reported with
//! a code and a message. Through a running ekmd (a KMIP request over mutual TLS is also
//! counted and audited), and through the engine for the states a live daemon cannot be put in
//! on demand.

mod common;

use common::free_port;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ekm_core::{KmipServerState, StatusFields};
use ekm_kmip::tags as t;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

struct Daemon {
    child: Child,
    url: String,
    kmip: Option<SocketAddr>,
    data: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ekmd on `dir`, with a KMIP listener when `kmip`.
fn start(dir: &Path, kmip: bool) -> Daemon {
    let port = free_port();
    let topo = dir.join("topology.toml");
    std::fs::write(&topo, common::topology_toml()).unwrap();
    let data = dir.join("data");
    let kmip_addr: Option<SocketAddr> =
        kmip.then(|| format!("127.0.0.1:{}", free_port()).parse().unwrap());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ekmd"));
    cmd.args(["serve", "--plain-http", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--topology"])
        .arg(&topo)
        .env("EKMD_ADMIN_USER", "admin")
        .env("EKMD_ADMIN_PASSWORD", "admin-pw")
        .stderr(std::fs::File::create(dir.join("ekmd.log")).unwrap());
    if let Some(a) = kmip_addr {
        cmd.args(["--kmip-listen", &a.to_string()]);
    }
    let (child, line) = common::spawn_listening(&mut cmd);
    assert!(
        line.starts_with("ekmd listening on"),
        "ekmd did not start: {line:?}"
    );
    Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
        kmip: kmip_addr,
        data,
    }
}

fn call(d: &Daemon, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let c = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let mut r = c
        .request(method.parse().unwrap(), format!("{}{path}", d.url))
        .basic_auth("admin", Some("admin-pw"));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// A cluster configuration with one data key (so it has a KEK); its uuid.
fn config_with_a_key(d: &Daemon) -> String {
    let (s, v) = call(
        d,
        "POST",
        &format!("{}?return_records=true", common::BASE),
        Some(serde_json::json!({"client_id": "c", "tenant_id": "t",
            "name": "https://keyvault-test.vault.azure.net/", "key_id": common::KEY, "client_secret": "s"})),
    );
    assert_eq!(s, 201, "{v}");
    let uuid = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let (s, v) = call(
        d,
        "POST",
        &format!("{}/{uuid}/keys", common::BASE),
        Some(serde_json::json!({"key_tag": "vol1"})),
    );
    assert!(s == 201 || s == 200, "{s} {v}");
    uuid
}

/// The `ekmip_reachability` of the local node (node1), once it holds the KEK and (with KMIP)
/// the first probe has run.
fn reachability_of_node1(d: &Daemon, uuid: &str, want_reachable: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = call(
            d,
            "GET",
            &format!("{}/{uuid}?fields=ekmip_reachability", common::BASE),
            None,
        );
        assert_eq!(s, 200, "{v}");
        let n = v["ekmip_reachability"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"]["name"] == "node1")
            .cloned()
            .unwrap();
        if n["reachable"] == want_reachable || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn with_kmip_on_a_node_is_reachable_when_its_listener_answers_the_probe() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), true);
    let uuid = config_with_a_key(&d);
    let n = reachability_of_node1(&d, &uuid, true);
    assert_eq!(n["reachable"], true, "{n}");
    assert_eq!(n["code"], "0", "{n}");
    assert!(
        !n["message"].as_str().unwrap_or("").contains("off"),
        "KMIP is on: {n}"
    );
    // A real client over mutual TLS: answered, counted, audited with its CN.
    let r = common::kmip::results(&common::kmip::call(
        &d.data,
        d.kmip.unwrap(),
        "cluster1",
        &common::kmip::create_aes256(),
    ));
    assert_eq!(r[0].0, t::status::SUCCESS, "{r:?}");
    let id = r[0].1.clone().unwrap();
    let trail = std::fs::read_to_string(d.data.join("audit.log")).unwrap();
    let rec: Value = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["operation"] == "kmip.create")
        .expect("the KMIP Create is in the trail");
    assert_eq!(rec["user"], "cluster1", "{rec}");
    assert_eq!(rec["source"], "127.0.0.1", "{rec}");
    assert_eq!(rec["key_id"], id.as_str(), "{rec}");
    assert_eq!(rec["result"], "0", "{rec}");
    let c = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let metrics = c
        .get(format!("{}/metrics", d.url))
        .basic_auth("admin", Some("admin-pw"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"ekm_kmip_requests_total{operation="create",result="success"} 1"#),
        "{metrics}"
    );
    // The node's own probe (a Discover Versions every 5 s, which made it reachable above) is
    // not client traffic: not counted.
    assert!(
        !metrics.contains(r#"ekm_kmip_requests_total{operation="discover_versions""#),
        "{metrics}"
    );
}

#[test]
fn with_kmip_off_a_node_holding_the_kek_is_reachable_and_says_kmip_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), false);
    let uuid = config_with_a_key(&d);
    let n = reachability_of_node1(&d, &uuid, true);
    assert_eq!(n["reachable"], true, "{n}");
    assert_eq!(n["code"], "0", "{n}");
    assert!(
        n["message"].as_str().unwrap().contains("KMIP is off"),
        "{n}"
    );
}

/// An engine over a temporary store with a cluster configuration holding one key.
fn engine() -> (tempfile::TempDir, Arc<ekm_core::Engine>, uuid::Uuid) {
    let (dir, state) = common::app_state();
    let e = state.engine.clone();
    let cfg = e
        .create_config(
            ekm_core::CreateRequest::from_json(
                format!(
                    r#"{{"client_id":"c","tenant_id":"t","name":"https://keyvault-test.vault.azure.net/","key_id":"{}","client_secret":"s"}}"#,
                    common::KEY
                )
                .as_bytes(),
            )
            .unwrap(),
        )
        .unwrap();
    e.create_data_key(
        ekm_core::KeyOwner::Cluster,
        ekm_core::KeyTag::parse("vol1").unwrap(),
    )
    .unwrap();
    (dir, e, cfg.uuid)
}

fn status(e: &ekm_core::Engine, uuid: uuid::Uuid) -> Vec<ekm_core::config::EkmipReachability> {
    e.get_config_with_status(
        uuid,
        StatusFields {
            ekmip_reachability: true,
            ..Default::default()
        },
    )
    .unwrap()
    .ekmip_reachability
    .unwrap()
}

#[test]
fn a_listener_that_does_not_answer_is_reported_with_a_code_and_the_probe_s_reason() {
    // A port that accepts TCP and never speaks TLS.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let why = rt.block_on(async {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let identity = ekmd::kmip::ProbeIdentity::new().unwrap();
        let some_cert = CertificateDer::from(
            rcgen::generate_simple_self_signed(vec!["localhost".into()])
                .unwrap()
                .cert
                .der()
                .to_vec(),
        );
        ekmd::kmip::probe(addr, &some_cert, &identity)
            .await
            .unwrap_err()
    });
    assert!(why.contains("did not answer"), "{why}");

    let (_dir, e, uuid) = engine();
    e.set_kmip_server(KmipServerState::NotAnswering(why.clone()));
    for n in status(&e, uuid) {
        assert!(!n.reachable);
        assert_eq!(n.code, "346758");
        assert!(
            n.message
                .starts_with("embedded KMIP server status unavailable on node.")
                && n.message.contains("Discover Versions")
                && n.message.contains(&why),
            "{}",
            n.message
        );
    }
    e.set_kmip_server(KmipServerState::Answering);
    assert!(
        status(&e, uuid)
            .iter()
            .all(|n| n.reachable && n.code == "0")
    );
}

#[test]
fn a_node_without_the_kek_is_unreachable_whatever_its_listener_says() {
    let (_dir, e, uuid) = engine();
    e.set_kmip_server(KmipServerState::Answering);
    e.reset_node(uuid::Uuid::from_u128(12)).unwrap(); // node2 "rebooted": KEK locked
    let s = status(&e, uuid);
    let node2 = s.iter().find(|n| n.node.name == "node2").unwrap();
    assert!(!node2.reachable);
    assert_eq!(node2.code, "346758");
    assert!(node2.message.contains("KEK"), "{}", node2.message);
    let node1 = s.iter().find(|n| n.node.name == "node1").unwrap();
    assert!(node1.reachable, "{}", node1.message);
}
