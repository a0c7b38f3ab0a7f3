//! Node availability records (`n/<node><config>`): what each node holds of each configuration
//! — its copy of the wrapped KEK, the generation it has unlocked, its last error — so that
//! status, restore and other processes sharing the store can see it.
//!
//! Owns: [`NodeRecord`], its JSON form, and every write of it but the rekeys' own.
//! Must never: write a node's copy of a KEK wrapped by an external key the configuration no
//! longer names (a node must always be able to unlock again).
//!
//! | field | meaning |
//! |---|---|
//! | `generation`, `wrapped_kek` | the node's copy of the wrapped KEK record (base64) |
//! | `loaded` | the generation the node has unlocked, if any |
//! | `last_error` | why it lacks it: error code and message |
//! | `updated` | Unix seconds of the write |

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Engine;
use super::helpers::{CONDITIONAL_ATTEMPTS, now_secs, store_failed};
use crate::codec::WrappedKek;
use crate::error::{Error, ErrorKind, Result};
use crate::layout;
use crate::store::{Check, StoreError, Transaction};
use crate::topology::Node;

/// Decodes a node availability record (for the fuzz targets).
pub(crate) fn decode_node_record(bytes: &[u8]) -> bool {
    NodeRecord::decode(bytes).is_ok()
}

/// Why a node lacks a KEK, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeError {
    pub code: u32,
    pub message: String,
}

/// A node's availability for one configuration (`n/<node><config>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    pub v: u32,
    pub node: Uuid,
    pub config: Uuid,
    /// Generation of the node's copy of the wrapped KEK.
    pub generation: u32,
    /// The node's copy of the wrapped KEK record (base64 of its encoding).
    pub wrapped_kek: String,
    /// The generation the node has unlocked, if any.
    pub loaded: Option<u32>,
    pub last_error: Option<NodeError>,
    pub updated: u64,
    /// The mirror the loaded generation was unlocked through, when the primary's provider
    /// failed (`protectors.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlocked_via: Option<Uuid>,
}

impl NodeRecord {
    pub(crate) fn decode(bytes: &[u8]) -> Result<NodeRecord> {
        serde_json::from_slice(bytes).map_err(|_| Error::corrupt("A node record is malformed."))
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Engine {
    pub(crate) fn node_record(&self, node: Uuid, config: Uuid) -> Result<Option<NodeRecord>> {
        self.store
            .get(&layout::node(node, config))
            .map_err(store_failed)?
            .map(|b| NodeRecord::decode(&b))
            .transpose()
    }

    /// Writes what a node now holds for a configuration. A failure to record is not fatal to
    /// the caller (the in-memory state is right; the record catches up on the next change).
    ///
    /// The write is conditional on the configuration record as it is now naming the external
    /// key that wrapped `wrapped`, and on the cluster's record of that generation holding the
    /// very blob `wrapped` holds: a node that read its copy before a rekey-external or an AWS
    /// context change committed, and unwrapped it over the network meanwhile, must not write
    /// the old wrapping back over the new one (that node could not unlock again after a
    /// restart once the old key or context is gone).
    pub(crate) fn record_node(
        &self,
        node: &Node,
        wrapped: &WrappedKek,
        loaded: Option<u32>,
        last_error: Option<&Error>,
    ) {
        let Ok(wrapped_bytes) = wrapped.encode(&self.protection) else {
            return;
        };
        let rec = NodeRecord {
            v: 1,
            node: node.uuid,
            config: wrapped.config,
            generation: wrapped.generation,
            wrapped_kek: B64.encode(wrapped_bytes),
            loaded,
            last_error: last_error.map(|e| NodeError {
                code: e.code(),
                message: e.message(),
            }),
            updated: now_secs(),
            unlocked_via: self
                .nodes
                .iter()
                .find(|n| n.node.uuid == node.uuid)
                .and_then(|rt| {
                    rt.unlocked_via
                        .read()
                        .get(&(wrapped.config, wrapped.generation))
                        .copied()
                }),
        };
        if self.store.is_shared() {
            // Other nodes read what this node holds from its liveness record.
            self.write_liveness();
        }
        for _ in 0..CONDITIONAL_ATTEMPTS {
            let Ok((config, bytes)) = self.load_config(wrapped.config) else {
                return;
            };
            if config.key_id_str() != wrapped.key_id.as_str() {
                return;
            }
            let kek_key = layout::kek(wrapped.config, wrapped.generation);
            let Ok(Some(cluster_raw)) = self.store.get(&kek_key) else {
                return;
            };
            let current = WrappedKek::decode(&cluster_raw, &self.protection);
            if !current.is_ok_and(|c| c.wrapped == wrapped.wrapped) {
                return;
            }
            let mut txn = Transaction::new();
            txn.check(Check::Equals(layout::config(wrapped.config), bytes))
                .check(Check::Equals(kek_key, cluster_raw))
                .put(layout::node(node.uuid, wrapped.config), rec.encode());
            match self.store.commit(txn) {
                Err(StoreError::Conflict(_)) => continue,
                _ => return,
            }
        }
    }

    /// Forgets what node `node` holds in memory, as a reboot of that node would, and records
    /// it as lacking every KEK until it unlocks again (on first use, `unlock_all` or restore).
    pub fn reset_node(&self, node: Uuid) -> Result<()> {
        let idx = self.node_index(node)?;
        let rt = &self.nodes[idx];
        rt.keks.write().clear();
        rt.table.clear();
        let prefix = layout::nodes_of(node);
        for (k, v) in self.scan_all(&prefix)? {
            let mut rec = NodeRecord::decode(&v)?;
            rec.loaded = None;
            rec.last_error = Some(NodeError {
                code: ErrorKind::KekUnavailable.code(),
                message: "The node restarted and has not unlocked the KEK yet.".into(),
            });
            rec.updated = now_secs();
            let mut txn = Transaction::new();
            // Only over the record as read: a rekey that rewrote it meanwhile wins.
            txn.check(Check::Equals(k.clone(), v)).put(k, rec.encode());
            match self.store.commit(txn) {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(store_failed(e)),
            }
        }
        Ok(())
    }
}
