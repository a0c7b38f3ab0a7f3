//! The `Store` trait: a durable, ordered key-value store with atomic multi-record transactions.
//!
//! Owns: the contract every store engine (redb, sled, later a distributed store) must meet.
//! Must never: acknowledge a commit that a crash could lose, or apply part of a transaction.

use std::fmt;

/// A precondition checked inside the transaction before any write is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The key must not exist.
    Absent(Vec<u8>),
    /// The key must exist.
    Present(Vec<u8>),
    /// The key must hold exactly this value.
    Equals(Vec<u8>, Vec<u8>),
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Insert or replace.
    Put(Vec<u8>, Vec<u8>),
    /// Remove (absent keys are fine).
    Delete(Vec<u8>),
}

/// An atomic, durable unit of change: all checks hold and all writes apply, or nothing happens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    /// Preconditions.
    pub checks: Vec<Check>,
    /// Writes, applied in order.
    pub writes: Vec<Write>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a precondition.
    pub fn check(&mut self, c: Check) -> &mut Self {
        self.checks.push(c);
        self
    }

    /// Adds a put.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.writes.push(Write::Put(key.into(), value.into()));
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.writes.push(Write::Delete(key.into()));
        self
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.writes.is_empty()
    }
}

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// A [`Check`] did not hold; nothing was written. The index says which.
    Conflict(usize),
    /// A rewrite callback refused a record; nothing was written.
    Aborted(String),
    /// The engine failed (I/O, corruption). Nothing is known to be written.
    Io(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict(i) => write!(f, "transaction precondition {i} did not hold"),
            StoreError::Io(m) => write!(f, "store failure: {m}"),
            StoreError::Aborted(m) => write!(f, "rewrite aborted: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A scanned record.
pub type Entry = (Vec<u8>, Vec<u8>);

/// What one [`Store::rewrite_range`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeRewrite {
    /// Records visited.
    pub seen: usize,
    /// The last key visited (the cursor for the next call).
    pub last_key: Option<Vec<u8>>,
    /// Records replaced.
    pub rewritten: usize,
}

/// Decides a record's new value: `Ok(Some(v))` replaces it, `Ok(None)` keeps it, `Err` aborts
/// the whole call.
pub type Rewrite<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<Option<Vec<u8>>, String>;

/// Builds the extra checks and writes committed with a rewrite, from what it did.
pub type Then<'a> = &'a mut dyn FnMut(&RangeRewrite) -> Transaction;

/// A durable ordered key-value store.
///
/// Contract: [`Store::commit`] returns only after the transaction is durable (fsync or
/// equivalent); reads after a successful commit see it; transactions are serializable.
pub trait Store: Send + Sync + fmt::Debug {
    /// Reads one key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Reads many keys, in order, from one consistent snapshot where the engine has them.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Up to `limit` records whose keys start with `prefix`, in key order, strictly after
    /// `start_after` when given.
    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;

    /// How many records have keys starting with `prefix`. The default counts a scan, page by
    /// page; a store that can count without reading the values (etcd) does.
    fn count(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        const PAGE: usize = 1024;
        let mut n = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.scan(prefix, after.as_deref(), PAGE)?;
            n += page.len() as u64;
            if page.len() < PAGE {
                return Ok(n);
            }
            after = page.last().map(|(k, _)| k.clone());
        }
    }

    /// Applies a transaction atomically and durably.
    fn commit(&self, txn: Transaction) -> Result<(), StoreError>;

    /// Rewrites in place up to `limit` records under `prefix` after `start_after`, and commits
    /// the rewrites with the transaction `then` builds, atomically and durably. No record can
    /// change, or be deleted, between being read and rewritten (a concurrent change is
    /// [`StoreError::Conflict`]; nothing is written). The default reads, then commits with an
    /// `Equals` check per rewritten record; engines with read-write transactions do both in one
    /// transaction.
    ///
    /// `deletion_mark`: a key that every transaction deleting a record under `prefix` also
    /// writes (the engine's `e/<config>`). A store may then fence a page with one compare over
    /// the page's key span plus one on the mark, instead of one per record (etcd: a compare
    /// over a span cannot see a record that is no longer there; the mark can). Stores that
    /// check each record need not look at it.
    fn rewrite_range(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        deletion_mark: Option<&[u8]>,
        rewrite: Rewrite<'_>,
        then: Then<'_>,
    ) -> Result<RangeRewrite, StoreError> {
        let _ = deletion_mark;
        let page = self.scan(prefix, start_after, limit)?;
        let mut out = RangeRewrite {
            seen: page.len(),
            last_key: page.last().map(|(k, _)| k.clone()),
            rewritten: 0,
        };
        let mut txn = Transaction::new();
        for (k, v) in page {
            if let Some(new) = rewrite(&k, &v).map_err(StoreError::Aborted)? {
                txn.check(Check::Equals(k.clone(), v)).put(k, new);
                out.rewritten += 1;
            }
        }
        let extra = then(&out);
        txn.checks.extend(extra.checks);
        txn.writes.extend(extra.writes);
        self.commit(txn)?;
        Ok(out)
    }

    /// A short name for logs and benchmarks ("redb", "sled", "etcd").
    fn engine_name(&self) -> &'static str;

    /// The most checks, and the most writes, one [`Store::commit`] may carry (`None`: no
    /// limit). The engine sizes its batches (rekey, migrate) to fit.
    fn max_ops(&self) -> Option<usize> {
        None
    }

    /// Whether other processes share this store (a cluster store): then the engine watches it
    /// for changes they make, and keeps its per-node records alive with
    /// [`Store::put_ephemeral`].
    fn is_shared(&self) -> bool {
        false
    }

    /// Calls `on_change` for every change under `prefix` committed from now on by any process
    /// sharing the store, in commit order, until the store is dropped; or with
    /// [`Change::Resync`] when changes were lost (the store dropped the history the watch
    /// needed), after which changes follow again. A store only one process uses need not call
    /// it (the default never does).
    fn watch(&self, prefix: &[u8], on_change: ChangeCallback) -> Result<(), StoreError> {
        let _ = (prefix, on_change);
        Ok(())
    }

    /// As [`Store::watch`], for a watcher that acts only on deletions (and [`Change::Resync`]):
    /// the store may leave the puts out (etcd filters them on the server, so that a create
    /// does not send an event to every process). The default delivers everything.
    fn watch_deletes(&self, prefix: &[u8], on_change: ChangeCallback) -> Result<(), StoreError> {
        self.watch(prefix, on_change)
    }

    /// Puts `key` for as long as this process is alive and reaches the store: a cluster store
    /// binds it to a lease this process keeps alive, so a dead process's records vanish by
    /// themselves. The default is a plain durable put.
    fn put_ephemeral(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let mut txn = Transaction::new();
        txn.put(key, value);
        self.commit(txn)
    }
}

/// A change seen by [`Store::watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key now has this value.
    Put(Vec<u8>, Vec<u8>),
    /// The key was deleted (or its lease expired).
    Delete(Vec<u8>),
    /// Changes under the prefix were lost (etcd compacted the revisions the watch had not
    /// seen yet, e.g. after a long disconnection): whatever the watcher derived from them must
    /// be rebuilt from the store as it is now.
    Resync,
}

/// What [`Store::watch`] calls for each change.
pub type ChangeCallback = Box<dyn Fn(Change) + Send + Sync>;

/// The end of a prefix range: the smallest key greater than every key starting with `prefix`,
/// or `None` when the prefix is all `0xff` bytes.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_cases() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
