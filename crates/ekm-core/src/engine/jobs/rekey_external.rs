//! rekey-external: the KEKs of a configuration rewrapped by another external key (another
//! vault key, or a new version of the same one).
//!
//! Durable steps, and what a crash right after each leaves:
//!
//! | # | transaction | after a crash |
//! |---|---|---|
//! | 1 | job (queued) + marker `a/<config>` | the job resumes; nothing else changed |
//! | 2 | job running | as 1 |
//! | 3 | `Equals(config)`: config `key_id`, every KEK generation rewrapped by the new key, the nodes' copies, job success, marker removed | the old wrapping was in force until this commit (the job redoes the backend calls on resume), the new one after it; never neither |
//!
//! Backend calls before step 3: a check of the new key, then per generation one unwrap as this
//! node (skipped when unlocked) and one wrap with the new key.
//!
//! Owns: the steps of a rekey-external job.
//! Must never: commit a wrapping by the new key without every generation rewrapped by it.

use std::sync::Arc;

use uuid::Uuid;

use super::{Job, JobKind, Stop, not_found};
use crate::backend::{BackendCall, provider_failed};
use crate::engine::Engine;
use crate::engine::helpers::store_failed;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::KeyId;
use crate::layout;
use crate::provider::{AwsKeyId, ExternalKey};
use crate::store::{Check, StoreError, Transaction};
use crate::stored::StoredConfig;
use crate::topology::SvmSelector;

impl Engine {
    /// Starts rekey-external to `key_id`, which must be a key of the configuration's vault
    /// (`name`; else 65537523). When `svm` is given it must name the SVM of the
    /// configuration; an SVM without a key manager is 65537120. 65537547 as for rekey-internal.
    pub fn start_rekey_external(
        self: &Arc<Self>,
        config: Uuid,
        key_id: KeyId,
        svm: Option<&SvmSelector>,
    ) -> Result<Job> {
        self.start_rekey_to(config, ExternalKey::Azure(key_id), svm)
    }

    /// Starts rekey-external of an AWS KMS configuration to `key` (a key id, key ARN or alias
    /// in the configuration's region); 404 for a configuration of another provider.
    pub fn start_rekey_external_aws(
        self: &Arc<Self>,
        config: Uuid,
        key: &str,
        svm: Option<&SvmSelector>,
    ) -> Result<Job> {
        let region = self.load_config(config)?.0.aws_view()?.settings.region;
        let key = AwsKeyId::new(&region, key)?;
        self.start_rekey_to(config, ExternalKey::Aws(key), svm)
    }

