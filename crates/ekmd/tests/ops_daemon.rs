//! Operating the `ekmd` process: every acknowledged change is in the audit trail after a SIGKILL
//! that lands while requests are in flight, `ekm audit verify` accepts the trail and catches
//! each kind of tampering, logs are JSON with `EKMD_LOG_FORMAT=json`; and Debian's real
//! `prometheus` server scrapes `--metrics-listen` and answers the expected series through its
//! HTTP query API.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::free_port;

use common::KEY;

struct Daemon {
    child: Child,
    url: String,
    metrics: Option<String>,
    data: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, log: &str) -> Daemon {
    let port = free_port();
    let topo = dir.join("topology.toml");
    if !topo.exists() {
        std::fs::write(&topo, common::topology_toml()).unwrap();
    }
    let data = dir.join("data");
    let (child, line) = common::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ekmd"))
            .args(["serve", "--plain-http", "--data-dir"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--topology"])
            .arg(&topo)
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env("EKMD_ADMIN_USER", "admin")
            .env("EKMD_ADMIN_PASSWORD", "admin-pw")
            .env("EKMD_LOG_FORMAT", "json")
            .stderr(std::fs::File::create(dir.join(log)).unwrap()),
    );
    assert!(line.contains("listening"), "ekmd did not start: {line}");
    let metrics = line
        .split_whitespace()
        .find(|w| w.starts_with("http://") && w.ends_with("/metrics"))
        .map(|u| {
            u.trim_start_matches("http://")
                .trim_end_matches("/metrics")
                .to_owned()
        });
    Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
        metrics,
        data,
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// One authenticated call; `None` when no answer came (the process was killed).
fn call(
    c: &reqwest::blocking::Client,
    url: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut r = c
        .request(method, format!("{url}{path}"))
        .basic_auth("admin", Some("admin-pw"));
    if let Some(b) = body {
        r = r.body(b.to_string());
    }
    let resp = r.send().ok()?;
    let status = resp.status().as_u16();
    let text = resp.text().ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

const BASE: &str = "/api/security/azure-key-vaults";

fn create_config(d: &Daemon) -> String {
    let (s, v) = call(
        &client(),
        &d.url,
        reqwest::Method::POST,
        &format!("{BASE}?return_records=true"),
        Some(json!({"client_id":"c","tenant_id":"t","name":"https://keyvault-test.vault.azure.net/","key_id":KEY,"client_secret":"CANARY-ops-daemon-secret"})),
    )
    .unwrap();
    assert_eq!(s, 201, "{v}");
    v["records"][0]["uuid"].as_str().unwrap().to_owned()
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn ekm_verify(files: &[PathBuf]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ekm"))
        .args(["audit", "verify"])
        .args(files)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn acknowledged_changes_survive_sigkill_in_the_audit_trail_and_verify_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path(), "ekmd-1.log");
    let cfg = create_config(&d);
    // Four clients create and delete keys until the process is killed under them; each
    // remembers what was acknowledged.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut threads = Vec::new();
    for t in 0..4 {
        let (url, cfg, acked) = (d.url.clone(), cfg.clone(), acked.clone());
        threads.push(std::thread::spawn(move || {
            let c = client();
            for i in 0.. {
                let Some((s, v)) = call(
                    &c,
                    &url,
                    reqwest::Method::POST,
                    &format!("{BASE}/{cfg}/keys"),
                    Some(json!({"key_tag": format!("t{t}-{i}")})),
                ) else {
                    return;
                };
                assert_eq!(s, 201, "{v}");
                let id = v["key_id"].as_str().unwrap().to_owned();
                acked
                    .lock()
                    .unwrap()
                    .push(("key.create".into(), id.clone()));
                if i % 2 == 0 {
                    let Some((s, _)) = call(
                        &c,
                        &url,
                        reqwest::Method::DELETE,
                        &format!("{BASE}/{cfg}/keys/{id}"),
                        None,
                    ) else {
                        return;
                    };
                    assert_eq!(s, 200);
                    acked.lock().unwrap().push(("key.delete".into(), id));
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    d.child.kill().unwrap(); // SIGKILL
    d.child.wait().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "only {} acknowledged", acked.len());
    let trail = d.data.join("audit.log");
    let recs = records(&trail);
    for (op, id) in &acked {
        assert!(
            recs.iter().any(|r| r["operation"] == op.as_str()
                && r["key_id"] == id.as_str()
                && r["result"] == "0"),
            "acknowledged {op} {id} is not in the audit trail"
        );
    }
    // The first change's intent, then its outcome.
    assert_eq!(recs[0]["operation"], "config.create.intent", "{}", recs[0]);
    assert!(recs[1]["operation"] == "config.create" && recs[1]["target"] == cfg.as_str());
    assert_eq!(recs[1]["intent"], recs[0]["seq"]);
    // Logs were JSON lines.
    let log = std::fs::read_to_string(dir.path().join("ekmd-1.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in lines.iter().filter(|l| !l.starts_with("ekmd: warning")) {
        serde_json::from_str::<Value>(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
    }

    // Restarted, ekmd continues the chain (cutting a write the kill may have cut short).
    drop(d);
    let d = start(dir.path(), "ekmd-2.log");
    let (s, _) = call(
        &client(),
        &d.url,
        reqwest::Method::PATCH,
        &format!("{BASE}/{cfg}"),
        Some(json!({"client_secret": "CANARY-ops-daemon-secret-2"})),
    )
    .unwrap();
    assert_eq!(s, 200);
    // Every key the store holds is in the trail: its create's outcome, or — killed between
    // the commit and the outcome — an intent without one.
    let (s, keys) = call(
        &client(),
        &d.url,
        reqwest::Method::GET,
        &format!("{BASE}/{cfg}/keys"),
        None,
    )
    .unwrap();
    assert_eq!(s, 200);
    let recs = records(&trail);
    let outcomes: Vec<&Value> = recs
        .iter()
        .filter(|r| r["operation"] == "key.create")
        .collect();
    let unresolved = recs
        .iter()
        .filter(|r| r["operation"] == "key.create.intent")
        .filter(|i| !recs.iter().any(|o| o["intent"] == i["seq"]))
        .count();
    let unrecorded = keys["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| !outcomes.iter().any(|o| o["key_id"] == k["key_id"]))
        .count();
    assert!(
        unrecorded <= unresolved,
        "{unrecorded} keys in the store have no create outcome, and only {unresolved} create intents have none"
    );
    drop(d);
    let (code, out) = ekm_verify(std::slice::from_ref(&trail));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit trail intact"), "{out}");
    let raw = std::fs::read_to_string(&trail).unwrap();
    assert!(!raw.contains("CANARY"));

    // Each kind of tampering, on a copy: exit 5 naming the first bad record.
    let lines: Vec<&str> = raw.lines().collect();
    let copy = dir.path().join("tampered.log");
    let tamper = |content: String, want: &str| {
        std::fs::write(&copy, content).unwrap();
        let (code, out) = ekm_verify(std::slice::from_ref(&copy));
        assert_eq!(code, 5, "{out}");
        assert!(out.contains(want), "{out} lacks {want}");
    };
    let join = |l: &[&str]| l.join("\n") + "\n";
    let mut edited: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    // An outcome's result (the intents say "pending").
    let at = (4..edited.len())
        .find(|i| edited[*i].contains("\"result\":\"0\""))
        .unwrap();
    edited[at] = edited[at].replacen("\"result\":\"0\"", "\"result\":\"1\"", 1);
    tamper(
        edited.join("\n") + "\n",
        &format!("line {}: its hash does not match", at + 1),
    );
    let mut deleted = lines.clone();
    deleted.remove(6);
    tamper(join(&deleted), "line 7: record 8 does not follow record 6");
    let mut swapped = lines.clone();
    swapped.swap(8, 9);
    tamper(join(&swapped), "line 9: record 10 does not follow record 8");
    let all = join(&lines);
    let a = lines[..10].iter().map(|l| l.len() + 1).sum::<usize>() + 30;
    let b = lines[..12].iter().map(|l| l.len() + 1).sum::<usize>() + 30;
    tamper(format!("{}{}", &all[..a], &all[b..]), "line 11");
}

/// Where `prometheus` is: PATH, or Debian's /usr/bin.
fn prometheus_bin() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

fn socket_read(sock: &Path, id: &str) -> u16 {
    let mut s = UnixStream::connect(sock).unwrap();
    write!(
        s,
        "GET /keys/{id} HTTP/1.1\r\nHost: ekmd\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The value of an instant query, once it equals `want` (or panics after 60 s).
fn query_until(prom: &str, q: &str, want: f64) {
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let u = url::Url::parse_with_params(&format!("http://{prom}/api/v1/query"), [("query", q)])
            .unwrap();
        if let Ok(r) = c.get(u).send() {
            if let Ok(v) = r.json::<Value>() {
                let got = v["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok());
                if got == Some(want) {
                    return;
                }
                last = v;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("prometheus: {q} never became {want}; last answer {last}");
}

#[test]
fn the_real_prometheus_scrapes_ekmd_and_answers_queries() {
    let Some(prom_bin) = prometheus_bin() else {
        if std::env::var_os("CI").is_some() {
            panic!("prometheus is not installed (.ci/run installs Debian's package)");
        }
        eprintln!("SKIPPED: no prometheus binary (apt-get install prometheus)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), "ekmd.log");
    let target = d
        .metrics
        .clone()
        .expect("ekmd announced its metrics listener");
    // The plain listener answers without credentials.
    let r = client()
        .get(format!("http://{target}/metrics"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );

    let cfg = create_config(&d);
    let c = client();
    let mut ids = Vec::new();
    for i in 0..3 {
        let (s, v) = call(
            &c,
            &d.url,
            reqwest::Method::POST,
            &format!("{BASE}/{cfg}/keys"),
            Some(json!({"key_tag": format!("v{i}")})),
        )
        .unwrap();
        assert_eq!(s, 201);
        ids.push(v["key_id"].as_str().unwrap().to_owned());
    }
    let sock = d.data.join("ekmd.sock");
    assert_eq!(socket_read(&sock, &ids[0]), 200);
    assert_eq!(socket_read(&sock, &ids[1]), 200);
    let (s, _) = call(
        &c,
        &d.url,
        reqwest::Method::POST,
        &format!("{BASE}/{cfg}/restore?return_timeout=30"),
        None,
    )
    .unwrap();
    assert_eq!(s, 200);

    let port = free_port();
    let conf = dir.path().join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ekmd\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let mut prom = Command::new(prom_bin)
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let result = std::panic::catch_unwind(|| {
        query_until(&addr, "up{job=\"ekmd\"}", 1.0);
        query_until(
            &addr,
            "ekm_http_requests_total{route=\"/api/security/azure-key-vaults/{uuid}/keys\",method=\"POST\",status=\"201\"}",
            3.0,
        );
        query_until(
            &addr,
            "ekm_datapath_key_reads_total{path=\"socket\",outcome=\"ok\"}",
            2.0,
        );
        query_until(
            &addr,
            "ekm_backend_calls_total{operation=\"check\",outcome=\"ok\"}",
            1.0,
        );
        query_until(&addr, "ekm_data_keys{owner=\"cluster\"}", 3.0);
        query_until(&addr, "ekm_jobs{kind=\"restore\",state=\"success\"}", 1.0);
        query_until(&addr, "ekm_kek_available{node=\"node1\"}", 1.0);
        query_until(
            &addr,
            "ekm_http_request_duration_seconds_count{route=\"/api/security/azure-key-vaults/{uuid}/keys\",method=\"POST\"}",
            3.0,
        );
    });
    let _ = prom.kill();
    let _ = prom.wait();
    if let Err(e) = result {
        let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
        eprintln!("prometheus log:\n{log}");
        std::panic::resume_unwind(e);
    }
}
