//! restore: every managed node that lacks the configuration's KEK unwraps it (one backend call
//! per node, as that node) and loads the configuration's keys into its key table.
//!
//! Durable steps, and what a crash right after each leaves:
//!
//! | # | transaction | after a crash |
//! |---|---|---|
//! | 1 | job (queued) + marker `a/<config>` | the job resumes; nothing else changed |
//! | 2 | job running, with the count of nodes lacking the KEK | as 1 |
//! | 3.. | per node: its availability record (`n/<node><config>`), then the job's progress | nodes restored stay restored (in the store; a restarted process unlocks again on first use); the rest are done on resume |
//! | last | job success, or failure 65537515 naming each failed node and why; marker removed | a re-run completes the nodes that failed |
//!
//! Owns: the steps of a restore job.
//! Must never: call the backend as one node on behalf of another.

use std::sync::Arc;

use uuid::Uuid;

use super::{Job, JobKind, Stop, not_found};
use crate::codec::WrappedDataKey;
use crate::engine::Engine;
use crate::engine::helpers::store_failed;
use crate::engine::key_table::TableEntry;
use crate::engine::node_records::NodeRecord;
use crate::error::{Error, ErrorKind, Result};
use crate::layout;
use crate::store::Transaction;
use crate::stored::StoredConfig;

impl Engine {
    /// Starts restore: every managed node that lacks the current KEK unwraps it (one backend
    /// call per node) and loads the scope's keys. 65537544 when the wrapped KEK is missing.
    pub fn start_restore(self: &Arc<Self>, config: Uuid) -> Result<Job> {
        let admin = self.admin.lock();
        let (cfg, _) = self.load_config(config)?;
        Engine::refuse_on_mirror(&cfg, "restore")?;
        if let Some(g) = cfg.active_generation {
            self.cluster_wrapped_kek(config, g)?;
        }
        let job = self.begin_job(Job::new(JobKind::Restore, config))?;
        drop(admin);
        self.spawn_job(job.uuid);
        Ok(job)
    }

