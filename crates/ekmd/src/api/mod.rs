//! The REST API: the ONTAP `azure-key-vaults` routes, jobs, data-path key management, migrate.
//!
//! | file | holds |
//! |---|---|
//! | `configs.rs` | the configuration collection and records: list, create, get, patch, delete |
//! | `aws.rs` | the AWS KMS collection and records (list, create, get, delete); the key-managers list of every kind |
//! | `keys.rs` | data keys over REST: create, list, delete (never material) |
//! | `jobs.rs` | the job-starting actions (rekeys, restore, migrate) and the job routes |
//! | `render.rs` | records as the API shows them: HAL `_links`, collections, job times |
//! | `svms.rs` | ONTAP's SVM list (`/api/svm/svms`): the SVMs of the topology |
//!
//! Owns: the route table, and the few helpers every handler shares (path uuids, JSON answers).
//! Must never: validate a request body itself (the core's request parsers do), call the engine
//! on an async thread (always through [`crate::blocking`]), or answer key material.

mod aws;
mod configs;
mod jobs;
mod keys;
mod render;
mod svms;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ekm_core::{Error, ErrorKind, Provider};
use serde_json::Value;
use uuid::Uuid;

use crate::{ApiError, AppState};

pub use render::render_job;

/// The configuration collection.
const BASE: &str = "/api/security/azure-key-vaults";
/// The job collection.
const JOBS: &str = "/api/cluster/jobs";

type ApiResult = Result<Response, ApiError>;

/// The routes (without auth and limits; see [`crate::router`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(BASE, get(configs::list).post(configs::create))
        .route(
            "/api/security/azure-key-vaults/{uuid}",
            get(configs::get_one)
                .patch(configs::patch)
                .delete(configs::remove),
        )
        .route(aws::AWS, get(aws::list).post(aws::create))
        .route(
            "/api/security/aws-kms/{uuid}",
            get(aws::get_one).patch(aws::patch).delete(aws::remove),
        )
        .route(aws::KEY_MANAGERS, get(aws::key_managers))
        .route(
            "/api/security/key-managers/{uuid}/migrate",
            post(jobs::migrate),
        )
        .route(svms::SVMS, get(svms::list))
        .route("/api/svm/svms/{uuid}", get(svms::get_one))
        .route(JOBS, get(jobs::list))
        .route("/api/cluster/jobs/{uuid}", get(jobs::get_one))
        .route("/api/openapi.json", get(openapi))
        .merge(key_routes(Provider::AzureKeyVault))
        .merge(key_routes(Provider::AwsKms))
}

/// The data keys and the jobs under a configuration of `p` (`{collection}/{uuid}/keys[/
/// {key_id}]`, `rekey-external`, `rekey-internal`, `restore`): the same handlers for every
/// provider, told whose paths they serve.
fn key_routes(p: Provider) -> Router<AppState> {
    let one = format!("{}/{{uuid}}", p.collection());
    let base = format!("{one}/keys");
    Router::new()
        .route(&format!("{one}/rekey-external"), post(jobs::rekey_external))
        .route(&format!("{one}/rekey-internal"), post(jobs::rekey_internal))
        .route(&format!("{one}/restore"), post(jobs::restore))
        .route(&base, get(keys::list).post(keys::create))
        .route(
            &format!("{base}/{{key_id}}"),
            get(keys::get_one).delete(keys::delete),
        )
        .layer(axum::Extension(p))
}

/// The uuid in a path; one that does not parse names no entry.
fn uuid_of(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s)
        .map_err(|_| ApiError(Error::new(ErrorKind::EntryNotFound).with_target("uuid")))
}

/// A JSON answer with `status`.
fn ok_json(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// `GET /api/openapi.json`: the API's OpenAPI document.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
        .into_response()
}
