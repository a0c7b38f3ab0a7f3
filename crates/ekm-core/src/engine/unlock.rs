//! Unlocking KEKs on nodes: finding a generation's wrapped KEK (the node's own copy, else the
//! cluster record), unwrapping it through the backend as that node, and handing a new
//! generation to every managed node.
//!
//! Owns: when a node's KEK is unwrapped, and what a node keeps of it (`NodeRuntime::keks`).
//! Must never: unwrap a KEK record that names another external key than its configuration's;
//! keep a generation that was retired or deleted while the backend unwrapped it; call the
//! backend twice at once for one (configuration, generation) on one node.
//!
//! ```text
//! unlock_on(node, config, g)
//!   held in keks? ── yes ──► it
//!   └─ no: take the node's unlock gate, look again, then
//!      wrapped_kek_for: n/<node><config> copy, if generation g and the current external key
//!                       else k/<config><g> (cluster_wrapped_kek)
//!      unwrap_kek (backend, as that node; check value proven) ──► keks[(config, g)]
//!      record_node (`node_records.rs`) / write_liveness (`liveness.rs`)
//! ```

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use uuid::Uuid;

use super::Engine;
use super::helpers::store_failed;
use crate::backend::BackendCall;
use crate::codec::WrappedKek;
use crate::crypto::Kek;
use crate::error::{Error, ErrorKind, Result};
use crate::hierarchy;
use crate::ids::DataKeyId;
use crate::layout;
use crate::stored::StoredConfig;
use crate::topology::Node;

impl Engine {
    /// The wrapped KEK `generation` of `config`: the node's own copy when it is that
    /// generation, wrapped by the configuration's external key and (where the cluster record
    /// exists) the very blob the cluster record holds, else the cluster record: a copy left
    /// stale by a rewrap it raced is never preferred. [`ErrorKind::MissingWrappedKek`] when
    /// neither exists.
    pub(crate) fn wrapped_kek_for(
        &self,
        node: Uuid,
        config: &StoredConfig,
        generation: u32,
    ) -> Result<WrappedKek> {
        if let Some(rec) = self.node_record(node, config.uuid)? {
            if rec.generation == generation {
                if let Some(k) = B64
                    .decode(&rec.wrapped_kek)
                    .ok()
                    .and_then(|b| WrappedKek::decode(&b, &self.protection).ok())
                    .filter(|k| {
                        k.config == config.uuid
                            && k.generation == generation
                            && k.key_id.as_str() == config.key_id_str()
                    })
                {
                    match self.cluster_wrapped_kek(config.uuid, generation) {
                        Ok(c) if c.wrapped != k.wrapped => {}
                        _ => return Ok(k),
                    }
                }
            }
        }
        let k = self.cluster_wrapped_kek(config.uuid, generation)?;
        // Both records are authenticated; the KEK record must also name the configuration's
        // current external key (a stale generation left by a rekey-external is not used).
        if k.key_id.as_str() != config.key_id_str() {
            return Err(Error::corrupt(&format!(
                "The wrapped KEK of generation {generation} of configuration {} names another external key than the configuration's; it is not used.",
                config.uuid
            )));
        }
        Ok(k)
    }

    pub(crate) fn cluster_wrapped_kek(&self, config: Uuid, generation: u32) -> Result<WrappedKek> {
        let bytes = self
            .store
            .get(&layout::kek(config, generation))
            .map_err(store_failed)?
            .ok_or_else(|| {
                Error::new(ErrorKind::MissingWrappedKek).with_detail(format!(
                    "Generation {generation} of configuration {config} is not in the store."
                ))
            })?;
        let k = WrappedKek::decode(&bytes, &self.protection)?;
        if k.config != config || k.generation != generation {
            return Err(Error::corrupt(&format!(
                "The record stored as generation {generation} of configuration {config} is another KEK's."
            )));
        }
        Ok(k)
    }

    /// The unlocked KEK `generation` of `config` on node `idx`, unwrapping it through the
    /// backend (as that node) on first use. The node's availability record follows.
    pub(crate) fn unlock_on(
        &self,
        idx: usize,
        config: &StoredConfig,
        generation: u32,
    ) -> Result<Arc<Kek>> {
        let rt = &self.nodes[idx];
        if let Some(k) = rt.kek(config.uuid, generation) {
            return Ok(k);
        }
        let gate = rt.unlock_gate(config.uuid, generation);
        let _one_at_a_time = gate.lock();
        if let Some(k) = rt.kek(config.uuid, generation) {
            return Ok(k);
        }
        let wrapped = self.wrapped_kek_for(rt.node.uuid, config, generation)?;
        let is_active = config.active_generation == Some(generation);
        match self.unwrap_any_root(rt, config, &wrapped) {
            Ok(kek) => {
                let kek = Arc::new(kek);
                rt.keks
                    .write()
                    .insert((config.uuid, generation), kek.clone());
                // Retired or deleted while the backend unwrapped it (another process's watch
                // event found nothing to forget then): not kept. This caller read the record
                // before it went, as if it had finished just before.
                if let Ok(None) = self.store.get(&layout::kek(config.uuid, generation)) {
                    rt.forget_generation(config.uuid, generation);
                    return Ok(kek);
                }
                if is_active {
                    self.record_node(&rt.node, &wrapped, Some(generation), None);
                } else if self.store.is_shared() {
                    self.write_liveness();
                }
                Ok(kek)
            }
            Err(e) => {
                if is_active {
                    self.record_node(&rt.node, &wrapped, None, Some(&e));
                }
                Err(e)
            }
        }
    }

    /// One backend unwrap as `node`, proven by the check value ([`hierarchy::unwrap_kek`]).
    pub(crate) fn unwrap_kek(
        &self,
        node: &Node,
        config: &StoredConfig,
        wrapped: &WrappedKek,
    ) -> Result<Kek> {
        let parts = config.unseal(&self.protection)?;
        let access = parts.access();
        let call = BackendCall {
            node,
            access: &access,
        };
        hierarchy::unwrap_kek(&*self.backend, &call, wrapped, &node.name)
    }

    /// Gives every managed node other than `except` the new KEK generation: each unwraps it
    /// through the backend as itself, so a node that cannot reach AKV is recorded as lacking it.
    pub(crate) fn distribute(&self, config: &StoredConfig, generation: u32, except: usize) {
        for idx in 0..self.nodes.len() {
            if idx != except {
                let _ = self.unlock_on(idx, config, generation);
            }
        }
    }

    /// Unlocks the active KEK of every configuration on every managed node, as a node does
    /// after a reboot. Failures are recorded (status shows them) and returned by node name.
    pub fn unlock_all(&self) -> Vec<(String, Error)> {
        let mut failures = Vec::new();
        let Ok(configs) = self.scan_all(layout::CONFIG) else {
            return failures;
        };
        for (_, bytes) in configs {
            let Ok(cfg) = StoredConfig::decode(&bytes, &self.protection) else {
                continue;
            };
            let Some(g) = cfg.active_generation else {
                continue;
            };
            for idx in 0..self.nodes.len() {
                if let Err(e) = self.unlock_on(idx, &cfg, g) {
                    failures.push((self.nodes[idx].node.name.clone(), e));
                }
            }
        }
        failures
    }

    /// Drops keys from every node table (they reload, rewrapped, on their next read).
    pub(crate) fn forget_keys(&self, ids: &[DataKeyId]) {
        for n in &self.nodes {
            for id in ids {
                n.table.evict(id);
            }
        }
    }
}
