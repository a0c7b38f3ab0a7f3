//! The `ekmd` process: killed with SIGKILL while rekey-internal runs over 10,000 keys, it
//! restarts, the job finishes with success, and every key read over the data-path socket is
//! bit-identical to before; SIGTERM stops it gracefully and the job resumes; no response, log
//! line or file under the data directory contains the canary secrets.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ekm_core::{DataKeyId, Engine, EngineOptions, KeyOwner, KeyTag};
use serde_json::{Value, json};

mod common;

use common::KEY;

const SECRET: &str = "CANARY-daemon-client-secret-4e7d";
const PROXY_PW: &str = "CANARY-daemon-proxy-pw-19c2";

struct Daemon {
    child: Child,
    url: String,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &Path, batch: usize) -> Daemon {
    let port = free_port();
    let log = dir.join(format!("ekmd-{port}.log"));
    let topo = dir.join("topology.toml");
    if !topo.exists() {
        std::fs::write(&topo, common::topology_toml()).unwrap();
    }
    let (child, line) = common::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ekmd"))
            .args(["serve", "--plain-http", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--topology"])
            .arg(&topo)
            .env("EKMD_ADMIN_USER", "admin")
            .env("EKMD_ADMIN_PASSWORD", "admin-pw")
            .env("EKMD_REKEY_BATCH", batch.to_string())
            .env("EKMD_LOG", "debug")
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    assert!(line.contains("listening"), "ekmd did not start: {line}");
    Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
}

fn call(
    d: &Daemon,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, String) {
    let mut r = client()
        .request(method, format!("{}{path}", d.url))
        .basic_auth("admin", Some("admin-pw"));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

/// `GET /keys/{id}` over the data-path socket.
fn socket_read(dir: &Path, id: &str) -> Vec<u8> {
    let mut s = UnixStream::connect(dir.join("data/ekmd.sock")).unwrap();
    write!(
        s,
        "GET /keys/{id} HTTP/1.1\r\nHost: ekmd\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("socket answered {resp}"));
    base64::engine::general_purpose::STANDARD
        .decode(v["key"].as_str().unwrap())
        .unwrap()
}

fn wait_job(d: &Daemon, uuid: &str, timeout: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (_, j, _) = call(
            d,
            reqwest::Method::GET,
            &format!("/api/cluster/jobs/{uuid}"),
            None,
        );
        if j["state"] == "success" || j["state"] == "failure" || start.elapsed() > timeout {
            return j;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Creates the configuration and 10,000 keys straight through the engine on ekmd's data
/// directory (faster than 10,000 requests), and returns the keys with their material.
fn seed(dir: &Path) -> (String, Vec<(DataKeyId, Vec<u8>)>) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = ekm_store::open(ekm_store::StoreKind::Redb, &data.join("store")).unwrap();
    let fake = Arc::new(ekm_fake::FakeBackend::open(&data.join("fake-vault.json")).unwrap());
    let pk = ekm_store::protection_key::load_or_create(&data.join("protection.key")).unwrap();
    let e = Engine::open(EngineOptions::new(store, fake, common::topology(), pk)).unwrap();
    let body = json!({"client_id": "c", "tenant_id": "t", "name": "https://v.vault.azure.net/", "key_id": KEY, "client_secret": SECRET});
    let cfg = e
        .create_config(ekm_core::CreateRequest::from_json(body.to_string().as_bytes()).unwrap())
        .unwrap();
    let mut keys = Vec::new();
    for owner in [KeyOwner::Cluster, KeyOwner::Svm(common::VS0)] {
        for _ in 0..5 {
            for id in e
                .create_data_keys(owner, vec![KeyTag::default(); 1000])
                .unwrap()
            {
                keys.push((id, e.read_data_key(&id).unwrap().expose_secret().to_vec()));
            }
        }
    }
    e.shutdown();
    (cfg.uuid.to_string(), keys)
}

#[test]
fn sigkill_during_rekey_internal_then_restart_finishes_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, keys) = seed(dir.path());
    assert_eq!(keys.len(), 10_000);
    let mut d = start(dir.path(), 100);
    let (s, link, _) = call(
        &d,
        reqwest::Method::POST,
        &format!("/api/security/azure-key-vaults/{cfg}/rekey-internal"),
        None,
    );
    assert_eq!(s, 202, "{link}");
    let job = link["job"]["uuid"].as_str().unwrap().to_owned();
    // Let it rewrap some batches, check it is mid-way, then SIGKILL.
    let start_t = Instant::now();
    loop {
        let (_, j, _) = call(
            &d,
            reqwest::Method::GET,
            &format!("/api/cluster/jobs/{job}"),
            None,
        );
        if j["progress"]["processed"].as_u64().unwrap_or(0) >= 500 {
            assert_eq!(j["state"], "running", "the job ended before the kill: {j}");
            break;
        }
        assert!(
            start_t.elapsed() < Duration::from_secs(30),
            "no progress: {j}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let mut d = start(dir.path(), 100);
    let j = wait_job(&d, &job, Duration::from_secs(120));
    assert_eq!(j["state"], "success", "{j}");
    assert_eq!(j["progress"]["processed"], 10_000);
    for (id, material) in &keys {
        assert_eq!(&socket_read(dir.path(), &id.to_hex()), material, "key {id}");
    }
    let (_, v, _) = call(
        &d,
        reqwest::Method::GET,
        &format!("/api/security/azure-key-vaults/{cfg}/keys"),
        None,
    );
    assert!(
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["kek_generation"] == 2)
    );
    d.child.kill().unwrap();
    d.child.wait().unwrap();
}

#[test]
fn sigterm_stops_gracefully_and_the_job_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, keys) = seed(dir.path());
    let mut d = start(dir.path(), 50);
    let (_, link, _) = call(
        &d,
        reqwest::Method::POST,
        &format!("/api/security/azure-key-vaults/{cfg}/rekey-internal"),
        None,
    );
    let job = link["job"]["uuid"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let pid = d.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = d.child.wait().unwrap();
    assert!(status.success(), "ekmd exited with {status}");
    assert!(t.elapsed() < Duration::from_secs(15));
    assert!(
        !dir.path().join("data/ekmd.sock").exists(),
        "the socket is removed on shutdown"
    );
    let mut d = start(dir.path(), 50);
    assert_eq!(
        wait_job(&d, &job, Duration::from_secs(120))["state"],
        "success"
    );
    for (id, material) in keys.iter().step_by(97) {
        assert_eq!(&socket_read(dir.path(), &id.to_hex()), material);
    }
    d.child.kill().unwrap();
    d.child.wait().unwrap();
}

fn encodings(c: &[u8]) -> Vec<Vec<u8>> {
    let b = base64::engine::general_purpose::STANDARD_NO_PAD;
    vec![c.to_vec(), hex_of(c).into_bytes(), b.encode(c).into_bytes()]
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p))
        } else if !p.to_string_lossy().ends_with(".sock") {
            out.push(p)
        }
    }
    out
}

