//! ONTAP's `GET /api/svm/svms` and `GET /api/svm/svms/{uuid}`: the SVMs of the topology, so a
//! client can tell an SVM that does not exist from one that has no key manager.
//!
//! Owns: the SVM record (`uuid`, `name`, `_links`) with the collection conventions.
//! Must never: create or change an SVM (the topology file is the embedder's).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use ekm_core::{Error, ErrorKind, SvmInfo};
use serde_json::{Value, json};

use super::render::collection;
use super::{ApiResult, ok_json, uuid_of};
use crate::query::{Accepts, Query, Shape, project_with};
use crate::{ApiError, AppState};

/// The SVM collection.
pub(super) const SVMS: &str = "/api/svm/svms";

/// The SVM records: `uuid` and `name`.
const SHAPE: Shape = Shape {
    fields: &["uuid", "name"],
    defaults: &["uuid", "name"],
    id: "uuid",
};

/// `GET /api/svm/svms`: every SVM of the topology (filters, `fields`, `order_by`, paging).
pub(super) async fn list(State(s): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = Query::parse_for(raw.as_deref(), Accepts::COLLECTION, SHAPE)?;
    let records = s.engine.topology().svms.iter().map(render).collect();
    Ok(ok_json(StatusCode::OK, collection(&q, records, SVMS)))
}

/// `GET /api/svm/svms/{uuid}`: one SVM; an SVM the topology does not have is 404, code 4.
pub(super) async fn get_one(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse_for(raw.as_deref(), Accepts::RECORD, SHAPE)?;
    let uuid = uuid_of(&uuid)?;
    let svm = s
        .engine
        .topology()
        .svms
        .iter()
        .find(|v| v.uuid == uuid)
        .ok_or_else(|| ApiError(Error::new(ErrorKind::EntryNotFound).with_target("uuid")))?;
    let record = render(svm);
    Ok(ok_json(
        StatusCode::OK,
        match &q.fields {
            Some(f) => project_with(&record, f, &SHAPE),
            None => record,
        },
    ))
}

fn render(svm: &SvmInfo) -> Value {
    json!({
        "uuid": svm.uuid,
        "name": svm.name,
        "_links": { "self": { "href": format!("{SVMS}/{}", svm.uuid) } },
    })
}
