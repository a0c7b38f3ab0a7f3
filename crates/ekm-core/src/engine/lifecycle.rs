//! The seed's three actions and migrate: rekey-external, rekey-internal, restore, migrate.
//! Each starts as a validated request (errors with the seed's codes, nothing written), then
//! runs as a job whose every durable step is a crash point it resumes from.

use std::sync::Arc;

use uuid::Uuid;

use super::jobs::{Job, JobKind, Stop};
use super::keys_ops::{open_data_key, seal_data_key};
use super::nodes::TableEntry;
use super::{Engine, akv_failed, store_failed};
use crate::backend::BackendCall;
use crate::codec::{KekState, KeyLocation, KeyOwner, WrappedDataKey, WrappedKek, keys};
use crate::crypto::{Kek, NonceSource};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{DataKeyId, KeyId};
use crate::store::{Check, RangeRewrite, StoreError, Transaction};
use crate::stored::StoredConfig;
use crate::topology::SvmSelector;

fn not_found() -> Error {
    Error::new(ErrorKind::EntryNotFound).with_target("uuid")
}

impl Engine {
    /// The generations of `config` that have a wrapped KEK, with their records.
    fn kek_records(&self, config: Uuid) -> Result<Vec<WrappedKek>> {
        self.scan_all(&keys::kek_prefix(config))?
            .iter()
            .map(|(_, v)| WrappedKek::decode(v))
            .collect()
    }

    /// Number of index entries under `prefix`.
    fn count(&self, prefix: &[u8]) -> Result<u64> {
        Ok(self.scan_all(prefix)?.len() as u64)
    }

    /// [`ErrorKind::KeysOnAdminKeyManager`] when `config` is an SVM's and some of that SVM's
    /// keys still sit under the cluster's key manager (migrate them first).
    fn check_no_admin_keys(&self, config: &StoredConfig) -> Result<()> {
        let Some(svm) = config.svm_uuid() else {
            return Ok(());
        };
        let Some((cluster, _)) = self.config_for_scope(None)? else {
            return Ok(());
        };
        let prefix = keys::records_of(cluster.uuid, KeyOwner::Svm(svm));
        if !self
            .store
            .scan(&prefix, None, 1)
            .map_err(store_failed)?
            .is_empty()
        {
            return Err(Error::new(ErrorKind::KeysOnAdminKeyManager));
        }
        Ok(())
    }

    // ----- rekey-internal ---------------------------------------------------------------------

