//! rekey-internal: a new KEK generation for a configuration, every data key of it rewrapped,
//! the old generation retired.
//!
//! Durable steps, and what a crash right after each leaves (the job resumes from its record):
//!
//! | # | transaction | after a crash |
//! |---|---|---|
//! | 1 | job (queued) + marker `a/<config>` | the job resumes; nothing else changed |
//! | 2 | job running | as 1 |
//! | 3 | switch: `Equals(config)`, `Absent(k/<config><g+1>)`; KEK g+1 active, KEK g retiring, config `active_generation = g+1`, job journal (from g, to g+1, cursor none) | both KEKs exist; every key opens under g; new keys go to g+1; the job resumes with the pass |
//! | 4..n | one batch each: records rewrapped g → g+1 in place (`Store::rewrite_range`) with the job's cursor, count and seal counter | records are on g or g+1, both open; the pass resumes after the cursor |
//! | n+1 | retire: KEK g deleted, job success, marker removed | done |
//!
//! Why no key is stranded: after the switch a create commits with `Equals(config)`, so a create
//! that read the configuration before the switch re-seals under g+1; every key still on g
//! existed at the switch, and one ordered pass over `r/<config>` from the cursor visits it.
//! A rekey-internal started while an earlier one is unfinished adopts it (finishes draining the
//! retiring generation instead of adding another).
//!
//! Owns: the steps of a rekey-internal job.
//! Must never: retire a generation that still wraps a data key.

use std::sync::Arc;

use uuid::Uuid;

use super::{Job, JobKind, Stop, not_found};
use crate::codec::{KekState, WrappedDataKey};
use crate::crypto::{Kek, NonceSource};
use crate::engine::Engine;
use crate::engine::helpers::store_failed;
use crate::error::{Error, ErrorKind, Result};
use crate::hierarchy::{open_data_key, seal_data_key};
use crate::ids::DataKeyId;
use crate::layout;
use crate::store::{Check, RangeRewrite, StoreError, Transaction};

impl Engine {
    /// Starts rekey-internal: a new KEK generation, every data key of the scope rewrapped,
    /// the old generation retired. 65537559 when the scope has no data keys; 65537547 when
    /// some of the SVM's keys are still under the cluster's key manager.
    pub fn start_rekey_internal(self: &Arc<Self>, config: Uuid) -> Result<Job> {
        let admin = self.admin.lock();
        let (cfg, _) = self.load_config(config)?;
        Engine::refuse_on_mirror(&cfg, "rekey-internal")?;
        self.check_no_admin_keys(&cfg)?;
        let empty = self
            .store
            .scan(&layout::records(config), None, 1)
            .map_err(store_failed)?
            .is_empty();
        if empty || cfg.active_generation.is_none() {
            return Err(Error::for_scope(
                ErrorKind::NoInternalKeys,
                cfg.svm_uuid().is_some(),
            ));
        }
        let job = self.begin_job(Job::new(JobKind::RekeyInternal, config))?;
        drop(admin);
        self.spawn_job(job.uuid);
        Ok(job)
    }

