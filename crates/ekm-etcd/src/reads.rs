//! Reads of the store contract on etcd: one key, many keys at one revision, a scan, a count.
//!
//! Owns: [`Etcd`], the view of the cluster every store operation goes through (the members and
//! the revision memory), and the reads (`get`, `get_many`, `scan`, `count`), each of which
//! may be repeated on another member (`Cluster::read`).
//! Must never: return records from two revisions as one answer (`get_many` is one transaction
//! per [`MAX_TXN_OPS`] keys); return a key outside the prefix asked for.
//!
//! | store read | etcd request | round trips |
//! |---|---|---|
//! | `get` | range of one key | 1 |
//! | `get_many` | transaction of gets | 1 per 128 keys |
//! | `scan` | range `[start, prefix end)` with a limit | 1 |
//! | `count` | range, count only (no values sent) | 1 |

use ekm_core::store::{Entry, StoreError};
use etcd_client::{GetOptions, Txn, TxnOp, TxnOpResponse};

use crate::client::{Cluster, block_on};
use crate::options::MAX_TXN_OPS;
use crate::revisions::Remembered;

/// The cluster as one store operation sees it: its members, the values remembered with their
/// revisions, and the runtime that drives its calls.
#[derive(Clone, Copy)]
pub(crate) struct Etcd<'a> {
    pub(crate) cluster: &'a Cluster,
    pub(crate) remembered: &'a Remembered,
    pub(crate) rt: &'a tokio::runtime::Runtime,
}

impl Etcd<'_> {
    /// Runs `fut` to its end on the calling thread ([`block_on`]).
    pub(crate) fn block<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        block_on(self.rt, fut)
    }

    /// The value of a (full) key, remembered with its revision.
    pub(crate) async fn get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        let kv = self.cluster.get(key).await?;
        Ok(kv.map(|kv| self.remembered.seen_value(&kv)))
    }

    /// The values of store keys `keys`, one consistent revision per transaction of gets.
    pub(crate) async fn get_many(
        &self,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_TXN_OPS) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|k| TxnOp::get(self.cluster.key(k), None))
                .collect();
            let resp = self
                .cluster
                .read(|mut c| {
                    let txn = Txn::new().and_then(ops.clone());
                    async move { c.txn(txn).await }
                })
                .await?;
            for op in resp.op_responses() {
                match op {
                    TxnOpResponse::Get(g) => {
                        out.push(g.kvs().first().map(|kv| self.remembered.seen_value(kv)))
                    }
                    _ => return Err(StoreError::Io("etcd: unexpected transaction answer".into())),
                }
            }
        }
        if out.len() != keys.len() {
            return Err(StoreError::Io("etcd: short transaction answer".into()));
        }
        Ok(out)
    }

    /// Up to `limit` records under store prefix `prefix`, after `start_after`, in key order.
    pub(crate) async fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (start, end) = self.cluster.range_of(prefix, start_after);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let strip = self.cluster.prefix_len();
        let resp = self
            .cluster
            .read(|mut c| {
                let opts = GetOptions::new().with_range(end.clone()).with_limit(limit);
                let start = start.clone();
                async move { c.get(start, Some(opts)).await }
            })
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .filter(|kv| kv.key().len() >= strip)
            .map(|kv| (kv.key()[strip..].to_vec(), kv.value().to_vec()))
            .collect())
    }

    /// How many records lie under store prefix `prefix`: one round trip, no values sent.
    pub(crate) async fn count(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let (start, end) = self.cluster.range_of(prefix, None);
        let resp = self
            .cluster
            .read(|mut c| {
                let opts = GetOptions::new().with_range(end.clone()).with_count_only();
                let start = start.clone();
                async move { c.get(start, Some(opts)).await }
            })
            .await?;
        Ok(u64::try_from(resp.count()).unwrap_or(0))
    }
}
