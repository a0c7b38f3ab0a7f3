//! migrate: the keys of an SVM moved between the cluster's key manager and the SVM's own (either
//! way, of any kinds), each rewrapped from the source's KEK to the destination's active one;
//! key ids and material unchanged.
//!
//! Durable steps, and what a crash right after each leaves:
//!
//! | # | transaction | after a crash |
//! |---|---|---|
//! | 1 | job (queued) + markers on source and destination | the job resumes; nothing else changed; rekeys of the SVM are refused (65537547) until done |
//! | 2 | job running | as 1 |
//! | 3.. | per page: `Equals(destination config)` and `Equals(record)` per key; each record deleted under the source, put under the destination, its location `d/<id>` moved, the source's deletion mark `e/<source>`, the destination's seal count, the job's progress | every key is under exactly one configuration at every point; the next page is read again from the source |
//! | last | job success, markers removed | done |
//!
//! Owns: the steps of a migrate job.
//! Must never: leave a key under both configurations, or under neither.

use std::sync::Arc;

use uuid::Uuid;

use super::{Job, JobKind, Stop, not_found};
use crate::codec::{KeyLocation, WrappedDataKey};
use crate::crypto::{Kek, NonceSource};
use crate::engine::Engine;
use crate::engine::helpers::store_failed;
use crate::error::{Error, Result};
use crate::hierarchy::{open_data_key, seal_data_key};
use crate::ids::{DataKeyId, KeyOwner};
use crate::layout;
use crate::store::{Check, StoreError, Transaction};
use crate::stored::StoredConfig;

impl Engine {
    /// Moves one page of `src` records to `dest`, rewrapped from `old` to `new`, in one
    /// transaction with the job's progress: each record, its location and the job change
    /// together, each record guarded against a concurrent change. Returns the ids moved.
    #[allow(clippy::too_many_arguments)]
    fn migrate_page(
        &self,
        page: &[(Vec<u8>, Vec<u8>)],
        src: &StoredConfig,
        old: &Kek,
        new: &Kek,
        dest: Uuid,
        job: &mut Job,
        dest_check: (Vec<u8>, Vec<u8>),
    ) -> std::result::Result<Vec<DataKeyId>, Stop> {
        let mut txn = Transaction::new();
        txn.check(Check::Equals(dest_check.0, dest_check.1));
        let mut moved = Vec::with_capacity(page.len());
        let mut nonces = NonceSource::default();
        for (record_key, bytes) in page {
            let id = layout::id_of_record(record_key)
                .ok_or_else(|| Stop::Failed(Error::corrupt("A record key is malformed.")))?;
            let r = WrappedDataKey::decode(bytes)?;
            if r.config != src.uuid || r.generation != old.generation() {
                return Err(Stop::Failed(Error::corrupt(&format!(
                    "Data key {id} is filed under configuration {} but names {} generation {}.",
                    src.uuid, r.config, r.generation
                ))));
            }
            let material = open_data_key(&id, &r, old)?;
            let rec = seal_data_key(
                new,
                dest,
                &id,
                r.owner,
                &material,
                r.key_tag.clone(),
                &mut nonces,
            )?;
            let location = KeyLocation {
                config: dest,
                owner: r.owner,
            };
            txn.check(Check::Equals(record_key.clone(), bytes.clone()))
                .delete(record_key.clone())
                .put(location.record_key(&id), rec.encode())
                .put(layout::data_key(&id), location.encode());
            moved.push(id);
        }
        txn.put(layout::deletions(src.uuid), Vec::new());
        let seals = self.count_seals(dest, new.generation(), moved.len() as u64)?;
        txn.put(
            self.own_seals_key(dest, new.generation()),
            seals.to_be_bytes().to_vec(),
        );
        job.processed += moved.len() as u64;
        job.message = format!(
            "{} of {} data keys migrated.",
            job.processed,
            job.total.max(job.processed)
        );
        job.put(&mut txn);
        match self.store.commit(txn) {
            Ok(()) => {
                job.committed();
                self.job_changed.notify_all();
                Ok(moved)
            }
            // Another node runs the job now (cluster stores): stop here.
            Err(StoreError::Conflict(_)) if self.job_lost(job) => Err(Stop::Interrupted),
            // A key of the page was deleted or changed meanwhile: redo the page.
            Err(StoreError::Conflict(_)) => {
                job.processed -= moved.len() as u64;
                Ok(Vec::new())
            }
            Err(e) => Err(Stop::Failed(store_failed(e))),
        }
    }

