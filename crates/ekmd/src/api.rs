//! The REST handlers: the ONTAP `azure-key-vaults` API, jobs, data-path key management, migrate.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use ekm_core::{
    AzureKeyVault, CreateRequest, DataKeyId, Error, ErrorKind, Job, JobState, KeyOwner, KeyTag,
    PatchRequest, RekeyExternalRequest, SvmSelector,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::query::{
    Accepts, DEFAULT_FIELDS, JOB_DEFAULT_FIELDS, JOB_FIELDS, Query, project, project_with,
};
use crate::{ApiError, AppState, blocking};

const BASE: &str = "/api/security/azure-key-vaults";

type ApiResult = Result<Response, ApiError>;

/// The routes (without auth and limits; see [`crate::router`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(BASE, get(list).post(create))
        .route(
            "/api/security/azure-key-vaults/{uuid}",
            get(get_one).patch(patch).delete(remove),
        )
        .route(
            "/api/security/azure-key-vaults/{uuid}/rekey-external",
            post(rekey_external),
        )
        .route(
            "/api/security/azure-key-vaults/{uuid}/rekey-internal",
            post(rekey_internal),
        )
        .route(
            "/api/security/azure-key-vaults/{uuid}/restore",
            post(restore),
        )
        .route(
            "/api/security/azure-key-vaults/{uuid}/keys",
            get(list_keys).post(create_key),
        )
        .route(
            "/api/security/azure-key-vaults/{uuid}/keys/{key_id}",
            delete(delete_key),
        )
        .route("/api/security/key-managers/{uuid}/migrate", post(migrate))
        .route("/api/cluster/jobs", get(jobs))
        .route("/api/cluster/jobs/{uuid}", get(job))
        .route("/api/openapi.json", get(openapi))
}

fn uuid_of(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s)
        .map_err(|_| ApiError(Error::new(ErrorKind::EntryNotFound).with_target("uuid")))
}

fn self_href(uuid: Uuid) -> String {
    format!("{BASE}/{uuid}")
}

/// A configuration as the REST API shows it: the record plus HAL links.
fn render(cfg: &AzureKeyVault) -> Value {
    let mut v = serde_json::to_value(cfg).unwrap_or(Value::Null);
    if let Some(svm) = v.get_mut("svm") {
        svm["_links"] = json!({"self": {"href": format!("/api/svm/svms/{}", cfg.svm.as_ref().map(|s| s.uuid().to_string()).unwrap_or_default())}});
    }
    if let Some(Value::Array(nodes)) = v.get_mut("ekmip_reachability") {
        for n in nodes {
            let u = n["node"]["uuid"].as_str().unwrap_or_default().to_owned();
            n["node"]["_links"] = json!({"self": {"href": format!("/api/cluster/nodes/{u}")}});
        }
    }
    v["_links"] = json!({"self": {"href": self_href(cfg.uuid)}});
    v
}

