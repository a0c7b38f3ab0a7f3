//! Nodes: each managed node's key table and unlocked KEKs in memory, and each node's
//! availability record in the store (so other processes sharing the store see it).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CONDITIONAL_ATTEMPTS, Engine, now_secs, store_failed};
use crate::backend::BackendCall;
use crate::codec::{WrappedDataKey, WrappedKek};
use crate::crypto::Kek;
use crate::error::{Error, ErrorKind, Result};
use crate::hierarchy;
use crate::ids::DataKeyId;
use crate::layout;
use crate::store::{Change, Check, StoreError, Transaction};
use crate::stored::StoredConfig;
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
    /// The node key table: wrapped data keys with their KEKs.
    pub(crate) table: KeyTable,
    /// One lock per (configuration, generation): a burst of misses costs one backend call,
    /// and a slow unwrap of one configuration's KEK (AKV timing out) does not hold up another's.
    unlocking: Mutex<HashMap<(Uuid, u32), UnlockGate>>,
}

/// Held while one (configuration, generation) is being unlocked on a node.
type UnlockGate = Arc<Mutex<()>>;

impl NodeRuntime {
    pub(crate) fn new(node: Node) -> Self {
        NodeRuntime {
            node,
            keks: RwLock::new(HashMap::new()),
            table: KeyTable::default(),
            unlocking: Mutex::new(HashMap::new()),
        }
    }

    /// The lock that serializes unlocking generation `generation` of `config` on this node.
    fn unlock_gate(&self, config: Uuid, generation: u32) -> UnlockGate {
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
        self.table.evict_where(|e| e.record.config == config);
    }

    /// Drops one retired generation and the table entries it wrapped.
    pub(crate) fn forget_generation(&self, config: Uuid, generation: u32) {
        self.keks.write().remove(&(config, generation));
        self.table
            .evict_where(|e| e.record.config == config && e.record.generation == generation);
    }
}

/// Why a node lacks a KEK, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeError {
    pub code: u32,
    pub message: String,
}

/// A node's availability for one configuration (`n/<node><config>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    pub v: u32,
    pub node: Uuid,
    pub config: Uuid,
    /// Generation of the node's copy of the wrapped KEK.
    pub generation: u32,
    /// The node's copy of the wrapped KEK record (base64 of its encoding).
    pub wrapped_kek: String,
    /// The generation the node has unlocked, if any.
    pub loaded: Option<u32>,
    pub last_error: Option<NodeError>,
    pub updated: u64,
}

