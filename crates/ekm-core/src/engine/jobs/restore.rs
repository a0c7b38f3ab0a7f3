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

use std::sync::Arc;

use uuid::Uuid;

use super::{Job, JobKind, Stop, not_found};
use crate::codec::WrappedDataKey;
use crate::engine::Engine;
use crate::engine::nodes::TableEntry;
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
            match self.unwrap_kek(&rt.node, &cfg, &wrapped) {
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
    fn load_table(&self, idx: usize, cfg: &StoredConfig) -> Result<()> {
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
}
