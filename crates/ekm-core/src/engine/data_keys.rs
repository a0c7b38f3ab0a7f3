//! Data keys: create (durable before the id is returned), read (node key table, then store),
//! delete, list; the lazy creation of a scope's first KEK; seal counting per generation.
//!
//! Owns: the `d/`, `r/` and `x/` records of data keys, and filling the node key tables.
//! Must never: return an id before its key is durable; serve a key whose record did not
//! authenticate; let a create commit on a configuration that is no longer current.
//!
//! | operation | reads | commits |
//! |---|---|---|
//! | create / import | the owner's configuration (cached, `OwnerConfig`) | `d/<id>`, `r/...`, seal count every 64 |
//! | read | the node key table, else `d/<id>` and `r/...` | nothing |
//! | delete | `d/<id>`, `r/...` | both and `m/<id>` removed, `e/<config>` rewritten |

use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use super::Engine;
use super::helpers::{CONDITIONAL_ATTEMPTS, store_failed};
use super::key_table::TableEntry;
use crate::codec::{KekState, KeyLocation, WrappedDataKey, WrappedKek};
use crate::crypto::{Kek, NonceSource, SEAL_WARN_LIMIT};
use crate::error::{Error, ErrorKind, Result};
use crate::hierarchy::{open_data_key, seal_data_key};
use crate::ids::{DataKeyId, KeyOwner, KeyTag};
use crate::layout;
use crate::secret::{DataKeyMaterial, KeyMaterial};
use crate::store::{Check, StoreError, Transaction};
use crate::stored::StoredConfig;

/// Creates write the seal count when it crosses a multiple of this (not on every create: one
/// record fewer per durable commit); a reopened engine adds it to the stored count.
const SEAL_SLACK: u64 = 64;

/// Seals of one KEK generation: counted in memory, and as last durably written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SealCount {
    count: u64,
    persisted: u64,
}

/// The configuration that protects an owner's new keys, as read, with the checks that prove
/// in a commit that it still does (`Engine::config_for_owner`).
#[derive(Clone)]
pub(crate) struct OwnerConfig {
    pub(crate) config: StoredConfig,
    pub(crate) bytes: Vec<u8>,
    /// What else must still hold (besides the configuration record, byte for byte): an SVM's
    /// own scope entry still absent when the cluster's configuration is used.
    pub(crate) checks: Vec<Check>,
}

/// How often a create retries when the hierarchy changed under it (a rekey started).
const CREATE_ATTEMPTS: usize = 8;

/// A data key as listed: never its material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataKeyInfo {
    /// The key id.
    pub key_id: DataKeyId,
    /// The caller's label.
    pub key_tag: KeyTag,
    /// The SVM that owns it, `None` for the cluster.
    pub svm_uuid: Option<Uuid>,
    /// The configuration whose KEK wraps it.
    pub config_uuid: Uuid,
    /// The KEK generation that wraps it.
    pub kek_generation: u32,
    /// How many bytes the key is as served: 32, or 1 to 31 for a key registered shorter
    /// (a KMIP AES-128/192 key, Secret Data).
    pub key_len: usize,
}

impl DataKeyInfo {
    fn of(key_id: DataKeyId, r: WrappedDataKey) -> Self {
        DataKeyInfo {
            key_id,
            key_tag: r.key_tag,
            svm_uuid: r.owner.svm(),
            config_uuid: r.config,
            kek_generation: r.generation,
            key_len: usize::from(r.key_len),
        }
    }
}

/// How much a KEK generation has been used, against the random-nonce limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KekUsage {
    /// Generation.
    pub generation: u32,
    /// "active" or "retiring".
    pub state: &'static str,
    /// Seals done with it (data keys wrapped), as counted.
    pub seals: u64,
    /// Seals at which rekey-internal is advised (half of NIST's 2^32).
    pub seal_limit: u64,
    /// True when `seals` reached `seal_limit`: schedule rekey-internal.
    pub rekey_advised: bool,
    /// When the generation was created (unix seconds), for its age.
    pub created: u64,
}

