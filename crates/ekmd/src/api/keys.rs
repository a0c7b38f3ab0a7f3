//! Data keys over REST: `POST`/`GET /api/security/azure-key-vaults/{uuid}/keys` and
//! `GET`/`DELETE .../keys/{key_id}`.
//!
//! Owns: who owns a new key (the configuration's SVM, the cluster, or an SVM without its own
//! key manager), that a key is deleted only through the configuration holding it, and the key
//! record with its collection conventions (the configuration list's: filters, `fields`,
//! `order_by`, `max_records` paging by `start.key_id`).
//! Must never: answer key material (only the unix socket does, see [`crate::socket`]).

use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use ekm_core::{DataKeyId, Error, ErrorKind, KeyOwner, KeyTag, Provider, SvmSelector};
use serde_json::{Value, json};
use uuid::Uuid;

use super::render::collection;
use super::{ApiResult, ok_json, uuid_of};
use crate::query::{Accepts, Query, Shape, project_with};
use crate::{ApiError, AppState, blocking};

/// Every field of a data key record, as filter and `fields` paths.
const KEY_FIELDS: &[&str] = &[
    "key_id",
    "key_tag",
    "kek_generation",
    "scope",
    "owner",
    "svm.uuid",
    "svm.name",
    "state",
];

/// The data key records: all of a record unless `fields` says otherwise.
const KEYS: Shape = Shape {
    fields: KEY_FIELDS,
    defaults: &[
        "key_id",
        "key_tag",
        "kek_generation",
        "scope",
        "owner",
        "svm",
        "state",
    ],
    id: "key_id",
};

/// A key's own href, under its configuration in `p`'s collection.
fn key_href(p: Provider, config: Uuid, key_id: &DataKeyId) -> String {
    format!("{}/{config}/keys/{}", p.collection(), key_id.to_hex())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    #[serde(default)]
    key_tag: Option<String>,
    #[serde(default)]
    svm: Option<SvmSelector>,
}

