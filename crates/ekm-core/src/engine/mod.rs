//! The engine: configurations, the key hierarchy, the nodes' key tables, and the jobs that
//! change the hierarchy (rekey-external, rekey-internal, restore, migrate).
//!
//! Owns: every state change of ekm, each as one store transaction; the unlocked KEKs and the
//! node key tables in memory.
//! Must never: return a data key id before the key is durable; persist or log plaintext key
//! material; leave a change half-applied on any error.

mod data_keys;
mod jobs;

mod nodes;
mod status;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, RwLock};
use uuid::Uuid;

use crate::backend::{Backend, BackendCall, BackendError, BackendErrorKind};
use crate::codec::KeyOwner;
use crate::config::{AuthenticationMethod, AzureKeyVault, CreateRequest, PatchRequest};
use crate::crypto::ProtectionKey;
use crate::error::{Error, ErrorKind, Result};
use crate::layout;
use crate::store::{Check, Store, StoreError, Transaction};
use crate::stored::{ConfigParts, StoredConfig};
use crate::topology::Topology;

pub use data_keys::{DataKeyInfo, KekUsage};
pub use jobs::{Job, JobKind, JobState};
use nodes::NodeRuntime;
pub use status::{KmipServerState, StatusFields};

/// Decodes a node availability record (for the fuzz targets).
pub(crate) fn decode_node_record(bytes: &[u8]) -> bool {
    nodes::NodeRecord::decode(bytes).is_ok()
}

/// The on-disk format version this build writes and reads. 4: configuration records are
/// authenticated whole; 5: wrapped KEK records (and the nodes' copies) are too. Older stores
/// are refused: their records could have been changed by anyone who could write the database.
pub const FORMAT_VERSION: &[u8] = b"6";

/// The previous format, upgraded in place at open: format 6 only adds the deletion marks
/// (`e/`), which format 5 stores lack and need not have.
const PREVIOUS_FORMAT_VERSION: &[u8] = b"5";

/// How often a conditional write is retried when what it was based on changed meanwhile.
pub(crate) const CONDITIONAL_ATTEMPTS: usize = 4;

/// Page size of internal scans.
const SCAN_PAGE: usize = 1024;

/// Default number of keys rewrapped per transaction by rekey-internal and migrate.
pub const DEFAULT_REKEY_BATCH: usize = 2048;

/// What the embedder gives the engine.
pub struct EngineOptions {
    store: Arc<dyn Store>,
    backend: Arc<dyn Backend>,
    topology: Topology,
    protection_key: ProtectionKey,
    local_node: Option<Uuid>,
    managed_nodes: Option<Vec<Uuid>>,
    rekey_batch: usize,
    resume_jobs: bool,
    job_retry_budget: std::time::Duration,
    backend_probe_interval: std::time::Duration,
}

impl EngineOptions {
    /// The required parts; the first node of the topology is local, every node is managed by
    /// this process, interrupted jobs resume at open.
    pub fn new(
        store: Arc<dyn Store>,
        backend: Arc<dyn Backend>,
        topology: Topology,
        protection_key: ProtectionKey,
    ) -> Self {
        EngineOptions {
            store,
            backend,
            topology,
            protection_key,
            local_node: None,
            managed_nodes: None,
            rekey_batch: DEFAULT_REKEY_BATCH,
            resume_jobs: true,
            job_retry_budget: std::time::Duration::ZERO,
            backend_probe_interval: status::BACKEND_PROBE_INTERVAL,
        }
    }

    /// Which node this process serves on its data path.
    pub fn local_node(mut self, node: Uuid) -> Self {
        self.local_node = Some(node);
        self
    }

    /// Which nodes this process holds key tables for (the local node is always one of them).
    /// Other nodes are run by other processes sharing the store.
    pub fn managed_nodes(mut self, nodes: Vec<Uuid>) -> Self {
        self.managed_nodes = Some(nodes);
        self
    }

    /// Keys rewrapped per transaction by rekey-internal and migrate.
    pub fn rekey_batch(mut self, n: usize) -> Self {
        self.rekey_batch = n.max(1);
        self
    }