impl NodeRecord {
    pub(crate) fn decode(bytes: &[u8]) -> Result<NodeRecord> {
        serde_json::from_slice(bytes).map_err(|_| Error::corrupt("A node record is malformed."))
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Engine {
    pub(crate) fn node_record(&self, node: Uuid, config: Uuid) -> Result<Option<NodeRecord>> {
        self.store
            .get(&layout::node(node, config))
            .map_err(store_failed)?
            .map(|b| NodeRecord::decode(&b))
            .transpose()
    }

    /// Writes what a node now holds for a configuration. A failure to record is not fatal to
    /// the caller (the in-memory state is right; the record catches up on the next change).
    ///
    /// The write is conditional on the configuration record as it is now naming the external
    /// key that wrapped `wrapped`: a node that read its copy before a rekey-external committed,
    /// and unwrapped it over the network meanwhile, must not write the old wrapping back over
    /// the new one (that node could not unlock again once the old vault key is disabled).
    pub(crate) fn record_node(
        &self,
        node: &Node,
        wrapped: &WrappedKek,
        loaded: Option<u32>,
        last_error: Option<&Error>,
    ) {
        let Ok(wrapped_bytes) = wrapped.encode(&self.protection) else {
            return;
        };
        let rec = NodeRecord {
            v: 1,
            node: node.uuid,
            config: wrapped.config,
            generation: wrapped.generation,
            wrapped_kek: B64.encode(wrapped_bytes),
            loaded,
            last_error: last_error.map(|e| NodeError {
                code: e.code(),
                message: e.message(),
            }),
            updated: now_secs(),
        };
        if self.store.is_shared() {
            // Other nodes read what this node holds from its liveness record.
            self.write_liveness();
        }
        for _ in 0..CONDITIONAL_ATTEMPTS {
            let Ok((config, bytes)) = self.load_config(wrapped.config) else {
                return;
            };
            if config.key_id_str() != wrapped.key_id.as_str() {
                return;
            }
            let mut txn = Transaction::new();
            txn.check(Check::Equals(layout::config(wrapped.config), bytes))
                .put(layout::node(node.uuid, wrapped.config), rec.encode());
            match self.store.commit(txn) {
                Err(StoreError::Conflict(_)) => continue,
                _ => return,
            }
        }
    }

    /// The wrapped KEK `generation` of `config`: the node's own copy when it is that
    /// generation and wrapped by the configuration's external key, else the cluster record.
    /// [`ErrorKind::MissingWrappedKek`] when neither exists.
    pub(crate) fn wrapped_kek_for(
        &self,
        node: Uuid,
        config: &StoredConfig,
        generation: u32,
    ) -> Result<WrappedKek> {
        if let Some(rec) = self.node_record(node, config.uuid)? {
            if rec.generation == generation {
                if let Some(k) = B64
                    .decode(&rec.wrapped_kek)
                    .ok()
                    .and_then(|b| WrappedKek::decode(&b, &self.protection).ok())
                    .filter(|k| {
                        k.config == config.uuid
                            && k.generation == generation
                            && k.key_id.as_str() == config.key_id_str()
                    })
                {
                    return Ok(k);
                }
            }
        }
        let k = self.cluster_wrapped_kek(config.uuid, generation)?;
        // Both records are authenticated; the KEK record must also name the configuration's
        // current external key (a stale generation left by a rekey-external is not used).
        if k.key_id.as_str() != config.key_id_str() {
            return Err(Error::corrupt(&format!(
                "The wrapped KEK of generation {generation} of configuration {} names another external key than the configuration's; it is not used.",
                config.uuid
            )));
        }
        Ok(k)
    }

    pub(crate) fn cluster_wrapped_kek(&self, config: Uuid, generation: u32) -> Result<WrappedKek> {
        let bytes = self
            .store
            .get(&layout::kek(config, generation))
            .map_err(store_failed)?
            .ok_or_else(|| {
                Error::new(ErrorKind::MissingWrappedKek).with_detail(format!(
                    "Generation {generation} of configuration {config} is not in the store."
                ))
            })?;
        let k = WrappedKek::decode(&bytes, &self.protection)?;
        if k.config != config || k.generation != generation {
            return Err(Error::corrupt(&format!(
                "The record stored as generation {generation} of configuration {config} is another KEK's."
            )));
        }
        Ok(k)
    }

    /// The unlocked KEK `generation` of `config` on node `idx`, unwrapping it through the
    /// backend (as that node) on first use. The node's availability record follows.
    pub(crate) fn unlock_on(
        &self,
        idx: usize,
        config: &StoredConfig,
        generation: u32,
    ) -> Result<Arc<Kek>> {
        let rt = &self.nodes[idx];
        if let Some(k) = rt.kek(config.uuid, generation) {
            return Ok(k);
        }
        let gate = rt.unlock_gate(config.uuid, generation);
        let _one_at_a_time = gate.lock();
        if let Some(k) = rt.kek(config.uuid, generation) {
            return Ok(k);
        }
        let wrapped = self.wrapped_kek_for(rt.node.uuid, config, generation)?;
        let is_active = config.active_generation == Some(generation);
        match self.unwrap_kek(&rt.node, config, &wrapped) {
            Ok(kek) => {
                let kek = Arc::new(kek);
                rt.keks
                    .write()
                    .insert((config.uuid, generation), kek.clone());
                // Retired or deleted while the backend unwrapped it (another process's watch
                // event found nothing to forget then): not kept. This caller read the record
                // before it went, as if it had finished just before.
                if let Ok(None) = self.store.get(&layout::kek(config.uuid, generation)) {
                    rt.forget_generation(config.uuid, generation);
                    return Ok(kek);
                }
                if is_active {
                    self.record_node(&rt.node, &wrapped, Some(generation), None);
                } else if self.store.is_shared() {
                    self.write_liveness();
                }
                Ok(kek)
            }
            Err(e) => {
                if is_active {
                    self.record_node(&rt.node, &wrapped, None, Some(&e));
                }
                Err(e)
            }
        }
    }

    /// One backend unwrap as `node`, proven by the check value ([`hierarchy::unwrap_kek`]).
    pub(crate) fn unwrap_kek(
        &self,
        node: &Node,
        config: &StoredConfig,
        wrapped: &WrappedKek,
    ) -> Result<Kek> {
        let parts = config.unseal(&self.protection)?;
        let access = parts.access();
        let call = BackendCall {
            node,
            access: &access,
        };
        hierarchy::unwrap_kek(&*self.backend, &call, wrapped, &node.name)
    }

    /// Gives every managed node other than `except` the new KEK generation: each unwraps it
    /// through the backend as itself, so a node that cannot reach AKV is recorded as lacking it.
    pub(crate) fn distribute(&self, config: &StoredConfig, generation: u32, except: usize) {
        for idx in 0..self.nodes.len() {
            if idx != except {
                let _ = self.unlock_on(idx, config, generation);
            }
        }
    }

    /// Unlocks the active KEK of every configuration on every managed node, as a node does
    /// after a reboot. Failures are recorded (status shows them) and returned by node name.
    pub fn unlock_all(&self) -> Vec<(String, Error)> {
        let mut failures = Vec::new();
        let Ok(configs) = self.scan_all(layout::CONFIG) else {
            return failures;
        };
        for (_, bytes) in configs {
            let Ok(cfg) = StoredConfig::decode(&bytes, &self.protection) else {
                continue;
            };
            let Some(g) = cfg.active_generation else {
                continue;
            };
            for idx in 0..self.nodes.len() {
                if let Err(e) = self.unlock_on(idx, &cfg, g) {
                    failures.push((self.nodes[idx].node.name.clone(), e));
                }
            }
        }
        failures
    }

    /// Forgets what node `node` holds in memory, as a reboot of that node would, and records
    /// it as lacking every KEK until it unlocks again (on first use, `unlock_all` or restore).
    pub fn reset_node(&self, node: Uuid) -> Result<()> {
        let idx = self.node_index(node)?;
        let rt = &self.nodes[idx];
        rt.keks.write().clear();
        rt.table.clear();
        let prefix = layout::nodes_of(node);
        for (k, v) in self.scan_all(&prefix)? {
            let mut rec = NodeRecord::decode(&v)?;
            rec.loaded = None;
            rec.last_error = Some(NodeError {
                code: ErrorKind::KekUnavailable.code(),
                message: "The node restarted and has not unlocked the KEK yet.".into(),
            });
            rec.updated = now_secs();
            let mut txn = Transaction::new();
            // Only over the record as read: a rekey that rewrote it meanwhile wins.
            txn.check(Check::Equals(k.clone(), v)).put(k, rec.encode());
            match self.store.commit(txn) {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(store_failed(e)),
            }
        }
        Ok(())
    }

    /// Drops keys from every node table (they reload, rewrapped, on their next read).
    pub(crate) fn forget_keys(&self, ids: &[DataKeyId]) {
        for n in &self.nodes {
            for id in ids {
                n.table.evict(id);
            }
        }
    }

    /// In a store shared with other processes (one per node): follows what they change — a key
    /// deleted anywhere is evicted here (crypto-erase holds cluster-wide), a retired KEK
    /// generation or a deleted configuration is forgotten — and keeps this process's liveness
    /// record, bound to its lease, so that other nodes see it alive.
    pub(crate) fn follow_other_processes(self: &Arc<Self>) -> Result<()> {
        let weak = Arc::downgrade(self);
        self.store
            .watch_deletes(
                layout::DATA_KEY,
                Box::new(move |change| {
                    let Some(engine) = weak.upgrade() else { return };
                    let k = match change {
                        Change::Delete(k) => k,
                        // Deletes may have been missed: every table refills from the store.
                        Change::Resync => {
                            for n in &engine.nodes {
                                n.table.clear();
                            }
                            return;
                        }
                        Change::Put(..) => return,
                    };
                    if let Some(id) = k
                        .strip_prefix(layout::DATA_KEY)
                        .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
                        .map(DataKeyId::from_bytes)
                    {
                        for n in &engine.nodes {
                            n.table.evict(&id);
                        }
                    }
                }),
            )
            .map_err(store_failed)?;
        let weak = Arc::downgrade(self);
        self.store
            .watch_deletes(
                layout::KEK,
                Box::new(move |change| {
                    let Some(engine) = weak.upgrade() else { return };
                    let k = match change {
                        Change::Delete(k) => k,
                        Change::Resync => {
                            // Off the watch thread: it reads the store.
                            std::thread::spawn(move || engine.forget_what_is_gone());
                            return;
                        }
                        Change::Put(..) => return,
                    };
                    let Some(rest) = k.strip_prefix(layout::KEK) else {
                        return;
                    };
                    if let (Some(config), Some(generation)) = (
                        rest.get(..16).and_then(|b| Uuid::from_slice(b).ok()),
                        rest.get(16..20)
                            .and_then(|b| <[u8; 4]>::try_from(b).ok())
                            .map(u32::from_be_bytes),
                    ) {
                        for n in &engine.nodes {
                            n.forget_generation(config, generation);
                        }
                    }
                }),
            )
            .map_err(store_failed)?;
        let weak = Arc::downgrade(self);
        self.store
            .watch(
                layout::CONFIG,
                Box::new(move |change| {
                    let Some(engine) = weak.upgrade() else { return };
                    let k = match change {
                        Change::Delete(k) => k,
                        Change::Resync => {
                            std::thread::spawn(move || engine.forget_what_is_gone());
                            return;
                        }
                        // A new or changed configuration (credentials, key): check its vault
                        // from here now, for every node's azure_reachability, rather than at
                        // the next periodic probe. Off the watch thread: it calls the backend.
                        Change::Put(_, v) => {
                            std::thread::spawn(move || engine.probe_backend_of(&v));
                            return;
                        }
                    };
                    if let Some(config) = k
                        .strip_prefix(layout::CONFIG)
                        .and_then(|b| Uuid::from_slice(b).ok())
                    {
                        for n in &engine.nodes {
                            n.forget_config(config);
                        }
                        engine
                            .backend_checks
                            .lock()
                            .retain(|(_, c), _| *c != config);
                    }
                }),
            )
            .map_err(store_failed)?;
        let weak = Arc::downgrade(self);
        self.store
            .watch(
                layout::RESTORE_REQUEST,
                Box::new(move |change| {
                    let Some(engine) = weak.upgrade() else { return };
                    let k = match change {
                        Change::Put(k, _) => k,
                        // A request may have been missed: honour every one still there.
                        Change::Resync => {
                            std::thread::spawn(move || {
                                for config in engine.restore_requests() {
                                    engine.restore_here_in_background(config);
                                }
                            });
                            return;
                        }
                        Change::Delete(_) => return,
                    };
                    if let Some(config) = k
                        .strip_prefix(layout::RESTORE_REQUEST)
                        .and_then(|b| Uuid::from_slice(b).ok())
                    {
                        engine.restore_here_in_background(config);
                    }
                }),
            )
            .map_err(store_failed)?;
        self.write_liveness();
        Ok(())
    }

    /// After lost changes: forgets every KEK generation and configuration this process holds
    /// that is no longer in the store (retired or deleted while the changes were lost).
    pub(crate) fn forget_what_is_gone(&self) {
        for rt in &self.nodes {
            let held: Vec<(Uuid, u32)> = rt.keks.read().keys().copied().collect();
            for (config, generation) in held {
                match self.store.get(&layout::config(config)) {
                    Ok(None) => rt.forget_config(config),
                    Ok(Some(_)) => {
                        if let Ok(None) = self.store.get(&layout::kek(config, generation)) {
                            rt.forget_generation(config, generation);
                        }
                    }
                    // Unreadable now: keep serving; the next resync or change decides.
                    Err(_) => {}
                }
            }
        }
    }

    /// The configurations with a restore request in the store.
    pub(crate) fn restore_requests(&self) -> Vec<Uuid> {
        let Ok(requests) = self.scan_all(layout::RESTORE_REQUEST) else {
            return Vec::new();
        };
        requests
            .iter()
            .filter_map(|(k, _)| {
                k.strip_prefix(layout::RESTORE_REQUEST)
                    .and_then(|b| Uuid::from_slice(b).ok())
            })
            .collect()
    }

    /// [`Engine::restore_here`] off the caller's thread (an unlock calls the backend), one
    /// thread per configuration at most: a request arriving while one runs makes it run once
    /// more rather than start another thread.
    pub(crate) fn restore_here_in_background(self: &Arc<Self>, config: Uuid) {
        {
            let mut restoring = self.restoring.lock();
            if let Some(again) = restoring.get_mut(&config) {
                *again = true;
                return;
            }
            restoring.insert(config, false);
        }
        let engine = self.clone();
        std::thread::spawn(move || {
            loop {
                engine.restore_here(config);
                let mut restoring = engine.restoring.lock();
                match restoring.get_mut(&config) {
                    Some(again) if *again => *again = false,
                    _ => {
                        restoring.remove(&config);
                        return;
                    }
                }
            }
        });
    }

    /// Unlocks the active KEK of `config` on every node of this process that lacks it and
    /// loads its keys (a restore asked for by another node). Failures are recorded in the
    /// node records, where the asking node reads them.
    pub(crate) fn restore_here(&self, config: Uuid) {
        let Ok((cfg, _)) = self.load_config(config) else {
            return;
        };
        let Some(g) = cfg.active_generation else {
            return;
        };
        for idx in 0..self.nodes.len() {
            if self.nodes[idx].kek(config, g).is_none() && self.unlock_on(idx, &cfg, g).is_ok() {
                let _ = self.load_table(idx, &cfg);
            }
        }
    }

    /// Whether `node`'s liveness record says it holds generation `g` of `config`.
    pub(crate) fn liveness_holds(&self, node: Uuid, config: Uuid, g: u32) -> Result<bool> {
        let Some(raw) = self
            .store
            .get(&layout::liveness(node))
            .map_err(store_failed)?
        else {
            return Ok(false);
        };
        let rec: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
        let held = rec["keks"].as_array().is_some_and(|keks| {
            keks.iter().any(|k| {
                k[0].as_str() == Some(config.to_string().as_str())
                    && k[1].as_u64() == Some(g.into())
            })
        });
        Ok(held)
    }

    /// Writes the liveness record of every node this process manages: alive, since when,
    /// which KEK generations it holds, and its KMIP server's state (bound to the process's
    /// lease in a shared store).
    pub(crate) fn write_liveness(&self) {
        // One writer at a time, each snapshot taken under the lock: a snapshot taken before an
        // unlock must not land after the unlock's own write and hide the KEK it unlocked.
        let _in_order = self.liveness_writes.lock();
        for rt in &self.nodes {
            let keks: Vec<(Uuid, u32)> = rt.keks.read().keys().copied().collect();
            let rec = serde_json::json!({
                "v": 1,
                "node": rt.node.uuid,
                "name": rt.node.name,
                "updated": now_secs(),
                "keks": keks,
                "akv": self.backend_checks_of(rt.node.uuid),
                "akv_every": self.backend_probe_interval.as_secs(),
                "kmip": self.kmip_server().to_json(),
                // This build writes a configuration's deletion mark with every record it
                // deletes: a rekey may fence its pages by span only while every live process
                // says so (`Engine::every_live_process_marks_deletions`).
                (super::MARKS_DELETIONS): true,
            });
            let _ = self
                .store
                .put_ephemeral(&layout::liveness(rt.node.uuid), rec.to_string().as_bytes());
        }
    }

    /// Whether every live process sharing the store writes deletion marks (`layout::deletions`)
    /// — always in a store no other process shares. A process of an earlier build (format 5)
    /// deletes records without the mark; while one is alive, rekey pages are fenced record by
    /// record. A store that cannot be read counts as holding one.
    pub(crate) fn every_live_process_marks_deletions(&self) -> bool {
        !self.store.is_shared()
            || matches!(super::live_processes_mark_deletions(&*self.store), Ok(true))
    }

    /// Whether the process running `node` is alive: always for nodes of this process; in a
    /// shared store, whether its liveness record exists (it vanishes with its lease).
    pub(crate) fn node_alive(&self, node: Uuid) -> Result<bool> {
        if self.nodes.iter().any(|n| n.node.uuid == node) || !self.store.is_shared() {
            return Ok(true);
        }
        Ok(self
            .store
            .get(&layout::liveness(node))
            .map_err(store_failed)?
            .is_some())
    }

    pub(crate) fn node_index(&self, node: Uuid) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.node.uuid == node)
            .ok_or_else(|| {
                Error::new(ErrorKind::EntryNotFound)
                    .with_detail(format!("Node {node} is not managed by this process."))
                    .with_target("node")
            })
    }
}
