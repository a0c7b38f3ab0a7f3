//! Operating ekmd, in process: `/metrics` (series after real operations, bounded labels,
//! authentication), `/healthz` and `/readyz` (503 while the fake backend leaves a node without
//! its KEK, 200 after restore), and the audit trail (every state-changing request, failed
//! logins, job ends; no canary secret in it; the chain verifies).

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use ekm_core::{Engine, EngineOptions, ProtectionKey};
use ekmd::AppState;
use ekmd::audit::AuditLog;
use ekmd::metrics::{MeteredBackend, Metrics};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

const NODE1: Uuid = Uuid::from_u128(11);

struct Env {
    _dir: tempfile::TempDir,
    fake: Arc<ekm_fake::FakeBackend>,
    state: AppState,
    audit_path: std::path::PathBuf,
}

/// ekmd's state as `ekmd serve` builds it: a metered fake backend, metrics, an audit trail.
fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = ekm_store::open(ekm_store::StoreKind::Redb, &dir.path().join("store")).unwrap();
    let fake = Arc::new(ekm_fake::FakeBackend::in_memory());
    let metrics = Metrics::new();
    let backend = Arc::new(MeteredBackend::new(fake.clone(), metrics.clone()));
    let engine = Engine::open(
        EngineOptions::new(store, backend, topology(), ProtectionKey::generate()).local_node(NODE1),
    )
    .unwrap();
    let audit_path = dir.path().join("audit.log");
    let audit = Arc::new(
        AuditLog::open(&audit_path, "node1", ekmd::audit::DEFAULT_MAX_BYTES)
            .unwrap()
            .with_metrics(metrics.clone()),
    );
    let state = AppState::with_metrics(
        engine,
        ADMIN_USER.into(),
        ADMIN_PASSWORD.to_owned().into(),
        metrics,
    )
    .with_audit(audit);
    Env {
        _dir: dir,
        fake,
        state,
        audit_path,
    }
}

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = ekmd::router(state.clone())
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn admin(state: &AppState, method: &str, uri: &str, body: Option<Value>) -> Value {
    let (s, b) = call(state, method, uri, Some(&admin_auth()), body).await;
    assert!(s.is_success(), "{method} {uri}: {s} {b}");
    serde_json::from_str(&b).unwrap_or(Value::Null)
}

const SECRET: &str = "CANARY-client-secret-5f3a";
const SECRET2: &str = "CANARY-new-secret-77c1";
const PROXY_PW: &str = "CANARY-proxy-password-19de";
const WRONG_PW: &str = "CANARY-wrong-password-c0ff";

async fn create_cluster_config(state: &AppState) -> String {
    let v = admin(
        state,
        "POST",
        &format!("{BASE}?return_records=true"),
        Some(json!({"client_id":"c","tenant_id":"t","name":"https://keyvault-test.vault.azure.net/","key_id":KEY,"client_secret":SECRET})),
    )
    .await;
    v["records"][0]["uuid"].as_str().unwrap().to_owned()
}