#[test]
fn no_response_log_or_file_holds_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path(), 2048);
    let mut texts = Vec::new();
    let body = json!({"client_id": "c", "tenant_id": "t", "name": "https://v.vault.azure.net/", "key_id": KEY,
                      "client_secret": SECRET, "proxy_type": "http", "proxy_host": "proxy.example", "proxy_port": 3128,
                      "proxy_username": "u", "proxy_password": PROXY_PW});
    let (s, v, t) = call(
        &d,
        reqwest::Method::POST,
        "/api/security/azure-key-vaults?return_records=true",
        Some(body),
    );
    assert_eq!(s, 201, "{t}");
    texts.push(t);
    let uuid = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let mut canaries: Vec<Vec<u8>> = vec![SECRET.into(), PROXY_PW.into()];
    for _ in 0..5 {
        let (_, k, t) = call(
            &d,
            reqwest::Method::POST,
            &format!("/api/security/azure-key-vaults/{uuid}/keys"),
            Some(json!({"key_tag": "v"})),
        );
        texts.push(t);
        canaries.push(socket_read(dir.path(), k["key_id"].as_str().unwrap()));
    }
    for (m, p, b) in [
        (
            reqwest::Method::GET,
            "/api/security/azure-key-vaults?fields=**".to_owned(),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/api/security/azure-key-vaults/{uuid}?fields=**"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/api/security/azure-key-vaults/{uuid}/keys"),
            None,
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/security/azure-key-vaults/{uuid}"),
            Some(json!({"client_secret": SECRET, "proxy_password": PROXY_PW})),
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/security/azure-key-vaults/{uuid}"),
            Some(json!({"proxy_port": SECRET})),
        ),
        (
            reqwest::Method::POST,
            "/api/security/azure-key-vaults".to_owned(),
            Some(json!({"client_secret": SECRET, SECRET: 1})),
        ),
        (
            reqwest::Method::POST,
            format!("/api/security/azure-key-vaults/{uuid}/rekey-internal?return_timeout=10"),
            None,
        ),
        (reqwest::Method::GET, "/api/openapi.json".to_owned(), None),
    ] {
        texts.push(call(&d, m, &p, b).2);
    }
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(log.contains("request"), "the daemon logged nothing");
    texts.push(log);
    for c in &canaries {
        for enc in encodings(c) {
            let needle = String::from_utf8_lossy(&enc).into_owned();
            for t in &texts {
                assert!(
                    !t.contains(&needle),
                    "a response or log line holds a secret"
                );
            }
            for f in files(dir.path()) {
                let bytes = std::fs::read(&f).unwrap();
                assert!(
                    !bytes.windows(enc.len()).any(|w| w == enc.as_slice()),
                    "{} holds a secret",
                    f.display()
                );
            }
        }
    }
}