    fn start_rekey_to(
        self: &Arc<Self>,
        config: Uuid,
        key: ExternalKey,
        svm: Option<&SvmSelector>,
    ) -> Result<Job> {
        let admin = self.admin.lock();
        let (cfg, _) = self.load_config(config)?;
        if key.provider() != cfg.provider() {
            return Err(crate::stored::not_of(config, key.provider()));
        }
        if let ExternalKey::Azure(key_id) = &key {
            // A configuration stored before `name` and `key_id` had to agree may name one
            // vault and use another: a new key in the vault of the key in use is accepted too.
            let in_use_vault = cfg.key_id().is_ok_and(|k| k.vault() == key_id.vault());
            if !in_use_vault {
                crate::config::check_key_in_vault(key_id, &cfg.vault()?, true)?;
            }
        }
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
        job.key_id = Some(key.as_str().to_owned());
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
            .and_then(|k| ExternalKey::parse(k).ok())
            .ok_or_else(|| Stop::Failed(Error::new(ErrorKind::InvalidKeyId)))?;
        for _ in 0..4 {
            let (cfg, bytes) = self
                .load_config(job.config)
                .map_err(|_| Stop::Failed(not_found()))?;
            let mut txn = Transaction::new();
            let parts = cfg.unseal(&self.protection)?;
            let access = parts.access();
            let call = BackendCall {
                node: &self.nodes[self.local].node,
                access: &access,
            };
            // The exact key is what every generation records (an AWS alias resolves to the
            // ARN of its key, so re-pointing the alias never strands a KEK).
            let new_external = self
                .backend
                .resolve(&call, &new_key)
                .map_err(|e| provider_failed(call.access.provider_kind(), &e))?;
            if cfg.external_key()? == new_external {
                job.finish(
                    &mut txn,
                    Ok(format!("The KEK is already wrapped by {new_external}.")),
                );
                return self.commit_job_step(txn);
            }
            self.backend
                .check(&call, &new_external)
                .map_err(|e| provider_failed(call.access.provider_kind(), &e))?;
            let cfg_key = layout::config(cfg.uuid);
            txn.check(Check::Equals(cfg_key.clone(), bytes)).put(
                cfg_key,
                cfg.with_key_id(&new_external).encode(&self.protection)?,
            );
            let rewrapped = self.rewrap_all(&mut txn, &cfg, &call, &new_external)?;
            job.processed = rewrapped as u64;
            job.total = rewrapped as u64;
            job.finish(
                &mut txn,
                Ok(format!(
                    "Rekey-external completed: {rewrapped} KEK generation(s) now wrapped by {new_external}."
                )),
            );
            match self.store.commit(txn) {
                Ok(()) => {
                    self.job_changed.notify_all();
                    return Ok(());
                }
                Err(StoreError::Conflict(_)) if self.job_lost(job) => {
                    return Err(Stop::Interrupted);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(Stop::Failed(store_failed(e))),
            }
        }
        Err(Stop::Failed(
            Error::new(ErrorKind::StoreFailed).with_detail("The configuration kept changing."),
        ))
    }
    /// Every KEK generation of `cfg`, unlocked on this node and wrapped again with `key` by the
    /// access of `call` (one backend call each), written into `txn` with the nodes' copies.
    /// The commit is conditional on every KEK record and node record as read (a generation
    /// retired, or a node's status written, meanwhile makes it conflict, never comes back);
    /// the caller's commit must also check the configuration record it read. Returns how many.
    pub(crate) fn rewrap_all(
        &self,
        txn: &mut Transaction,
        cfg: &StoredConfig,
        call: &BackendCall<'_>,
        key: &ExternalKey,
    ) -> Result<usize> {
        let mut rewrapped = Vec::new();
        for (k, raw) in self.scan_all(&layout::kek_prefix(cfg.uuid))? {
            let mut rec = crate::codec::WrappedKek::decode(&raw, &self.protection)?;
            txn.check(Check::Equals(k, raw));
            let kek = self.unlock_on(self.local, cfg, rec.generation)?;
            rewrap(self, &mut rec, &kek, call, key)?;
            txn.put(
                layout::kek(cfg.uuid, rec.generation),
                rec.encode(&self.protection)?,
            );
            rewrapped.push(rec);
        }
        // A mirror's own copies of its primary's generations (`protectors.rs`).
        rewrapped_copies(self, txn, cfg, call, key)?;
        // The nodes' copies follow in the same transaction, each over the record as read.
        for n in &self.topology.nodes {
            let key = layout::node(n.uuid, cfg.uuid);
            let Some(raw) = self.store.get(&key).map_err(store_failed)? else {
                txn.check(Check::Absent(key));
                continue;
            };
            txn.check(Check::Equals(key.clone(), raw));
            if let Some(mut nr) = self.node_record(n.uuid, cfg.uuid)? {
                if let Some(rec) = rewrapped.iter().find(|r| r.generation == nr.generation) {
                    use base64::Engine as _;
                    nr.wrapped_kek = base64::engine::general_purpose::STANDARD
                        .encode(rec.encode(&self.protection)?);
                    txn.put(key, nr.encode());
                }
            }
        }
        Ok(rewrapped.len())
    }
}

/// For a mirror `cfg`: each of its copies of its primary's KEK generations, unlocked on this
/// node and wrapped again with `key` by the access of `call`, written into `txn` over the copy
/// as read (a generation retired meanwhile makes the commit conflict).
fn rewrapped_copies(
    engine: &Engine,
    txn: &mut Transaction,
    cfg: &StoredConfig,
    call: &BackendCall<'_>,
    key: &ExternalKey,
) -> Result<()> {
    let Some(primary) = cfg.mirror_of() else {
        return Ok(());
    };
    let (prim, _) = engine.load_config(primary)?;
    for (k, raw) in engine.scan_all(&layout::protector_copies(primary))? {
        if !k.ends_with(cfg.uuid.as_bytes()) {
            continue;
        }
        let mut rec = crate::codec::WrappedKek::decode(&raw, &engine.protection)?;
        txn.check(Check::Equals(k.clone(), raw));
        let kek = engine.unlock_on(engine.local, &prim, rec.generation)?;
        rewrap(engine, &mut rec, &kek, call, key)?;
        txn.put(k, rec.encode(&engine.protection)?);
    }
    Ok(())
}

/// `rec` wrapped again: `kek` (its generation) by `key` through the access of `call`.
fn rewrap(
    engine: &Engine,
    rec: &mut crate::codec::WrappedKek,
    kek: &crate::crypto::Kek,
    call: &BackendCall<'_>,
    key: &ExternalKey,
) -> Result<()> {
    rec.wrapped = engine
        .backend
        .wrap_kek(call, key, rec.generation, kek.material())
        .map_err(|e| provider_failed(call.access.provider_kind(), &e))?;
    rec.key_id = key.clone();
    Ok(())
}
