//! The sled store: one tree; transactions through sled's transactional API, then a flush
//! (fsync) before the commit is acknowledged — sled alone would lose acknowledged writes.

use std::path::Path;

use ekm_core::store::{Check, Entry, Store, StoreError, Transaction, Write, prefix_end};
use sled::transaction::{ConflictableTransactionError, TransactionError};

fn io<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Io(e.to_string())
}

/// A [`Store`] on sled.
pub struct SledStore {
    db: sled::Db,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SledStore")
    }
}

impl SledStore {
    /// Opens or creates the database directory at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db =
            sled::open(path).map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))?;
        Ok(SledStore { db })
    }
}

impl Store for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key).map_err(io)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let start = start_after.unwrap_or(prefix).to_vec();
        let iter = match prefix_end(prefix) {
            Some(end) => self.db.range(start..end),
            None => self.db.range(start..),
        };
        let mut out = Vec::new();
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(io)?;
            if start_after == Some(&k[..]) || !k.starts_with(prefix) {
                continue;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn commit(&self, txn: Transaction) -> Result<(), StoreError> {
        let result = self.db.transaction(|t| {
            for (i, check) in txn.checks.iter().enumerate() {
                let holds = match check {
                    Check::Absent(k) => t.get(k)?.is_none(),
                    Check::Present(k) => t.get(k)?.is_some(),
                    Check::Equals(k, v) => t.get(k)?.is_some_and(|cur| cur == v.as_slice()),
                };
                if !holds {
                    return Err(ConflictableTransactionError::Abort(i));
                }
            }
            for write in &txn.writes {
                match write {
                    Write::Put(k, v) => {
                        t.insert(k.as_slice(), v.as_slice())?;
                    }
                    Write::Delete(k) => {
                        t.remove(k.as_slice())?;
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(i)) => return Err(StoreError::Conflict(i)),
            Err(TransactionError::Storage(e)) => return Err(io(e)),
        }
        self.db.flush().map_err(io)?;
        Ok(())
    }

    fn engine_name(&self) -> &'static str {
        "sled"
    }
}