fn ekm(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ekm"))
        .args(["--url", &d.url, "--user", "admin", "--password", "admin-pw"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_ekm_command_line_drives_ekmd() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path(), 2048);
    let (rc, out, err) = ekm(
        &d,
        &[
            "enable",
            "--client-id",
            "c",
            "--tenant-id",
            "t",
            "--name",
            "https://v.vault.azure.net/",
            "--key-id",
            KEY,
            "--client-secret",
            SECRET,
        ],
    );
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains("configured"));
    let (rc, out, _) = ekm(&d, &["--json", "show"]);
    assert_eq!(rc, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["num_records"], 1);
    assert!(!out.contains(SECRET));
    let (rc, out, _) = ekm(&d, &["show"]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("(cluster)") && out.contains("client_secret"),
        "{out}"
    );
    let (rc, id, _) = ekm(&d, &["key", "create", "--tag", "vol1"]);
    assert_eq!(rc, 0);
    assert_eq!(id.trim().len(), 64);
    let (rc, out, _) = ekm(&d, &["key", "query"]);
    assert!(rc == 0 && out.contains(id.trim()) && out.contains("vol1"));
    let (rc, out, err) = ekm(&d, &["rekey-internal", "--wait"]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains("succeeded"));
    let (rc, out, _) = ekm(&d, &["--json", "check"]);
    assert_eq!(rc, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["azure_reachability"]["reachable"],
        true
    );
    // Refusals carry the ONTAP code and exit 1; an unconfigured SVM too; usage errors exit 2.
    let (rc, _, err) = ekm(&d, &["disable"]);
    assert_eq!(rc, 1);
    assert!(err.contains("65536867"), "{err}");
    let (rc, _, err) = ekm(&d, &["show", "--vserver", "vs0"]);
    assert_eq!(rc, 1);
    assert!(err.contains("65537120"), "{err}");
    let (rc, _, err) = ekm(
        &d,
        &[
            "rekey-external",
            "--key-id",
            "https://keyvault1.vault.azure.net/keys/key1",
        ],
    );
    assert_eq!(rc, 1);
    assert!(err.contains("65537523"), "{err}");
    let (rc, _, _) = ekm(&d, &["enable"]);
    assert_eq!(rc, 2);
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    // ekmd gone: exit 3.
    let (rc, _, _) = ekm(&d, &["show"]);
    assert_eq!(rc, 3);
}
