//! Crypto-erase across the cluster: a deleted data key is erased once every node of the
//! topology has evicted it from memory and said so through the store.
//!
//! ```text
//! DELETE on node1 ─► one transaction: the key's records deleted, g/<id> = {nodes: every node
//!   │                of the topology}, g/<id><node> for each node this process runs (evicted
//!   │                right after the commit, before the answer)
//!   ▼
//! node2, node3 (their watch of d/ sees the delete) ─► evict ─► put g/<id><node>
//!   │   a node cut off from the store acknowledges when it is back: its watch delivers the
//!   │   delete first (or, changes lost, its tables are cleared and it acknowledges every
//!   │   pending erase), and a node starting up holds no key yet and acknowledges them all
//!   ▼
//! every node acknowledged ─► erased: g/<id> and its acknowledgements removed
//!   while not: `erase_pending` names the nodes still holding the key, and an erase job
//!   (no configuration marker: it blocks no rekey) tracks it until they acknowledge
//! ```
//!
//! Owns: the delete of a data key, the `g/` records, the acknowledgements, the erase job.
//! Must never: call a key erased while a node of the topology has not acknowledged evicting
//! it; acknowledge for a node before its table has evicted the key.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Engine;
use super::helpers::{scan_all, store_failed};
use super::jobs::{Job, JobKind, Stop};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::DataKeyId;
use crate::layout;
use crate::store::{Check, StoreError, Transaction};

/// How long a delete (a REST DELETE, a KMIP Destroy) waits for every node to evict the key
/// before it answers that the erase is pending, with the job tracking it.
pub const ERASE_WAIT: Duration = Duration::from_secs(3);

/// How often a waiting erase (its job, or a caller of [`Engine::wait_erased`]) looks again.
const POLL: Duration = Duration::from_millis(50);

/// The erase record `g/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EraseRecord {
    /// The configuration the key belonged to.
    config: Uuid,
    /// The nodes that must acknowledge (the topology's at the delete).
    nodes: Vec<Uuid>,
    /// The job tracking the erase, once one was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job: Option<Uuid>,
}

/// Tries of a delete whose records keep changing under it (rewrapped, migrated).
const DELETE_ATTEMPTS: usize = 8;

impl Engine {
    /// Deletes a data key durably, then drops it from every node key table of this process;
    /// the other nodes' evictions complete its erase ([`Engine::erase_pending`]).
    pub fn delete_data_key(&self, id: &DataKeyId) -> Result<()> {
        self.delete_data_key_if(id, None).map(|_| ())
    }

    /// [`Engine::delete_data_key`], only while the store holds `expect` at `condition.0`
    /// (`None`: that key absent): false, and nothing deleted, once it does not (a KMIP Destroy
    /// checks the state it read has not changed, an Activate on another connection meanwhile).
    pub fn delete_data_key_if(
        &self,
        id: &DataKeyId,
        condition: Option<(&[u8], Option<&[u8]>)>,
    ) -> Result<bool> {
        let _gate = self.gate.read();
        for _ in 0..DELETE_ATTEMPTS {
            let (record, record_key, bytes) = self.load_data_key(id)?;
            let config = layout::config_of_record(&record_key)
                .ok_or_else(|| Error::corrupt("A record key is malformed."))?;
            let mut txn = Transaction::new();
            if let Some((key, expect)) = condition {
                let now = self.store.get(key).map_err(store_failed)?;
                if now.as_deref() != expect {
                    return Ok(false);
                }
                txn.check(match expect {
                    Some(v) => Check::Equals(key.to_vec(), v.to_vec()),
                    None => Check::Absent(key.to_vec()),
                });
            }
            txn.check(Check::Equals(record_key.clone(), bytes))
                .delete(record_key)
                .delete(layout::data_key(id))
                .delete(layout::kmip_attributes(id))
                .put(layout::deletions(config), Vec::new());
            self.put_erase(&mut txn, id, config);
            // The transaction acknowledges this process's evictions: evicted before it
            // commits (and again after, for a read that refilled a table meanwhile).
            for n in &self.nodes {
                n.table.evict(id);
            }
            match self.store.commit(txn) {
                Ok(()) => {
                    for n in &self.nodes {
                        n.table.evict(id);
                    }
                    self.owner_keys_changed(config, record.owner, -1);
                    return Ok(true);
                }
                // Rewrapped, migrated or the condition changed meanwhile: look again.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(store_failed(e)),
            }
        }
        Err(Error::new(ErrorKind::StoreFailed).with_detail("The key kept changing; retry."))
    }

