//! The `/metrics` endpoint: the Prometheus text exposition, behind the REST router's
//! authentication or on its own listener (`--metrics-listen`).
//!
//! Owns: the content type of the exposition, and the encoding of it off the async runtime.
//! Must never: encode on a runtime worker (the engine's series read the store), or serve
//! anything but `/metrics` on the unauthenticated listener.
//!
//! ```text
//!   GET /metrics ──► spawn_blocking(Metrics::encode) ──► 200 text/plain; version=0.0.4
//!                       (counted series + EngineCollector at scrape time)
//!                    worker lost ──► 500
//! ```

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// The content type of the Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: the exposition (read on a blocking thread: engine series read the store).
pub async fn scrape(State(s): State<AppState>) -> Response {
    let m = s.metrics.clone();
    match tokio::task::spawn_blocking(move || m.encode()).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The router of `--metrics-listen`: `/metrics` only, without authentication.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(state)
}
