//! Commits and the settling of unknown outcomes: a store transaction as one etcd transaction,
//! and the one rule for a request whose outcome is unknown.
//!
//! Owns: the mapping of store checks onto etcd compares ([`Cond`]), the last-write-per-key
//! rule (etcd refuses a key twice in one transaction), failover of a write, and the rule that
//! an unknown outcome (a timeout, a reset connection, a leader change) is settled by reading
//! back what the transaction wrote, never by a blind retry. A retry after such a read is safe
//! for ekm because every commit is either guarded by checks or idempotent.
//! Must never: acknowledge a commit that etcd did not apply; report a conflict for a check
//! that holds (a revision compare that failed only because the value was rewritten with the
//! same bytes is tried again by value).
//!
//! | store check | etcd compare |
//! |---|---|
//! | `Absent(k)` | `create_revision(k) = 0` |
//! | `Present(k)` | `create_revision(k) > 0` |
//! | `Equals(k, v)` | `value(k) = v`, or `mod_revision(k) = r` when `v` is remembered at `r` |
//! | (a page's record, `pages.rs`) | `mod_revision(k) = r`, or `mod_revision([a, b)) < r + 1` |
//!
//! ```text
//!   send ──ok, compares held──► done
//!     │ ──compares failed──► after an unknown outcome: our writes visible? ──yes──► done
//!     │                                                        └──no──► Conflict(first failing)
//!     │ ──NotSent──► next member, send again
//!     └ ──Unknown──► next member; read back the writes: visible ──► done
//!                                           not visible ──► send again (the checks guard)
//!                                           unreadable ──► error naming both failures
//! ```

use std::collections::HashMap;

use ekm_core::store::{Check, StoreError, Transaction, Write};
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp, TxnResponse};

use crate::client::CallError;
use crate::options::{MAX_TXN_OPS, outcome_of};
use crate::reads::Etcd;

/// A write of a full etcd key: the value put, or `None` for a delete.
pub(crate) type KeyWrite = (Vec<u8>, Option<Vec<u8>>);

/// One condition of a transaction: a store check, or (for records read by `rewrite_range`)
/// that the key is still at the revision it was read at.
#[derive(Clone)]
pub(crate) enum Cond {
    Check(Check),
    ModRevision(i64),
    /// `Check::Equals` on a value this store saw at `revision` (the key's revision of its last
    /// change then): sent as "the key's revision is still `revision`", which implies the value.
    /// When that compare fails while the value is still the same (rewritten with the same
    /// bytes, by another process), the commit is tried again with the value compared
    /// ([`Etcd::commit`]): the check's meaning is the value's, never stricter.
    Unchanged(Vec<u8>, i64),
    /// No key of `[key, end)` (only `key` when `end` is `None`) changed after `revision`:
    /// a rewritten page's key span, and its deletion mark, as of the page's read.
    NotChangedAfter(Option<Vec<u8>>, i64),
}

impl Cond {
    /// The compare sent to etcd; `by_value`: `Unchanged` as the value compare it stands for.
    fn compare(&self, key: &[u8], by_value: bool) -> Compare {
        let key = key.to_vec();
        match self {
            Cond::Check(Check::Absent(_)) => Compare::create_revision(key, CompareOp::Equal, 0),
            Cond::Check(Check::Present(_)) => Compare::create_revision(key, CompareOp::Greater, 0),
            Cond::Check(Check::Equals(_, v)) => Compare::value(key, CompareOp::Equal, v.clone()),
            Cond::Unchanged(v, _) if by_value => Compare::value(key, CompareOp::Equal, v.clone()),
            Cond::Unchanged(_, r) | Cond::ModRevision(r) => {
                Compare::mod_revision(key, CompareOp::Equal, *r)
            }
            Cond::NotChangedAfter(end, r) => {
                let c = Compare::mod_revision(key, CompareOp::Less, r.saturating_add(1));
                match end {
                    Some(end) => c.with_range(end.clone()),
                    None => c,
                }
            }
        }
    }
}

