//! In memory, per node this process manages: the node key table (wrapped data keys with the
//! KEK that opens each) and the unlocked KEKs — what the data path reads without the store.
//!
//! Owns: [`NodeRuntime`] and [`KeyTable`], and the rule that a fill never undoes an eviction.
//! Must never: hold plaintext data keys (entries are wrapped; they are opened per read); let a
//! fill that read the store before a delete re-insert the deleted key (crypto-erase).
//!
//! ```text
//! NodeRuntime (one per managed node)
//!   keks:      (config, generation) -> Arc<Kek>             unlocked by `unlock.rs`
//!   table:     KeyTable: DataKeyId -> TableEntry { record: WrappedDataKey, kek: Arc<Kek> }
//!   unlocking: (config, generation) -> gate                 one backend unwrap at a time
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::codec::WrappedDataKey;
use crate::crypto::Kek;
use crate::ids::DataKeyId;
use crate::topology::Node;

/// Hashes a data key id by its first eight bytes. Ids are 32 bytes from the OS RNG, so those
/// bytes are already uniform; SipHash over all 32 would cost more than the map lookup itself.
/// Flooding is not a concern: only ids the engine generated are ever inserted.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }

    fn write_usize(&mut self, _: usize) {
        // The array length prefix carries no information.
    }
}

type IdMap<V> = DashMap<DataKeyId, V, std::hash::BuildHasherDefault<IdHasher>>;

/// A wrapped data key held in a node key table with the KEK that opens it.
pub(crate) struct TableEntry {
    pub(crate) record: WrappedDataKey,
    pub(crate) kek: Arc<Kek>,
}

/// A node key table: what the data path reads, without touching the store.
///
/// A key is filled in on a miss from what was read from the store *before* the fill, so a
/// delete that commits and evicts between that read and the fill must not be undone by it
/// (crypto-erase). Every eviction bumps `evictions` before it removes its entry; a fill names
/// the count it saw before its store read and only inserts, under the entry's shard lock, if
/// no eviction happened since. Either the fill sees the bump and does not insert, or it inserts
/// while holding the shard lock and the eviction's remove, which needs that lock, comes after.
#[derive(Default)]
pub(crate) struct KeyTable {
    map: IdMap<TableEntry>,
    evictions: AtomicU64,
}

impl KeyTable {
    /// The entry of `id`, if held.
    pub(crate) fn get(
        &self,
        id: &DataKeyId,
    ) -> Option<dashmap::mapref::one::Ref<'_, DataKeyId, TableEntry>> {
        self.map.get(id)
    }

    /// The eviction count to pass to [`KeyTable::fill`]: read it before reading the store.
    pub(crate) fn fill_epoch(&self) -> u64 {
        self.evictions.load(Ordering::SeqCst)
    }

    /// Inserts what was read from the store after [`KeyTable::fill_epoch`] returned `epoch`,
    /// unless something was evicted since. Returns whether it inserted.
    pub(crate) fn fill(&self, id: DataKeyId, entry: TableEntry, epoch: u64) -> bool {
        match self.map.entry(id) {
            Entry::Occupied(_) => true,
            Entry::Vacant(slot) => {
                if self.evictions.load(Ordering::SeqCst) != epoch {
                    return false;
                }
                slot.insert(entry);
                true
            }
        }
    }

    /// Inserts a key this process has just created (no one else knows its id yet).
    pub(crate) fn insert_created(&self, id: DataKeyId, entry: TableEntry) {
        self.map.insert(id, entry);
    }

    /// Drops one key (deleted or moved).
    pub(crate) fn evict(&self, id: &DataKeyId) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        self.map.remove(id);
    }

    /// Drops every entry for which `drop` holds.
    pub(crate) fn evict_where(&self, drop: impl Fn(&TableEntry) -> bool) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        self.map.retain(|_, e| !drop(e));
    }

    /// Drops everything.
    pub(crate) fn clear(&self) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        self.map.clear();
    }
}

/// One node managed by this process: what its data path reads.
pub(crate) struct NodeRuntime {
    pub(crate) node: Node,
    /// Unlocked KEKs by (configuration, generation).
    pub(crate) keks: RwLock<HashMap<(Uuid, u32), Arc<Kek>>>,
    /// The mirror each (configuration, generation) was unlocked through, when its primary's
    /// provider failed (`protectors.rs`); absent when the primary unlocked it.
    pub(crate) unlocked_via: RwLock<HashMap<(Uuid, u32), Uuid>>,
    /// The node key table: wrapped data keys with their KEKs.
    pub(crate) table: KeyTable,
    /// One lock per (configuration, generation): a burst of misses costs one backend call,
    /// and a slow unwrap of one configuration's KEK (AKV timing out) does not hold up another's.
    unlocking: Mutex<HashMap<(Uuid, u32), UnlockGate>>,
}

/// Held while one (configuration, generation) is being unlocked on a node.
pub(crate) type UnlockGate = Arc<Mutex<()>>;

impl NodeRuntime {
    pub(crate) fn new(node: Node) -> Self {
        NodeRuntime {
            node,
            keks: RwLock::new(HashMap::new()),
            unlocked_via: RwLock::new(HashMap::new()),
            table: KeyTable::default(),
            unlocking: Mutex::new(HashMap::new()),
        }
    }

    /// The lock that serializes unlocking generation `generation` of `config` on this node.
    pub(crate) fn unlock_gate(&self, config: Uuid, generation: u32) -> UnlockGate {
        self.unlocking
            .lock()
            .entry((config, generation))
            .or_default()
            .clone()
    }

    pub(crate) fn kek(&self, config: Uuid, generation: u32) -> Option<Arc<Kek>> {
        self.keks.read().get(&(config, generation)).cloned()
    }

    /// Drops everything this node holds for `config`.
    pub(crate) fn forget_config(&self, config: Uuid) {
        self.keks.write().retain(|(c, _), _| *c != config);
        self.unlocked_via.write().retain(|(c, _), _| *c != config);
        self.table.evict_where(|e| e.record.config == config);
    }

    /// Drops one retired generation and the table entries it wrapped.
    pub(crate) fn forget_generation(&self, config: Uuid, generation: u32) {
        self.keks.write().remove(&(config, generation));
        self.unlocked_via.write().remove(&(config, generation));
        self.table
            .evict_where(|e| e.record.config == config && e.record.generation == generation);
    }
}
