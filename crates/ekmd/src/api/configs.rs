//! The configuration routes: `GET`/`POST /api/security/azure-key-vaults` and `GET`/`PATCH`/
//! `DELETE /api/security/azure-key-vaults/{uuid}`.
//!
//! Owns: which query parameters each configuration route takes, and its status codes.
//! Must never: parse a configuration body itself (the core's `CreateRequest`/`PatchRequest`
//! do), or compute the advanced status fields unless the query names them.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use ekm_core::{CreateRequest, PatchRequest};
use serde_json::{Value, json};

use super::render::{collection, created, render, self_href};
use super::{ApiResult, BASE, ok_json, uuid_of};
use crate::query::{Accepts, Query, project};
use crate::{AppState, blocking, store_read};

pub(super) async fn list(State(s): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = Query::parse(raw.as_deref(), Accepts::COLLECTION)?;
    let status = q.status_fields();
    let engine = s.engine.clone();
    let configs = if status.any() {
        // The status fields call the backend: a blocking thread.
        blocking(move || {
            let mut out = Vec::new();
            for c in engine.list_configs()? {
                out.push(engine.get_config_with_status(c.uuid, status)?);
            }
            Ok(out)
        })
        .await?
    } else {
        store_read(&s.engine, move || engine.list_configs()).await?
    };
    let records: Vec<Value> = configs.iter().map(render).collect();
    Ok(ok_json(StatusCode::OK, collection(&q, records, BASE)))
}

pub(super) async fn create(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    let q = Query::parse(raw.as_deref(), Accepts::POST)?;
    let req = CreateRequest::from_json(&body)?;
    let engine = s.engine.clone();
    let cfg = blocking(move || engine.create_config(req)).await?;
    Ok(created(&q, render(&cfg), &self_href(cfg.uuid)))
}

pub(super) async fn get_one(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse(raw.as_deref(), Accepts::RECORD)?;
    let uuid = uuid_of(&uuid)?;
    let status = q.status_fields();
    let engine = s.engine.clone();
    let cfg = if status.any() {
        blocking(move || engine.get_config_with_status(uuid, status)).await?
    } else {
        store_read(&s.engine, move || engine.get_config(uuid)).await?
    };
    let record = render(&cfg);
    let out = match &q.fields {
        Some(f) => project(&record, f),
        None => record,
    };
    Ok(ok_json(StatusCode::OK, out))
}

pub(super) async fn patch(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    Query::parse(raw.as_deref(), Accepts::CHANGE)?;
    let uuid = uuid_of(&uuid)?;
    let req = PatchRequest::from_json(&body)?;
    let engine = s.engine.clone();
    blocking(move || engine.patch_config(uuid, req)).await?;
    Ok(ok_json(StatusCode::OK, json!({})))
}

pub(super) async fn remove(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    Query::parse(raw.as_deref(), Accepts::CHANGE)?;
    let uuid = uuid_of(&uuid)?;
    let engine = s.engine.clone();
    blocking(move || {
        // A uuid of another kind is 404 here, as ONTAP answers it.
        engine.get_config(uuid)?;
        engine.delete_config(uuid)
    })
    .await?;
    Ok(ok_json(StatusCode::OK, json!({})))
}
