//! The audit trail against a hostile client and a full disk: a flood of bad logins from many
//! addresses becomes a bounded number of records (counted in the metrics), and a change whose
//! intent record cannot be written is refused before it is made.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::*;
use ekm_core::{Engine, EngineOptions, ProtectionKey};
use ekmd::AppState;
use ekmd::audit::AuditLog;
use ekmd::metrics::Metrics;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn state(dir: &tempfile::TempDir, audit_path: &std::path::Path) -> AppState {
    let store = ekm_store::open(ekm_store::StoreKind::Redb, &dir.path().join("store")).unwrap();
    let engine = Engine::open(EngineOptions::new(
        store,
        Arc::new(ekm_fake::FakeBackend::in_memory()),
        topology(),
        ProtectionKey::generate(),
    ))
    .unwrap();
    let metrics = Metrics::new();
    let audit = Arc::new(
        AuditLog::open(audit_path, "node1", ekmd::audit::DEFAULT_MAX_BYTES)
            .unwrap()
            .with_metrics(metrics.clone()),
    );
    AppState::with_metrics(
        engine,
        ADMIN_USER.into(),
        ADMIN_PASSWORD.to_owned().into(),
        metrics,
    )
    .with_audit(audit)
}

async fn call(
    app: &axum::Router,
    from: SocketAddr,
    method: &str,
    uri: &str,
    auth: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", auth)
        .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(from));
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_login_flood_from_many_addresses_leaves_a_bounded_trail() {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.log");
    let s = state(&dir, &audit_path);
    let app = ekmd::router(s.clone());
    let wrong = basic(ADMIN_USER, "not-the-password");
    let addresses = 8u8;
    let per_address = 2_500;
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..per_address {
        for a in 0..addresses {
            let from: SocketAddr = ([203, 0, 113, a + 1], 40_000 + (i % 1000) as u16).into();
            let (st, _) = call(&app, from, "GET", BASE, &wrong, None).await;
            *codes.entry(st.as_u16()).or_insert(0u32) += 1;
        }
    }
    assert_eq!(codes.values().sum::<u32>(), 20_000);
    assert!(codes.keys().all(|c| *c == 401 || *c == 429), "{codes:?}");
    // The admin, from elsewhere, is still served.
    let from: SocketAddr = ([198, 51, 100, 1], 50_000).into();
    let (st, body) = call(&app, from, "GET", BASE, &admin_auth(), None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // Let the refusals' records (written off the request path) land.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let recs = records(&audit_path);
    // At most one record now per address and kind in the window (the rest are summed up at
    // its end), never one per refused request.
    assert!(
        recs.len() <= 2 * addresses as usize,
        "{} records for 20,000 refused logins",
        recs.len()
    );
    assert!(recs.iter().all(|r| r["user"].is_null()));
    // Every refusal is counted.
    let (_, metrics) = call(&app, from, "GET", "/metrics", &admin_auth(), None).await;
    let refused: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("ekm_logins_refused_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(refused, 20_000.0, "{metrics}");
}

#[tokio::test]
async fn a_rest_change_the_trail_cannot_hold_is_refused_before_it_is_made() {
    let dir = tempfile::tempdir().unwrap();
    // Every write to /dev/full fails (ENOSPC): a full audit disk.
    let s = state(&dir, std::path::Path::new("/dev/full"));
    let app = ekmd::router(s);
    let from: SocketAddr = ([127, 0, 0, 1], 40_000).into();
    let (st, body) = call(
        &app,
        from,
        "POST",
        BASE,
        &admin_auth(),
        Some(json!({"client_id":"c","tenant_id":"t","name":"https://keyvault-test.vault.azure.net/","key_id":KEY,"client_secret":"s"})),
    )
    .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("audit trail"), "{body}");
    assert!(body.contains("\"code\""), "an ONTAP error body: {body}");
    // Nothing changed: no configuration exists (a read is still answered).
    let (st, body) = call(&app, from, "GET", BASE, &admin_auth(), None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["num_records"], 0,
        "the refused POST created a configuration: {body}"
    );
}
