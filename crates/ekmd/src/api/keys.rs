//! Data keys over REST: `POST`/`GET /api/security/azure-key-vaults/{uuid}/keys` and
//! `DELETE .../keys/{key_id}`.
//!
//! Owns: who owns a new key (the configuration's SVM, the cluster, or an SVM without its own
//! key manager), and that a key is deleted only through the configuration holding it.
//! Must never: answer key material (only the unix socket does, see [`crate::socket`]).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ekm_core::{DataKeyId, Error, ErrorKind, KeyOwner, KeyTag, SvmSelector};
use serde_json::{Value, json};

use super::{ApiResult, ok_json, uuid_of};
use crate::{ApiError, AppState, blocking};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    #[serde(default)]
    key_tag: Option<String>,
    #[serde(default)]
    svm: Option<SvmSelector>,
}

pub(super) async fn create(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
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

pub(super) async fn list(State(s): State<AppState>, Path(uuid): Path<String>) -> ApiResult {
    let uuid = uuid_of(&uuid)?;
    let engine = s.engine.clone();
    let keys = blocking(move || engine.list_data_keys(uuid)).await?;
    let topo = s.engine.topology();
    let records: Vec<Value> = keys.iter().map(|k| render_key(k, topo)).collect();
    Ok(ok_json(
        StatusCode::OK,
        json!({"num_records": records.len(), "records": records}),
    ))
}

/// The key as a record: its id, tag, KEK generation and owner.
fn render_key(k: &ekm_core::DataKeyInfo, topo: &ekm_core::Topology) -> Value {
    let mut r = json!({"key_id": k.key_id.to_hex(), "key_tag": k.key_tag.as_str(), "kek_generation": k.kek_generation, "owner": if k.svm_uuid.is_some() {"svm"} else {"cluster"}});
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
    Path((uuid, key_id)): Path<(String, String)>,
) -> ApiResult {
    let uuid = uuid_of(&uuid)?;
    let id = DataKeyId::parse(&key_id)
        .map_err(|_| ApiError(Error::new(ErrorKind::EntryNotFound).with_target("key_id")))?;
    let engine = s.engine.clone();
    let found = blocking(move || match engine.data_key_info(&id) {
        Ok(k) if k.config_uuid == uuid => Ok(Ok(k)),
        Ok(_) => Err(Error::new(ErrorKind::EntryNotFound).with_target("key_id")),
        Err(e) if e.kind() == ErrorKind::EntryNotFound => match engine.erase_pending(&id)? {
            Some(nodes) => Ok(Err(nodes)),
            None => Err(e.with_target("key_id")),
        },
        Err(e) => Err(e),
    })
    .await?;
    Ok(match found {
        Ok(k) => ok_json(StatusCode::OK, render_key(&k, s.engine.topology())),
        Err(nodes) => ok_json(
            StatusCode::OK,
            json!({
                "key_id": id.to_hex(),
                "state": "erase_pending",
                "pending_nodes": nodes,
                "message": ekm_core::erase_pending_message(&nodes),
            }),
        ),
    })
}

/// `DELETE .../keys/{key_id}`: the key is deleted at once (no node serves it once it has seen
/// the delete); 200 once every node of the topology has evicted it, else, after
/// [`ekm_core::ERASE_WAIT`], 202 with the erase job naming the nodes still holding it.
pub(super) async fn delete(
    State(s): State<AppState>,
    Path((uuid, key_id)): Path<(String, String)>,
) -> ApiResult {
    let uuid = uuid_of(&uuid)?;
    let id = DataKeyId::parse(&key_id)
        .map_err(|_| ApiError(Error::new(ErrorKind::EntryNotFound).with_target("key_id")))?;
    let engine = s.engine.clone();
    let job = blocking(move || {
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