    /// How long, in all, a job may wait and retry after transient failures (AKV unreachable,
    /// timed out or throttled — honouring its Retry-After —, a store transaction that lost a
    /// race) before it fails; each wait shows in the job's message. Default zero: a job fails
    /// at its first error. ekmd sets 300 s.
    pub fn job_retry_budget(mut self, budget: std::time::Duration) -> Self {
        self.job_retry_budget = budget;
        self
    }

    /// In a cluster store, how often this process checks every configuration's vault from its
    /// nodes for the other nodes' `azure_reachability` (default 30 s; each check is a token, a
    /// key read and a wrap/unwrap probe). Zero: only at start and when a configuration's
    /// credentials, proxy or key change.
    pub fn backend_probe_interval(mut self, every: std::time::Duration) -> Self {
        self.backend_probe_interval = every;
        self
    }

    /// Whether `open` resumes interrupted jobs in the background (default true).
    pub fn resume_jobs(mut self, yes: bool) -> Self {
        self.resume_jobs = yes;
        self
    }
}

/// The ekm engine. Shared behind an `Arc`; every method takes `&self`.
pub struct Engine {
    store: Arc<dyn Store>,
    backend: Arc<dyn Backend>,
    topology: Topology,
    protection: ProtectionKey,
    /// Nodes this process manages; `nodes[local]` is the data path's node.
    nodes: Vec<NodeRuntime>,
    local: usize,
    /// Keys per migrate page (three writes per key).
    rekey_batch: usize,
    /// Keys per rekey-internal page (one write per key).
    rewrap_batch: usize,
    job_retry_budget: std::time::Duration,
    /// Serializes job starts and configuration deletion. Never held across a backend call.
    admin: Mutex<()>,
    /// Serializes the creation of first KEKs (so a burst of first keys costs one wrap).
    first_kek: Mutex<()>,
    /// Data-key writers hold it shared; deleting a configuration holds it exclusively.
    gate: RwLock<()>,
    /// The configuration each owner's creates last used, with the checks that prove it still
    /// current: a create commits on it without reading the store first, and reads afresh only
    /// when a check fails (`data_keys::OwnerConfig`).
    owner_configs: Mutex<std::collections::HashMap<KeyOwner, data_keys::OwnerConfig>>,
    /// Seal counts by (configuration, generation), loaded lazily from the store.
    seals: Mutex<std::collections::HashMap<(Uuid, u32), data_keys::SealCount>>,
    /// Jobs with a runner in this process.
    running: Mutex<HashSet<Uuid>>,
    /// Serializes liveness record writes (each writes a snapshot of this process's state).
    liveness_writes: Mutex<()>,
    /// How often the backend probe runs (published in the liveness record).
    backend_probe_interval: std::time::Duration,
    /// The last backend check of each (managed node, configuration), published in the
    /// liveness record.
    backend_checks: Mutex<std::collections::HashMap<(Uuid, Uuid), status::BackendCheck>>,
    /// Restores asked for by other processes that this process is carrying out, by
    /// configuration: whether another request came meanwhile (then it runs once more). One
    /// thread per configuration at most, however many requests arrive.
    restoring: Mutex<std::collections::HashMap<Uuid, bool>>,
    /// Signalled whenever a job record changes in this process.
    job_changed: Condvar,
    job_lock: Mutex<()>,
    shutting_down: AtomicBool,
    /// Job runner threads, joined by `shutdown`.
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// This process's KMIP server as its embedder last found it ([`Engine::set_kmip_server`]).
    kmip: RwLock<KmipServerState>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store.engine_name())
            .field("backend", &self.backend.kind())
            .field("local_node", &self.nodes[self.local].node.name)
            .field("managed_nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn store_failed(e: StoreError) -> Error {
    Error::new(ErrorKind::StoreFailed).with_detail(e.to_string())
}

pub(crate) use crate::backend::akv_failed;