fn ok_json(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

async fn list(State(s): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = Query::parse(
        raw.as_deref(),
        Accepts {
            fields: true,
            collection: true,
            return_records: true,
            return_timeout: true,
        },
    )?;
    let status = q.status_fields();
    let engine = s.engine.clone();
    let configs = blocking(move || {
        let mut out = Vec::new();
        for c in engine.list_configs()? {
            out.push(if status.any() {
                engine.get_config_with_status(c.uuid, status)?
            } else {
                c
            });
        }
        Ok(out)
    })
    .await?;
    let records: Vec<Value> = configs.iter().map(render).collect();
    Ok(ok_json(
        StatusCode::OK,
        collection(&q, records, BASE, DEFAULT_FIELDS),
    ))
}

/// A collection GET over rendered records: filters, `order_by`, `start.uuid` and
/// `max_records` paging with `_links.next`, `fields` (`*` meaning `defaults`), and
/// `return_records`.
fn collection(q: &Query, records: Vec<Value>, base: &str, defaults: &[&str]) -> Value {
    let mut records: Vec<Value> = records.into_iter().filter(|r| q.matches(r)).collect();
    q.sort(&mut records);
    if let Some(start) = &q.start_uuid {
        let pos = records
            .iter()
            .position(|r| r["uuid"] == start.as_str())
            .unwrap_or(records.len());
        records.drain(..pos);
    }
    let mut links = json!({"self": {"href": q.self_link(base)}});
    if let Some(max) = q.max_records {
        if records.len() > max {
            let next = records[max]["uuid"].as_str().unwrap_or_default().to_owned();
            links["next"] = json!({"href": q.next_link(base, &next)});
            records.truncate(max);
        }
    }
    let fields: Vec<String> = q.fields.clone().unwrap_or_default();
    let records: Vec<Value> = records
        .iter()
        .map(|r| project_with(r, &fields, defaults))
        .collect();
    let mut body = json!({"num_records": records.len(), "_links": links});
    if q.return_records != Some(false) {
        body["records"] = Value::Array(records);
    }
    body
}

async fn create(State(s): State<AppState>, RawQuery(raw): RawQuery, body: Bytes) -> ApiResult {
    let q = Query::parse(
        raw.as_deref(),
        Accepts {
            fields: false,
            collection: false,
            return_records: true,
            return_timeout: true,
        },
    )?;
    let req = CreateRequest::from_json(&body)?;
    let engine = s.engine.clone();
    let cfg = blocking(move || engine.create_config(req)).await?;
    // The seed: "The default is false. If set to true, the records are returned." The new
    // uuid is in the Location header either way.
    let mut body = json!({"num_records": 1});
    if q.return_records == Some(true) {
        body["records"] = json!([render(&cfg)]);
    }
    let mut resp = ok_json(StatusCode::CREATED, body);
    if let Ok(v) = self_href(cfg.uuid).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn get_one(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse(
        raw.as_deref(),
        Accepts {
            fields: true,
            collection: false,
            return_records: false,
            return_timeout: true,
        },
    )?;
    let uuid = uuid_of(&uuid)?;
    let status = q.status_fields();
    let engine = s.engine.clone();
    let cfg = blocking(move || engine.get_config_with_status(uuid, status)).await?;
    let record = render(&cfg);
    let out = match &q.fields {
        Some(f) => project(&record, f),
        None => record,
    };
    Ok(ok_json(StatusCode::OK, out))
}

async fn patch(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    Query::parse(
        raw.as_deref(),
        Accepts {
            fields: false,
            collection: false,
            return_records: false,
            return_timeout: true,
        },
    )?;
    let uuid = uuid_of(&uuid)?;
    let req = PatchRequest::from_json(&body)?;
    let engine = s.engine.clone();
    blocking(move || engine.patch_config(uuid, req)).await?;
    Ok(ok_json(StatusCode::OK, json!({})))
}

async fn remove(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    Query::parse(
        raw.as_deref(),
        Accepts {
            fields: false,
            collection: false,
            return_records: false,
            return_timeout: true,
        },
    )?;
    let uuid = uuid_of(&uuid)?;
    let engine = s.engine.clone();
    blocking(move || engine.delete_config(uuid)).await?;
    Ok(ok_json(StatusCode::OK, json!({})))
}

/// Unix seconds as an RFC 3339 UTC time (what ONTAP's job times look like).
fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A job as `/api/cluster/jobs/{uuid}` shows it.
pub fn render_job(j: &Job) -> Value {
    let description = match j.kind {
        ekm_core::JobKind::RekeyExternal => format!("POST {BASE}/{}/rekey-external", j.config),
        ekm_core::JobKind::RekeyInternal => format!("POST {BASE}/{}/rekey-internal", j.config),
        ekm_core::JobKind::Restore => format!("POST {BASE}/{}/restore", j.config),
        ekm_core::JobKind::Migrate => {
            format!("POST /api/security/key-managers/{}/migrate", j.config)
        }
    };
    json!({
        "uuid": j.uuid,
        "description": description,
        "state": j.state.as_str(),
        "message": j.message,
        "code": j.code,
        "progress": {"processed": j.processed, "total": j.total},
        "start_time": rfc3339(j.created),
        "end_time": rfc3339(j.updated),
        "_links": {"self": {"href": format!("/api/cluster/jobs/{}", j.uuid)}},
    })
}

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
    let link = json!({"job": {"uuid": job.uuid, "_links": {"self": {"href": format!("/api/cluster/jobs/{}", job.uuid)}}}});
    match job.state {
        JobState::Success if wait > 0 => Ok(ok_json(StatusCode::OK, link)),
        JobState::Failure if wait > 0 => Err(ApiError(
            job.error()
                .unwrap_or_else(|| Error::new(ErrorKind::StoreFailed)),
        )),
        _ => Ok(ok_json(StatusCode::ACCEPTED, link)),
    }
}

fn action_query(raw: Option<&str>) -> Result<Query, ApiError> {
    Ok(Query::parse(
        raw,
        Accepts {
            fields: false,
            collection: false,
            return_records: true,
            return_timeout: true,
        },
    )?)
}

async fn rekey_external(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    let req = RekeyExternalRequest::from_json(&body)?;
    action(s, uuid, raw, move |e, u| {
        e.start_rekey_external(u, req.key_id, req.svm.as_ref())
    })
    .await
}

/// Starts a job on configuration `uuid` with `start`, then answers as `return_timeout` says.
async fn action(
    s: AppState,
    uuid: String,
    raw: Option<String>,
    start: impl FnOnce(&std::sync::Arc<ekm_core::Engine>, Uuid) -> Result<Job, Error> + Send + 'static,
) -> ApiResult {
    let q = action_query(raw.as_deref())?;
    let uuid = uuid_of(&uuid)?;
    let engine = s.engine.clone();
    let job = blocking(move || start(&engine, uuid)).await?;
    job_response(&s, job, &q).await
}

async fn rekey_internal(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    action(s, uuid, raw, |e, u| e.start_rekey_internal(u)).await
}

async fn restore(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    action(s, uuid, raw, |e, u| e.start_restore(u)).await
}

async fn migrate(
    State(s): State<AppState>,
    Path(source): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    let q = action_query(raw.as_deref())?;
    let source = uuid_of(&source)?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        uuid: String,
        #[serde(default)]
        source: Option<Value>,
    }
    let b: Body = serde_json::from_slice(&body).map_err(|_| {
        ApiError(
            Error::new(ErrorKind::InvalidValue)
                .with_detail("The body must be {\"uuid\": \"<destination key manager uuid>\"}.")
                .with_target("uuid"),
        )
    })?;
    drop(b.source);
    let dest = uuid_of(&b.uuid)?;
    let engine = s.engine.clone();
    let job = blocking(move || engine.start_migrate(source, dest)).await?;
    job_response(&s, job, &q).await
}

