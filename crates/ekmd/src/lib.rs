//! ekmd: the ONTAP-compatible REST daemon of ekm.
//!
//! - `/api/security/azure-key-vaults` as the ONTAP 9.13.1 reference shapes it (list with
//!   fields, filters, order_by, max_records, return_records; create; get; patch; delete;
//!   rekey-external, rekey-internal and restore as jobs), `/api/cluster/jobs/{uuid}`, and the
//!   migrate job `/api/security/key-managers/{source.uuid}/migrate`;
//! - the data path: key create/list/delete over REST (never material), and key material only
//!   over a unix socket (`DATA_DIR/ekmd.sock`, mode 0600);
//! - HTTP basic authentication on everything, errors as ONTAP's `{"error":{code,message,target}}`.
//!
//! Handlers stay thin: they parse, call the engine on a blocking thread, and render.

#![forbid(unsafe_code)]

pub mod api;
pub mod query;
pub mod setup;
pub mod socket;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ekm_core::{Engine, Error, ErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 256 * 1024;
/// Longest a request may take (return_timeout may ask for up to 120 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(130);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Admin user name.
    pub admin_user: String,
    /// Admin password (never logged).
    pub admin_password: Arc<SecretString>,
}

/// An error answered in ONTAP's shape.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status =
            StatusCode::from_u16(e.kind().http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut err = json!({"code": e.code().to_string(), "message": e.message()});
        if let Some(t) = e.target() {
            err["target"] = json!(t);
        }
        tracing::info!(code = e.code(), status = status.as_u16(), "request refused");
        (status, axum::Json(json!({ "error": err }))).into_response()
    }
}

/// Constant-time equality of two byte strings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    // The decoded header holds the password: wiped when this returns.
    let raw = zeroize::Zeroizing::new(raw);
    let Some(colon) = raw.iter().position(|b| *b == b':') else {
        return false;
    };
    let (user, pass) = (&raw[..colon], &raw[colon + 1..]);
    same(user, state.admin_user.as_bytes())
        & same(pass, state.admin_password.expose_secret().as_bytes())
}

async fn require_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !authorized(&state, req.headers()) {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": "6691623", "message": "User is not authorized."}})),
        )
            .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"ekmd\""),
        );
        return r;
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::info!(%method, path, status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    resp
}

/// The REST router (management API and data-path key management), behind basic auth.
pub fn router(state: AppState) -> Router {
    api::routes()
        .layer(middleware::from_fn_with_state(state.clone(), require_auth))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

/// Runs engine work on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| {
            ApiError(Error::new(ErrorKind::StoreFailed).with_detail("the worker stopped"))
        })?
        .map_err(ApiError)
}
