//! Records as the REST API shows them: configurations and jobs with HAL `_links`, collections
//! with paging links, and job times in RFC 3339.
//!
//! Owns: every `_links` href the API answers, and the shape of a collection body.
//! Must never: call the engine, or show a field the core's record does not carry (secrets are
//! already absent from what it serializes).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ekm_core::{AzureKeyVault, Job, JobKind};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::{BASE, JOBS};
use crate::query::{Query, project_with};

/// A configuration's own href (also its `Location` when created).
pub(super) fn self_href(uuid: Uuid) -> String {
    format!("{BASE}/{uuid}")
}

/// A job's own href.
fn job_href(uuid: Uuid) -> String {
    format!("{JOBS}/{uuid}")
}

/// A configuration as the REST API shows it: the record plus HAL links.
pub(super) fn render(cfg: &AzureKeyVault) -> Value {
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

/// The answer to a create, as the seed gives it: 201 and `{"num_records": 1}`, the record only
/// with `return_records=true` ("The default is false. If set to true, the records are
/// returned."), and the new record's href as `Location` either way.
pub(super) fn created(q: &Query, record: Value, href: &str) -> Response {
    let mut body = json!({"num_records": 1});
    if q.return_records == Some(true) {
        body["records"] = json!([record]);
    }
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(v) = href.parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A job as `/api/cluster/jobs/{uuid}` shows it; `collection` is the REST collection of its
/// configuration's provider (`/api/security/azure-key-vaults`, `/api/security/aws-kms`).
pub fn render_job(j: &Job, collection: &str) -> Value {
    let base = collection;
    let description = match j.kind {
        JobKind::RekeyExternal => format!("POST {base}/{}/rekey-external", j.config),
        JobKind::RekeyInternal => format!("POST {base}/{}/rekey-internal", j.config),
        JobKind::Restore => format!("POST {base}/{}/restore", j.config),
        JobKind::Migrate => {
            format!("POST /api/security/key-managers/{}/migrate", j.config)
        }
        JobKind::Erase => format!(
            "DELETE {base}/{}/keys/{}",
            j.config,
            j.key_id.as_deref().unwrap_or_default()
        ),
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
        "_links": {"self": {"href": job_href(j.uuid)}},
    })
}

/// The answer to a job-starting POST: `{"job": {uuid, _links}}`.
pub(super) fn job_link(j: &Job) -> Value {
    json!({"job": {"uuid": j.uuid, "_links": {"self": {"href": job_href(j.uuid)}}}})
}

/// Unix seconds as an RFC 3339 UTC time (what ONTAP's job times look like):
/// `1970-01-01T00:00:00Z`, whole seconds, `Z`. A time past year 9999 (which RFC 3339 cannot
/// write, and no clock of this century gives) is an empty string.
fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A collection GET over rendered records of the query's shape: filters, `order_by`,
/// `start.<id>` and `max_records` paging with `_links.next` (carrying the whole query),
/// `fields` (`*` meaning the shape's defaults), and `return_records`.
pub(super) fn collection(q: &Query, records: Vec<Value>, base: &str) -> Value {
    let id = q.shape.id;
    let mut records: Vec<Value> = records.into_iter().filter(|r| q.matches(r)).collect();
    q.sort(&mut records);
    if let Some(start) = &q.start {
        let pos = records
            .iter()
            .position(|r| r[id] == start.as_str())
            .unwrap_or(records.len());
        records.drain(..pos);
    }
    let mut links = json!({"self": {"href": q.self_link(base)}});
    if let Some(max) = q.max_records {
        if records.len() > max {
            let next = records[max][id].as_str().unwrap_or_default().to_owned();
            links["next"] = json!({"href": q.next_link(base, &next)});
            records.truncate(max);
        }
    }
    let fields: Vec<String> = q.fields.clone().unwrap_or_default();
    let records: Vec<Value> = records
        .iter()
        .map(|r| project_with(r, &fields, &q.shape))
        .collect();
    let mut body = json!({"num_records": records.len(), "_links": links});
    if q.return_records != Some(false) {
        body["records"] = Value::Array(records);
    }
    body
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_844_123), "2026-11-28T05:35:23Z");
        assert_eq!(super::rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
    }
}