async fn read_socket_key(state: &AppState, id: &str) -> (StatusCode, String) {
    let resp = ekmd::socket::router(state.clone())
        .oneshot(
            Request::builder()
                .uri(format!("/keys/{id}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The value of the series `name{labels}` (labels as printed, in order), if present.
fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_count_requests_reads_backend_calls_keys_and_keks() {
    let e = env();
    let s = &e.state;
    let c = create_cluster_config(s).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let v = admin(
            s,
            "POST",
            &format!("{BASE}/{c}/keys"),
            Some(json!({"key_tag": format!("vol{i}")})),
        )
        .await;
        ids.push(v["key_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(read_socket_key(s, &ids[0]).await.0, StatusCode::OK);
    assert_eq!(read_socket_key(s, &ids[1]).await.0, StatusCode::OK);
    let missing = "ab".repeat(32);
    assert_eq!(read_socket_key(s, &missing).await.0, StatusCode::NOT_FOUND);

    // /metrics needs the admin's credentials on the REST listener.
    let (st, _) = call(s, "GET", "/metrics", None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, text) = call(s, "GET", "/metrics", Some(&admin_auth()), None).await;
    assert_eq!(st, StatusCode::OK);

    let keys_route = "/api/security/azure-key-vaults/{uuid}/keys";
    assert_eq!(
        series(
            &text,
            &format!(
                "ekm_http_requests_total{{route=\"{keys_route}\",method=\"POST\",status=\"201\"}}"
            )
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            &format!(
                "ekm_http_request_duration_seconds_count{{route=\"{keys_route}\",method=\"POST\"}}"
            )
        ),
        Some(3.0)
    );
    assert_eq!(
        series(
            &text,
            "ekm_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"401\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &text,
            "ekm_datapath_key_reads_total{path=\"socket\",outcome=\"ok\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        series(
            &text,
            "ekm_datapath_key_reads_total{path=\"socket\",outcome=\"not_found\"}"
        ),
        Some(1.0)
    );
    // create: one check; first key: one wrap by node1 and one unwrap by node2.
    assert_eq!(
        series(
            &text,
            "ekm_backend_calls_total{operation=\"check\",outcome=\"ok\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &text,
            "ekm_backend_calls_total{operation=\"wrap\",outcome=\"ok\"}"
        ),
        Some(1.0)
    );
    assert!(text.contains("ekm_backend_call_duration_seconds_bucket{"));
    assert_eq!(series(&text, "ekm_data_keys{owner=\"cluster\"}"), Some(3.0));
    // The engine's count never falls below the true one (it may run ahead by up to 64).
    let seals = series(&text, "ekm_kek_seals{scope=\"cluster\",svm=\"\"}").unwrap();
    assert!((3.0..=67.0).contains(&seals), "{seals}");
    assert!(series(&text, "ekm_kek_seal_limit{scope=\"cluster\",svm=\"\"}").unwrap() > 1e9);
    assert!(
        series(
            &text,
            "ekm_kek_generation_age_seconds{scope=\"cluster\",svm=\"\"}"
        )
        .is_some()
    );
    assert_eq!(
        series(
            &text,
            "ekm_kek_available{scope=\"cluster\",svm=\"\",node=\"node1\",local=\"true\"}"
        ),
        Some(1.0)
    );
    assert_eq!(series(&text, "ekm_configurations"), Some(1.0));
    assert!(series(&text, "ekm_audit_records_total{result=\"written\"}").unwrap() >= 4.0);

    // Throttling is counted with the wait the vault asked for.
    e.fake.fail_next(
        None,
        ekm_fake::Fault::Throttled {
            retry_after: std::time::Duration::from_secs(7),
        },
        1,
    );
    let (st, _) = call(
        s,
        "PATCH",
        &format!("{BASE}/{c}"),
        Some(&admin_auth()),
        Some(json!({"client_secret": SECRET2})),
    )
    .await;
    assert!(!st.is_success());
    let (_, text) = call(s, "GET", "/metrics", Some(&admin_auth()), None).await;
    assert_eq!(
        series(&text, "ekm_backend_throttled_total{operation=\"check\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "ekm_backend_throttle_wait_seconds_total"),
        Some(7.0)
    );

    // Bounded labels: no key id, configuration uuid or user input anywhere in the exposition.
    for id in &ids {
        assert!(!text.contains(id.as_str()));
    }
    assert!(!text.contains(&c));
    assert!(!text.contains(&missing));
    assert!(!text.contains("vol1"));
    // Every series is ekm's.
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(l.starts_with("ekm_"), "{l}");
    }
}

#[tokio::test]
async fn readyz_is_503_while_a_node_lacks_its_kek_and_200_after_restore() {
    let e = env();
    let s = &e.state;
    let (st, b) = call(s, "GET", "/healthz", None, None).await;
    assert_eq!((st, b.contains("ok")), (StatusCode::OK, true));
    // No configuration: nothing to unlock.
    assert_eq!(
        call(s, "GET", "/readyz", None, None).await.0,
        StatusCode::OK
    );
    let c = create_cluster_config(s).await;
    // A configuration without keys has no KEK yet: ready.
    assert_eq!(
        call(s, "GET", "/readyz", None, None).await.0,
        StatusCode::OK
    );
    admin(
        s,
        "POST",
        &format!("{BASE}/{c}/keys"),
        Some(json!({"key_tag":"v"})),
    )
    .await;
    assert_eq!(
        call(s, "GET", "/readyz", None, None).await.0,
        StatusCode::OK
    );

    // node1 loses AKV and its KEK (a reboot while AKV is unreachable from it).
    e.fake.set_node_reachable(NODE1, false);
    s.engine.reset_node(NODE1).unwrap();
    let _ = s.engine.unlock_all();
    let (st, b) = call(s, "GET", "/readyz", None, None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["missing"][0]["what"], "kek");
    assert_eq!(v["missing"][0]["configuration"], c.as_str());
    assert_eq!(v["missing"][0]["node"], "node1");
    assert_eq!(v["missing"][0]["scope"], "cluster");
    let (_, text) = call(s, "GET", "/metrics", Some(&admin_auth()), None).await;
    assert_eq!(
        series(
            &text,
            "ekm_kek_available{scope=\"cluster\",svm=\"\",node=\"node1\",local=\"true\"}"
        ),
        Some(0.0),
        "{text}"
    );

    // AKV back, restore: ready again.
    e.fake.set_node_reachable(NODE1, true);
    admin(
        s,
        "POST",
        &format!("{BASE}/{c}/restore?return_timeout=30"),
        None,
    )
    .await;
    let (st, b) = call(s, "GET", "/readyz", None, None).await;
    assert_eq!(st, StatusCode::OK, "{b}");
}

fn audit_records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_audit_trail_records_changes_logins_and_job_ends_and_no_secret() {
    let e = env();
    let s = &e.state;
    let c = create_cluster_config(s).await;
    admin(
        s,
        "PATCH",
        &format!("{BASE}/{c}"),
        Some(json!({"client_secret": SECRET2})),
    )
    .await;
    admin(
        s,
        "PATCH",
        &format!("{BASE}/{c}"),
        Some(json!({"proxy_type":"http","proxy_host":"proxy.example","proxy_port":3128,"proxy_username":"u","proxy_password":PROXY_PW})),
    )
    .await;
    let k = admin(
        s,
        "POST",
        &format!("{BASE}/{c}/keys"),
        Some(json!({"key_tag":"vol1"})),
    )
    .await["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, material) = read_socket_key(s, &k).await;
    let material: Value = serde_json::from_str(&material).unwrap();
    let material = material["key"].as_str().unwrap().to_owned();
    let job = admin(
        s,
        "POST",
        &format!("{BASE}/{c}/rekey-internal?return_timeout=30"),
        None,
    )
    .await;
    let job = job["job"]["uuid"].as_str().unwrap().to_owned();
    // A refused change is recorded with its code.
    let (st, _) = call(
        s,
        "DELETE",
        &format!("{BASE}/{c}"),
        Some(&admin_auth()),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    admin(s, "DELETE", &format!("{BASE}/{c}/keys/{k}"), None).await;
    // A failed login, and a request without credentials (not a login: not recorded).
    let (st, _) = call(s, "GET", BASE, Some(&basic("admin", WRONG_PW)), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(s, "DELETE", &format!("{BASE}/{c}"), None, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // Reads are not recorded.
    admin(s, "GET", BASE, None).await;
    admin(s, "DELETE", &format!("{BASE}/{c}"), None).await;

    // The job's end comes from a watcher thread.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let recs = loop {
        let recs = audit_records(&e.audit_path);
        if recs.iter().any(|r| r["operation"] == "job.end") || std::time::Instant::now() > deadline
        {
            break recs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // Each change's intent came first and its outcome names it; the rest of this test reads
    // the outcomes.
    let intents: Vec<Value> = recs
        .iter()
        .filter(|r| r["phase"] == "intent")
        .cloned()
        .collect();
    let recs: Vec<Value> = recs
        .into_iter()
        .filter(|r| r["phase"] != "intent")
        .collect();
    for r in recs.iter().filter(|r| r["user"] == "admin") {
        let i = intents
            .iter()
            .find(|i| i["seq"] == r["intent"])
            .unwrap_or_else(|| panic!("no intent before {r}"));
        assert_eq!(
            i["operation"].as_str().unwrap(),
            format!("{}.intent", r["operation"].as_str().unwrap())
        );
        assert_eq!(i["result"], "pending");
        assert!(i["seq"].as_u64() < r["seq"].as_u64());
    }
    let ops: Vec<(&str, &str)> = recs
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().unwrap(),
                r["result"].as_str().unwrap(),
            )
        })
        .collect();
    let mut want = vec![
        ("config.create", "0"),
        ("config.patch", "0"),
        ("config.patch", "0"),
        ("key.create", "0"),
        ("rekey_internal", "0"),
        ("config.delete", "65536867"),
        ("key.delete", "0"),
        ("login.failed", "6691623"),
        ("config.delete", "0"),
    ];
    let end = ops
        .iter()
        .position(|o| o.0 == "job.end")
        .expect("job end recorded");
    let mut got = ops.clone();
    got.remove(end);
    assert_eq!(got, want, "{recs:#?}");
    want.clear();
    let r = &recs[end];
    assert_eq!(r["job"], job.as_str());
    assert_eq!(r["state"], "success");
    assert_eq!(r["target"], c.as_str());

    for r in &recs {
        assert_eq!(r["node"], "node1");
        if r["operation"] != "job.end" {
            assert_eq!(r["source"], "0.0.0.0");
        }
    }
    let created = &recs[0];
    assert_eq!(created["user"], "admin");
    assert_eq!(created["target"], c.as_str());
    assert_eq!(created["status"], 201);
    let key_create = recs
        .iter()
        .find(|r| r["operation"] == "key.create")
        .unwrap();
    assert_eq!(key_create["key_id"], k.as_str());
    assert_eq!(key_create["target"], c.as_str());
    let rekey = recs
        .iter()
        .find(|r| r["operation"] == "rekey_internal")
        .unwrap();
    assert_eq!(rekey["job"], job.as_str());
    let login = recs
        .iter()
        .find(|r| r["operation"] == "login.failed")
        .unwrap();
    assert!(login["user"].is_null());

    let raw = std::fs::read_to_string(&e.audit_path).unwrap();
    for canary in [
        SECRET,
        SECRET2,
        PROXY_PW,
        WRONG_PW,
        material.as_str(),
        "proxy.example",
        "vol1",
    ] {
        assert!(!raw.contains(canary), "{canary} in the audit trail");
    }
    let v = ekmd::audit::verify_files(std::slice::from_ref(&e.audit_path)).unwrap();
    assert_eq!(v.records as usize, recs.len() + intents.len());
    assert!(v.unresolved_intents.is_empty(), "{v:?}");
}
