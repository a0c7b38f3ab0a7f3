//! Health endpoints, without authentication, in Kubernetes' conventions:
//! - `GET /healthz`: 200 while the process serves;
//! - `GET /readyz`: 200 when this node's store answers and every configuration with a KEK has
//!   its active generation unlocked on this node; otherwise 503 with a JSON body naming what is
//!   missing (`{"ready":false,"missing":[{"what":"kek","configuration":..,"scope":..,"node":..,
//!   "reason":..}]}`).
//!
//! Must never: answer anything secret (no authentication guards these paths), or call the
//! backend (readiness reads what the node holds; it does not unlock).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AppState;

/// `GET /healthz`.
pub async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

/// What this node lacks to serve keys; empty when ready.
pub fn missing(s: &AppState) -> Vec<Value> {
    let engine = &s.engine;
    let configs = match engine.list_key_managers() {
        Ok(c) => c,
        Err(e) => {
            return vec![
                json!({"what": "store", "reason": e.message(), "code": e.code().to_string()}),
            ];
        }
    };
    let local = engine.local_node().name.clone();
    let mut out = Vec::new();
    for c in configs {
        let scope = match c.svm() {
            Some(svm) => json!({"svm": svm.name()}),
            None => json!("cluster"),
        };
        let has_kek = match engine.kek_usage(c.uuid()) {
            Ok(u) => u.iter().any(|k| k.state == "active"),
            Err(e) => {
                out.push(json!({"what": "configuration", "configuration": c.uuid(), "scope": scope, "reason": e.message()}));
                continue;
            }
        };
        if !has_kek {
            continue; // no data key yet: nothing to unlock
        }
        match engine.kek_availability(c.uuid()) {
            Ok(nodes) => {
                for (node, reason) in nodes {
                    if let (true, Some(r)) = (node.name == local, reason) {
                        out.push(json!({"what": "kek", "configuration": c.uuid(), "scope": scope, "node": local, "reason": format!("The KEK is not unlocked on this node. {r}")}));
                    }
                }
            }
            Err(e) => out.push(json!({"what": "configuration", "configuration": c.uuid(), "scope": scope, "reason": e.message()})),
        }
    }
    out
}

/// `GET /readyz`.
pub async fn readyz(State(s): State<AppState>) -> Response {
    let missing = tokio::task::spawn_blocking(move || missing(&s))
        .await
        .unwrap_or_else(|_| vec![json!({"what": "worker", "reason": "the check stopped"})]);
    if missing.is_empty() {
        (StatusCode::OK, axum::Json(json!({"ready": true}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "missing": missing})),
        )
            .into_response()
    }
}
