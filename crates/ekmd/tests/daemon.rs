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

// The canary scanner shared with tests/secrets_never_leak.rs, and its self-test.
#[path = "../../../tests/common/canary.rs"]
mod canary;
mod common;

use common::free_port;

use common::KEY;

const SECRET: &str = "CANARY-daemon-client-secret-4e7d";
const PROXY_PW: &str = "CANARY-daemon-proxy-pw-19c2";

struct Daemon {
    child: Child,
    url: String,
    log: PathBuf,
}

/// Starts ekmd on `dir` with `--rekey-batch batch` (keys rewrapped per transaction).
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
            .args(["--rekey-batch", &batch.to_string()])
            .env("EKMD_ADMIN_USER", "admin")
            .env("EKMD_ADMIN_PASSWORD", "admin-pw")
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

/// The stored job was left running part-way (at least `min_processed` keys) by the stop; a
/// restarted ekmd (rekey batch `batch`) finishes it, and every key reads back, rewrapped.
fn stopped_part_way_then_finishes(
    dir: &Path,
    job: &str,
    min_processed: u64,
    batch: usize,
    keys: &[(DataKeyId, Vec<u8>)],
    cfg: &str,
) {
    {
        let e = engine_on(dir, false);
        let j = e.job(job.parse().unwrap()).unwrap();
        assert_eq!(j.state, ekm_core::JobState::Running, "{j:?}");
        assert!(
            j.processed >= min_processed && j.processed < 10_000,
            "{j:?}"
        );
        e.shutdown();
    }
    let mut d = start(dir, batch);
    let j = wait_job(&d, job, Duration::from_secs(120));
    assert_eq!(j["state"], "success", "{j}");
    assert_eq!(j["progress"]["processed"], 10_000);
    every_key_reads_back(dir, keys);
    all_keys_on_generation(&d, cfg, 10_000, 2);
    kill9(&mut d);
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

/// An engine on ekmd's data directory while ekmd is stopped; `resume` says whether it resumes
/// interrupted jobs.
fn engine_on(dir: &Path, resume: bool) -> Arc<Engine> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = ekm_store::open(ekm_store::StoreKind::Redb, &data.join("store")).unwrap();
    let fake = Arc::new(ekm_fake::FakeBackend::open(&data.join("fake-vault.json")).unwrap());
    let pk = ekm_store::protection_key::load_or_create(&data.join("protection.key")).unwrap();
    Engine::open(EngineOptions::new(store, fake, common::topology(), pk).resume_jobs(resume))
        .unwrap()
}

