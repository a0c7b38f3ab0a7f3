//! The redb store: one table of byte keys to byte values; every commit is fsynced
//! (`Durability::Immediate`, redb's default).

use std::path::Path;

use ekm_core::store::{
    Check, Entry, RangeRewrite, Rewrite, Store, StoreError, Then, Transaction, Write, prefix_end,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("ekm");

fn io<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Io(e.to_string())
}

/// A [`Store`] on redb.
pub struct RedbStore {
    db: Database,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbStore")
    }
}

impl RedbStore {
    /// Opens or creates the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path)
            .map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(io)?;
        txn.open_table(TABLE).map_err(io)?;
        txn.commit().map_err(io)?;
        Ok(RedbStore { db })
    }
}

impl Store for RedbStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
        Ok(table.get(key).map_err(io)?.map(|v| v.value().to_vec()))
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
        keys.iter()
            .map(|k| {
                Ok(table
                    .get(k.as_slice())
                    .map_err(io)?
                    .map(|v| v.value().to_vec()))
            })
            .collect()
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
        range_of(&table, prefix, start_after, limit)
    }

    fn commit(&self, txn: Transaction) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(io)?;
        {
            let mut table = w.open_table(TABLE).map_err(io)?;
            if let Err(e) = apply(&mut table, &txn) {
                drop(table);
                w.abort().map_err(io)?;
                return Err(e);
            }
        }
        w.commit().map_err(io)
    }

    fn rewrite_range(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        _deletion_mark: Option<&[u8]>,
        rewrite: Rewrite<'_>,
        then: Then<'_>,
    ) -> Result<RangeRewrite, StoreError> {
        // One write transaction reads and rewrites: redb has one writer at a time, so nothing
        // can change a record between the two.
        let w = self.db.begin_write().map_err(io)?;
        let out = {
            let mut table = w.open_table(TABLE).map_err(io)?;
            let page = range_of(&table, prefix, start_after, limit)?;
            let mut out = RangeRewrite {
                seen: page.len(),
                last_key: page.last().map(|(k, _)| k.clone()),
                rewritten: 0,
            };
            let mut failed = None;
            for (k, v) in &page {
                match rewrite(k, v) {
                    Ok(Some(new)) => {
                        table.insert(k.as_slice(), new.as_slice()).map_err(io)?;
                        out.rewritten += 1;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        failed = Some(StoreError::Aborted(e));
                        break;
                    }
                }
            }
            let failed = match failed {
                Some(e) => Some(e),
                None => apply(&mut table, &then(&out)).err(),
            };
            if let Some(e) = failed {
                drop(table);
                w.abort().map_err(io)?;
                return Err(e);
            }
            out
        };
        w.commit().map_err(io)?;
        Ok(out)
    }

    fn engine_name(&self) -> &'static str {
        "redb"
    }
}

/// Up to `limit` records under `prefix` strictly after `start_after`, in key order.
fn range_of<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    prefix: &[u8],
    start_after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Entry>, StoreError> {
    let start = start_after.unwrap_or(prefix);
    let end = prefix_end(prefix);
    let range = match &end {
        Some(end) => table.range::<&[u8]>(start..end.as_slice()),
        None => table.range::<&[u8]>(start..),
    }
    .map_err(io)?;
    let mut out = Vec::new();
    for item in range {
        if out.len() >= limit {
            break;
        }
        let (k, v) = item.map_err(io)?;
        let k = k.value();
        if start_after == Some(k) || !k.starts_with(prefix) {
            continue;
        }
        out.push((k.to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

/// Checks then writes of `txn` inside an open write transaction.
fn apply(
    table: &mut redb::Table<&'static [u8], &'static [u8]>,
    txn: &Transaction,
) -> Result<(), StoreError> {
    for (i, check) in txn.checks.iter().enumerate() {
        let holds = match check {
            Check::Absent(k) => table.get(k.as_slice()).map_err(io)?.is_none(),
            Check::Present(k) => table.get(k.as_slice()).map_err(io)?.is_some(),
            Check::Equals(k, v) => table
                .get(k.as_slice())
                .map_err(io)?
                .is_some_and(|cur| cur.value() == v.as_slice()),
        };
        if !holds {
            return Err(StoreError::Conflict(i));
        }
    }
    for write in &txn.writes {
        match write {
            Write::Put(k, v) => {
                table.insert(k.as_slice(), v.as_slice()).map_err(io)?;
            }
            Write::Delete(k) => {
                table.remove(k.as_slice()).map_err(io)?;
            }
        }
    }
    Ok(())
}
