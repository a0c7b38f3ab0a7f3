//! The bound on data keys per owner (the cluster, or one SVM): one tenant cannot fill the
//! store, and an etcd cluster's space, for every other.
//!
//! ```text
//! create n keys for owner O on configuration C
//!   └─► count of r/<C><O>/ (from memory, refreshed from the store every COUNT_FRESH)
//!         + n > max_keys_per_owner ? refused (65537504, target "max_keys_per_owner") : go on
//!   created: count += n        deleted: count -= 1
//! ```
//!
//! In a cluster each process counts the creates it makes and reads the store's count again
//! every [`COUNT_FRESH`]: an owner creating through several nodes at once can pass the bound
//! by what those nodes create in that time, never by more.
//!
//! Owns: the per-owner counts and the refusal.
//! Must never: read the store's count on every create (a scan of the owner's keys on redb).

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::Engine;
use super::helpers::store_failed;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::KeyOwner;
use crate::layout;

/// Default most data keys one owner may have ([`crate::EngineOptions::max_keys_per_owner`]).
pub const DEFAULT_MAX_KEYS_PER_OWNER: u64 = 1_000_000;
/// How long a count read from the store is used before it is read again.
pub const COUNT_FRESH: Duration = Duration::from_secs(30);

/// The target of the refusal, by which callers (KMIP) tell it from a store failure.
pub const LIMIT_TARGET: &str = "max_keys_per_owner";

/// One owner's count under one configuration, and when it was read from the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnerCount {
    keys: u64,
    read: Instant,
}

impl Engine {
    /// Refuses a create of `adding` keys for `owner` under `config` that would take it past
    /// the bound.
    pub(super) fn check_owner_room(
        &self,
        config: Uuid,
        owner: KeyOwner,
        adding: usize,
    ) -> Result<()> {
        let cached = self.owner_counts.lock().get(&(config, owner)).copied();
        let keys = match cached {
            Some(c) if c.read.elapsed() < COUNT_FRESH => c.keys,
            _ => {
                let keys = self
                    .store
                    .count(&layout::records_of(config, owner))
                    .map_err(store_failed)?;
                self.owner_counts.lock().insert(
                    (config, owner),
                    OwnerCount {
                        keys,
                        read: Instant::now(),
                    },
                );
                keys
            }
        };
        if keys.saturating_add(adding as u64) > self.max_keys_per_owner {
            let who = match owner {
                KeyOwner::Cluster => "The cluster".to_owned(),
                KeyOwner::Svm(u) => match self.topology().svm_by_uuid(u) {
                    Some(s) => format!("SVM \"{}\"", s.name()),
                    None => format!("SVM {u}"),
                },
            };
            return Err(Error::new(ErrorKind::StoreFailed)
                .with_detail(format!(
                    "{who} has {keys} data keys; at most {} are allowed per owner (ekmd --max-keys-per-owner). Delete keys or raise the bound.",
                    self.max_keys_per_owner
                ))
                .with_target(LIMIT_TARGET));
        }
        Ok(())
    }

    /// Counts `n` keys created (positive) or deleted (negative) for `owner` under `config`.
    pub(super) fn owner_keys_changed(&self, config: Uuid, owner: KeyOwner, n: i64) {
        if let Some(c) = self.owner_counts.lock().get_mut(&(config, owner)) {
            c.keys = c.keys.saturating_add_signed(n);
        }
    }
}
