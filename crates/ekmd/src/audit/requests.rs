//! The audit layer of the REST router: what is recorded for each request and refused login.
//!
//! | request | `operation` | `target`, `key_id`, `job` |
//! |---|---|---|
//! | `POST /api/security/azure-key-vaults` | `config.create` | the new uuid (from `Location`) |
//! | `PATCH`, `DELETE .../azure-key-vaults/{uuid}` | `config.patch`, `config.delete` | the uuid |
//! | `POST`, `DELETE .../{uuid}/keys[/{key_id}]` | `key.create`, `key.delete` | uuid, key id |
//! | `POST .../{uuid}/rekey-external`, `rekey-internal`, `restore` | `rekey_external`, `rekey_internal`, `restore` | uuid, job |
//! | `POST /api/security/key-managers/{uuid}/migrate` | `migrate` | uuid, job |
//! | another changing request | `METHOD /route/template` | as above when found |
//! | credentials refused | `login.failed` or `login.locked_out` | `METHOD /route/template` |
//!
//! A job started by a request also gets a `job.end` record when it ends (`jobs.rs`).
//!
//! Owns: which requests are recorded, and which codes and identifiers their records carry.
//! Must never: acknowledge a change that the trail does not hold, or record a request body, a
//! user name that was refused, or an error message.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use ekm_core::ErrorKind;

use super::jobs::watch_job;
use super::record::Event;
use crate::AppState;

/// What a state-changing request is called in the trail.
fn operation(method: &Method, route: &str) -> String {
    let m = method.as_str();
    let op = match (m, route) {
        ("POST", "/api/security/azure-key-vaults") => "config.create",
        ("PATCH", "/api/security/azure-key-vaults/{uuid}") => "config.patch",
        ("DELETE", "/api/security/azure-key-vaults/{uuid}") => "config.delete",
        ("POST", "/api/security/azure-key-vaults/{uuid}/keys") => "key.create",
        ("DELETE", "/api/security/azure-key-vaults/{uuid}/keys/{key_id}") => "key.delete",
        ("POST", "/api/security/azure-key-vaults/{uuid}/rekey-external") => "rekey_external",
        ("POST", "/api/security/azure-key-vaults/{uuid}/rekey-internal") => "rekey_internal",
        ("POST", "/api/security/azure-key-vaults/{uuid}/restore") => "restore",
        ("POST", "/api/security/key-managers/{uuid}/migrate") => "migrate",
        _ => return format!("{m} {route}"),
    };
    op.to_owned()
}

/// Marks a response that refused credentials (wrong ones, or a locked-out address).
#[derive(Debug, Clone, Copy)]
pub struct LoginFailed {
    /// True when refused without checking (the address was locked out).
    pub locked_out: bool,
}

/// Largest response body the audit layer reads for its codes and ids.
const MAX_READ: usize = 1024 * 1024;

/// The operations layer of the REST router (one layer, for the cost of one): counts every
/// request in the metrics by its route template, and — after the handler answers a
/// state-changing request (any method but GET/HEAD/OPTIONS, once authenticated) or a login is
/// refused — appends its audit record and fsyncs it before the response leaves. If the record
/// cannot be written the answer is a 500 saying so: nothing is acknowledged that the trail
/// does not hold.
pub async fn layer(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = s.metrics.route(
        req.extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str())
            .unwrap_or("unmatched"),
    );
    let method = req.method().clone();
    let started = Instant::now();
    let changing = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let path = if changing && s.audit.is_some() {
        req.uri().path().to_owned()
    } else {
        String::new()
    };
    let ip: IpAddr = crate::client_ip(&req);
    let resp = next.run(req).await;
    let status = resp.status();
    s.metrics
        .http_request(route, &method, status, started.elapsed());
    let Some(audit) = s.audit.clone() else {
        return resp;
    };
    let failed = resp.extensions().get::<LoginFailed>().copied();
    if failed.is_none() && (!changing || status == StatusCode::UNAUTHORIZED) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_READ)
        .await
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let mut ev = Event {
        user: failed.is_none().then(|| s.admin_user.to_string()),
        source: Some(ip.to_string()),
        status: Some(status.as_u16()),
        result: v["error"]["code"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if status.is_success() {
                    "0".into()
                } else {
                    status.as_u16().to_string()
                }
            }),
        ..Default::default()
    };
    if let Some(f) = failed {
        ev.operation = if f.locked_out {
            "login.locked_out".into()
        } else {
            "login.failed".into()
        };
        ev.target = Some(format!("{} {}", method_name(&method), route));
    } else {
        ev.operation = operation(&method, route);
        let segs: Vec<&str> = path.split('/').collect();
        // /api/security/{azure-key-vaults|key-managers}/{uuid}[/keys/{key_id}]
        ev.target = segs
            .get(4)
            .filter(|t| uuid::Uuid::parse_str(t).is_ok())
            .map(|t| t.to_string())
            .or_else(|| {
                parts
                    .headers
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| l.rsplit('/').next())
                    .filter(|t| uuid::Uuid::parse_str(t).is_ok())
                    .map(str::to_owned)
            });
        ev.key_id = segs
            .get(6)
            .filter(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|k| k.to_string())
            .or_else(|| v["key_id"].as_str().map(str::to_owned));
        ev.job = v["job"]["uuid"].as_str().map(str::to_owned);
    }
    let job = ev.job.clone();
    let a = audit.clone();
    let written = tokio::task::spawn_blocking(move || a.append(&ev)).await;
    match written {
        Ok(Ok(seq)) => tracing::debug!(seq, "audit record written"),
        Ok(Err(e)) => {
            tracing::error!("audit record not written: {e}");
            return crate::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::StoreFailed,
                "The request was carried out but could not be recorded in the audit trail; see ekmd's log.",
            );
        }
        Err(_) => {
            return crate::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::StoreFailed,
                "The audit trail could not be written.",
            );
        }
    }
    if let Some(job) = job.and_then(|j| uuid::Uuid::parse_str(&j).ok()) {
        if status.is_success() {
            watch_job(s.engine.clone(), audit, job);
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn method_name(m: &Method) -> &str {
    m.as_str()
}