    pub(crate) fn run_restore(&self, job: &mut Job) -> std::result::Result<(), Stop> {
        let (cfg, _) = self
            .load_config(job.config)
            .map_err(|_| Stop::Failed(not_found()))?;
        let Some(g) = cfg.active_generation else {
            let mut txn = Transaction::new();
            job.finish(
                &mut txn,
                Ok("No data keys yet: there is nothing to restore.".into()),
            );
            return self.commit_job_step(txn);
        };
        let wrapped = self.cluster_wrapped_kek(cfg.uuid, g)?;
        let lacking: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].kek(cfg.uuid, g).is_none())
            .collect();
        job.total = lacking.len() as u64;
        job.message = format!("Restoring the KEK on {} node(s).", lacking.len());
        self.save_job(job)?;
        let mut failures = Vec::new();
        for idx in lacking {
            if self.is_shutting_down() {
                return Err(Stop::Interrupted);
            }
            let rt = &self.nodes[idx];
            match self.unwrap_any_root(rt, &cfg, &wrapped) {
                Ok(kek) => {
                    let kek = Arc::new(kek);
                    rt.keks.write().insert((cfg.uuid, g), kek);
                    self.record_node(&rt.node, &wrapped, Some(g), None);
                    self.load_table(idx, &cfg)?;
                    job.processed += 1;
                }
                Err(e) => {
                    self.record_node(&rt.node, &wrapped, None, Some(&e));
                    failures.push(format!("Node: {}. Reason: {}", rt.node.name, e.message()));
                }
            }
            self.save_job(job)?;
        }
        if self.store.is_shared() {
            self.restore_on_other_processes(job, &cfg, g, &mut failures)?;
        }
        let mut txn = Transaction::new();
        if failures.is_empty() {
            job.finish(
                &mut txn,
                Ok(format!("Keys restored on {} node(s).", job.processed)),
            );
        } else {
            let e = Error::new(ErrorKind::RestorePartial).with_detail(failures.join(" "));
            job.finish(&mut txn, Err(&e));
        }
        self.commit_job_step(txn)
    }

    /// Loads every data key of `cfg` into node `idx`'s key table.
    pub(crate) fn load_table(&self, idx: usize, cfg: &StoredConfig) -> Result<()> {
        let table = &self.nodes[idx].table;
        // Taken before the scan: a key deleted after it is not filled back in.
        let epoch = table.fill_epoch();
        for (k, v) in self.scan_all(&layout::records(cfg.uuid))? {
            let id = layout::id_of_record(&k)
                .ok_or_else(|| Error::corrupt("A data key record has a malformed key."))?;
            let record = WrappedDataKey::decode(&v)?;
            let kek = self.unlock_on(idx, cfg, record.generation)?;
            if !table.fill(id, TableEntry { record, kek }, epoch) {
                // Evictions since the scan: the rest load on their first read instead.
                break;
            }
        }
        Ok(())
    }

    /// In a cluster store: asks every other live node that lacks the KEK to unlock it (each
    /// with one unwrap, as itself), by a restore request they watch, and waits up to
    /// [`OTHER_NODES_WAIT`] for each to report it in its liveness record or fail in its node
    /// record. Nodes that are down are failures too (they restore when they start).
    fn restore_on_other_processes(
        &self,
        job: &mut Job,
        cfg: &StoredConfig,
        g: u32,
        failures: &mut Vec<String>,
    ) -> std::result::Result<(), Stop> {
        let mine: Vec<Uuid> = self.nodes.iter().map(|n| n.node.uuid).collect();
        let mut pending = Vec::new();
        for node in self
            .topology
            .nodes
            .iter()
            .filter(|n| !mine.contains(&n.uuid))
        {
            if !self.node_alive(node.uuid)? {
                failures.push(format!(
                    "Node: {}. Reason: the node is down (no liveness record in the cluster store); it unlocks the KEK when its ekmd starts.",
                    node.name
                ));
            } else if !self.liveness_holds(node.uuid, cfg.uuid, g)? {
                pending.push(node.clone());
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        job.total += pending.len() as u64;
        job.message = format!("Asking {} other node(s) to unlock the KEK.", pending.len());
        self.save_job(job)?;
        // A failure counts only if a node wrote its record after the request: compare with
        // the records as they are before it (clocks of other nodes are not compared).
        let mut before = std::collections::HashMap::new();
        for node in &pending {
            let raw = self
                .store
                .get(&layout::node(node.uuid, cfg.uuid))
                .map_err(|e| Stop::Failed(store_failed(e)))?;
            before.insert(node.uuid, raw);
        }
        let mut txn = Transaction::new();
        txn.put(
            layout::restore_request(cfg.uuid),
            job.uuid.as_bytes().to_vec(),
        );
        self.commit_job_step(txn)?;
        let deadline = std::time::Instant::now() + OTHER_NODES_WAIT;
        while !pending.is_empty() {
            if self.is_shutting_down() {
                return Err(Stop::Interrupted);
            }
            let mut still = Vec::new();
            for node in pending {
                if self.liveness_holds(node.uuid, cfg.uuid, g)? {
                    job.processed += 1;
                    continue;
                }
                let raw = self
                    .store
                    .get(&layout::node(node.uuid, cfg.uuid))
                    .map_err(|e| Stop::Failed(store_failed(e)))?;
                let changed = before.get(&node.uuid) != Some(&raw);
                let failed = raw
                    .filter(|_| changed)
                    .and_then(|b| NodeRecord::decode(&b).ok())
                    .filter(|r| r.loaded != Some(g))
                    .and_then(|r| r.last_error);
                match failed {
                    Some(e) => failures.push(format!("Node: {}. Reason: {}", node.name, e.message)),
                    None => still.push(node),
                }
            }
            pending = still;
            if std::time::Instant::now() > deadline {
                for node in pending.drain(..) {
                    failures.push(format!(
                        "Node: {}. Reason: it did not report the KEK within {} s.",
                        node.name,
                        OTHER_NODES_WAIT.as_secs()
                    ));
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.save_job(job)
    }
}

/// How long restore waits for the other nodes of a cluster to unlock the KEK.
const OTHER_NODES_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
