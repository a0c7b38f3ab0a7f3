//! ekm-store: durable [`Store`] implementations and the protection key file.
//!
//! - [`RedbStore`]: the default; ACID, fsync on every commit, sub-millisecond open.
//! - [`SledStore`]: an alternative behind the same trait; flushed on every commit.
//! - [`protection_key`]: the node-local key file (mode 0600) that seals configuration secrets.
//! - [`secret_file`]: the one writer and reader of files that hold a secret (atomic, fsync'd,
//!   mode 0600, never empty).
//! - [`topology_file`]: the topology file (`DATA_DIR/topology.toml`), read and checked, or
//!   written with the one-node default on first start.

#![forbid(unsafe_code)]

pub mod protection_key;
mod redb_store;
pub mod secret_file;
mod sled_store;
pub mod topology_file;

use std::path::Path;
use std::sync::Arc;

pub use redb_store::RedbStore;
pub use sled_store::SledStore;

use ekm_core::{Store, StoreError};

/// Which store engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// redb (default).
    Redb,
    /// sled.
    Sled,
}

impl StoreKind {
    /// Parses "redb" or "sled".
    pub fn parse(s: &str) -> Option<StoreKind> {
        match s {
            "redb" => Some(StoreKind::Redb),
            "sled" => Some(StoreKind::Sled),
            _ => None,
        }
    }
}

/// Opens (creating if needed) the store of `kind` inside directory `dir`
/// (`dir/ekm.redb` or `dir/ekm.sled/`).
pub fn open(kind: StoreKind, dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
    Ok(match kind {
        StoreKind::Redb => Arc::new(RedbStore::open(&dir.join("ekm.redb"))?),
        StoreKind::Sled => Arc::new(SledStore::open(&dir.join("ekm.sled"))?),
    })
}
