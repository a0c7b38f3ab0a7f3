//! One forwarding [`Store`] for the tests: every call goes to the inner store, and the test's
//! one hook sees each call and may fail it, as a store that crashes, conflicts, is slow or is
//! unreachable would.
//!
//! | call | the hook sees | when | a hook's `Err` |
//! |---|---|---|---|
//! | `get`, each key of `get_many` | `Call::Read(key)` | after the read | answers instead of the value |
//! | `scan`, `count` | `Call::Scanned(prefix)` | after the read | answers instead of the records |
//! | `commit`, `put_ephemeral` | `Call::Commit(txn)` | before it | answers; nothing written |
//! | `rewrite_range` | `Call::Rewrite(prefix)`, then `Call::Rewrote(out)` | before, after | answers; nothing written (before) |
//!
//! Reads are hooked after they ran, so that a hook that sleeps widens the window between a
//! reader's store read and what it does with it; writes before they run, so that a hook's
//! error is the write's answer and the store is left as it was.

use std::sync::Arc;

use ekm::core::store::{ChangeCallback, Entry, RangeRewrite, Rewrite, Then};
use ekm::core::{Store, StoreError, Transaction};

/// One call made to a [`Hooked`] store, as its hook sees it.
pub enum Call<'a> {
    /// A key was read (by `get`, or as one key of `get_many`).
    Read(&'a [u8]),
    /// A prefix was scanned or counted.
    Scanned(&'a [u8]),
    /// A transaction is about to commit (a `put_ephemeral` is one put).
    Commit(&'a Transaction),
    /// A page under this prefix is about to be rewritten in one transaction (`rewrite_range`).
    Rewrite(&'a [u8]),
    /// A `rewrite_range` page committed, with what it did.
    Rewrote(&'a RangeRewrite),
}

/// What a test does on each call.
pub type Hook = Box<dyn Fn(Call<'_>) -> Result<(), StoreError> + Send + Sync>;

/// The forwarding store (see the module docs).
pub struct Hooked {
    inner: Arc<dyn Store>,
    hook: Hook,
    name: &'static str,
    shared: Option<bool>,
    max_ops: Option<usize>,
}

impl std::fmt::Debug for Hooked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooked")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Hooked {
    /// `inner` with `hook` on every call; `name` is its `engine_name`.
    pub fn new(
        name: &'static str,
        inner: Arc<dyn Store>,
        hook: impl Fn(Call<'_>) -> Result<(), StoreError> + Send + Sync + 'static,
    ) -> Hooked {
        Hooked {
            inner,
            hook: Box::new(hook),
            name,
            shared: None,
            max_ops: None,
        }
    }

    /// Says it is shared by other processes (as etcd does), whatever the inner store says.
    pub fn shared(mut self) -> Hooked {
        self.shared = Some(true);
        self
    }

    /// Says a transaction may carry at most `n` checks and `n` writes.
    pub fn max_ops(mut self, n: usize) -> Hooked {
        self.max_ops = Some(n);
        self
    }
}

impl Store for Hooked {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self.inner.get(key)?;
        (self.hook)(Call::Read(key))?;
        Ok(v)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let v = self.inner.get_many(keys)?;
        for k in keys {
            (self.hook)(Call::Read(k))?;
        }
        Ok(v)
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let v = self.inner.scan(prefix, start_after, limit)?;
        (self.hook)(Call::Scanned(prefix))?;
        Ok(v)
    }

    fn count(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let n = self.inner.count(prefix)?;
        (self.hook)(Call::Scanned(prefix))?;
        Ok(n)
    }

    fn commit(&self, txn: Transaction) -> Result<(), StoreError> {
        (self.hook)(Call::Commit(&txn))?;
        self.inner.commit(txn)
    }

    fn rewrite_range(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        deletion_mark: Option<&[u8]>,
        rewrite: Rewrite<'_>,
        then: Then<'_>,
    ) -> Result<RangeRewrite, StoreError> {
        (self.hook)(Call::Rewrite(prefix))?;
        let out =
            self.inner
                .rewrite_range(prefix, start_after, limit, deletion_mark, rewrite, then)?;
        (self.hook)(Call::Rewrote(&out))?;
        Ok(out)
    }

    fn engine_name(&self) -> &'static str {
        self.name
    }

    fn max_ops(&self) -> Option<usize> {
        self.max_ops.or_else(|| self.inner.max_ops())
    }

    fn is_shared(&self) -> bool {
        self.shared.unwrap_or_else(|| self.inner.is_shared())
    }

    fn watch(&self, prefix: &[u8], on_change: ChangeCallback) -> Result<(), StoreError> {
        self.inner.watch(prefix, on_change)
    }

    fn watch_deletes(&self, prefix: &[u8], on_change: ChangeCallback) -> Result<(), StoreError> {
        self.inner.watch_deletes(prefix, on_change)
    }

    fn put_ephemeral(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let mut txn = Transaction::new();
        txn.put(key, value);
        (self.hook)(Call::Commit(&txn))?;
        self.inner.put_ephemeral(key, value)
    }
}