impl Engine {
    /// The active KEK of `config` on the local node, creating generation 1 (wrapped by the
    /// backend, one call) if the scope has none yet. Returns the configuration as it now is.
    ///
    /// First KEKs are created one at a time (`first_kek`), so a burst of first keys costs one
    /// wrap; that lock is held across the wrap but nothing else waits on it (the admin lock is
    /// not taken). The commit is conditional on the configuration as read; when it changed
    /// meanwhile (patched, or another process created the KEK) the configuration is read again.
    pub(crate) fn active_kek(
        &self,
        config: StoredConfig,
        bytes: Vec<u8>,
    ) -> Result<(StoredConfig, Vec<u8>, Arc<Kek>)> {
        if let Some(g) = config.active_generation {
            let kek = self.unlock_on(self.local, &config, g)?;
            return Ok((config, bytes, kek));
        }
        if let Some(primary) = config.mirror_of() {
            return Err(Error::invalid_value(
                "uuid",
                &format!(
                    "{} is a mirror of {primary}: the scope's keys are made and kept under {primary}.",
                    config.uuid
                ),
            ));
        }
        let _one_at_a_time = self.first_kek.lock();
        for _ in 0..CONDITIONAL_ATTEMPTS {
            let (config, bytes) = self.load_config(config.uuid)?;
            if let Some(g) = config.active_generation {
                let kek = self.unlock_on(self.local, &config, g)?;
                return Ok((config, bytes, kek));
            }
            let generation = 1;
            let kek = Kek::generate(generation);
            let wrapped = self.wrap_new_kek(&config, &kek, KekState::Active)?;
            let mut updated = config.clone();
            updated.active_generation = Some(generation);
            let updated_bytes = updated.encode(&self.protection)?;
            let cfg_key = layout::config(config.uuid);
            let kek_key = layout::kek(config.uuid, generation);
            let mut txn = Transaction::new();
            txn.check(Check::Equals(cfg_key.clone(), bytes))
                .check(Check::Absent(kek_key.clone()))
                .put(kek_key, wrapped.encode(&self.protection)?)
                .put(cfg_key, updated_bytes.clone());
            // Each mirror's copy too; one that cannot wrap now catches up later.
            self.wrap_for_mirrors(&config, &kek, KekState::Active, &mut txn)?;
            match self.store.commit(txn) {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(store_failed(e)),
            }
            let kek = Arc::new(kek);
            let local = &self.nodes[self.local];
            local
                .keks
                .write()
                .insert((config.uuid, generation), kek.clone());
            self.record_node(&local.node, &wrapped, Some(generation), None);
            self.distribute(&updated, generation, self.local);
            return Ok((updated, updated_bytes, kek));
        }
        Err(Error::new(ErrorKind::StoreFailed)
            .with_detail("The configuration kept changing while its first KEK was created; retry."))
    }

    /// Wraps a new KEK with the configuration's external key, as the local node (one backend
    /// call; [`hierarchy::wrap_kek`]).
    pub(crate) fn wrap_new_kek(
        &self,
        config: &StoredConfig,
        kek: &Kek,
        state: KekState,
    ) -> Result<WrappedKek> {
        self.wrap_as(config, config.uuid, kek, state)
    }

    /// This process's seal counter record of (config, generation).
    pub(crate) fn own_seals_key(&self, config: Uuid, generation: u32) -> Vec<u8> {
        layout::seals(config, generation, self.nodes[self.local].node.uuid)
    }

    /// Adds `n` seals to this process's count of (config, generation); returns its new count.
    /// Each process counts (and writes) its own seals: see [`Engine::total_seals`].
    pub(crate) fn count_seals(&self, config: Uuid, generation: u32, n: u64) -> Result<u64> {
        let mut seals = self.seals.lock();
        let entry = match seals.get(&(config, generation)) {
            Some(c) => *c,
            None => {
                let stored = self
                    .store
                    .get(&self.own_seals_key(config, generation))
                    .map_err(store_failed)?
                    .as_deref()
                    .map(decode_count)
                    .unwrap_or(0);
                // Creates persist the count only every SEAL_SLACK seals, so up to that many
                // may have happened since the stored value: assume they all did.
                SealCount {
                    count: stored.saturating_add(SEAL_SLACK),
                    persisted: stored,
                }
            }
        };
        let count = entry.count.saturating_add(n);
        seals.insert((config, generation), SealCount { count, ..entry });
        Ok(count)
    }