    /// Starts rekey-internal: a new KEK generation, every data key of the scope rewrapped,
    /// the old generation retired. 65537559 when the scope has no data keys; 65537547 when
    /// some of the SVM's keys are still under the cluster's key manager.
    pub fn start_rekey_internal(self: &Arc<Self>, config: Uuid) -> Result<Job> {
        let admin = self.admin.lock();
        let (cfg, _) = self.load_config(config)?;
        self.check_no_admin_keys(&cfg)?;
        let empty = self
            .store
            .scan(&keys::records(config), None, 1)
            .map_err(store_failed)?
            .is_empty();
        if empty || cfg.active_generation.is_none() {
            return Err(Error::new(ErrorKind::NoInternalKeys));
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
        let prefix = keys::records(cfg.uuid);
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
                    let id = keys::id_of_record(k).ok_or("a record key is malformed")?;
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
                    txn.put(keys::seals(cfg.uuid, to), seals.to_be_bytes().to_vec());
                }
                txn
            };
            let result = self.store.rewrite_range(
                &prefix,
                cursor.as_deref(),
                self.rekey_batch,
                &mut rewrite,
                &mut then,
            );
            self.job_changed.notify_all();
            match result {
                Ok(out) if out.seen == 0 => break,
                Ok(_) => self.forget_keys(&moved),
                // A key of the page changed meanwhile (stores without read-write
                // transactions): redo the page.
                Err(StoreError::Conflict(_)) => *job = before,
                Err(StoreError::Aborted(m)) => return Err(Stop::Failed(Error::corrupt(&m))),
                Err(e) => return Err(Stop::Failed(store_failed(e))),
            }
        }
        let admin = self.admin.lock();
        let mut txn = Transaction::new();
        txn.delete(keys::kek(cfg.uuid, from))
            .delete(keys::seals(cfg.uuid, from));
        let msg = format!(
            "Rekey-internal completed: {} data keys rewrapped from KEK generation {from} to {to}; generation {from} retired.",
            job.processed
        );
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
                return Err(Stop::Failed(Error::new(ErrorKind::NoInternalKeys)));
            };
            let records = self.kek_records(cfg.uuid)?;
            if let Some(r) = records.iter().find(|k| k.state == KekState::Retiring) {
                job.from_generation = Some(r.generation);
                job.to_generation = Some(active);
                job.total = self.count(&keys::records(cfg.uuid))?;
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
            job.total = self.count(&keys::records(cfg.uuid))?;
            job.cursor = None;
            job.message = format!(
                "Rewrapping {} data keys from KEK generation {active} to {to}.",
                job.total
            );
            let cfg_key = keys::config(cfg.uuid);
            let mut txn = Transaction::new();
            txn.check(Check::Equals(cfg_key.clone(), bytes))
                .check(Check::Absent(keys::kek(cfg.uuid, to)))
                .put(keys::kek(cfg.uuid, to), wrapped_new.encode()?)
                .put(keys::kek(cfg.uuid, active), wrapped_old.encode()?)
                .put(cfg_key, updated.encode(&self.protection)?);
            job.put(&mut txn);
            match self.store.commit(txn) {
                Ok(()) => {}
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
            let id = keys::id_of_record(record_key)
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
                .put(keys::data_key(&id), location.encode());
            moved.push(id);
        }
        let seals = self.count_seals(dest, new.generation(), moved.len() as u64)?;
        txn.put(
            keys::seals(dest, new.generation()),
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
                self.job_changed.notify_all();
                Ok(moved)
            }
            // A key of the page was deleted or changed meanwhile: redo the page.
            Err(StoreError::Conflict(_)) => {
                job.processed -= moved.len() as u64;
                Ok(Vec::new())
            }
            Err(e) => Err(Stop::Failed(store_failed(e))),
        }
    }

    /// Drops keys from every node table (they reload, rewrapped, on their next read).
    fn forget_keys(&self, ids: &[DataKeyId]) {
        for n in &self.nodes {
            for id in ids {
                n.table.evict(id);
            }
        }
    }

    // ----- rekey-external ---------------------------------------------------------------------

    /// Starts rekey-external to `key_id`. When `svm` is given it must name the SVM of the
    /// configuration; an SVM without a key manager is 65537120. 65537547 as for rekey-internal.
    pub fn start_rekey_external(
        self: &Arc<Self>,
        config: Uuid,
        key_id: KeyId,
        svm: Option<&SvmSelector>,
    ) -> Result<Job> {
        let admin = self.admin.lock();
        let (cfg, _) = self.load_config(config)?;
        if let Some(sel) = svm.filter(|s| s.uuid.is_some() || s.name.is_some()) {
            let named = self.topology.resolve_svm(sel)?;
            if cfg.svm_uuid() != Some(named.uuid()) {
                return Err(Error::new(ErrorKind::NotConfigured).with_detail(format!(
                    "Key manager {config} does not belong to SVM \"{}\".",
                    named.name()
                )));
            }
        }
        self.check_no_admin_keys(&cfg)?;
        let mut job = Job::new(JobKind::RekeyExternal, config);
        job.key_id = Some(key_id.as_str().to_owned());
        let job = self.begin_job(job)?;
        drop(admin);
        self.spawn_job(job.uuid);
        Ok(job)
    }

    /// Proves the new key (wrap then unwrap), rewraps every KEK generation with it, and swaps
    /// the configuration's key id, the wrapped KEKs and the nodes' copies in one transaction.
    pub(crate) fn run_rekey_external(&self, job: &mut Job) -> std::result::Result<(), Stop> {
        let new_key = job
            .key_id
            .as_deref()
            .and_then(|k| KeyId::parse(k).ok())
            .ok_or_else(|| Stop::Failed(Error::new(ErrorKind::InvalidKeyId)))?;
        for _ in 0..4 {
            let (cfg, bytes) = self
                .load_config(job.config)
                .map_err(|_| Stop::Failed(not_found()))?;
            let mut txn = Transaction::new();
            if cfg.key_id()? == new_key {
                job.finish(
                    &mut txn,
                    Ok(format!("The KEK is already wrapped by {new_key}.")),
                );
                return self.commit_job_step(txn);
            }
            let parts = cfg.unseal(&self.protection)?;
            let access = parts.access();
            let call = BackendCall {
                node: &self.nodes[self.local].node,
                access: &access,
            };
            self.backend
                .check(&call, &new_key)
                .map_err(|e| akv_failed(&e))?;
            let mut rewrapped = Vec::new();
            for mut rec in self.kek_records(cfg.uuid)? {
                let kek = self.unlock_on(self.local, &cfg, rec.generation)?;
                rec.wrapped = self
                    .backend
                    .wrap_kek(&call, &new_key, kek.material())
                    .map_err(|e| akv_failed(&e))?;
                rec.key_id = new_key.clone();
                rewrapped.push(rec);
            }
            let cfg_key = keys::config(cfg.uuid);
            txn.check(Check::Equals(cfg_key.clone(), bytes))
                .put(cfg_key, cfg.with_key_id(&new_key).encode(&self.protection)?);
            for rec in &rewrapped {
                txn.put(keys::kek(cfg.uuid, rec.generation), rec.encode()?);
            }
            // The nodes' copies follow in the same transaction.
            for n in &self.topology.nodes {
                if let Some(mut nr) = self.node_record(n.uuid, cfg.uuid)? {
                    if let Some(rec) = rewrapped.iter().find(|r| r.generation == nr.generation) {
                        use base64::Engine as _;
                        nr.wrapped_kek =
                            base64::engine::general_purpose::STANDARD.encode(rec.encode()?);
                        txn.put(keys::node(n.uuid, cfg.uuid), nr.encode());
                    }
                }
            }
            job.processed = rewrapped.len() as u64;
            job.total = rewrapped.len() as u64;
            job.finish(
                &mut txn,
                Ok(format!(
                    "Rekey-external completed: {} KEK generation(s) now wrapped by {new_key}.",
                    rewrapped.len()
                )),
            );
            match self.store.commit(txn) {
                Ok(()) => {
                    self.job_changed.notify_all();
                    return Ok(());
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(Stop::Failed(store_failed(e))),
            }
        }
        Err(Stop::Failed(
            Error::new(ErrorKind::StoreFailed).with_detail("The configuration kept changing."),
        ))
    }

    // ----- restore ----------------------------------------------------------------------------

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
        for (k, v) in self.scan_all(&keys::records(cfg.uuid))? {
            let id = keys::id_of_record(&k)
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

    // ----- migrate ----------------------------------------------------------------------------

    /// Starts migrating the keys of `destination`'s SVM from `source` (the cluster's key
    /// manager) to `destination` (that SVM's own). Key ids and material are unchanged.
    pub fn start_migrate(self: &Arc<Self>, source: Uuid, destination: Uuid) -> Result<Job> {
        let admin = self.admin.lock();
        let (src, _) = self.load_config(source)?;
        let (dst, _) = self.load_config(destination)?;
        if src.svm_uuid().is_some() {
            return Err(Error::invalid_value(
                "source.uuid",
                "the source of a migrate is the cluster's key manager.",
            ));
        }
        if dst.svm_uuid().is_none() {
            return Err(Error::invalid_value(
                "uuid",
                "the destination of a migrate is an SVM's key manager.",
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
        let owner = dst
            .svm_uuid()
            .map(KeyOwner::Svm)
            .ok_or_else(|| Stop::Failed(not_found()))?;
        let prefix = keys::records_of(src.uuid, owner);
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
                let guard = (keys::config(dst.uuid), dst_bytes.clone());
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
