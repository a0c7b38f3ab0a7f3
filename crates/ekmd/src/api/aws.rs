//! ONTAP's AWS KMS routes: `GET`/`POST /api/security/aws-kms`, `GET`/`PATCH`/`DELETE
//! /api/security/aws-kms/{uuid}`; and ONTAP's generic list of every configuration of every
//! kind, `GET /api/security/key-managers`.
//!
//! Owns: the `aws_kms` record as the API shows it (HAL links), which query parameters each
//! route takes; the key-managers record (`uuid`, `scope`, `svm`, `kind`, a link to the
//! configuration in its own collection).
//! Must never: parse a configuration body itself (the core's `AwsCreateRequest` does), or show
//! the secret access key or the proxy password (the core's record does not carry them).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use ekm_core::{AwsCreateRequest, AwsKmsConfig, AwsPatchRequest, KeyManagerConfig, StatusFields};
use serde_json::{Value, json};

use super::render::{collection, created};
use super::{ApiResult, ok_json, uuid_of};
use crate::query::{Accepts, Query, Shape, project_with};
use crate::{AppState, blocking, store_read};

/// The AWS KMS configuration collection.
pub(super) const AWS: &str = "/api/security/aws-kms";
/// Every configuration of every kind.
pub(super) const KEY_MANAGERS: &str = "/api/security/key-managers";

/// Every field of the `aws_kms` record, as filter and `fields` paths.
const AWS_FIELDS: &[&str] = &[
    "uuid",
    "scope",
    "svm.uuid",
    "svm.name",
    "region",
    "key_id",
    "access_key_id",
    "service",
    "default_domain",
    "host",
    "port",
    "encryption_context",
    "polling_period",
    "timeout",
    "verify",
    "verify_host",
    "verify_ip",
    "proxy_type",
    "proxy_host",
    "proxy_port",
    "proxy_username",
    "state.available",
    "state.cluster_state",
    "state.code",
    "state.message",
    "amazon_reachability.reachable",
    "amazon_reachability.code",
    "amazon_reachability.message",
    "ekmip_reachability.node.uuid",
    "ekmip_reachability.node.name",
    "ekmip_reachability.reachable",
    "ekmip_reachability.code",
    "ekmip_reachability.message",
    "mirror_of.uuid",
    "protectors.uuid",
    "protectors.kind",
    "protectors.fully_wrapped",
    "protectors.reachable",
    "protectors.message",
];

/// The advanced fields a query names (computed only then): `amazon_reachability` is the
/// provider's reachability, as `azure_reachability` is Azure's.
fn status_fields(q: &Query) -> StatusFields {
    StatusFields {
        state: q.names("state"),
        azure_reachability: q.names("amazon_reachability"),
        ekmip_reachability: q.names("ekmip_reachability"),
        protectors: q.names("protectors"),
    }
}

/// The `aws_kms` records: every readable field unless `fields` says otherwise.
const AWS_SHAPE: Shape = Shape {
    fields: AWS_FIELDS,
    defaults: &[
        "uuid",
        "scope",
        "svm",
        "region",
        "key_id",
        "access_key_id",
        "service",
        "default_domain",
        "host",
        "port",
        "encryption_context",
        "polling_period",
        "timeout",
        "verify",
        "verify_host",
        "verify_ip",
        "proxy_type",
        "proxy_host",
        "proxy_port",
        "proxy_username",
        "mirror_of",
    ],
    id: "uuid",
};

/// The key-managers records.
const KEY_MANAGER_SHAPE: Shape = Shape {
    fields: &[
        "uuid",
        "scope",
        "svm.uuid",
        "svm.name",
        "kind",
        "mirror_of.uuid",
    ],
    defaults: &["uuid", "scope", "svm", "kind", "mirror_of"],
    id: "uuid",
};

/// An AWS configuration's own href (also its `Location` when created).
fn aws_href(uuid: uuid::Uuid) -> String {
    format!("{AWS}/{uuid}")
}

/// An SVM reference with its link, as ONTAP writes it.
fn svm_link(v: &mut Value) {
    if let Some(svm) = v.get_mut("svm") {
        let u = svm["uuid"].as_str().unwrap_or_default().to_owned();
        svm["_links"] = json!({"self": {"href": format!("/api/svm/svms/{u}")}});
    }
}

/// An AWS configuration as the REST API shows it: the record plus HAL links.
fn render_aws(cfg: &AwsKmsConfig) -> Value {
    let mut v = serde_json::to_value(cfg).unwrap_or(Value::Null);
    svm_link(&mut v);
    v["_links"] = json!({"self": {"href": aws_href(cfg.uuid)}});
    v
}

