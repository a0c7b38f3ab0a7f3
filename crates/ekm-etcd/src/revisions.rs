//! Revision memory: long values as this store last read or wrote them, with the revision of
//! the key's last change then, so that an `Equals` check on one is sent as a revision compare
//! instead of the value.
//!
//! Owns: what is remembered (values of at least [`REMEMBER_FROM`] bytes) and for how long (two
//! generations of [`REMEMBER_PER_GENERATION`] entries).
//! Must never: answer a revision for a value other than the one asked about. An entry is true
//! of its revision for ever, so a stale one is never wrong, only useless (its compare fails and
//! the commit compares the value instead: `commit.rs`).
//!
//! ```text
//!   read/write of a long value ──► young ──(full)──► old ──(full again)──► dropped
//!                                    ▲                │
//!                                    └── used again ──┘
//! ```

use std::collections::HashMap;

use etcd_client::KeyValue;
use parking_lot::Mutex;

/// Values at least this long are remembered with their revision when this store reads one
/// key (`get`, `get_many`) or writes them, so that an `Equals` check on one is sent as a
/// revision compare instead of the value (a create's check of its ~1 KB configuration record,
/// a job step's check of its job record); shorter values cost less to send than to remember.
const REMEMBER_FROM: usize = 128;

/// Values remembered in each of the memory's two generations: when the young one is full it
/// becomes the old one and the old one is dropped; a value used from the old one moves back to
/// the young one, so the values checked again and again (a configuration every create checks)
/// stay while data records read once pass through. A dropped entry costs one value compare,
/// never a wrong answer.
const REMEMBER_PER_GENERATION: usize = 2048;

/// A value as seen at a revision (the key's revision of its last change then).
type Seen = (Vec<u8>, i64);

/// Long values with their revisions, in two generations (see [`REMEMBER_PER_GENERATION`]).
#[derive(Default)]
struct Generations {
    young: HashMap<Vec<u8>, Seen>,
    old: HashMap<Vec<u8>, Seen>,
}

impl Generations {
    fn insert(&mut self, key: Vec<u8>, seen: Seen) {
        if self.young.len() >= REMEMBER_PER_GENERATION && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.old.remove(&key);
        self.young.insert(key, seen);
    }

    fn revision_of(&mut self, key: &[u8], value: &[u8]) -> Option<i64> {
        if let Some(seen) = self.old.remove(key) {
            self.insert(key.to_vec(), seen);
        }
        match self.young.get(key) {
            Some((v, revision)) if v == value => Some(*revision),
            _ => None,
        }
    }
}

/// Long values as last read or written here, with their revision (full key → value,
/// revision): what turns an `Equals` check into a revision compare (`Cond::Unchanged`).
#[derive(Default)]
pub(crate) struct Remembered(Mutex<Generations>);

impl Remembered {
    /// Remembers a long `value` of `key` as of `revision`, the key's revision of its last
    /// change.
    pub(crate) fn remember(&self, key: &[u8], value: &[u8], revision: i64) {
        if value.len() < REMEMBER_FROM {
            return;
        }
        self.0
            .lock()
            .insert(key.to_vec(), (value.to_vec(), revision));
    }

    /// The value of a key read on its own, remembered with its revision.
    pub(crate) fn seen_value(&self, kv: &KeyValue) -> Vec<u8> {
        self.remember(kv.key(), kv.value(), kv.mod_revision());
        kv.value().to_vec()
    }

    /// The revision at which `key` was seen holding `value`, if remembered.
    pub(crate) fn revision_of(&self, key: &[u8], value: &[u8]) -> Option<i64> {
        self.0.lock().revision_of(key, value)
    }
}