/// `POST .../keys`: a new key of the configuration's scope (or of an SVM the body names);
/// 201 with its `key_id`, and with `return_records=true` its record. An empty body is a key
/// with an empty tag.
pub(super) async fn create(
    State(s): State<AppState>,
    Extension(p): Extension<Provider>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    let q = Query::parse_for(raw.as_deref(), Accepts::POST, KEYS)?;
    let uuid = uuid_of(&uuid)?;
    let b: KeyBody = if body.iter().all(u8::is_ascii_whitespace) {
        KeyBody {
            key_tag: None,
            svm: None,
        }
    } else {
        ekm_core::config::parse_json(&body)?
    };
    let tag = KeyTag::parse(b.key_tag.as_deref().unwrap_or(""))?;
    let engine = s.engine.clone();
    let (id, info) = blocking(move || {
        let cfg = engine.key_manager_of(uuid, p)?;
        if let Some(primary) = cfg.mirror_of() {
            return Err(Error::new(ErrorKind::InvalidValue)
                .with_detail(format!(
                    "{uuid} is a mirror of {primary} (another root of trust of its scope): the scope's data keys are made under {primary}."
                ))
                .with_target("uuid"));
        }
        let owner = match (cfg.svm(), &b.svm) {
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
                    .list_key_managers()?
                    .iter()
                    .any(|c| c.svm().is_some_and(|s| s.uuid() == named.uuid()))
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
        let id = engine.create_data_key(owner, tag)?;
        let info = match q.return_records {
            Some(true) => Some(engine.data_key_info(&id)?),
            _ => None,
        };
        Ok((id, info))
    })
    .await?;
    let mut out = json!({"key_id": id.to_hex()});
    if let Some(k) = info {
        out["num_records"] = json!(1);
        out["records"] = json!([render_key(p, &k, s.engine.topology())]);
    }
    Ok(ok_json(StatusCode::CREATED, out))
}

/// `GET .../keys`: the configuration's keys as a collection, with the configuration list's
/// query conventions (an unknown parameter is 262179, a bad value 262197).
pub(super) async fn list(
    State(s): State<AppState>,
    Extension(p): Extension<Provider>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let mut q = Query::parse_for(raw.as_deref(), Accepts::COLLECTION, KEYS)?;
    let uuid = uuid_of(&uuid)?;
    let engine = s.engine.clone();
    let keys = blocking(move || {
        engine.key_manager_of(uuid, p)?;
        engine.list_data_keys(uuid)
    })
    .await?;
    let topo = s.engine.topology();
    let records: Vec<Value> = keys.iter().map(|k| render_key(p, k, topo)).collect();
    // Without `fields`, whole records (what this list always answered).
    q.fields.get_or_insert_with(|| vec!["*".to_owned()]);
    let base = format!("{}/{uuid}/keys", p.collection());
    Ok(ok_json(StatusCode::OK, collection(&q, records, &base)))
}

/// The key as a record: its id, tag, KEK generation, scope and owner, state, and link.
fn render_key(p: Provider, k: &ekm_core::DataKeyInfo, topo: &ekm_core::Topology) -> Value {
    let scope = if k.svm_uuid.is_some() {
        "svm"
    } else {
        "cluster"
    };
    let mut r = json!({
        "key_id": k.key_id.to_hex(),
        "key_tag": k.key_tag.as_str(),
        "kek_generation": k.kek_generation,
        "scope": scope,
        "owner": scope,
        "state": "active",
        "_links": {"self": {"href": key_href(p, k.config_uuid, &k.key_id)}},
    });
    if let Some(u) = k.svm_uuid {
        let name = topo
            .svm_by_uuid(u)
            .map(|s| s.name().to_owned())
            .unwrap_or_default();
        r["svm"] = json!({"uuid": u, "name": name});
    }
    r
}

/// `GET .../keys/{key_id}`: the key's record; for a deleted key whose erase some node has not
/// acknowledged yet, `"state": "erase_pending"` with the nodes still holding it.
pub(super) async fn get_one(
    State(s): State<AppState>,
    Extension(p): Extension<Provider>,
    Path((uuid, key_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = Query::parse_for(raw.as_deref(), Accepts::RECORD, KEYS)?;
    let uuid = uuid_of(&uuid)?;
    let id = DataKeyId::parse(&key_id)
        .map_err(|_| ApiError(Error::new(ErrorKind::EntryNotFound).with_target("key_id")))?;
    let engine = s.engine.clone();
    let found = blocking(move || {
        engine.key_manager_of(uuid, p)?;
        match engine.data_key_info(&id) {
            Ok(k) if k.config_uuid == uuid => Ok(Ok(k)),
            Ok(_) => Err(Error::new(ErrorKind::EntryNotFound).with_target("key_id")),
            Err(e) if e.kind() == ErrorKind::EntryNotFound => match engine.erase_pending(&id)? {
                Some(nodes) => Ok(Err(nodes)),
                None => Err(e.with_target("key_id")),
            },
            Err(e) => Err(e),
        }
    })
    .await?;
    let record = match found {
        Ok(k) => render_key(p, &k, s.engine.topology()),
        Err(nodes) => json!({
            "key_id": id.to_hex(),
            "state": "erase_pending",
            "pending_nodes": nodes,
            "message": ekm_core::erase_pending_message(&nodes),
        }),
    };
    Ok(ok_json(
        StatusCode::OK,
        match &q.fields {
            Some(f) => project_with(&record, f, &KEYS),
            None => record,
        },
    ))
}

/// `DELETE .../keys/{key_id}`: the key is deleted at once (no node serves it once it has seen
/// the delete); 200 once every node of the topology has evicted it, else, after
/// [`ekm_core::ERASE_WAIT`], 202 with the erase job naming the nodes still holding it.
pub(super) async fn delete(
    State(s): State<AppState>,
    Extension(p): Extension<Provider>,
    Path((uuid, key_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    Query::parse_for(raw.as_deref(), Accepts::CHANGE, KEYS)?;
    let uuid = uuid_of(&uuid)?;
    let id = DataKeyId::parse(&key_id)
        .map_err(|_| ApiError(Error::new(ErrorKind::EntryNotFound).with_target("key_id")))?;
    let engine = s.engine.clone();
    let job = blocking(move || {
        engine.key_manager_of(uuid, p)?;
        if engine.data_key_info(&id)?.config_uuid != uuid {
            return Err(Error::new(ErrorKind::EntryNotFound).with_target("key_id"));
        }
        engine.delete_data_key(&id)?;
        // Committed: the answer is a success whatever follows (an erase the store could not
        // track now gets its job from the takeover loop).
        Ok(engine.track_erase(&id).unwrap_or_else(|e| {
            tracing::warn!(key_id = %id.to_hex(), "erase not tracked: {}", e.message());
            None
        }))
    })
    .await?;
    Ok(match job {
        None => ok_json(StatusCode::OK, json!({})),
        Some(job) => ok_json(StatusCode::ACCEPTED, super::render::job_link(&job)),
    })
}