    /// Seals done with (config, generation) by every process: the other writers' stored
    /// counters (each assumed SEAL_SLACK ahead of what it last wrote) and this process's count.
    pub(crate) fn total_seals(&self, config: Uuid, generation: u32) -> Result<u64> {
        let own_key = self.own_seals_key(config, generation);
        let mut total = self.count_seals(config, generation, 0)?;
        for (k, v) in self.scan_all(&layout::seals_of_generation(config, generation))? {
            if k != own_key {
                total = total
                    .saturating_add(decode_count(&v))
                    .saturating_add(SEAL_SLACK);
            }
        }
        Ok(total)
    }

    /// Forgets the counts of a retired generation: `txn` deletes every writer's counter and
    /// this process's memory of it goes.
    pub(crate) fn drop_seal_counts(
        &self,
        txn: &mut Transaction,
        config: Uuid,
        generation: u32,
    ) -> Result<()> {
        for (k, _) in self.scan_all(&layout::seals_of_generation(config, generation))? {
            txn.delete(k);
        }
        self.seals.lock().remove(&(config, generation));
        Ok(())
    }

    /// Whether a create that brought the count to `count` must write it: when it is a whole
    /// SEAL_SLACK above what was last durably written. Measured from the last write that
    /// committed — not from multiples of SEAL_SLACK — so a commit that failed after crossing a
    /// multiple cannot leave the stored count more than SEAL_SLACK behind.
    fn seal_count_due(&self, config: Uuid, generation: u32, count: u64) -> bool {
        self.seals
            .lock()
            .get(&(config, generation))
            .is_none_or(|c| count >= c.persisted.saturating_add(SEAL_SLACK))
    }

    /// Notes that `count` is durable for (config, generation).
    pub(crate) fn seal_count_persisted(&self, config: Uuid, generation: u32, count: u64) {
        if let Some(c) = self.seals.lock().get_mut(&(config, generation)) {
            c.persisted = c.persisted.max(count);
        }
    }

    /// Creates a 256-bit data key for `owner`, wrapped by the active KEK of the configuration
    /// that protects the owner. The key is durable before its id is returned.
    pub fn create_data_key(&self, owner: KeyOwner, key_tag: KeyTag) -> Result<DataKeyId> {
        let ids = self.create_data_keys(owner, vec![key_tag])?;
        ids.into_iter()
            .next()
            .ok_or_else(|| Error::corrupt("no key created"))
    }

    /// Creates one data key per tag in one durable transaction (all or none). A store with a
    /// transaction size limit (etcd: 128 operations) takes at most
    /// [`Engine::max_keys_per_create`] keys at once; more is refused (262197), never split.
    pub fn create_data_keys(&self, owner: KeyOwner, tags: Vec<KeyTag>) -> Result<Vec<DataKeyId>> {
        if let Some(max) = self.max_keys_per_create() {
            if tags.len() > max {
                return Err(Error::new(ErrorKind::InvalidValue).with_detail(format!(
                    "At most {max} data keys can be created in one transaction on the {} store; {} were asked for.",
                    self.store.engine_name(),
                    tags.len()
                )));
            }
        }
        let materials: Vec<(DataKeyId, DataKeyMaterial)> = tags
            .iter()
            .map(|_| {
                (
                    DataKeyId::random(),
                    DataKeyMaterial::full(KeyMaterial::random()),
                )
            })
            .collect();
        self.insert_data_keys(owner, tags, materials, None)
    }

    /// How many data keys one create may make on this store, if it limits transaction sizes
    /// (etcd counts checks and writes apart): each key is one check and two puts, and the
    /// create adds the configuration check and the seal count.
    pub fn max_keys_per_create(&self) -> Option<usize> {
        self.store
            .max_ops()
            .map(|max| (max.saturating_sub(1) / 2).max(1))
    }