impl Etcd<'_> {
    /// A store write as a write of its full etcd key.
    pub(crate) fn key_write(&self, w: Write) -> KeyWrite {
        match w {
            Write::Put(k, v) => (self.cluster.key(&k), Some(v)),
            Write::Delete(k) => (self.cluster.key(&k), None),
        }
    }

    /// Store checks as transaction conditions on the prefixed keys: an `Equals` on a value
    /// remembered with its revision becomes a revision compare.
    pub(crate) fn conds(&self, checks: Vec<Check>) -> Vec<(Vec<u8>, Cond)> {
        checks
            .into_iter()
            .map(|c| {
                let k = match &c {
                    Check::Absent(k) | Check::Present(k) | Check::Equals(k, _) => {
                        self.cluster.key(k)
                    }
                };
                let cond = match c {
                    Check::Equals(key, v) => match self.remembered.revision_of(&k, &v) {
                        Some(r) => Cond::Unchanged(v, r),
                        None => Cond::Check(Check::Equals(key, v)),
                    },
                    other => Cond::Check(other),
                };
                (k, cond)
            })
            .collect()
    }

    /// `Store::commit`: the last write of each key, in first-seen order, under the checks.
    pub(crate) async fn transaction(&self, txn: Transaction) -> Result<(), StoreError> {
        let mut order: Vec<Vec<u8>> = Vec::new();
        let mut last: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        for w in txn.writes {
            let (k, v) = self.key_write(w);
            if last.insert(k.clone(), v).is_none() {
                order.push(k);
            }
        }
        let writes: Vec<KeyWrite> = order
            .into_iter()
            .map(|k| {
                let v = last.remove(&k).flatten();
                (k, v)
            })
            .collect();
        let checks = self.conds(txn.checks);
        if checks.len() > MAX_TXN_OPS || writes.len() > MAX_TXN_OPS {
            return Err(StoreError::Io(format!(
                "a transaction of {} checks and {} writes exceeds etcd's {MAX_TXN_OPS} operations",
                checks.len(),
                writes.len()
            )));
        }
        let started = std::time::Instant::now();
        let result = self.commit(checks, &writes, &[]).await.map(drop);
        self.cluster
            .observe(|o| o.request("txn", started.elapsed(), outcome_of(&result)));
        result
    }

    /// Commits `conds` → `writes`, then `reads`, in one transaction. Returns the answer when
    /// the transaction ran (`None` when an unknown outcome was resolved by reading back).
    ///
    /// A transaction whose compares failed only because a key compared by revision
    /// ([`Cond::Unchanged`]) was rewritten with the same bytes is tried once more with those
    /// values compared: a check fails only when what it says does not hold.
    pub(crate) async fn commit(
        &self,
        checks: Vec<(Vec<u8>, Cond)>,
        writes: &[KeyWrite],
        reads: &[TxnOp],
    ) -> Result<Option<TxnResponse>, StoreError> {
        let ops: Vec<TxnOp> = writes
            .iter()
            .map(|(k, v)| match v {
                Some(v) => TxnOp::put(k.clone(), v.clone(), None),
                None => TxnOp::delete(k.clone(), None),
            })
            .chain(reads.iter().cloned())
            .collect();
        let by_revision = checks.iter().any(|(_, c)| matches!(c, Cond::Unchanged(..)));
        let mut by_value = false;
        loop {
            let compares = checks.iter().map(|(k, c)| c.compare(k, by_value)).collect();
            match self.commit_with(compares, &ops, writes).await {
                Ok(Some(resp)) => {
                    if let Some(revision) = resp.header().map(|h| h.revision()) {
                        for (k, v) in writes {
                            if let Some(v) = v {
                                self.remembered.remember(k, v, revision);
                            }
                        }
                    }
                    return Ok(Some(resp));
                }
                Err(StoreError::Conflict(_)) if by_revision && !by_value => {
                    match self.first_failing(&checks).await {
                        Some(i) => return Err(StoreError::Conflict(i)),
                        None => by_value = true,
                    }
                }
                Err(StoreError::Conflict(_)) => {
                    return Err(StoreError::Conflict(
                        self.first_failing(&checks).await.unwrap_or(0),
                    ));
                }
                other => return other,
            }
        }
    }

    /// One commit of `compares` → `ops`, failing over between members; an unknown outcome is
    /// resolved by reading back `writes`. A failed compare is `Conflict(0)`: the caller finds
    /// which check failed.
    async fn commit_with(
        &self,
        compares: Vec<Compare>,
        ops: &[TxnOp],
        writes: &[KeyWrite],
    ) -> Result<Option<TxnResponse>, StoreError> {
        let call = |mut c: Client| {
            let txn = Txn::new().when(compares.clone()).and_then(ops.to_vec());
            async move { c.txn(txn).await }
        };
        let mut last = String::new();
        let mut outcome_unknown = false;
        for _ in 0..=self.cluster.opts.endpoints.len() {
            let idx = self.cluster.current();
            match self.cluster.call_once(idx, &call).await {
                Ok(resp) if resp.succeeded() => return Ok(Some(resp)),
                // After an unknown outcome, the retry's checks may fail against the first
                // attempt's own writes, applied late: then it did commit.
                Ok(_) if outcome_unknown && !writes.is_empty() && self.applied(writes).await? => {
                    return Ok(None);
                }
                Ok(_) => return Err(StoreError::Conflict(0)),
                Err(CallError::Refused(m)) => return Err(StoreError::Io(format!("etcd: {m}"))),
                Err(CallError::NotSent(m)) => {
                    last = m;
                    self.cluster.rotate(idx);
                }
                Err(CallError::Unknown(m)) => {
                    outcome_unknown = true;
                    // The one rule: an unknown outcome is resolved by reading, never by a blind
                    // retry. Applied: done. Not applied (as read from a member with quorum):
                    // the commit is tried again; its checks guard against a late apply.
                    last = m;
                    self.cluster.rotate(idx);
                    match self.applied(writes).await {
                        Ok(true) if !writes.is_empty() => return Ok(None),
                        Ok(_) => {}
                        Err(e) => {
                            return Err(StoreError::Io(format!(
                                "etcd: the outcome of a write is unknown ({last}) and could not be read back: {e}"
                            )));
                        }
                    }
                }
            }
        }
        Err(StoreError::Io(format!(
            "etcd cluster not reachable for writes (no quorum or every member down): {last}"
        )))
    }

    /// Whether every write of `writes` is visible: how an unknown outcome is resolved.
    async fn applied(&self, writes: &[KeyWrite]) -> Result<bool, StoreError> {
        for (k, v) in writes {
            if self.get(k.clone()).await? != *v {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The index of the first check that does not hold now (what `Conflict` carries); `None`
    /// when every check holds (a `Cond::Unchanged` whose key was rewritten with the same bytes,
    /// or a change undone since the commit).
    async fn first_failing(&self, checks: &[(Vec<u8>, Cond)]) -> Option<usize> {
        for (i, (k, c)) in checks.iter().enumerate() {
            let holds = match c {
                Cond::ModRevision(r) => match self.cluster.range(k.clone(), Vec::new(), 1).await {
                    Ok(kvs) => kvs.first().map(|kv| kv.2) == Some(*r),
                    Err(_) => false,
                },
                Cond::NotChangedAfter(end, r) => {
                    let end = end.clone().unwrap_or_default();
                    match self.cluster.range(k.clone(), end, 0).await {
                        Ok(kvs) => kvs.iter().all(|kv| kv.2 <= *r),
                        Err(_) => false,
                    }
                }
                Cond::Check(check) => {
                    let Ok(v) = self.get(k.clone()).await else {
                        return Some(i);
                    };
                    match check {
                        Check::Absent(_) => v.is_none(),
                        Check::Present(_) => v.is_some(),
                        Check::Equals(_, want) => v.as_ref() == Some(want),
                    }
                }
                Cond::Unchanged(want, _) => match self.get(k.clone()).await {
                    Ok(v) => v.as_ref() == Some(want),
                    Err(_) => false,
                },
            };
            if !holds {
                return Some(i);
            }
        }
        None
    }
}
