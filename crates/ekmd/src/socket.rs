//! The data path: key material only over a unix socket (`DATA_DIR/ekmd.sock`, mode 0600),
//! `GET /keys/{key_id}` → `{"key_id": "...", "key": "<base64>"}` from this node's key table.
//! No TCP, no authentication beyond the socket's file permissions. A key registered or created
//! over KMIP with fewer than 32 bytes (AES-128/192, Secret Data) is served as those bytes: its
//! length is in its data key record, so the key table knows it and a read never needs the
//! store once the key is in the table.

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
    let Ok(id) = DataKeyId::parse(&id) else {
        s.metrics
            .key_read("socket", "not_found", std::time::Duration::ZERO);
        return Err(ApiError(
            Error::new(ErrorKind::EntryNotFound).with_target("key_id"),
        ));
    };
    let engine = s.engine.clone();
    let started = std::time::Instant::now();
    let key = blocking(move || {
        // From the node's key table (no store access on a hit); a KMIP object shorter than
        // 32 bytes comes as its bytes, the length being part of the data key (issue 13).
        let m = engine.read_served_key(&id)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(m.expose_secret()))
    })
    .await;
    let outcome = match &key {
        Ok(_) => "ok",
        Err(e) => crate::metrics::read_outcome(e.0.kind()),
    };
    s.metrics.key_read("socket", outcome, started.elapsed());
    let key = key?;
    Ok(axum::Json(json!({"key_id": id.to_hex(), "key": key})))
}

/// The socket's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/keys/{key_id}", get(read_key))
        .fallback(crate::not_found)
        .layer(axum::middleware::map_response(crate::ontap_errors))
        .with_state(state)
}

/// Binds the socket at `path` (replacing a stale one) with mode 0600, with no moment at which
/// it exists at `path` with a wider mode.
///
/// A socket file is created by `bind` with mode `0777 & !umask`, and the umask is process-wide:
/// changing it around `bind` would race with every other thread of this (multi-threaded)
/// process that creates files meanwhile. Instead the socket is bound inside a fresh private
/// directory (mode 0700: nobody else can reach the socket through it, whatever its own mode),
/// given mode 0600 there, and only then renamed to `path` — `rename` is atomic, so `path` is
/// either absent, the stale socket, or the new socket with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::DirBuilderExt;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "socket path has no file name",
        )
    })?;
    let mut raw = [0u8; 8];
    ekm_core::crypto::fill_random(&mut raw);
    let private = parent.join(format!(".{}.{}", name.to_string_lossy(), hex::encode(raw)));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let result = (|| {
        let staged = private.join("s");
        let listener = tokio::net::UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}