    pub(crate) fn run_rekey_internal(&self, job: &mut Job) -> std::result::Result<(), Stop> {
        let (from, to) = match (job.from_generation, job.to_generation) {
            (Some(f), Some(t)) => (f, t),
            _ => self.rekey_internal_switch(job)?,
        };
        let (cfg, _) = self
            .load_config(job.config)
            .map_err(|_| Stop::Failed(not_found()))?;
        let old = self.unlock_on(self.local, &cfg, from)?;
        let new = self.unlock_on(self.local, &cfg, to)?;
        let prefix = layout::records(cfg.uuid);
        let deletions = layout::deletions(cfg.uuid);
        // Checked once per pass. An earlier build cannot start meanwhile (it refuses format 6);
        // the upgrade itself is done with every earlier-build process stopped (`check_format`).
        let mark = self
            .every_live_process_marks_deletions()
            .then_some(deletions.as_slice());
        // Every key on `from` existed at the switch; keys created since are on `to`. One pass
        // over the configuration's records, in order, from the journaled cursor, visits each.
        loop {
            if self.is_shutting_down() {
                return Err(Stop::Interrupted);
            }
            let cursor = job.cursor.as_deref().and_then(|c| hex::decode(c).ok());
            let before = job.clone();
            let mut moved: Vec<DataKeyId> = Vec::new();
            let mut nonces = NonceSource::default();
            let mut rewrite =
                |k: &[u8], v: &[u8]| -> std::result::Result<Option<Vec<u8>>, String> {
                    let r = WrappedDataKey::decode(v).map_err(|e| e.message())?;
                    if r.generation != from {
                        return Ok(None);
                    }
                    let id = layout::id_of_record(k).ok_or("a record key is malformed")?;
                    let material = open_data_key(&id, &r, &old).map_err(|e| e.message())?;
                    let rec = seal_data_key(
                        &new,
                        cfg.uuid,
                        &id,
                        r.owner,
                        &material,
                        r.key_tag,
                        &mut nonces,
                    )
                    .map_err(|e| e.message())?;
                    moved.push(id);
                    Ok(Some(rec.encode()))
                };
            let mut then = |out: &RangeRewrite| {
                let mut txn = Transaction::new();
                job.processed += out.rewritten as u64;
                job.cursor = out.last_key.as_ref().map(hex::encode).or(job.cursor.take());
                job.message = format!(
                    "{} of {} data keys rewrapped.",
                    job.processed,
                    job.total.max(job.processed)
                );
                job.put(&mut txn);
                if let Ok(seals) = self.count_seals(cfg.uuid, to, out.rewritten as u64) {
                    txn.put(
                        self.own_seals_key(cfg.uuid, to),
                        seals.to_be_bytes().to_vec(),
                    );
                }
                txn
            };
            let result = self.store.rewrite_range(
                &prefix,
                cursor.as_deref(),
                self.rewrap_batch,
                mark,
                &mut rewrite,
                &mut then,
            );
            self.job_changed.notify_all();
            match result {
                Ok(out) if out.seen == 0 => {
                    job.committed();
                    break;
                }
                Ok(_) => {
                    job.committed();
                    self.forget_keys(&moved);
                }
                // Another node runs the job now (cluster stores): stop here.
                Err(StoreError::Conflict(_)) if self.job_lost(job) => {
                    return Err(Stop::Interrupted);
                }
                // A key of the page changed meanwhile (stores without read-write
                // transactions): redo the page.
                Err(StoreError::Conflict(_)) => *job = before,
                Err(StoreError::Aborted(m)) => return Err(Stop::Failed(Error::corrupt(&m))),
                Err(e) => return Err(Stop::Failed(store_failed(e))),
            }
        }
        let admin = self.admin.lock();
        let mut txn = Transaction::new();
        txn.delete(layout::kek(cfg.uuid, from));
        self.drop_mirror_copies(cfg.uuid, from, &mut txn)?;
        self.drop_seal_counts(&mut txn, cfg.uuid, from)?;
        let mut msg = format!(
            "Rekey-internal completed: {} data keys rewrapped from KEK generation {from} to {to}; generation {from} retired.",
            job.processed
        );
        let lacking = self.mirrors_lacking(&cfg, to)?;
        if !lacking.is_empty() {
            msg.push_str(&format!(
                " Not yet wrapped by {}: each is rewrapped by itself once reachable again.",
                lacking
                    .iter()
                    .map(|u| format!("root {u}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        job.finish(&mut txn, Ok(msg));
        self.commit_job_step(txn)?;
        drop(admin);
        for n in &self.nodes {
            n.forget_generation(cfg.uuid, from);
        }
        self.seals.lock().remove(&(cfg.uuid, from));
        Ok(())
    }

    /// Phase 1 of rekey-internal, one transaction: the new generation (wrapped by the backend)
    /// becomes active, the old one retiring, and the job journal records both. Adopts a switch
    /// an earlier, failed rekey left unfinished instead of making another generation.
    fn rekey_internal_switch(&self, job: &mut Job) -> std::result::Result<(u32, u32), Stop> {
        for _ in 0..4 {
            let (cfg, bytes) = self
                .load_config(job.config)
                .map_err(|_| Stop::Failed(not_found()))?;
            let Some(active) = cfg.active_generation else {
                return Err(Stop::Failed(Error::for_scope(
                    ErrorKind::NoInternalKeys,
                    cfg.svm_uuid().is_some(),
                )));
            };
            let records = self.kek_records(cfg.uuid)?;
            if let Some(r) = records.iter().find(|k| k.state == KekState::Retiring) {
                job.from_generation = Some(r.generation);
                job.to_generation = Some(active);
                job.total = self.count(&layout::records(cfg.uuid))?;
                job.cursor = None;
                job.message = format!(
                    "Finishing the rekey from generation {} to {active}.",
                    r.generation
                );
                self.save_job(job)?;
                return Ok((r.generation, active));
            }
            let to = records.iter().map(|k| k.generation).max().unwrap_or(active) + 1;
            let kek = Kek::generate(to);
            let wrapped_new = self.wrap_new_kek(&cfg, &kek, KekState::Active)?;
            let mut wrapped_old = self.cluster_wrapped_kek(cfg.uuid, active)?;
            wrapped_old.state = KekState::Retiring;
            let mut updated = cfg.clone();
            updated.active_generation = Some(to);
            job.from_generation = Some(active);
            job.to_generation = Some(to);
            job.total = self.count(&layout::records(cfg.uuid))?;
            job.cursor = None;
            job.message = format!(
                "Rewrapping {} data keys from KEK generation {active} to {to}.",
                job.total
            );
            let cfg_key = layout::config(cfg.uuid);
            let mut txn = Transaction::new();
            // The roots of trust that cannot wrap the new generation now are named at the end
            // and catch up by themselves; the primary's wrap above is required.
            self.wrap_for_mirrors(&cfg, &kek, KekState::Active, &mut txn)?;
            txn.check(Check::Equals(cfg_key.clone(), bytes))
                .check(Check::Absent(layout::kek(cfg.uuid, to)))
                .put(
                    layout::kek(cfg.uuid, to),
                    wrapped_new.encode(&self.protection)?,
                )
                .put(
                    layout::kek(cfg.uuid, active),
                    wrapped_old.encode(&self.protection)?,
                )
                .put(cfg_key, updated.encode(&self.protection)?);
            job.put(&mut txn);
            match self.store.commit(txn) {
                Ok(()) => job.committed(),
                Err(StoreError::Conflict(_)) if self.job_lost(job) => {
                    return Err(Stop::Interrupted);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(Stop::Failed(store_failed(e))),
            }
            self.job_changed.notify_all();
            let kek = Arc::new(kek);
            let local = &self.nodes[self.local];
            local.keks.write().insert((cfg.uuid, to), kek);
            self.record_node(&local.node, &wrapped_new, Some(to), None);
            self.distribute(&updated, to, self.local);
            return Ok((active, to));
        }
        Err(Stop::Failed(
            Error::new(ErrorKind::StoreFailed).with_detail("The configuration kept changing."),
        ))
    }
}
