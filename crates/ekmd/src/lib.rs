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
pub mod audit;
pub mod auth;
pub mod backends;
pub mod connections;
pub mod health;
pub mod kmip;
pub mod metrics;
pub mod query;
pub mod setup;
pub mod socket;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use ekm_core::{Engine, Error, ErrorKind};
use secrecy::SecretString;
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
    pub admin_user: Arc<str>,
    /// Admin password (never logged).
    pub admin_password: Arc<SecretString>,
    /// Prometheus metrics (`/metrics`).
    pub metrics: Arc<metrics::Metrics>,
    /// The audit trail, when one is kept.
    pub audit: Option<Arc<audit::AuditLog>>,
}

impl AppState {
    /// The state of `engine` with fresh metrics (reading the engine's series) and no audit
    /// trail.
    pub fn new(engine: Arc<Engine>, admin_user: String, admin_password: SecretString) -> Self {
        Self::with_metrics(engine, admin_user, admin_password, metrics::Metrics::new())
    }

    /// The same with `metrics` (those its [`metrics::MeteredBackend`] counts into).
    pub fn with_metrics(
        engine: Arc<Engine>,
        admin_user: String,
        admin_password: SecretString,
        metrics: Arc<metrics::Metrics>,
    ) -> Self {
        metrics.attach_engine(&engine);
        AppState {
            engine,
            admin_user: admin_user.into(),
            admin_password: Arc::new(admin_password),
            metrics,
            audit: None,
        }
    }

    /// Records state-changing requests, failed logins and job ends in `audit`.
    pub fn with_audit(mut self, audit: Arc<audit::AuditLog>) -> Self {
        self.audit = Some(audit);
        self
    }
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

/// The ONTAP error body `{"error":{"code","message"}}` of `kind` with a status and message.
pub fn error_response(status: StatusCode, kind: ErrorKind, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": kind.code().to_string(), "message": message}})),
    )
        .into_response()
}

/// The client address the listener recorded (`into_make_service_with_connect_info`); requests
/// without one (in-process tests) share the unspecified address.
pub(crate) fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

async fn require_auth(
    State((state, throttle)): State<(AppState, Arc<auth::Throttle>)>,
    req: Request,
    next: Next,
) -> Response {
    let ip = client_ip(&req);
    let now = Instant::now();
    let creds = auth::check(&state, req.headers());
    if creds != auth::Credentials::Missing {
        // Refused unchecked (locked-out address, or the node-wide bound reached), so guessing
        // stays slow.
        if let Some((wait, why)) = throttle.locked(ip, now) {
            let secs = wait.as_secs() + 1;
            let (reason, message) = match why {
                auth::Refusal::LockedOut => (
                    "locked_out",
                    format!("Too many failed logins from this address; retry in {secs} s."),
                ),
                auth::Refusal::RateLimited => (
                    "rate_limited",
                    format!("Too many failed logins to this node; retry in {secs} s."),
                ),
            };
            state.metrics.login_refused(reason);
            tracing::warn!(%ip, retry_after = secs, reason, "login refused unchecked: too many failed logins");
            let mut r = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorKind::NotAuthorized,
                &message,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            r.extensions_mut()
                .insert(audit::LoginFailed { locked_out: true });
            return r;
        }
    }
    match creds {
        auth::Credentials::Valid => throttle.succeeded(ip, now),
        auth::Credentials::Missing | auth::Credentials::Invalid => {
            if creds == auth::Credentials::Invalid {
                let lockout = throttle.failed(ip, now);
                state.metrics.login_refused("wrong_credentials");
                // Never the password, nor the user name (people type passwords there).
                tracing::warn!(%ip, path = req.uri().path(), lockout_ms = lockout.map(|d| d.as_millis() as u64), "login failed");
            }
            let mut r = error_response(
                StatusCode::UNAUTHORIZED,
                ErrorKind::NotAuthorized,
                ErrorKind::NotAuthorized.message(),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"ekmd\""),
            );
            if creds == auth::Credentials::Invalid {
                r.extensions_mut()
                    .insert(audit::LoginFailed { locked_out: false });
            }
            return r;
        }
    }
    // No intent in the trail, no change: a trail that cannot be written refuses it here.
    let intent = match audit::intent_of(&state, &req) {
        None => None,
        Some((log, ev)) => match audit::write_intent(log, ev).await {
            Ok(i) => Some(i),
            Err(refused) => return refused,
        },
    };
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let started = Instant::now();
    let mut resp = next.run(req).await;
    if let Some(i) = intent {
        resp.extensions_mut().insert(i);
    }
    tracing::info!(%method, path, status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    resp
}

/// Refuses request targets longer than [`MAX_URI`] (414) before anything parses them.
async fn limit_uri(req: Request, next: Next) -> Response {
    let len = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if len > MAX_URI {
        return error_response(
            StatusCode::URI_TOO_LONG,
            ErrorKind::InvalidValue,
            &format!("The request target is longer than {MAX_URI} bytes."),
        );
    }
    next.run(req).await
}

/// Gives every error answer ONTAP's JSON shape: rejections made by the framework (unknown
/// route, method not allowed, body too large, undecodable path, timeout) come with a plain or
/// empty body, and are rewritten here. Answers that are JSON already pass untouched.
pub async fn ontap_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (ErrorKind::EntryNotFound, "API not found."),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorKind::UnexpectedArgument,
            "The method is not allowed on this API.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorKind::InvalidValue,
            "The request body is larger than 262144 bytes.",
        ),
        StatusCode::URI_TOO_LONG => (ErrorKind::InvalidValue, "The request target is too long."),
        StatusCode::REQUEST_TIMEOUT => (ErrorKind::InvalidValue, "The request took too long."),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (ErrorKind::InvalidValue, "The body must be JSON."),
        s if s.is_client_error() => (ErrorKind::InvalidValue, "The request is not valid."),
        _ => (ErrorKind::StoreFailed, "The request failed."),
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = error_response(status, code, message);
    let (bparts, body) = body.into_parts();
    parts.headers.extend(bparts.headers);
    Response::from_parts(parts, body)
}

/// Longest request target (path and query) accepted: longer ones are 414.
pub const MAX_URI: usize = 8 * 1024;

/// The REST router (management API, data-path key management and `/metrics`), behind basic
/// auth, with its own failed-login throttle; every request counted in the metrics, and every
/// state-changing one (and every refused login) recorded in the audit trail before it is
/// answered. `/healthz` and `/readyz` need no authentication.
pub fn router(state: AppState) -> Router {
    let throttle = Arc::new(auth::Throttle::new());
    let authed = api::routes()
        .route("/metrics", axum::routing::get(metrics::scrape))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            (state.clone(), throttle),
            require_auth,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::new(state.clone()),
            audit::layer,
        ));
    Router::new()
        .route("/healthz", axum::routing::get(health::healthz))
        .route("/readyz", axum::routing::get(health::readyz))
        .merge(authed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::map_response(ontap_errors))
        .layer(middleware::from_fn(limit_uri))
        .with_state(state)
}

/// The answer to a path no route takes.
pub(crate) async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        ErrorKind::EntryNotFound,
        "API not found.",
    )
}

/// Runs a read of the engine's own records (no backend call) inline when the store is the
/// embedded one (redb, sled: a read from the page cache takes microseconds, less than handing
/// the work to a blocking thread and back, which dominated a GET), and on a blocking thread
/// when the store is remote (etcd: a network round trip must not hold a runtime worker).
pub async fn store_read<T: Send + 'static>(
    engine: &Arc<Engine>,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    if engine.store().is_shared() {
        blocking(f).await
    } else {
        f().map_err(ApiError)
    }
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
