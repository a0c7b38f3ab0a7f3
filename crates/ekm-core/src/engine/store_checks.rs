//! The checks [`Engine::open`](super::Engine::open) makes on the store before anything else:
//! the protection key is the cluster's, and the store format is this build's (format 5 is
//! upgraded in place to 6 once no process of the earlier build is alive).
//!
//! Owns: `meta/format` and `meta/protection-check`, and the format upgrade.
//! Must never: upgrade the format of a store whose protection key does not match; upgrade while
//! a process of the earlier build is alive; open a store of another format.
//!
//! | `meta/format` found | what open does |
//! |---|---|
//! | none (new store) | writes [`FORMAT_VERSION`] |
//! | [`FORMAT_VERSION`] (6) | opens |
//! | 5 | upgrades to 6 in place, once every live process marks deletions |
//! | anything else | refuses (`CorruptRecord`) |

use super::helpers::store_failed;
use super::liveness::live_processes_mark_deletions;
use crate::crypto::ProtectionKey;
use crate::error::{Error, ErrorKind, Result};
use crate::layout;
use crate::store::{Check, Store, StoreError, Transaction};

/// The on-disk format version this build writes and reads. 4: configuration records are
/// authenticated whole; 5: wrapped KEK records (and the nodes' copies) are too. Older stores
/// are refused: their records could have been changed by anyone who could write the database.
pub const FORMAT_VERSION: &[u8] = b"6";

/// The previous format, upgraded in place at open: format 6 only adds the deletion marks
/// (`e/`), which format 5 stores lack and need not have.
const PREVIOUS_FORMAT_VERSION: &[u8] = b"5";

/// A store shared by several processes holds a check value of the protection key
/// (`meta/protection-check`): the first process writes it, every other one must match it, so a
/// node given another key file refuses to start instead of failing on every record.
pub(super) fn check_protection_key(store: &dyn Store, pk: &ProtectionKey) -> Result<()> {
    if !store.is_shared() {
        return Ok(());
    }
    const AAD: &[u8] = b"ekm-protection-check-v1";
    let refused = || {
        Error::new(ErrorKind::CorruptRecord).with_detail(
            "The protection key file does not match the cluster's (its check value in the store \
             does not verify): give this node a copy of the key file the cluster was created with.",
        )
    };
    match store.get(layout::PROTECTION_CHECK).map_err(store_failed)? {
        Some(check) => match pk.aead().open_vec(AAD, &check) {
            Ok(plain) if plain.is_empty() => Ok(()),
            _ => Err(refused()),
        },
        None => {
            let check = pk
                .aead()
                .seal_vec(AAD, b"")
                .map_err(|_| Error::corrupt("Sealing the protection key check failed."))?;
            let mut txn = Transaction::new();
            txn.check(Check::Absent(layout::PROTECTION_CHECK.to_vec()))
                .put(layout::PROTECTION_CHECK, check);
            match store.commit(txn) {
                Ok(()) => Ok(()),
                // Another process wrote it first: check against theirs.
                Err(StoreError::Conflict(_)) => check_protection_key(store, pk),
                Err(e) => Err(store_failed(e)),
            }
        }
    }
}

/// Checks, writes or upgrades `meta/format` (table above).
pub(super) fn check_format(store: &dyn Store) -> Result<()> {
    match store.get(layout::FORMAT).map_err(store_failed)? {
        Some(v) if v == FORMAT_VERSION => Ok(()),
        Some(v) if v == PREVIOUS_FORMAT_VERSION => {
            // Processes of the earlier build delete records without the deletion mark: the
            // upgrade waits until none is alive (they refuse the new format once it is there).
            if store.is_shared() && !live_processes_mark_deletions(store)? {
                return Err(Error::new(ErrorKind::StoreFailed).with_detail(
                    "ekmd processes of the earlier build (store format 5) are still running on \
                     this cluster: stop every one of them, then start this build (it marks the \
                     store format 6, which the earlier build refuses).",
                ));
            }
            let mut txn = Transaction::new();
            txn.check(Check::Equals(layout::FORMAT.to_vec(), v))
                .put(layout::FORMAT, FORMAT_VERSION);
            match store.commit(txn) {
                Ok(()) => Ok(()),
                // Another process upgraded it first: read what it wrote.
                Err(StoreError::Conflict(_)) => check_format(store),
                Err(e) => Err(store_failed(e)),
            }
        }
        Some(v) => Err(Error::corrupt(&format!(
            "The store has format version {:?}; this build reads {:?}.",
            String::from_utf8_lossy(&v),
            String::from_utf8_lossy(FORMAT_VERSION)
        ))),
        None => {
            let mut txn = Transaction::new();
            txn.check(Check::Absent(layout::FORMAT.to_vec()))
                .put(layout::FORMAT, FORMAT_VERSION);
            match store.commit(txn) {
                Ok(()) => Ok(()),
                // Another process wrote it first: check what it wrote.
                Err(StoreError::Conflict(_)) => check_format(store),
                Err(e) => Err(store_failed(e)),
            }
        }
    }
}
