//! What the embedder gives the engine at open: the store, the backend, the topology, the
//! protection key, and the knobs of this process.
//!
//! Owns: [`EngineOptions`] and its defaults.
//! Must never: open anything or touch the store (that is [`Engine::open`](super::Engine::open)).
//!
//! | option | default |
//! |---|---|
//! | `local_node` | the first node of the topology |
//! | `managed_nodes` | every node of the topology (the local node always among them) |
//! | `rekey_batch` | [`DEFAULT_REKEY_BATCH`], cut to what one store transaction carries |
//! | `job_retry_budget` | zero: a job fails at its first error |
//! | `backend_probe_interval` | 30 s (shared stores only) |
//! | `resume_jobs` | true |
//! | `max_keys_per_owner` | [`super::DEFAULT_MAX_KEYS_PER_OWNER`] (1,000,000) |

use std::sync::Arc;

use uuid::Uuid;

use super::status;
use crate::backend::Backend;
use crate::crypto::ProtectionKey;
use crate::store::Store;
use crate::topology::Topology;

/// Default number of keys rewrapped per transaction by rekey-internal and migrate.
pub const DEFAULT_REKEY_BATCH: usize = 2048;

/// What the embedder gives the engine.
pub struct EngineOptions {
    pub(super) store: Arc<dyn Store>,
    pub(super) backend: Arc<dyn Backend>,
    pub(super) topology: Topology,
    pub(super) protection_key: ProtectionKey,
    pub(super) local_node: Option<Uuid>,
    pub(super) managed_nodes: Option<Vec<Uuid>>,
    pub(super) rekey_batch: usize,
    pub(super) resume_jobs: bool,
    pub(super) job_retry_budget: std::time::Duration,
    pub(super) backend_probe_interval: std::time::Duration,
    pub(super) max_keys_per_owner: u64,
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
            max_keys_per_owner: super::owner_limits::DEFAULT_MAX_KEYS_PER_OWNER,
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

    /// Most data keys one owner (the cluster, or one SVM) may have under its configuration
    /// (default [`super::DEFAULT_MAX_KEYS_PER_OWNER`]); a create past it is refused.
    pub fn max_keys_per_owner(mut self, n: u64) -> Self {
        self.max_keys_per_owner = n;
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
    /// credentials, proxy or key change. In every store it is also how often a root of trust
    /// that missed a KEK generation (`mirror_of`) is tried again.
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