    /// Registers client-supplied 256-bit material as a data key of `owner` (wrapped by the
    /// owner's active KEK like any data key). The key is durable before its id is returned.
    pub fn import_data_key(
        &self,
        owner: KeyOwner,
        key_tag: KeyTag,
        material: KeyMaterial,
    ) -> Result<DataKeyId> {
        let material = DataKeyMaterial::full(material);
        self.import_data_key_with_attributes(owner, key_tag, material, None)
    }

    /// As [`Engine::import_data_key`] for a key of 1 to 32 bytes (a shorter one is sealed with
    /// its length, and served as those bytes by [`Engine::read_served_key`]), and writes
    /// `attributes` (the KMIP attributes and state of the key, opaque to the engine) as
    /// `m/<key id>` in the same transaction. The record is removed with the key
    /// ([`Engine::delete_data_key`]).
    pub fn import_data_key_with_attributes(
        &self,
        owner: KeyOwner,
        key_tag: KeyTag,
        material: DataKeyMaterial,
        attributes: Option<Vec<u8>>,
    ) -> Result<DataKeyId> {
        let id = DataKeyId::random();
        self.insert_data_keys(owner, vec![key_tag], vec![(id, material)], attributes)?;
        Ok(id)
    }

    /// Seals and stores `materials` (one per tag) in one durable transaction; with
    /// `attributes` (one key only) also `m/<key id>`.
    ///
    /// The first attempt uses the configuration the owner's last create used, without reading
    /// the store (on etcd each read is a round trip to the cluster): the commit checks what
    /// was read — the configuration record byte for byte, and for an SVM without its own
    /// configuration that it still has none — so a configuration changed, deleted or added
    /// since is a failed check, nothing is written, and the create reads afresh and seals
    /// again. Any other failure on remembered
    /// state is retried once from a fresh read too.
    fn insert_data_keys(
        &self,
        owner: KeyOwner,
        tags: Vec<KeyTag>,
        materials: Vec<(DataKeyId, DataKeyMaterial)>,
        attributes: Option<Vec<u8>>,
    ) -> Result<Vec<DataKeyId>> {
        let _gate = self.gate.read();
        let mut remembered = self.owner_configs.lock().get(&owner).cloned();
        for _ in 0..CREATE_ATTEMPTS {
            let from_memory = remembered.is_some();
            let read = match remembered.take() {
                Some(r) => r,
                None => self.config_for_owner(owner)?,
            };
            self.check_owner_room(read.config.uuid, owner, tags.len())?;
            match self.try_insert(owner, &tags, &materials, attributes.as_ref(), read) {
                Ok(Some((ids, used))) => {
                    self.owner_keys_changed(used.config.uuid, owner, ids.len() as i64);
                    self.owner_configs.lock().insert(owner, used);
                    return Ok(ids);
                }
                // The configuration changed (a rekey switched generations): seal again.
                Ok(None) => {
                    self.owner_configs.lock().remove(&owner);
                }
                // Remembered state may be stale: try once more from the store. A store
                // failure is final (a retry could not tell more than the store said).
                Err(e) if from_memory && e.kind() != ErrorKind::StoreFailed => {
                    self.owner_configs.lock().remove(&owner);
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(ErrorKind::StoreFailed)
            .with_detail("The key hierarchy kept changing during the create; retry."))
    }

    /// One attempt of [`Engine::insert_data_keys`] on the configuration `read`: the ids and
    /// the configuration as used when it committed, `None` when a check failed.
    fn try_insert(
        &self,
        owner: KeyOwner,
        tags: &[KeyTag],
        materials: &[(DataKeyId, DataKeyMaterial)],
        attributes: Option<&Vec<u8>>,
        read: OwnerConfig,
    ) -> Result<Option<(Vec<DataKeyId>, OwnerConfig)>> {
        let OwnerConfig {
            config,
            bytes,
            checks,
        } = read;
        if config.deleting {
            let kind = config.provider().not_configured();
            let err = match kind {
                ErrorKind::NotConfigured => Error::for_scope(kind, config.svm_uuid().is_some()),
                _ => Error::new(kind),
            };
            return Err(err.with_detail("The key manager is being deleted."));
        }
        let (config, bytes, kek) = self.active_kek(config, bytes)?;
        let generation = kek.generation();
        let mut txn = Transaction::new();
        txn.check(Check::Equals(layout::config(config.uuid), bytes.clone()));
        for c in &checks {
            txn.check(c.clone());
        }
        let mut records = Vec::with_capacity(tags.len());
        let mut nonces = NonceSource::default();
        for ((id, material), tag) in materials.iter().zip(tags) {
            let record = seal_data_key(
                &kek,
                config.uuid,
                id,
                owner,
                material,
                tag.clone(),
                &mut nonces,
            )?;
            let location = KeyLocation {
                config: config.uuid,
                owner,
            };
            txn.check(Check::Absent(layout::data_key(id)))
                .put(layout::data_key(id), location.encode())
                .put(location.record_key(id), record.encode());
            if let Some(a) = attributes {
                txn.put(layout::kmip_attributes(id), a.clone());
            }
            records.push(record);
        }
        let n = tags.len() as u64;
        let seals = self.count_seals(config.uuid, generation, n)?;
        let persist = self.seal_count_due(config.uuid, generation, seals);
        if persist {
            txn.put(
                self.own_seals_key(config.uuid, generation),
                seals.to_be_bytes().to_vec(),
            );
        }
        match self.store.commit(txn) {
            Ok(()) => {
                if persist {
                    self.seal_count_persisted(config.uuid, generation, seals);
                }
                let table = &self.nodes[self.local].table;
                for ((id, _), record) in materials.iter().zip(records) {
                    table.insert_created(
                        *id,
                        TableEntry {
                            record,
                            kek: kek.clone(),
                        },
                    );
                }
                let ids = materials.iter().map(|(id, _)| *id).collect();
                Ok(Some((
                    ids,
                    OwnerConfig {
                        config,
                        bytes,
                        checks,
                    },
                )))
            }
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(store_failed(e)),
        }
    }

    /// Reads a data key's 32 bytes on this process's local node. Of a key registered shorter
    /// than 32 bytes they include its filler: whoever serves keys to their owners reads
    /// [`Engine::read_served_key`].
    pub fn read_data_key(&self, id: &DataKeyId) -> Result<KeyMaterial> {
        self.read_on(self.local, id)
            .map(DataKeyMaterial::into_material)
    }

    /// Reads a data key's 32 bytes from the key table of managed node `node`.
    pub fn read_data_key_on(&self, node: Uuid, id: &DataKeyId) -> Result<KeyMaterial> {
        self.read_on(self.node_index(node)?, id)
            .map(DataKeyMaterial::into_material)
    }

    /// Reads a data key as its owner is served it, on this process's local node: its bytes
    /// (1 to 32; [`DataKeyMaterial::expose_secret`]) and their length, both from the key's
    /// record. On a key table hit, as [`Engine::read_data_key`], the store is not read.
    pub fn read_served_key(&self, id: &DataKeyId) -> Result<DataKeyMaterial> {
        self.read_on(self.local, id)
    }

    fn read_on(&self, idx: usize, id: &DataKeyId) -> Result<DataKeyMaterial> {
        let rt = &self.nodes[idx];
        if let Some(entry) = rt.table.get(id) {
            return open_data_key(id, &entry.record, &entry.kek);
        }
        // Read the eviction count before the store, so a delete that commits meanwhile
        // cannot have its eviction undone by this fill.
        let epoch = rt.table.fill_epoch();
        let (record, _, _) = self.load_data_key(id)?;
        let (config, _) = self.load_config(record.config)?;
        let kek = self.unlock_on(idx, &config, record.generation)?;
        let material = open_data_key(id, &record, &kek)?;
        if !rt.table.fill(*id, TableEntry { record, kek }, epoch) {
            // Something was evicted since the read: if it was this key, it is gone now.
            self.load_data_key(id)?;
        }
        Ok(material)
    }

    /// A key's record, its store key and its bytes: the location (`d/<id>`), then the record.
    pub(crate) fn load_data_key(
        &self,
        id: &DataKeyId,
    ) -> Result<(WrappedDataKey, Vec<u8>, Vec<u8>)> {
        // A migrate moves the record and the location in one transaction; reading the two
        // separately can straddle it, so look once more before calling it damage.
        for _ in 0..2 {
            let location = self
                .store
                .get(&layout::data_key(id))
                .map_err(store_failed)?
                .ok_or_else(|| Error::new(ErrorKind::EntryNotFound).with_target("key_id"))?;
            let record_key = KeyLocation::decode(&location)?.record_key(id);
            if let Some(bytes) = self.store.get(&record_key).map_err(store_failed)? {
                return Ok((WrappedDataKey::decode(&bytes)?, record_key, bytes));
            }
        }
        Err(Error::corrupt(&format!(
            "Data key {id} has a location but no record."
        )))
    }

    /// What is known of one data key (never its material).
    pub fn data_key_info(&self, id: &DataKeyId) -> Result<DataKeyInfo> {
        let (r, _, _) = self.load_data_key(id)?;
        Ok(DataKeyInfo::of(*id, r))
    }

    /// The data keys protected by configuration `config`: ids, tags, owners, generations.
    pub fn list_data_keys(&self, config: Uuid) -> Result<Vec<DataKeyInfo>> {
        self.load_config(config)?;
        let mut out = Vec::new();
        for (k, v) in self.scan_all(&layout::records(config))? {
            let id = layout::id_of_record(&k)
                .ok_or_else(|| Error::corrupt("A data key record has a malformed key."))?;
            out.push(DataKeyInfo::of(id, WrappedDataKey::decode(&v)?));
        }
        Ok(out)
    }

    /// The data keys of `owner`, under every configuration: a read of the owner's own records
    /// (`r/<config><owner>/`), not of every key in the store.
    pub fn list_data_keys_of(&self, owner: KeyOwner) -> Result<Vec<DataKeyInfo>> {
        let mut out = Vec::new();
        for c in self.list_key_managers()? {
            for (k, v) in self.scan_all(&layout::records_of(c.uuid(), owner))? {
                let id = layout::id_of_record(&k)
                    .ok_or_else(|| Error::corrupt("A data key record has a malformed key."))?;
                out.push(DataKeyInfo::of(id, WrappedDataKey::decode(&v)?));
            }
        }
        Ok(out)
    }

    /// Seal counts of every KEK generation of `config`, with the rekey advice.
    pub fn kek_usage(&self, config: Uuid) -> Result<Vec<KekUsage>> {
        self.load_config(config)?;
        let mut out = Vec::new();
        for (_, v) in self.scan_all(&layout::kek_prefix(config))? {
            let k = WrappedKek::decode(&v, &self.protection)?;
            let seals = self.total_seals(config, k.generation)?;
            out.push(KekUsage {
                generation: k.generation,
                state: match k.state {
                    KekState::Active => "active",
                    KekState::Retiring => "retiring",
                },
                seals,
                seal_limit: SEAL_WARN_LIMIT,
                rekey_advised: seals >= SEAL_WARN_LIMIT,
                created: k.created,
            });
        }
        Ok(out)
    }

    /// Test and operations hook: sets the seal count of a generation (e.g. after restoring a
    /// store from a backup whose counter is known to be stale): this process's counter holds
    /// it and every other writer's is cleared.
    pub fn set_seal_count(&self, config: Uuid, generation: u32, seals: u64) -> Result<()> {
        let mut txn = Transaction::new();
        self.drop_seal_counts(&mut txn, config, generation)?;
        txn.put(
            self.own_seals_key(config, generation),
            seals.to_be_bytes().to_vec(),
        );
        self.store.commit(txn).map_err(store_failed)?;
        self.seals.lock().insert(
            (config, generation),
            SealCount {
                count: seals,
                persisted: seals,
            },
        );
        Ok(())
    }
}

/// A stored seal counter (u64 big-endian); a malformed one counts as zero (the counts only
/// advise a rekey, and the slack added on load covers a lost one).
fn decode_count(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map_or(0, u64::from_be_bytes)
}