    /// Starts migrating an SVM's keys between the cluster's key manager and that SVM's own, in
    /// either direction (ONTAP's `POST /security/key-managers/{source.uuid}/migrate`): from
    /// `source` to `destination`, of whichever kinds. Key ids and material are unchanged.
    pub fn start_migrate(self: &Arc<Self>, source: Uuid, destination: Uuid) -> Result<Job> {
        let admin = self.admin.lock();
        let (src, _) = self.load_config(source)?;
        let (dst, _) = self.load_config(destination)?;
        Engine::refuse_on_mirror(&src, "a migrate")?;
        Engine::refuse_on_mirror(&dst, "a migrate")?;
        if migrated_owner(&src, &dst).is_none() {
            return Err(Error::invalid_value(
                "uuid",
                "a migrate moves an SVM's keys between the cluster's key manager and that SVM's own: one of the two must be the cluster's, the other an SVM's.",
            ));
        }
        let mut job = Job::new(JobKind::Migrate, source);
        job.destination = Some(destination);
        let job = self.begin_job(job)?;
        drop(admin);
        self.spawn_job(job.uuid);
        Ok(job)
    }

    pub(crate) fn run_migrate(&self, job: &mut Job) -> std::result::Result<(), Stop> {
        let dest = job.destination.ok_or_else(|| Stop::Failed(not_found()))?;
        let (src, _) = self
            .load_config(job.config)
            .map_err(|_| Stop::Failed(not_found()))?;
        let (dst, dst_bytes) = self
            .load_config(dest)
            .map_err(|_| Stop::Failed(not_found()))?;
        let owner = migrated_owner(&src, &dst).ok_or_else(|| Stop::Failed(not_found()))?;
        let prefix = layout::records_of(src.uuid, owner);
        let left = self.count(&prefix)?;
        job.total = job.processed + left;
        job.message = format!("Migrating {left} data keys to key manager {dest}.");
        self.save_job(job)?;
        if left > 0 {
            let (dst, mut dst_bytes, new) = self.active_kek(dst, dst_bytes)?;
            let mut olds: std::collections::HashMap<u32, Arc<Kek>> = Default::default();
            loop {
                if self.is_shutting_down() {
                    return Err(Stop::Interrupted);
                }
                let page = self
                    .store
                    .scan(&prefix, None, self.rekey_batch)
                    .map_err(store_failed)?;
                let Some((_, first)) = page.first() else {
                    break;
                };
                // Pages are cut at a generation change (keys of one page share one old KEK).
                let generation = WrappedDataKey::decode(first)?.generation;
                let page: Vec<_> = page
                    .into_iter()
                    .take_while(|(_, v)| {
                        WrappedDataKey::decode(v).is_ok_and(|r| r.generation == generation)
                    })
                    .collect();
                let old = match olds.get(&generation) {
                    Some(k) => k.clone(),
                    None => {
                        let k = self.unlock_on(self.local, &src, generation)?;
                        olds.insert(generation, k.clone());
                        k
                    }
                };
                let guard = (layout::config(dst.uuid), dst_bytes.clone());
                let moved = self.migrate_page(&page, &src, &old, &new, dst.uuid, job, guard)?;
                if moved.is_empty() {
                    dst_bytes = self.load_config(dst.uuid)?.1;
                }
                self.forget_keys(&moved);
            }
        } else {
            drop((dst, dst_bytes));
        }
        let mut txn = Transaction::new();
        job.finish(
            &mut txn,
            Ok(format!(
                "Migrated {} data keys to key manager {dest}.",
                job.processed
            )),
        );
        self.commit_job_step(txn)
    }
}

/// The owner whose keys a migrate from `src` to `dst` moves: the SVM of the one that is an
/// SVM's, when the other is the cluster's; `None` for any other pair.
fn migrated_owner(src: &StoredConfig, dst: &StoredConfig) -> Option<KeyOwner> {
    match (src.svm_uuid(), dst.svm_uuid()) {
        (None, Some(svm)) | (Some(svm), None) => Some(KeyOwner::Svm(svm)),
        _ => None,
    }
}
