//! ekm-etcd: the [`Store`] of a cluster of `ekmd` processes, on a real etcd cluster (3.4+).
//!
//! Every store key of ekm (`ekm_core::layout`) is stored as `<prefix><key>` in etcd; a
//! [`Store::commit`] is one etcd transaction: its checks become compares, its writes the
//! success branch. [`Store::rewrite_range`] fences a page by the revision it was read at and
//! reads the next page in the same transaction. A watch that cannot replay what it missed
//! (compacted history) delivers [`Change::Resync`](ekm_core::store::Change::Resync).
//!
//! Owns: the mapping of ekm's store contract onto etcd, and the one rule for requests whose
//! outcome is unknown (a timeout, a reset connection, a leader change): they are resolved by
//! reading back what the transaction wrote, never by a blind retry (`commit.rs`).
//! Must never: acknowledge a commit that etcd did not apply; hang without a deadline; panic on
//! anything etcd answers.
//!
//! | file | owns |
//! |---|---|
//! | `options.rs` | [`EtcdOptions`], [`EtcdTls`], [`EtcdObserver`], [`MAX_TXN_OPS`] |
//! | `client.rs` | members, failover, deadlines, what a failed call proves |
//! | `reads.rs` | `get`, `get_many`, `scan`, `count` |
//! | `revisions.rs` | long values remembered with their revisions (revision compares) |
//! | `commit.rs` | checks as compares, commits, unknown outcomes settled by a read |
//! | `pages.rs` | `rewrite_range`: page fences, the page read ahead |
//! | `watch.rs` | watches, restarts, `Change::Resync` |
//! | `lease.rs` | this process's lease and its ephemeral (liveness) records |
//! | `testing.rs` | a real 3-member etcd cluster on loopback ports, for tests |
//!
//! ```text
//!   EtcdStore (Store) ──► reads ──┐
//!        │          ──► commit ───┼──► client (members, failover) ──► etcd
//!        │          ──► pages ────┘        ▲
//!        ├──► watch ───────────────────────┤
//!        └──► lease ───────────────────────┘
//! ```

#![forbid(unsafe_code)]

mod client;
mod commit;
mod lease;
mod options;
mod pages;
mod reads;
mod revisions;
pub mod testing;
mod watch;

use std::future::Future;
use std::sync::Arc;

use ekm_core::store::{
    ChangeCallback, Entry, RangeRewrite, Rewrite, Store, StoreError, Then, Transaction,
};

use client::{Cluster, block_on};
use lease::Leases;
pub use options::{EtcdObserver, EtcdOptions, EtcdTls, MAX_TXN_OPS};
use pages::ReadAheads;
use reads::Etcd;
use revisions::Remembered;

/// The etcd store. See the crate docs.
pub struct EtcdStore {
    rt: tokio::runtime::Runtime,
    cluster: Arc<Cluster>,
    remembered: Remembered,
    read_ahead: ReadAheads,
    leases: Arc<Leases>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.cluster.opts.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects (lazily: the first call dials) and starts this process's lease keeper.
    pub fn open(opts: EtcdOptions) -> Result<Arc<EtcdStore>, StoreError> {
        if opts.endpoints.is_empty() {
            return Err(StoreError::Io("no etcd endpoint given".into()));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ekm-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io(format!("etcd client runtime: {e}")))?;
        let cluster = Arc::new(Cluster::new(opts));
        // Prove the cluster answers, and hold a lease, before anything relies on them.
        let lease = block_on(&rt, lease::grant(&cluster))?;
        let leases = Arc::new(Leases::holding(lease));
        rt.spawn(leases.clone().keep_alive(cluster.clone(), Some(lease)));
        Ok(Arc::new(EtcdStore {
            rt,
            cluster,
            remembered: Remembered::default(),
            read_ahead: ReadAheads::default(),
            leases,
        }))
    }

    /// As [`Store::watch`], from etcd revision `revision` on (tests use it to start a watch
    /// from a revision that was compacted meanwhile).
    #[doc(hidden)]
    pub fn watch_from_revision(&self, prefix: &[u8], revision: i64, on_change: ChangeCallback) {
        self.watch_with(prefix, revision, false, on_change);
    }

    /// Watches `prefix` from `revision` on; `deletes_only`: puts filtered out by etcd.
    fn watch_with(
        &self,
        prefix: &[u8],
        revision: i64,
        deletes_only: bool,
        on_change: ChangeCallback,
    ) {
        let full = self.cluster.key(prefix);
        let strip = self.cluster.prefix_len();
        self.rt.spawn(watch::watch_loop(
            self.cluster.clone(),
            full,
            strip,
            revision,
            deletes_only,
            on_change,
        ));
    }

    /// The revision a new watch of `prefix` starts after: nothing committed later is missed.
    fn current_revision(&self, prefix: &[u8]) -> Result<i64, StoreError> {
        self.block(watch::current_revision(
            &self.cluster,
            self.cluster.key(prefix),
        ))
    }

    /// Runs `fut` to its end on the calling thread ([`client::block_on`]).
    fn block<T>(&self, fut: impl Future<Output = T>) -> T {
        block_on(&self.rt, fut)
    }

    /// The cluster as one store operation sees it.
    fn etcd(&self) -> Etcd<'_> {
        Etcd {
            cluster: &self.cluster,
            remembered: &self.remembered,
            rt: &self.rt,
        }
    }
}

impl Store for EtcdStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.block(self.etcd().get(self.cluster.key(key)))
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.block(self.etcd().get_many(keys))
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.block(self.etcd().scan(prefix, start_after, limit))
    }

    fn count(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        self.block(self.etcd().count(prefix))
    }

    fn commit(&self, txn: Transaction) -> Result<(), StoreError> {
        self.block(self.etcd().transaction(txn))
    }

    /// One page rewritten in one etcd transaction, fenced against any change since it was
    /// read, with the next page read ahead: see `pages.rs`.
    fn rewrite_range(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        deletion_mark: Option<&[u8]>,
        rewrite: Rewrite<'_>,
        then: Then<'_>,
    ) -> Result<RangeRewrite, StoreError> {
        self.etcd().rewrite_range(
            &self.read_ahead,
            prefix,
            start_after,
            limit,
            deletion_mark,
            rewrite,
            then,
        )
    }

    fn engine_name(&self) -> &'static str {
        "etcd"
    }

    fn max_ops(&self) -> Option<usize> {
        Some(MAX_TXN_OPS)
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn watch(&self, prefix: &[u8], on_change: ChangeCallback) -> Result<(), StoreError> {
        // Start from the current revision so nothing committed after this call is missed.
        let revision = self.current_revision(prefix)?;
        self.watch_with(prefix, revision + 1, false, on_change);
        Ok(())
    }

    fn watch_deletes(&self, prefix: &[u8], on_change: ChangeCallback) -> Result<(), StoreError> {
        let revision = self.current_revision(prefix)?;
        self.watch_with(prefix, revision + 1, true, on_change);
        Ok(())
    }

    fn put_ephemeral(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let key = self.cluster.key(key);
        self.block(self.leases.put(&self.cluster, key, value.to_vec()))
    }
}