/// `GET /api/cluster/jobs`: every job, as a collection (filters such as `state=running`,
/// `fields`, `order_by`, `max_records`), so a client that lost a job's uuid finds it again.
async fn jobs(State(s): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = Query::parse_for(
        raw.as_deref(),
        Accepts {
            fields: true,
            collection: true,
            return_records: true,
            return_timeout: false,
        },
        JOB_FIELDS,
    )?;
    let engine = s.engine.clone();
    let jobs = blocking(move || engine.list_jobs()).await?;
    let records: Vec<Value> = jobs.iter().map(render_job).collect();
    Ok(ok_json(
        StatusCode::OK,
        collection(&q, records, "/api/cluster/jobs", JOB_DEFAULT_FIELDS),
    ))
}

/// `GET /api/cluster/jobs/{uuid}`; with `return_timeout=N` it waits up to N seconds for the
/// job to end first.
async fn job(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse_for(
        raw.as_deref(),
        Accepts {
            fields: true,
            collection: false,
            return_records: false,
            return_timeout: true,
        },
        JOB_FIELDS,
    )?;
    let uuid = uuid_of(&uuid)?;
    let engine = s.engine.clone();
    let wait = q.return_timeout.unwrap_or(0);
    let j = blocking(move || {
        if wait > 0 {
            engine.wait_job(uuid, Duration::from_secs(wait))
        } else {
            engine.job(uuid)
        }
    })
    .await?;
    let record = render_job(&j);
    let out = match &q.fields {
        Some(f) => project_with(&record, f, JOB_DEFAULT_FIELDS),
        None => record,
    };
    Ok(ok_json(StatusCode::OK, out))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    #[serde(default)]
    key_tag: Option<String>,
    #[serde(default)]
    svm: Option<SvmSelector>,
}