    /// Adds to `txn`, the delete of key `id` of `config`, its erase record and the
    /// acknowledgements of this process's nodes (the caller evicts them once committed).
    /// Nothing is added when this process runs every node of the topology (an embedded
    /// store): its own evictions, right after the commit, are the whole erase.
    pub(super) fn put_erase(&self, txn: &mut Transaction, id: &DataKeyId, config: Uuid) {
        let mine: BTreeSet<Uuid> = self.nodes.iter().map(|n| n.node.uuid).collect();
        if self.topology().nodes.iter().all(|n| mine.contains(&n.uuid)) {
            return;
        }
        let rec = EraseRecord {
            config,
            nodes: self.topology().nodes.iter().map(|n| n.uuid).collect(),
            job: None,
        };
        txn.put(
            layout::erase(id),
            serde_json::to_vec(&rec).unwrap_or_default(),
        );
        for n in &self.nodes {
            txn.put(layout::erase_ack(id, n.node.uuid), Vec::new());
        }
    }

    /// Acknowledges, for every node of this process, that it evicted key `id` — if an erase
    /// of it is pending (an acknowledgement never outlives its erase record). Call only
    /// once every table of this process has evicted it.
    pub(super) fn acknowledge_erase(&self, id: &DataKeyId) {
        let mut txn = Transaction::new();
        txn.check(Check::Present(layout::erase(id)));
        for n in &self.nodes {
            txn.put(layout::erase_ack(id, n.node.uuid), Vec::new());
        }
        // Absent: nothing pending (already erased). A store failure: acknowledged again at
        // the next resync or start.
        let _ = self.store.commit(txn);
    }

    /// Acknowledges every pending erase for this process's nodes: for when its tables hold no
    /// key a deleted record could have left (at start, or after clearing them on a resync).
    pub(super) fn acknowledge_every_erase(&self) {
        let Ok(all) = scan_all(&*self.store, layout::ERASE) else {
            return;
        };
        for (k, _) in all
            .iter()
            .filter(|(k, _)| k.len() == layout::ERASE.len() + 32)
        {
            if let Some(id) = key_of(k) {
                // A table refilled since it was cleared may hold a key deleted meanwhile
                // (its delete still on its way through the watch): evicted first, so the
                // acknowledgement is true when it is written.
                for n in &self.nodes {
                    n.table.evict(&id);
                }
                self.acknowledge_erase(&id);
            }
        }
    }

    /// The names of the nodes that have not yet acknowledged evicting deleted key `id`:
    /// `None` when it is erased everywhere (or no erase of it is known). An erase found
    /// complete is cleaned up.
    pub fn erase_pending(&self, id: &DataKeyId) -> Result<Option<Vec<String>>> {
        let Some((rec, acked)) = self.erase_state(id)? else {
            return Ok(None);
        };
        let topo = self.topology();
        // A node taken out of the topology since holds nothing here any more.
        let pending: Vec<String> = rec
            .nodes
            .iter()
            .filter(|n| !acked.contains(n))
            .filter_map(|n| topo.node(*n).map(|n| n.name.clone()))
            .collect();
        if pending.is_empty() {
            let mut txn = Transaction::new();
            txn.delete(layout::erase(id));
            for n in rec.nodes.iter().chain(acked.iter()) {
                txn.delete(layout::erase_ack(id, *n));
            }
            // Best effort: a record left behind reads as complete again.
            let _ = self.store.commit(txn);
            return Ok(None);
        }
        Ok(Some(pending))
    }

