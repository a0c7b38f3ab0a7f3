//! The job routes: the actions that start a job (`rekey-external`, `rekey-internal`, `restore`,
//! `migrate`) and `GET /api/cluster/jobs[/{uuid}]`.
//!
//! Owns: how a started job is answered (202 with its link, or with `return_timeout` 200 or the
//! job's own error), and waiting for a job on a blocking thread.
//! Must never: run a job's work in the request (the engine's runners do), or turn a failed
//! job's stored error into another one.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use ekm_core::{
    AwsRekeyExternalRequest, Engine, Error, ErrorKind, Job, JobState, Provider,
    RekeyExternalRequest,
};
use serde_json::Value;
use uuid::Uuid;

use super::render::{collection, job_link, render_job};
use super::{ApiResult, JOBS, ok_json, uuid_of};
use crate::query::{Accepts, Query, Shape, project_with};
use crate::{ApiError, AppState, blocking};

/// The job records (`/api/cluster/jobs`): every field as filter and `fields` paths, and the
/// top-level fields `fields=*` returns.
const JOB_SHAPE: Shape = Shape {
    fields: &[
        "uuid",
        "description",
        "state",
        "message",
        "code",
        "progress.processed",
        "progress.total",
        "start_time",
        "end_time",
    ],
    defaults: &[
        "uuid",
        "description",
        "state",
        "message",
        "code",
        "progress",
        "start_time",
        "end_time",
    ],
    id: "uuid",
};

/// Answers a started job: 202 with its link, or — when `return_timeout` lets the job finish —
/// 200 on success and the job's error on failure.
async fn job_response(s: &AppState, job: Job, q: &Query) -> ApiResult {
    let wait = q.return_timeout.unwrap_or(0);
    let job = if wait > 0 {
        let engine = s.engine.clone();
        let uuid = job.uuid;
        blocking(move || engine.wait_job(uuid, Duration::from_secs(wait))).await?
    } else {
        job
    };
    let link = job_link(&job);
    match job.state {
        JobState::Success if wait > 0 => Ok(ok_json(StatusCode::OK, link)),
        JobState::Failure if wait > 0 => Err(ApiError(
            job.error()
                .unwrap_or_else(|| Error::new(ErrorKind::StoreFailed)),
        )),
        _ => Ok(ok_json(StatusCode::ACCEPTED, link)),
    }
}

/// Starts a job on configuration `uuid` with `start`, then answers as `return_timeout` says.
async fn action(
    s: AppState,
    uuid: String,
    raw: Option<String>,
    start: impl FnOnce(&Arc<Engine>, Uuid) -> Result<Job, Error> + Send + 'static,
) -> ApiResult {
    let q = Query::parse(raw.as_deref(), Accepts::POST)?;
    let uuid = uuid_of(&uuid)?;
    let engine = s.engine.clone();
    let job = blocking(move || start(&engine, uuid)).await?;
    job_response(&s, job, &q).await
}

/// `POST {collection}/{uuid}/rekey-external`: the body's key is of the path's provider (an
/// AKV key URL with its version, or an AWS key id, ARN or alias).
pub(super) async fn rekey_external(
    State(s): State<AppState>,
    Extension(p): Extension<Provider>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    match p {
        Provider::AzureKeyVault => {
            let req = RekeyExternalRequest::from_json(&body)?;
            action(s, uuid, raw, move |e, u| {
                e.key_manager_of(u, p)?;
                e.start_rekey_external(u, req.key_id, req.svm.as_ref())
            })
            .await
        }
        Provider::AwsKms => {
            let req = AwsRekeyExternalRequest::from_json(&body)?;
            action(s, uuid, raw, move |e, u| {
                e.start_rekey_external_aws(u, &req.key_id, req.svm.as_ref())
            })
            .await
        }
    }
}

/// `POST {collection}/{uuid}/rekey-internal`; a uuid of another provider is 404.
pub(super) async fn rekey_internal(
    State(s): State<AppState>,
    Extension(p): Extension<Provider>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    action(s, uuid, raw, move |e, u| {
        e.key_manager_of(u, p)?;
        e.start_rekey_internal(u)
    })
    .await
}

/// `POST {collection}/{uuid}/restore`; a uuid of another provider is 404.
pub(super) async fn restore(
    State(s): State<AppState>,
    Extension(p): Extension<Provider>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    action(s, uuid, raw, move |e, u| {
        e.key_manager_of(u, p)?;
        e.start_restore(u)
    })
    .await
}

pub(super) async fn migrate(
    State(s): State<AppState>,
    Path(source): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    let q = Query::parse(raw.as_deref(), Accepts::POST)?;
    let source = uuid_of(&source)?;
    // The same parser as every other body; a missing `uuid` names the body's one field.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        uuid: Option<String>,
        #[serde(default)]
        source: Option<Value>,
    }
    let b: Body = ekm_core::config::parse_json(&body)?;
    let Some(dest) = b.uuid else {
        return Err(ApiError(
            Error::new(ErrorKind::InvalidValue)
                .with_detail(
                    "Field \"uuid\" is required: the body is {\"uuid\": \"<destination key manager uuid>\"}.",
                )
                .with_target("uuid"),
        ));
    };
    drop(b.source);
    let dest = uuid_of(&dest)?;
    let engine = s.engine.clone();
    let job = blocking(move || engine.start_migrate(source, dest)).await?;
    job_response(&s, job, &q).await
}

/// The REST collection of the job's configuration's provider (Azure's when the configuration
/// is gone).
fn collection_of(engine: &Engine, j: &Job) -> &'static str {
    engine
        .config_provider(j.config)
        .map_or(super::BASE, |p| p.collection())
}

/// `GET /api/cluster/jobs`: every job, as a collection (filters such as `state=running`,
/// `fields`, `order_by`, `max_records`), so a client that lost a job's uuid finds it again.
pub(super) async fn list(State(s): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = Query::parse_for(raw.as_deref(), Accepts::JOB_COLLECTION, JOB_SHAPE)?;
    let engine = s.engine.clone();
    let jobs = blocking(move || {
        Ok(engine
            .list_jobs()?
            .into_iter()
            .map(|j| {
                let c = collection_of(&engine, &j);
                (j, c)
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let records: Vec<Value> = jobs.iter().map(|(j, c)| render_job(j, c)).collect();
    Ok(ok_json(StatusCode::OK, collection(&q, records, JOBS)))
}

/// `GET /api/cluster/jobs/{uuid}`; with `return_timeout=N` it waits up to N seconds for the
/// job to end first.
pub(super) async fn get_one(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse_for(raw.as_deref(), Accepts::RECORD, JOB_SHAPE)?;
    let uuid = uuid_of(&uuid)?;
    let engine = s.engine.clone();
    let wait = q.return_timeout.unwrap_or(0);
    let (j, c) = blocking(move || {
        let j = if wait > 0 {
            engine.wait_job(uuid, Duration::from_secs(wait))?
        } else {
            engine.job(uuid)?
        };
        let c = collection_of(&engine, &j);
        Ok((j, c))
    })
    .await?;
    let record = render_job(&j, c);
    let out = match &q.fields {
        Some(f) => project_with(&record, f, &JOB_SHAPE),
        None => record,
    };
    Ok(ok_json(StatusCode::OK, out))
}
