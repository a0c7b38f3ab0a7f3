//! The engine: configurations, the key hierarchy, the nodes' key tables, and the jobs that
//! change the hierarchy (rekey-external, rekey-internal, restore, migrate).
//!
//! Owns: every state change of ekm, each as one store transaction; the unlocked KEKs and the
//! node key tables in memory.
//! Must never: return a data key id before the key is durable; persist or log plaintext key
//! material; leave a change half-applied on any error.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the [`Engine`]: its state, [`Engine::open`], accessors, shutdown |
//! | `options.rs` | [`EngineOptions`] |
//! | `store_checks.rs` | at open: protection key check, store format and its upgrade |
//! | `configs.rs` | configurations: create, list, get, patch, delete |
//! | `aws_configs.rs` | AWS KMS configurations: create, list, get; every configuration of every provider |
//! | `data_keys.rs` | data keys: create, read, delete, list; first KEKs; seal counts |
//! | `key_table.rs` | in memory, per managed node: the key table and the unlocked KEKs |
//! | `unlock.rs` | unlocking a KEK on a node through the backend; handing new ones out |
//! | `node_records.rs` | each node's availability record (`n/`) |
//! | `liveness.rs` | each process's liveness record (`l/`) and who is alive |
//! | `following.rs` | in a shared store: following other processes' deletes and restores |
//! | `status.rs` | the advanced status fields |
//! | `jobs/` | rekey-external, rekey-internal, restore, migrate |
//! | `helpers.rs` | clock, store error, paged scans |

mod aws_configs;
mod configs;
mod data_keys;
mod erase;
mod following;
mod helpers;
mod jobs;
mod key_table;
mod liveness;
pub(crate) mod node_records;
mod options;
mod owner_limits;
mod protectors;
mod status;
mod store_checks;
mod unlock;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Condvar, Mutex, RwLock};
use uuid::Uuid;

use crate::backend::Backend;
use crate::crypto::ProtectionKey;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::KeyOwner;
use crate::store::Store;
use crate::topology::Topology;
use key_table::NodeRuntime;
use store_checks::{check_format, check_protection_key};

pub use data_keys::{DataKeyInfo, KekUsage};
pub use erase::{ERASE_WAIT, pending_message as erase_pending_message};
pub use jobs::{Job, JobKind, JobState};
pub use options::{DEFAULT_REKEY_BATCH, EngineOptions};
pub use owner_limits::{DEFAULT_MAX_KEYS_PER_OWNER, LIMIT_TARGET};
pub use protectors::MAX_ROOTS;
pub use status::{KmipServerState, StatusFields};
pub use store_checks::FORMAT_VERSION;

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
    /// Data keys per (configuration, owner), for the bound on keys per owner
    /// (`owner_limits.rs`).
    owner_counts: Mutex<std::collections::HashMap<(Uuid, KeyOwner), owner_limits::OwnerCount>>,
    /// Most data keys one owner may have.
    max_keys_per_owner: u64,
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
            .field("backend", &self.backend)
            .field("local_node", &self.nodes[self.local].node.name)
            .field("managed_nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

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
            owner_counts: Mutex::new(Default::default()),
            max_keys_per_owner: opts.max_keys_per_owner,
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
        }
        if engine.store.is_shared() || !opts.backend_probe_interval.is_zero() {
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

    /// Every record under `prefix`, page by page.
    pub(crate) fn scan_all(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        helpers::scan_all(&*self.store, prefix)
    }

    /// The index in `nodes` of managed node `node`; [`ErrorKind::EntryNotFound`] for a node
    /// this process does not manage.
    pub(crate) fn node_index(&self, node: Uuid) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.node.uuid == node)
            .ok_or_else(|| {
                Error::new(ErrorKind::EntryNotFound)
                    .with_detail(format!("Node {node} is not managed by this process."))
                    .with_target("node")
            })
    }
}