    fn erase_state(&self, id: &DataKeyId) -> Result<Option<(EraseRecord, BTreeSet<Uuid>)>> {
        let prefix = layout::erase(id);
        let all = scan_all(&*self.store, &prefix)?;
        let Some(rec) = all
            .iter()
            .find(|(k, _)| *k == prefix)
            .and_then(|(_, v)| serde_json::from_slice::<EraseRecord>(v).ok())
        else {
            return Ok(None);
        };
        let acked = all
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(prefix.as_slice()))
            .filter_map(|n| Uuid::from_slice(n).ok())
            .collect();
        Ok(Some((rec, acked)))
    }

    /// Waits up to `timeout` for key `id`'s erase to complete; the nodes still holding it
    /// when the time is up (`None`: erased everywhere).
    pub fn wait_erased(&self, id: &DataKeyId, timeout: Duration) -> Result<Option<Vec<String>>> {
        let deadline = Instant::now() + timeout;
        loop {
            let pending = self.erase_pending(id)?;
            if pending.is_none() || Instant::now() >= deadline || self.is_shutting_down() {
                return Ok(pending);
            }
            std::thread::sleep(POLL);
        }
    }

    /// After a delete of `id` committed: waits up to [`ERASE_WAIT`] for every node to evict it,
    /// then, if some has not (or the wait could not tell), starts the job that tracks the
    /// erase. `None`: erased everywhere.
    pub fn track_erase(self: &Arc<Self>, id: &DataKeyId) -> Result<Option<Job>> {
        match self.wait_erased(id, ERASE_WAIT) {
            Ok(None) => Ok(None),
            Ok(Some(_)) | Err(_) => self.start_erase_job(id),
        }
    }

    /// Starts (or finds) the job that tracks key `id`'s pending erase until every node has
    /// acknowledged it; `None` when it is already complete.
    pub fn start_erase_job(self: &Arc<Self>, id: &DataKeyId) -> Result<Option<Job>> {
        let Some(read) = self.store.get(&layout::erase(id)).map_err(store_failed)? else {
            return Ok(None);
        };
        let Ok(mut rec) = serde_json::from_slice::<EraseRecord>(&read) else {
            return Err(Error::corrupt("An erase record is malformed."));
        };
        if let Some(uuid) = rec.job {
            return self.job(uuid).map(Some);
        }
        let Some(pending) = self.erase_pending(id)? else {
            return Ok(None);
        };
        let mut job = Job::new(JobKind::Erase, rec.config);
        job.key_id = Some(id.to_hex());
        job.total = rec.nodes.len() as u64;
        job.processed = job.total - pending.len() as u64;
        job.message = pending_message(&pending);
        rec.job = Some(job.uuid);
        let mut txn = Transaction::new();
        // Only while the erase is still recorded as it was read: a second caller (a REST
        // DELETE and a KMIP Destroy at once) finds the first one's job instead.
        txn.check(Check::Equals(layout::erase(id), read));
        txn.put(
            layout::erase(id),
            serde_json::to_vec(&rec).unwrap_or_default(),
        );
        job.put(&mut txn);
        match self.store.commit(txn) {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return match self.erase_state(id)?.and_then(|(r, _)| r.job) {
                    Some(uuid) => self.job(uuid).map(Some),
                    // Completed and cleaned up meanwhile.
                    None => Ok(None),
                };
            }
            Err(e) => return Err(store_failed(e)),
        }
        job.committed();
        self.spawn_job(job.uuid);
        Ok(Some(job))
    }

    /// Resumes the jobs of pending erases (their runner stopped, or this process restarted).
    pub(super) fn resume_erase_jobs(self: &Arc<Self>) {
        let Ok(all) = scan_all(&*self.store, layout::ERASE) else {
            return;
        };
        for (k, v) in all
            .iter()
            .filter(|(k, _)| k.len() == layout::ERASE.len() + 32)
        {
            let Ok(rec) = serde_json::from_slice::<EraseRecord>(v) else {
                continue;
            };
            match rec.job {
                Some(job) if self.running.lock().contains(&job) => {}
                Some(job) => self.spawn_job(job),
                // Its deleter stopped before starting the job (or could not): start it, so
                // the erase is tracked and its records cleaned up when it completes.
                None => {
                    if let Some(id) = key_of(k) {
                        let _ = self.start_erase_job(&id);
                    }
                }
            }
        }
    }

    /// Runs an erase job: waits for every node's acknowledgement, saying which nodes it
    /// waits for.
    pub(super) fn run_erase(&self, job: &mut Job) -> std::result::Result<(), Stop> {
        let id = job
            .key_id
            .as_deref()
            .and_then(|k| DataKeyId::parse(k).ok())
            .ok_or_else(|| {
                Stop::Failed(crate::error::Error::corrupt("An erase job names no key."))
            })?;
        loop {
            match self.erase_pending(&id)? {
                None => {
                    let mut txn = Transaction::new();
                    job.processed = job.total;
                    job.finish(
                        &mut txn,
                        Ok("Erased: every node evicted the key.".to_owned()),
                    );
                    return self.commit_job_step(txn);
                }
                Some(pending) => {
                    let message = pending_message(&pending);
                    if message != job.message {
                        job.processed = job.total.saturating_sub(pending.len() as u64);
                        job.message = message;
                        self.save_job(job)?;
                    }
                }
            }
            if self.is_shutting_down() {
                return Err(Stop::Interrupted);
            }
            // One store scan a second per pending erase.
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// "erase pending on node3 (...)" (or "on node2, node3 (...)").
pub fn pending_message(nodes: &[String]) -> String {
    format!(
        "erase pending on {} (the key is deleted; it is erased once each of these nodes has evicted it from memory, which a node does when it reconnects to the store or restarts)",
        nodes.join(", ")
    )
}

/// The key id of an erase record's store key.
fn key_of(k: &[u8]) -> Option<DataKeyId> {
    let raw = k.strip_prefix(layout::ERASE)?;
    <[u8; 32]>::try_from(raw).ok().map(DataKeyId::from_bytes)
}