async fn create_key(State(s): State<AppState>, Path(uuid): Path<String>, body: Bytes) -> ApiResult {
    let uuid = uuid_of(&uuid)?;
    let b: KeyBody = if body.is_empty() {
        KeyBody {
            key_tag: None,
            svm: None,
        }
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            ApiError(
                Error::new(ErrorKind::InvalidValue)
                    .with_detail("The body takes key_tag and optionally svm {uuid|name}.")
                    .with_target("body"),
            )
        })?
    };
    let tag = KeyTag::parse(b.key_tag.as_deref().unwrap_or(""))?;
    let engine = s.engine.clone();
    let id = blocking(move || {
        let cfg = engine.get_config(uuid)?;
        let owner = match (&cfg.svm, &b.svm) {
            (Some(svm), None) => KeyOwner::Svm(svm.uuid()),
            (Some(svm), Some(sel)) => {
                let named = engine.topology().resolve_svm(sel)?;
                if named.uuid() != svm.uuid() {
                    return Err(Error::new(ErrorKind::InvalidValue)
                        .with_detail("This key manager belongs to another SVM.")
                        .with_target("svm"));
                }
                KeyOwner::Svm(svm.uuid())
            }
            (None, None) => KeyOwner::Cluster,
            (None, Some(sel)) => {
                let named = engine.topology().resolve_svm(sel)?;
                if engine
                    .list_configs()?
                    .iter()
                    .any(|c| c.svm.as_ref().is_some_and(|s| s.uuid() == named.uuid()))
                {
                    return Err(Error::new(ErrorKind::InvalidValue)
                        .with_detail(format!(
                            "SVM \"{}\" has its own key manager: create its keys there.",
                            named.name()
                        ))
                        .with_target("svm"));
                }
                KeyOwner::Svm(named.uuid())
            }
        };
        engine.create_data_key(owner, tag)
    })
    .await?;
    Ok(ok_json(StatusCode::CREATED, json!({"key_id": id.to_hex()})))
}

async fn list_keys(State(s): State<AppState>, Path(uuid): Path<String>) -> ApiResult {
    let uuid = uuid_of(&uuid)?;
    let engine = s.engine.clone();
    let keys = blocking(move || engine.list_data_keys(uuid)).await?;
    let topo = s.engine.topology().clone();
    let records: Vec<Value> = keys
        .iter()
        .map(|k| {
            let mut r = json!({"key_id": k.key_id.to_hex(), "key_tag": k.key_tag.as_str(), "kek_generation": k.kek_generation, "owner": if k.svm_uuid.is_some() {"svm"} else {"cluster"}});
            if let Some(u) = k.svm_uuid {
                let name = topo.svm_by_uuid(u).map(|s| s.name().to_owned()).unwrap_or_default();
                r["svm"] = json!({"uuid": u, "name": name});
            }
            r
        })
        .collect();
    Ok(ok_json(
        StatusCode::OK,
        json!({"num_records": records.len(), "records": records}),
    ))
}

async fn delete_key(
    State(s): State<AppState>,
    Path((uuid, key_id)): Path<(String, String)>,
) -> ApiResult {
    let uuid = uuid_of(&uuid)?;
    let id = DataKeyId::parse(&key_id)
        .map_err(|_| ApiError(Error::new(ErrorKind::EntryNotFound).with_target("key_id")))?;
    let engine = s.engine.clone();
    blocking(move || {
        if engine.data_key_info(&id)?.config_uuid != uuid {
            return Err(Error::new(ErrorKind::EntryNotFound).with_target("key_id"));
        }
        engine.delete_data_key(&id)
    })
    .await?;
    Ok(ok_json(StatusCode::OK, json!({})))
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_844_123), "2026-11-28T05:35:23Z");
    }
}
