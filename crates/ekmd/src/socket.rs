//! The data path: key material only over a unix socket (`DATA_DIR/ekmd.sock`, mode 0600),
//! `GET /keys/{key_id}` → `{"key_id": "...", "key": "<base64>"}` from this node's key table.
//! No TCP, no authentication beyond the socket's file permissions.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use base64::Engine as _;
use ekm_core::{DataKeyId, Error, ErrorKind};
use serde_json::json;

use crate::{ApiError, AppState, blocking};

async fn read_key(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let id = DataKeyId::parse(&id)
        .map_err(|_| ApiError(Error::new(ErrorKind::EntryNotFound).with_target("key_id")))?;
    let engine = s.engine.clone();
    let key = blocking(move || {
        let m = engine.read_data_key(&id)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(m.expose_secret()))
    })
    .await?;
    Ok(axum::Json(json!({"key_id": id.to_hex(), "key": key})))
}

/// The socket's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/keys/{key_id}", get(read_key))
        .with_state(state)
}

/// Binds the socket (replacing a stale one) with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}