/// `GET /api/security/aws-kms`.
pub(super) async fn list(State(s): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let mut q = Query::parse_for(raw.as_deref(), Accepts::COLLECTION, AWS_SHAPE)?;
    let status = status_fields(&q);
    let engine = s.engine.clone();
    let configs = if status.any() {
        // The status fields call the backend: a blocking thread.
        blocking(move || {
            let mut out = Vec::new();
            for c in engine.list_aws_configs()? {
                out.push(engine.get_aws_config_with_status(c.uuid, status)?);
            }
            Ok(out)
        })
        .await?
    } else {
        store_read(&s.engine, move || engine.list_aws_configs()).await?
    };
    let records: Vec<Value> = configs.iter().map(render_aws).collect();
    q.fields.get_or_insert_with(|| vec!["*".to_owned()]);
    Ok(ok_json(StatusCode::OK, collection(&q, records, AWS)))
}

/// `POST /api/security/aws-kms`: 201 with the `Location`; the record with
/// `return_records=true`.
pub(super) async fn create(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    let q = Query::parse_for(raw.as_deref(), Accepts::POST, AWS_SHAPE)?;
    let req = AwsCreateRequest::from_json(&body)?;
    let engine = s.engine.clone();
    let cfg = blocking(move || engine.create_aws_config(req)).await?;
    Ok(created(&q, render_aws(&cfg), &aws_href(cfg.uuid)))
}

/// `GET /api/security/aws-kms/{uuid}`; a uuid of another kind is 404.
pub(super) async fn get_one(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse_for(raw.as_deref(), Accepts::RECORD, AWS_SHAPE)?;
    let uuid = uuid_of(&uuid)?;
    let status = status_fields(&q);
    let engine = s.engine.clone();
    let cfg = if status.any() {
        blocking(move || engine.get_aws_config_with_status(uuid, status)).await?
    } else {
        store_read(&s.engine, move || engine.get_aws_config(uuid)).await?
    };
    let record = render_aws(&cfg);
    Ok(ok_json(
        StatusCode::OK,
        match &q.fields {
            Some(f) => project_with(&record, f, &AWS_SHAPE),
            None => record,
        },
    ))
}

/// `PATCH /api/security/aws-kms/{uuid}`: proven against KMS before it is stored; a new
/// `encryption_context` rewraps every KEK generation in the same commit.
pub(super) async fn patch(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    Query::parse_for(raw.as_deref(), Accepts::CHANGE, AWS_SHAPE)?;
    let uuid = uuid_of(&uuid)?;
    let req = AwsPatchRequest::from_json(&body)?;
    let engine = s.engine.clone();
    blocking(move || engine.patch_aws_config(uuid, req)).await?;
    Ok(ok_json(StatusCode::OK, json!({})))
}

/// `DELETE /api/security/aws-kms/{uuid}`: refused while the configuration protects keys
/// (65536867) or a job runs on it; a uuid of another kind is 404.
pub(super) async fn remove(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    Query::parse_for(raw.as_deref(), Accepts::CHANGE, AWS_SHAPE)?;
    let uuid = uuid_of(&uuid)?;
    let engine = s.engine.clone();
    blocking(move || {
        engine.get_aws_config(uuid)?;
        engine.delete_config(uuid)
    })
    .await?;
    Ok(ok_json(StatusCode::OK, json!({})))
}

/// `GET /api/security/key-managers`: every configuration of every kind, each linked to its
/// record in its own collection.
pub(super) async fn key_managers(State(s): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let mut q = Query::parse_for(raw.as_deref(), Accepts::COLLECTION, KEY_MANAGER_SHAPE)?;
    let engine = s.engine.clone();
    let all = store_read(&s.engine, move || engine.list_key_managers()).await?;
    let records: Vec<Value> = all.iter().map(render_key_manager).collect();
    q.fields.get_or_insert_with(|| vec!["*".to_owned()]);
    Ok(ok_json(
        StatusCode::OK,
        collection(&q, records, KEY_MANAGERS),
    ))
}

fn render_key_manager(c: &KeyManagerConfig) -> Value {
    let (scope, svm) = match c {
        KeyManagerConfig::Azure(a) => (a.scope, a.svm.as_ref()),
        KeyManagerConfig::Aws(a) => (a.scope, a.svm.as_ref()),
    };
    let mut v = json!({
        "uuid": c.uuid(),
        "scope": scope.as_str(),
        "kind": c.provider().kind(),
        "_links": {"self": {"href": format!("{}/{}", c.provider().collection(), c.uuid())}},
    });
    if let Some(svm) = svm {
        v["svm"] = json!({"uuid": svm.uuid(), "name": svm.name()});
        svm_link(&mut v);
    }
    // ekm's extension: a mirror is another root of trust of its primary's scope, not a
    // second key manager of it.
    if let Some(primary) = c.mirror_of() {
        v["mirror_of"] = json!({"uuid": primary});
    }
    v
}
