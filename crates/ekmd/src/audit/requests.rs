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
//! | credentials refused | `login.failed` or `login.locked_out` (bounded: `logins.rs`) | `METHOD /route/template` |
//!
//! Each changing request is recorded twice: its intent (`"operation":"<operation>.intent"`,
//! `"phase":"intent"`, `"result":"pending"`) before it is carried out, and its outcome
//! (`"intent":<seq>`) after. A job started by a
//! request also gets a `job.end` record when it ends (`jobs.rs`).
//!
//! ```text
//!  request ─► auth ok ─► intent record (fsync) ──failed──► 503, nothing changed
//!                              │ok
//!                              ▼
//!                       handler (the change) ─► outcome record (fsync) ─► answer
//! ```
//!
//! Owns: which requests are recorded, and which codes and identifiers their records carry.
//! Must never: carry out a change whose intent the trail does not hold, or record a request
//! body, a user name that was refused, or an error message.

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
use super::writer::AuditLog;
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
        ("POST", "/api/security/aws-kms") => "config.create",
        ("PATCH", "/api/security/aws-kms/{uuid}") => "config.patch",
        ("DELETE", "/api/security/aws-kms/{uuid}") => "config.delete",
        ("POST", "/api/security/aws-kms/{uuid}/keys") => "key.create",
        ("DELETE", "/api/security/aws-kms/{uuid}/keys/{key_id}") => "key.delete",
        ("POST", "/api/security/aws-kms/{uuid}/rekey-external") => "rekey_external",
        ("POST", "/api/security/aws-kms/{uuid}/rekey-internal") => "rekey_internal",
        ("POST", "/api/security/aws-kms/{uuid}/restore") => "restore",
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

/// Marks a request (and then its response) whose intent record was written: the `seq` of that
/// record, which the outcome record names.
#[derive(Debug, Clone, Copy)]
pub struct Intent(pub u64);

/// Largest response body the audit layer reads for its codes and ids.
const MAX_READ: usize = 1024 * 1024;

/// Whether a request of `method` may change state (and so is recorded).
pub(crate) fn is_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The route template of a request, as counted and recorded.
fn route_of(req: &Request) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str())
        .unwrap_or("unmatched")
}

/// The configuration uuid and data key id a request path names:
/// `/api/security/{azure-key-vaults|key-managers}/{uuid}[/keys/{key_id}]`.
fn path_ids(path: &str) -> (Option<String>, Option<String>) {
    let segs: Vec<&str> = path.split('/').collect();
    let target = segs
        .get(4)
        .filter(|t| uuid::Uuid::parse_str(t).is_ok())
        .map(|t| t.to_string());
    let key_id = segs
        .get(6)
        .filter(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|k| k.to_string());
    (target, key_id)
}

/// The intent record of an authenticated state-changing request, and the trail to write it to
/// (`None`: nothing to record, a read or no trail).
pub(crate) fn intent_of(s: &AppState, req: &Request) -> Option<(Arc<AuditLog>, Event)> {
    let audit = s.audit.clone()?;
    if !is_changing(req.method()) {
        return None;
    }
    let (target, key_id) = path_ids(req.uri().path());
    let ev = Event {
        user: Some(s.admin_user.to_string()),
        source: Some(crate::client_ip(req).to_string()),
        // Named apart from the outcome, so a reader looking for `key.create` finds outcomes.
        operation: format!("{}.intent", operation(req.method(), route_of(req))),
        target,
        key_id,
        result: "pending".into(),
        phase: Some("intent"),
        ..Default::default()
    };
    Some((audit, ev))
}

/// Writes (and fsyncs) an intent record ([`intent_of`]) before its request is carried out;
/// called by the authentication layer once the credentials are good. `Err`: the trail cannot
/// be written (its disk is full, say), and the request is refused with this answer *before*
/// anything changes.
pub(crate) async fn write_intent(audit: Arc<AuditLog>, ev: Event) -> Result<Intent, Response> {
    match tokio::task::spawn_blocking(move || audit.append(&ev)).await {
        Ok(Ok(seq)) => Ok(Intent(seq)),
        Ok(Err(e)) => {
            tracing::error!("audit intent record not written, request refused: {e}");
            Err(crate::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::StoreFailed,
                "The audit trail cannot be written (is its disk full?); the request was refused and nothing was changed.",
            ))
        }
        Err(_) => Err(crate::error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::StoreFailed,
            "The audit trail could not be written; nothing was changed.",
        )),
    }
}

/// The operations layer of the REST router (one layer, for the cost of one): counts every
/// request in the metrics by its route template, and records in the audit trail:
///
/// - an authenticated state-changing request (any method but GET/HEAD/OPTIONS): its intent
///   before it is carried out (`write_intent`, from the authentication layer: no intent, no
///   change), and its outcome, naming the intent, after. If the outcome cannot be written the
///   client still gets the real answer (the change is made; the trail's intent shows it was
///   attempted) and ekmd logs the failure;
/// - a refused login, bounded per address and window (`logins.rs`), without an fsync per
///   refusal.
pub async fn layer(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = s.metrics.route(route_of(&req));
    let method = req.method().clone();
    let started = Instant::now();
    let changing = is_changing(&method);
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
    if let Some(f) = resp.extensions().get::<LoginFailed>().copied() {
        let target = format!("{} {}", method.as_str(), route);
        // Counted, and at most a few records per address and window: the refusal is answered
        // without waiting for them.
        tokio::task::spawn_blocking(move || audit.refused_login(ip, f.locked_out, target));
        return resp;
    }
    let intent = resp.extensions().get::<Intent>().copied();
    if intent.is_none() && (!changing || status == StatusCode::UNAUTHORIZED) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_READ)
        .await
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let (target, key_id) = path_ids(&path);
    let ev = Event {
        user: Some(s.admin_user.to_string()),
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
        operation: operation(&method, route),
        target: target.or_else(|| {
            parts
                .headers
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| l.rsplit('/').next())
                .filter(|t| uuid::Uuid::parse_str(t).is_ok())
                .map(str::to_owned)
        }),
        key_id: key_id.or_else(|| v["key_id"].as_str().map(str::to_owned)),
        job: v["job"]["uuid"].as_str().map(str::to_owned),
        intent: intent.map(|i| i.0),
        ..Default::default()
    };
    let job = ev.job.clone();
    let a = audit.clone();
    match tokio::task::spawn_blocking(move || a.append(&ev)).await {
        Ok(Ok(seq)) => tracing::debug!(seq, "audit record written"),
        Ok(Err(e)) => tracing::error!(
            intent = intent.map(|i| i.0),
            "audit outcome record not written (the change was made; its intent record shows it): {e}"
        ),
        Err(_) => tracing::error!("audit outcome record not written: the writer stopped"),
    }
    if let Some(job) = job.and_then(|j| uuid::Uuid::parse_str(&j).ok()) {
        if status.is_success() {
            watch_job(s.engine.clone(), audit, job);
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}