impl Engine {
    /// Opens the engine over a store and resumes interrupted jobs in the background. Does not
    /// call the backend: KEKs unlock on first use (or [`Engine::unlock_all`]), so the engine
    /// opens, and serves configuration reads, while AKV is unreachable.
    pub fn open(opts: EngineOptions) -> Result<Arc<Engine>> {
        opts.topology.validate()?;
        let local_uuid = opts.local_node.unwrap_or(opts.topology.nodes[0].uuid);
        if opts.topology.node(local_uuid).is_none() {
            return Err(Error::invalid_value(
                "node",
                "the local node is not in the topology.",
            ));
        }
        let mut managed: Vec<Uuid> = match &opts.managed_nodes {
            Some(v) => v.clone(),
            None => opts.topology.nodes.iter().map(|n| n.uuid).collect(),
        };
        if !managed.contains(&local_uuid) {
            managed.insert(0, local_uuid);
        }
        let mut nodes = Vec::new();
        for u in managed {
            let node = opts.topology.node(u).cloned().ok_or_else(|| {
                Error::invalid_value("node", "a managed node is not in the topology.")
            })?;
            nodes.push(NodeRuntime::new(node));
        }
        let local = nodes
            .iter()
            .position(|n| n.node.uuid == local_uuid)
            .unwrap_or(0);
        // The key first: a process that is refused must not have upgraded the format.
        check_protection_key(&*opts.store, &opts.protection_key)?;
        check_format(&*opts.store)?;
        // A store with a transaction size limit (etcd) gets batches that fit: a migrate page
        // writes three records per key plus the job, the seal count and the source's deletion
        // mark; a rekey-internal page one per key plus the job and the seal count, and may
        // read the next page (etcd).
        let (rekey_batch, rewrap_batch) = match opts.store.max_ops() {
            Some(max) => (
                opts.rekey_batch.min(max.saturating_sub(4) / 3).max(1),
                opts.rekey_batch.min(max.saturating_sub(3)).max(1),
            ),
            None => (opts.rekey_batch, opts.rekey_batch),
        };
        let engine = Arc::new(Engine {
            store: opts.store,
            backend: opts.backend,
            topology: opts.topology,
            protection: opts.protection_key,
            nodes,
            local,
            rekey_batch,
            rewrap_batch,
            job_retry_budget: opts.job_retry_budget,
            admin: Mutex::new(()),
            first_kek: Mutex::new(()),
            gate: RwLock::new(()),
            owner_configs: Mutex::new(Default::default()),
            seals: Mutex::new(Default::default()),
            running: Mutex::new(HashSet::new()),
            restoring: Mutex::new(Default::default()),
            backend_checks: Mutex::new(Default::default()),
            liveness_writes: Mutex::new(()),
            backend_probe_interval: opts.backend_probe_interval,
            job_changed: Condvar::new(),
            job_lock: Mutex::new(()),
            shutting_down: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            kmip: RwLock::new(KmipServerState::Off),
        });
        if engine.store.is_shared() {
            engine.follow_other_processes()?;
            engine.spawn_job_takeover();
            engine.spawn_backend_probe(opts.backend_probe_interval);
        }
        if opts.resume_jobs {
            engine.resume_jobs()?;
        }
        Ok(engine)
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The node this engine serves on its data path.
    pub fn local_node(&self) -> &crate::topology::Node {
        &self.nodes[self.local].node
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Keys rewrapped per transaction by rekey-internal: the configured batch, cut to what one
    /// transaction of the store may carry (125 on etcd; migrate, with three writes per key,
    /// moves 41).
    pub fn rekey_internal_batch(&self) -> usize {
        self.rewrap_batch
    }

    /// Stops job runners at their next step (their jobs stay `running` in the store and resume
    /// at the next open) and waits for their threads to end. Finished jobs are unaffected.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            let _ = t.join();
        }
    }

