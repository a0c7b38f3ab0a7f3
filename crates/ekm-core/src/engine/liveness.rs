//! Liveness records (`l/<node>`): each process says, under its lease, that its nodes are alive,
//! which KEK generations they hold, how their vault checks went, their KMIP server's state, and
//! that it writes deletion marks; and reading them back: who is alive, who holds what.
//!
//! Owns: the liveness record's JSON form and every read and write of it.
//! Must never: write a snapshot taken before another write's (a KEK just unlocked must show);
//! count a process that cannot be read as one that writes deletion marks.
//!
//! ```text
//! l/<node uuid> = {"v": 1, "node", "name", "updated", "keks": [[config, generation], ...],
//!                  "akv": backend checks, "akv_every": seconds, "kmip": KMIP server state,
//!                  "marks_deletions": true}
//! ```

use uuid::Uuid;

use super::Engine;
use super::helpers::{now_secs, scan_all, store_failed};
use crate::error::Result;
use crate::layout;
use crate::store::Store;

/// Whether every liveness record in `store` says its process writes deletion marks
/// (`layout::deletions`); a process of the earlier build (format 5) does not, and an
/// unreadable record counts as one.
pub(super) fn live_processes_mark_deletions(store: &dyn Store) -> Result<bool> {
    Ok(scan_all(store, layout::LIVENESS)?.iter().all(|(_, v)| {
        serde_json::from_slice::<serde_json::Value>(v)
            .is_ok_and(|rec| rec[MARKS_DELETIONS].as_bool() == Some(true))
    }))
}

/// The liveness record field by which a process says it writes deletion marks.
pub(crate) const MARKS_DELETIONS: &str = "marks_deletions";

impl Engine {
    /// Whether `node`'s liveness record says it holds generation `g` of `config`.
    pub(crate) fn liveness_holds(&self, node: Uuid, config: Uuid, g: u32) -> Result<bool> {
        let Some(raw) = self
            .store
            .get(&layout::liveness(node))
            .map_err(store_failed)?
        else {
            return Ok(false);
        };
        let rec: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
        let held = rec["keks"].as_array().is_some_and(|keks| {
            keks.iter().any(|k| {
                k[0].as_str() == Some(config.to_string().as_str())
                    && k[1].as_u64() == Some(g.into())
            })
        });
        Ok(held)
    }

    /// Writes the liveness record of every node this process manages: alive, since when,
    /// which KEK generations it holds, and its KMIP server's state (bound to the process's
    /// lease in a shared store).
    pub(crate) fn write_liveness(&self) {
        // One writer at a time, each snapshot taken under the lock: a snapshot taken before an
        // unlock must not land after the unlock's own write and hide the KEK it unlocked.
        let _in_order = self.liveness_writes.lock();
        for rt in &self.nodes {
            let keks: Vec<(Uuid, u32)> = rt.keks.read().keys().copied().collect();
            let rec = serde_json::json!({
                "v": 1,
                "node": rt.node.uuid,
                "name": rt.node.name,
                "updated": now_secs(),
                "keks": keks,
                "akv": self.backend_checks_of(rt.node.uuid),
                "akv_every": self.backend_probe_interval.as_secs(),
                "kmip": self.kmip_server().to_json(),
                // This build writes a configuration's deletion mark with every record it
                // deletes: a rekey may fence its pages by span only while every live process
                // says so (`Engine::every_live_process_marks_deletions`).
                (MARKS_DELETIONS): true,
            });
            let _ = self
                .store
                .put_ephemeral(&layout::liveness(rt.node.uuid), rec.to_string().as_bytes());
        }
    }

    /// Whether every live process sharing the store writes deletion marks (`layout::deletions`)
    /// — always in a store no other process shares. A process of an earlier build (format 5)
    /// deletes records without the mark; while one is alive, rekey pages are fenced record by
    /// record. A store that cannot be read counts as holding one.
    pub(crate) fn every_live_process_marks_deletions(&self) -> bool {
        !self.store.is_shared() || matches!(live_processes_mark_deletions(&*self.store), Ok(true))
    }

    /// Whether the process running `node` is alive: always for nodes of this process; in a
    /// shared store, whether its liveness record exists (it vanishes with its lease).
    pub(crate) fn node_alive(&self, node: Uuid) -> Result<bool> {
        if self.nodes.iter().any(|n| n.node.uuid == node) || !self.store.is_shared() {
            return Ok(true);
        }
        Ok(self
            .store
            .get(&layout::liveness(node))
            .map_err(store_failed)?
            .is_some())
    }
}