/// Creates the configuration and 10,000 keys straight through the engine on ekmd's data
/// directory (faster than 10,000 requests), and returns the keys with their material.
fn seed(dir: &Path) -> (String, Vec<(DataKeyId, Vec<u8>)>) {
    let e = engine_on(dir, true);
    let body = json!({"client_id": "c", "tenant_id": "t", "name": "https://keyvault-test.vault.azure.net/", "key_id": KEY, "client_secret": SECRET});
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

/// Polls the job until it has rewrapped at least `min` keys, and returns it, asserting it is
/// still running then. Every progress count seen on the way is a multiple of `batch`: the job
/// commits `batch` keys per transaction, so this proves ekmd took `--rekey-batch`.
fn wait_until_mid_job(d: &Daemon, job: &str, min: u64, batch: u64) -> Value {
    let start_t = Instant::now();
    loop {
        let (_, j, _) = call(
            d,
            reqwest::Method::GET,
            &format!("/api/cluster/jobs/{job}"),
            None,
        );
        let processed = j["progress"]["processed"].as_u64().unwrap_or(0);
        if j["state"] == "queued" && processed == 0 {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        assert_eq!(j["state"], "running", "the job is not running: {j}");
        assert_eq!(
            processed % batch,
            0,
            "progress moves by {batch} keys per transaction: {j}"
        );
        if processed >= min {
            return j;
        }
        assert!(
            start_t.elapsed() < Duration::from_secs(30),
            "no progress: {j}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every key reads back bit-identical over the data-path socket.
fn every_key_reads_back(dir: &Path, keys: &[(DataKeyId, Vec<u8>)]) {
    assert_eq!(keys.len(), 10_000);
    for (id, material) in keys {
        assert_eq!(&socket_read(dir, &id.to_hex()), material, "key {id}");
    }
}

/// The configuration lists exactly `n` keys, every one on KEK generation `generation`.
fn all_keys_on_generation(d: &Daemon, cfg: &str, n: usize, generation: u64) {
    let (_, v, t) = call(
        d,
        reqwest::Method::GET,
        &format!("/api/security/azure-key-vaults/{cfg}/keys"),
        None,
    );
    let records = v["records"].as_array().unwrap_or_else(|| panic!("{t}"));
    assert_eq!(records.len(), n);
    for k in records {
        assert_eq!(k["kek_generation"], generation, "{k}");
    }
}

fn kill9(d: &mut Daemon) {
    use std::os::unix::process::ExitStatusExt;
    d.child.kill().unwrap();
    let status = d.child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "ekmd ended on its own: {status}");
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
    wait_until_mid_job(&d, &job, 500, 100);
    kill9(&mut d);
    // The kill landed mid-job: the stored job is still running, part-way.
    stopped_part_way_then_finishes(dir.path(), &job, 500, 100, &keys, &cfg);
}

#[test]
fn sigterm_stops_gracefully_and_the_job_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, keys) = seed(dir.path());
    let mut d = start(dir.path(), 50);
    let (s, link, _) = call(
        &d,
        reqwest::Method::POST,
        &format!("/api/security/azure-key-vaults/{cfg}/rekey-internal"),
        None,
    );
    assert_eq!(s, 202, "{link}");
    let job = link["job"]["uuid"].as_str().unwrap().to_owned();
    // The job is running, part-way, when the signal goes.
    wait_until_mid_job(&d, &job, 200, 50);
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
    // SIGTERM stopped the job part-way; it was left running, to resume.
    stopped_part_way_then_finishes(dir.path(), &job, 200, 50, &keys, &cfg);
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
    let body = json!({"client_id": "c", "tenant_id": "t", "name": "https://keyvault-test.vault.azure.net/", "key_id": KEY,
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
    let mut canaries: Vec<(String, Vec<u8>)> = vec![
        ("client secret".into(), SECRET.into()),
        ("proxy password".into(), PROXY_PW.into()),
    ];
    for _ in 0..5 {
        let (_, k, t) = call(
            &d,
            reqwest::Method::POST,
            &format!("/api/security/azure-key-vaults/{uuid}/keys"),
            Some(json!({"key_tag": "v"})),
        );
        texts.push(t);
        let id = k["key_id"].as_str().unwrap();
        canaries.push((format!("data key {id}"), socket_read(dir.path(), id)));
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
    assert_eq!(canaries.len(), 7);
    for (i, t) in texts.iter().enumerate() {
        canary::assert_clean(&format!("response or log #{i}"), t.as_bytes(), &canaries);
    }
    let files = files(dir.path());
    assert!(
        files.iter().any(|f| f.ends_with("store/ekm.redb")),
        "the scan covers the store: {files:?}"
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        canary::assert_clean(&f.display().to_string(), &bytes, &canaries);
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
            "https://keyvault-test.vault.azure.net/",
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

/// A supervisor that closes ekmd's stdout (it read the line it waited for, or never reads it)
/// must not kill the daemon: a start-up line that cannot be written is not a crash.
#[test]
fn a_closed_stdout_does_not_stop_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (port, kmip_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ekmd"))
        .args(["serve", "--plain-http", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--kmip-listen", &format!("127.0.0.1:{kmip_port}")])
        .env("EKMD_ADMIN_USER", "admin")
        .env("EKMD_ADMIN_PASSWORD", "admin-pw")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Closed before ekmd prints anything: every start-up line meets a closed pipe.
    drop(child.stdout.take());
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let up = client()
            .get(format!("{url}/api/security/azure-key-vaults"))
            .basic_auth("admin", Some("admin-pw"))
            .send()
            .is_ok_and(|r| r.status() == 200);
        if up {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "ekmd exited after its stdout was closed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "ekmd never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(child.try_wait().unwrap().is_none(), "ekmd is still running");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_topology_with_an_svm_named_like_the_cluster_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = common::topology().cluster.name;
    let topo = dir.path().join("topology.toml");
    // vs1 renamed to the cluster's name: a KMIP certificate of that CN would be ambiguous.
    std::fs::write(
        &topo,
        common::topology_toml().replace("name = \"vs1\"", &format!("name = \"{cluster}\"")),
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(&topo)
            .unwrap()
            .matches(&cluster)
            .count()
            >= 2
    );
    let err = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ekmd"))
        .args(["serve", "--plain-http", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--topology",
        ])
        .arg(&topo)
        .env("EKMD_ADMIN_USER", "admin")
        .env("EKMD_ADMIN_PASSWORD", "admin-pw")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(
        status.is_some_and(|s| !s.success()),
        "ekmd started with an ambiguous topology: {stderr}"
    );
    assert!(stderr.contains("cluster's name"), "{stderr}");
    assert!(
        stderr.contains("topology.toml"),
        "the message names the file: {stderr}"
    );
}