    /// Number of job runners active in this process.
    pub fn running_jobs(&self) -> usize {
        self.running.lock().len()
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    // ----- configurations -------------------------------------------------------------------

    pub(crate) fn load_config(&self, uuid: Uuid) -> Result<(StoredConfig, Vec<u8>)> {
        let bytes = self
            .store
            .get(&layout::config(uuid))
            .map_err(store_failed)?
            .ok_or_else(|| Error::new(ErrorKind::EntryNotFound).with_target("uuid"))?;
        let config = StoredConfig::decode(&bytes, &self.protection)?;
        if config.uuid != uuid {
            return Err(Error::corrupt(&format!(
                "The record stored as configuration {uuid} is configuration {}.",
                config.uuid
            )));
        }
        Ok((config, bytes))
    }

    pub(crate) fn config_for_scope(
        &self,
        svm: Option<Uuid>,
    ) -> Result<Option<(StoredConfig, Vec<u8>)>> {
        let Some(raw) = self.store.get(&layout::scope(svm)).map_err(store_failed)? else {
            return Ok(None);
        };
        let uuid = Uuid::from_slice(&raw)
            .map_err(|_| Error::corrupt("A scope index entry is malformed."))?;
        let (config, bytes) = self.load_config(uuid)?;
        if config.svm_uuid() != svm {
            return Err(Error::corrupt(&format!(
                "The scope index points at configuration {uuid}, which is not that scope's."
            )));
        }
        Ok(Some((config, bytes)))
    }

    /// The configuration that protects `owner`'s new keys: the SVM's own, else the cluster's;
    /// with the checks that prove, inside a commit, that this is still so besides the
    /// configuration record itself: the SVM's own scope entry still absent when the cluster's
    /// configuration was used. (A scope entry that was found needs no check of its own: it
    /// changes only when its configuration is deleted, in the same transaction, and the commit
    /// checks the configuration record.)
    pub(crate) fn config_for_owner(&self, owner: KeyOwner) -> Result<data_keys::OwnerConfig> {
        let mut checks = Vec::new();
        if let KeyOwner::Svm(u) = owner {
            if self.topology.svm_by_uuid(u).is_none() {
                return Err(Error::new(ErrorKind::SvmNotFound).with_detail(format!(
                    "SVM with uuid \"{u}\" does not exist in this cluster."
                )));
            }
            if let Some((config, bytes)) = self.config_for_scope(Some(u))? {
                return Ok(data_keys::OwnerConfig {
                    config,
                    bytes,
                    checks,
                });
            }
            checks.push(Check::Absent(layout::scope(Some(u))));
        }
        let (config, bytes) = self
            .config_for_scope(None)?
            .ok_or_else(|| Error::new(ErrorKind::NotConfigured))?;
        Ok(data_keys::OwnerConfig {
            config,
            bytes,
            checks,
        })
    }

    /// Creates a configuration: checks the SVM, uniqueness, and that the backend can be reached
    /// and the key can wrap and unwrap with these credentials; then persists it. Nothing is
    /// written on any failure. No lock is held across the backend call: the commit's
    /// precondition (the scope has no configuration) decides between concurrent creates.
    pub fn create_config(&self, req: CreateRequest) -> Result<AzureKeyVault> {
        let svm = req
            .svm
            .as_ref()
            .map(|s| self.topology.resolve_svm(s))
            .transpose()?;
        let for_svm = svm.is_some();
        let already = || already_configured(for_svm);
        let scope_key = layout::scope(svm.as_ref().map(|s| s.uuid()));
        if self.store.get(&scope_key).map_err(store_failed)?.is_some() {
            return Err(already());
        }
        let parts = ConfigParts {
            uuid: Uuid::new_v4(),
            svm,
            client_id: req.client_id,
            tenant_id: req.tenant_id,
            name: req.name,
            key_id: req.key_id,
            credential: req.credential,
            proxy: req.proxy,
            revision: 1,
            active_generation: None,
        };
        self.check_backend(&parts, &parts.key_id)
            .map_err(|e| akv_failed(&e))?;
        let record = StoredConfig::seal(&parts, &self.protection)?;
        let mut txn = Transaction::new();
        txn.check(Check::Absent(scope_key.clone()))
            .put(scope_key, parts.uuid.as_bytes().to_vec())
            .put(layout::config(parts.uuid), record.encode(&self.protection)?);
        match self.store.commit(txn) {
            Ok(()) => record.view(),
            Err(StoreError::Conflict(_)) => Err(already()),
            Err(e) => Err(store_failed(e)),
        }
    }

    /// Proves the backend accepts `parts`' credentials and can wrap and unwrap with `key`.
    fn check_backend(
        &self,
        parts: &ConfigParts,
        key: &crate::ids::KeyId,
    ) -> std::result::Result<(), BackendError> {
        let access = parts.access();
        let call = BackendCall {
            node: &self.nodes[self.local].node,
            access: &access,
        };
        self.backend.check(&call, key)
    }

    /// All configurations: the cluster's first, then the SVMs' by SVM name.
    pub fn list_configs(&self) -> Result<Vec<AzureKeyVault>> {
        let mut out = Vec::new();
        for (_, v) in self.scan_all(layout::CONFIG)? {
            out.push(StoredConfig::decode(&v, &self.protection)?.view()?);
        }
        out.sort_by(|a, b| {
            let key = |c: &AzureKeyVault| c.svm.as_ref().map(|s| s.name().to_owned());
            key(a).cmp(&key(b))
        });
        Ok(out)
    }

    /// Whether configuration `uuid` protects any data key.
    fn has_records(&self, uuid: Uuid) -> Result<bool> {
        Ok(!self
            .store
            .scan(&layout::records(uuid), None, 1)
            .map_err(store_failed)?
            .is_empty())
    }

    /// Every record under `prefix`, page by page.
    pub(crate) fn scan_all(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        scan_all(&*self.store, prefix)
    }

    /// One configuration; [`ErrorKind::EntryNotFound`] for an unknown uuid.
    pub fn get_config(&self, uuid: Uuid) -> Result<AzureKeyVault> {
        self.load_config(uuid)?.0.view()
    }

    /// Updates credentials, proxy, client or tenant id. The new settings are proven against the
    /// backend first (a new client or tenant id alone is proven with the stored credential);
    /// the old configuration stays in force until then. No lock is held across the backend
    /// call: the commit is conditional on the record proven against, and a configuration that
    /// changed meanwhile is patched and proven again.
    pub fn patch_config(&self, uuid: Uuid, patch: PatchRequest) -> Result<AzureKeyVault> {
        for _ in 0..CONDITIONAL_ATTEMPTS {
            let (stored, old_bytes) = self.load_config(uuid)?;
            let mut parts = stored.unseal(&self.protection)?;
            parts.proxy = patch.proxy.apply(parts.proxy.as_ref())?;
            if let Some(c) = &patch.client_id {
                parts.client_id = c.clone();
            }
            if let Some(t) = &patch.tenant_id {
                parts.tenant_id = t.clone();
            }
            if let Some(cred) = &patch.credential {
                parts.credential = cred.clone();
            }
            parts.revision += 1;
            self.check_backend(&parts, &parts.key_id)
                .map_err(|e| refused_credentials(&e, &parts))?;
            let record = StoredConfig::seal(&parts, &self.protection)?;
            let key = layout::config(uuid);
            let mut txn = Transaction::new();
            txn.check(Check::Equals(key.clone(), old_bytes))
                .put(key, record.encode(&self.protection)?);
            match self.store.commit(txn) {
                Ok(()) => return record.view(),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(store_failed(e)),
            }
        }
        Err(Error::new(ErrorKind::StoreFailed)
            .with_detail("The configuration kept changing during the update; retry."))
    }

    /// Deletes a configuration; refused with [`ErrorKind::KeysExist`] while it protects data
    /// keys and with [`ErrorKind::JobInProgress`] while a job runs on it. Removes its wrapped
    /// KEKs, node records and seal counters in the same transaction.
    pub fn delete_config(&self, uuid: Uuid) -> Result<()> {
        let _gate = self.gate.write();
        let _admin = self.admin.lock();
        let (stored, bytes) = self.load_config(uuid)?;
        let job_running = || -> Result<bool> {
            Ok(self
                .store
                .get(&layout::marker(uuid))
                .map_err(store_failed)?
                .is_some())
        };
        if !self.store.is_shared() && self.has_records(uuid)? {
            return Err(Error::new(ErrorKind::KeysExist));
        }
        if job_running()? {
            return Err(Error::new(ErrorKind::JobInProgress));
        }
        // The gate holds off this process's creates only. In a cluster store, mark the record
        // first: a create in another process that read it fails its check on it, reads it
        // again and sees the mark; so the scan below sees every key that will ever be created.
        if !self.store.is_shared() {
            return self.remove_config(&stored, bytes);
        }
        let mut marked = stored.clone();
        marked.deleting = true;
        let marked_bytes = marked.encode(&self.protection)?;
        let mut txn = Transaction::new();
        txn.check(Check::Equals(layout::config(uuid), bytes))
            .put(layout::config(uuid), marked_bytes.clone());
        self.store.commit(txn).map_err(store_failed)?;
        let removed = match self.has_records(uuid) {
            Ok(true) => Err(Error::new(ErrorKind::KeysExist)),
            Ok(false) => self.remove_config(&marked, marked_bytes),
            Err(e) => Err(e),
        };
        if removed.is_err() {
            // Keys exist, a job started, or the store failed: the configuration stays, and
            // creates must work again (a mark left behind would refuse them all).
            let _ = self.clear_delete_mark(uuid);
        }
        removed
    }

    /// Deletes configuration `stored` (as `bytes`, checked) with its scope entry, KEK
    /// generations, seal counters and node records, unless a job holds it.
    fn remove_config(&self, stored: &StoredConfig, bytes: Vec<u8>) -> Result<()> {
        let uuid = stored.uuid;
        let cfg_key = layout::config(uuid);
        let mut txn = Transaction::new();
        txn.check(Check::Equals(cfg_key.clone(), bytes))
            .check(Check::Absent(layout::marker(uuid)))
            .delete(cfg_key)
            .delete(layout::scope(stored.svm_uuid()))
            .delete(layout::deletions(uuid));
        for (k, _) in self.scan_all(&layout::kek_prefix(uuid))? {
            txn.delete(k);
        }
        for (k, _) in self.scan_all(&layout::seals_of(uuid))? {
            txn.delete(k);
        }
        for n in &self.topology.nodes {
            txn.delete(layout::node(n.uuid, uuid));
        }
        self.store.commit(txn).map_err(store_failed)?;
        for n in &self.nodes {
            n.forget_config(uuid);
        }
        self.seals.lock().retain(|(c, _), _| *c != uuid);
        self.backend_checks.lock().retain(|(_, c), _| *c != uuid);
        Ok(())
    }

    /// Clears the "being deleted" mark of a configuration whose delete did not happen, on the
    /// record as it is now (a job may have rewritten it, mark included, meanwhile).
    fn clear_delete_mark(&self, uuid: Uuid) -> Result<()> {
        for _ in 0..CONDITIONAL_ATTEMPTS {
            let (mut stored, bytes) = self.load_config(uuid)?;
            if !stored.deleting {
                return Ok(());
            }
            stored.deleting = false;
            let mut txn = Transaction::new();
            txn.check(Check::Equals(layout::config(uuid), bytes))
                .put(layout::config(uuid), stored.encode(&self.protection)?);
            match self.store.commit(txn) {
                Err(StoreError::Conflict(_)) => continue,
                r => return r.map_err(store_failed),
            }
        }
        Err(Error::new(ErrorKind::StoreFailed)
            .with_detail("The configuration kept changing while its delete mark was cleared."))
    }
}

/// 65537500, naming the scope: the seed's text says "SVM", which is wrong for the cluster.
fn already_configured(svm: bool) -> Error {
    let e = Error::new(ErrorKind::AlreadyConfigured);
    if svm {
        e
    } else {
        e.with_message("A key manager has already been configured for the cluster.")
    }
}

/// A patch's new settings refused by the backend: an identity provider that refuses the
/// credential is the seed's "invalid client secret" / "invalid client certificate"; anything
/// else (unreachable, throttled, key unusable) is the backend's error.
fn refused_credentials(e: &BackendError, parts: &ConfigParts) -> Error {
    if e.kind != BackendErrorKind::AuthenticationFailed {
        return akv_failed(e);
    }
    let kind = match parts.credential.method() {
        AuthenticationMethod::ClientSecret => ErrorKind::InvalidClientSecret,
        AuthenticationMethod::Certificate => ErrorKind::InvalidClientCertificate,
    };
    Error::new(kind).with_detail(format!(
        "AKV refused the credential for client_id \"{}\" in tenant \"{}\": {e}. The configuration is unchanged.",
        parts.client_id, parts.tenant_id
    ))
}

/// A store shared by several processes holds a check value of the protection key
/// (`meta/protection-check`): the first process writes it, every other one must match it, so a
/// node given another key file refuses to start instead of failing on every record.
fn check_protection_key(store: &dyn Store, pk: &ProtectionKey) -> Result<()> {
    if !store.is_shared() {
        return Ok(());
    }
    const AAD: &[u8] = b"ekm-protection-check-v1";
    let refused = || {
        Error::new(ErrorKind::CorruptRecord).with_detail(
            "The protection key file does not match the cluster's (its check value in the store \
             does not verify): give this node a copy of the key file the cluster was created with.",
        )
    };
    match store.get(layout::PROTECTION_CHECK).map_err(store_failed)? {
        Some(check) => match pk.aead().open_vec(AAD, &check) {
            Ok(plain) if plain.is_empty() => Ok(()),
            _ => Err(refused()),
        },
        None => {
            let check = pk
                .aead()
                .seal_vec(AAD, b"")
                .map_err(|_| Error::corrupt("Sealing the protection key check failed."))?;
            let mut txn = Transaction::new();
            txn.check(Check::Absent(layout::PROTECTION_CHECK.to_vec()))
                .put(layout::PROTECTION_CHECK, check);
            match store.commit(txn) {
                Ok(()) => Ok(()),
                // Another process wrote it first: check against theirs.
                Err(StoreError::Conflict(_)) => check_protection_key(store, pk),
                Err(e) => Err(store_failed(e)),
            }
        }
    }
}

/// Every record under `prefix`, page by page.
fn scan_all(store: &dyn Store, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        let after = out.last().map(|(k, _)| k.clone());
        let page = store
            .scan(prefix, after.as_deref(), SCAN_PAGE)
            .map_err(store_failed)?;
        let done = page.len() < SCAN_PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Whether every liveness record in `store` says its process writes deletion marks
/// (`layout::deletions`); a process of the earlier build (format 5) does not, and an
/// unreadable record counts as one.
fn live_processes_mark_deletions(store: &dyn Store) -> Result<bool> {
    Ok(scan_all(store, layout::LIVENESS)?.iter().all(|(_, v)| {
        serde_json::from_slice::<serde_json::Value>(v)
            .is_ok_and(|rec| rec[MARKS_DELETIONS].as_bool() == Some(true))
    }))
}

/// The liveness record field by which a process says it writes deletion marks.
pub(crate) const MARKS_DELETIONS: &str = "marks_deletions";

fn check_format(store: &dyn Store) -> Result<()> {
    match store.get(layout::FORMAT).map_err(store_failed)? {
        Some(v) if v == FORMAT_VERSION => Ok(()),
        Some(v) if v == PREVIOUS_FORMAT_VERSION => {
            // Processes of the earlier build delete records without the deletion mark: the
            // upgrade waits until none is alive (they refuse the new format once it is there).
            if store.is_shared() && !live_processes_mark_deletions(store)? {
                return Err(Error::new(ErrorKind::StoreFailed).with_detail(
                    "ekmd processes of the earlier build (store format 5) are still running on \
                     this cluster: stop every one of them, then start this build (it marks the \
                     store format 6, which the earlier build refuses).",
                ));
            }
            let mut txn = Transaction::new();
            txn.check(Check::Equals(layout::FORMAT.to_vec(), v))
                .put(layout::FORMAT, FORMAT_VERSION);
            match store.commit(txn) {
                Ok(()) => Ok(()),
                // Another process upgraded it first: read what it wrote.
                Err(StoreError::Conflict(_)) => check_format(store),
                Err(e) => Err(store_failed(e)),
            }
        }
        Some(v) => Err(Error::corrupt(&format!(
            "The store has format version {:?}; this build reads {:?}.",
            String::from_utf8_lossy(&v),
            String::from_utf8_lossy(FORMAT_VERSION)
        ))),
        None => {
            let mut txn = Transaction::new();
            txn.check(Check::Absent(layout::FORMAT.to_vec()))
                .put(layout::FORMAT, FORMAT_VERSION);
            match store.commit(txn) {
                Ok(()) => Ok(()),
                // Another process wrote it first: check what it wrote.
                Err(StoreError::Conflict(_)) => check_format(store),
                Err(e) => Err(store_failed(e)),
            }
        }
    }
}
