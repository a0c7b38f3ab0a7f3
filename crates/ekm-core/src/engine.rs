//! The engine: configurations, the key hierarchy and the local node's key table.
//!
//! Owns: every state change of ekm, each as one store transaction; the unlocked KEKs and the
//! node key table in memory.
//! Must never: return a data key id before the key is durable; persist or log plaintext key
//! material; leave a change half-applied on any error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::backend::{Backend, BackendCall, BackendError};
use crate::codec::{KekState, KeyOwner, WrappedDataKey, WrappedKek, keys};
use crate::config::{AuthenticationMethod, AzureKeyVault, CreateRequest, PatchRequest};
use crate::crypto::{Kek, ProtectionKey};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{DataKeyId, KeyTag};
use crate::secret::{KEY_LEN, KeyMaterial};
use crate::store::{Check, Store, StoreError, Transaction};
use crate::stored::{ConfigParts, StoredConfig};
use crate::topology::{Node, Topology};

/// The on-disk format version this build writes and reads.
pub const FORMAT_VERSION: &[u8] = b"1";

/// Page size of internal scans.
const SCAN_PAGE: usize = 1024;

/// What the embedder gives the engine.
pub struct EngineOptions {
    /// The durable store.
    pub store: Arc<dyn Store>,
    /// The external key manager.
    pub backend: Arc<dyn Backend>,
    /// Cluster, nodes, SVMs.
    pub topology: Topology,
    /// The node-local key sealing configuration secrets.
    pub protection_key: ProtectionKey,
    /// Which node this process is; the first node of the topology when `None`.
    pub local_node: Option<Uuid>,
}

/// A data key as listed: never its material.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
}

/// A wrapped data key held in the node key table with the KEK that opens it.
struct TableEntry {
    record: WrappedDataKey,
    kek: Arc<Kek>,
}

/// What the data path of one node reads: wrapped keys and the unlocked KEKs that open them.
#[derive(Default)]
struct NodeKeyTable {
    keys: DashMap<DataKeyId, TableEntry>,
}

/// The ekm engine. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Engine {
    store: Arc<dyn Store>,
    backend: Arc<dyn Backend>,
    topology: Topology,
    protection: ProtectionKey,
    local: Node,
    /// Unlocked KEKs by (configuration, generation).
    keks: RwLock<HashMap<(Uuid, u32), Arc<Kek>>>,
    /// Serializes configuration changes and KEK creation/unlock.
    admin: Mutex<()>,
    /// Data-key writers hold it shared; deleting a configuration holds it exclusively, so no
    /// key can be created under a configuration while it is being deleted.
    gate: RwLock<()>,
    table: NodeKeyTable,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store.engine_name())
            .field("backend", &self.backend.kind())
            .field("local_node", &self.local.name)
            .field("cached_keys", &self.table.keys.len())
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn store_failed(e: StoreError) -> Error {
    Error::new(ErrorKind::StoreFailed).with_detail(e.to_string())
}

fn akv_failed(e: &BackendError) -> Error {
    let mut detail = format!("Cause: {e}.");
    if let Some(d) = e.retry_after {
        detail.push_str(&format!(" Retry after {} seconds.", d.as_secs().max(1)));
    }
    Error::new(ErrorKind::AkvUnavailable).with_detail(detail)
}

impl Engine {
    /// Opens the engine over a store. Does not call the backend: KEKs unlock on first use, so
    /// the engine opens (and serves configuration reads) while AKV is unreachable.
    pub fn open(opts: EngineOptions) -> Result<Engine> {
        opts.topology.validate()?;
        let local = match opts.local_node {
            Some(u) => opts.topology.node(u).cloned().ok_or_else(|| {
                Error::invalid_value("node", "the local node is not in the topology.")
            })?,
            None => opts.topology.nodes[0].clone(),
        };
        match opts.store.get(keys::FORMAT).map_err(store_failed)? {
            Some(v) if v == FORMAT_VERSION => {}
            Some(v) => {
                return Err(Error::corrupt(&format!(
                    "The store has format version {:?}; this build reads {:?}.",
                    String::from_utf8_lossy(&v),
                    String::from_utf8_lossy(FORMAT_VERSION)
                )));
            }
            None => {
                let mut txn = Transaction::new();
                txn.check(Check::Absent(keys::FORMAT.to_vec()))
                    .put(keys::FORMAT, FORMAT_VERSION);
                match opts.store.commit(txn) {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(store_failed(e)),
                }
            }
        }
        Ok(Engine {
            store: opts.store,
            backend: opts.backend,
            topology: opts.topology,
            protection: opts.protection_key,
            local,
            keks: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
            gate: RwLock::new(()),
            table: NodeKeyTable::default(),
        })
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The node this engine serves.
    pub fn local_node(&self) -> &Node {
        &self.local
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    // ----- configurations -------------------------------------------------------------------

    fn load_config(&self, uuid: Uuid) -> Result<(StoredConfig, Vec<u8>)> {
        let bytes = self
            .store
            .get(&keys::config(uuid))
            .map_err(store_failed)?
            .ok_or_else(|| Error::new(ErrorKind::EntryNotFound).with_target("uuid"))?;
        Ok((StoredConfig::decode(&bytes)?, bytes))
    }

    fn config_for_scope(&self, svm: Option<Uuid>) -> Result<Option<StoredConfig>> {
        let Some(raw) = self.store.get(&keys::scope(svm)).map_err(store_failed)? else {
            return Ok(None);
        };
        let uuid = Uuid::from_slice(&raw)
            .map_err(|_| Error::corrupt("A scope index entry is malformed."))?;
        Ok(Some(self.load_config(uuid)?.0))
    }

    /// Creates a configuration: checks the SVM, uniqueness, and that the backend can be reached
    /// and the key can wrap and unwrap with these credentials; then persists it. Nothing is
    /// written on any failure.
    pub fn create_config(&self, req: CreateRequest) -> Result<AzureKeyVault> {
        let svm = req
            .svm
            .as_ref()
            .map(|s| self.topology.resolve_svm(s))
            .transpose()?;
        let _admin = self.admin.lock();
        let scope_key = keys::scope(svm.as_ref().map(|s| s.uuid()));
        if self.store.get(&scope_key).map_err(store_failed)?.is_some() {
            return Err(Error::new(ErrorKind::AlreadyConfigured));
        }
        let parts = ConfigParts {
            uuid: Uuid::new_v4(),
            svm,
            client_id: req.client_id,
            tenant_id: req.tenant_id,
            name: req.name,
            key_id: req.key_id,
            credential: req.credential,
            proxy: req.proxy,
            revision: 1,
            active_generation: None,
        };
        let access = parts.access();
        let call = BackendCall {
            node: &self.local,
            access: &access,
        };
        self.backend
            .check(&call, &parts.key_id)
            .map_err(|e| akv_failed(&e))?;
        let record = StoredConfig::seal(&parts, &self.protection)?;
        let mut txn = Transaction::new();
        txn.check(Check::Absent(scope_key.clone()))
            .put(scope_key, parts.uuid.as_bytes().to_vec())
            .put(keys::config(parts.uuid), record.encode());
        match self.store.commit(txn) {
            Ok(()) => record.view(),
            Err(StoreError::Conflict(_)) => Err(Error::new(ErrorKind::AlreadyConfigured)),
            Err(e) => Err(store_failed(e)),
        }
    }

    /// All configurations: the cluster's first, then the SVMs' by SVM name.
    pub fn list_configs(&self) -> Result<Vec<AzureKeyVault>> {
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .store
                .scan(keys::CONFIG, after.as_deref(), SCAN_PAGE)
                .map_err(store_failed)?;
            let done = page.len() < SCAN_PAGE;
            for (k, v) in &page {
                out.push(StoredConfig::decode(v)?.view()?);
                after = Some(k.clone());
            }
            if done {
                break;
            }
        }
        out.sort_by(|a, b| {
            let key = |c: &AzureKeyVault| c.svm.as_ref().map(|s| s.name().to_owned());
            key(a).cmp(&key(b))
        });
        Ok(out)
    }

    /// One configuration; [`ErrorKind::EntryNotFound`] for an unknown uuid.
    pub fn get_config(&self, uuid: Uuid) -> Result<AzureKeyVault> {
        self.load_config(uuid)?.0.view()
    }

    /// Updates credentials, proxy, client or tenant id. The new settings are proven against the
    /// backend first; the old configuration stays in force until then.
    pub fn patch_config(&self, uuid: Uuid, patch: PatchRequest) -> Result<AzureKeyVault> {
        let _admin = self.admin.lock();
        let (stored, old_bytes) = self.load_config(uuid)?;
        let mut parts = stored.unseal(&self.protection)?;
        let ids_change = patch
            .client_id
            .as_ref()
            .is_some_and(|c| *c != parts.client_id)
            || patch
                .tenant_id
                .as_ref()
                .is_some_and(|t| *t != parts.tenant_id);
        let stays_secret = match &patch.credential {
            None => parts.credential.method() == AuthenticationMethod::ClientSecret,
            Some(_) => false,
        };
        if ids_change && stays_secret {
            return Err(Error::new(ErrorKind::ClientSecretRequired)
                .with_detail("A new client_id or tenant_id needs its client secret.")
                .with_target("client_secret"));
        }
        parts.proxy = patch.proxy.apply(parts.proxy.as_ref())?;
        if let Some(c) = patch.client_id {
            parts.client_id = c;
        }
        if let Some(t) = patch.tenant_id {
            parts.tenant_id = t;
        }
        if let Some(cred) = patch.credential {
            parts.credential = cred;
        }
        parts.revision += 1;
        let access = parts.access();
        let call = BackendCall {
            node: &self.local,
            access: &access,
        };
        self.backend
            .check(&call, &parts.key_id)
            .map_err(|e| akv_failed(&e))?;
        let record = StoredConfig::seal(&parts, &self.protection)?;
        let key = keys::config(uuid);
        let mut txn = Transaction::new();
        txn.check(Check::Equals(key.clone(), old_bytes))
            .put(key, record.encode());
        self.store.commit(txn).map_err(store_failed)?;
        record.view()
    }

    /// Deletes a configuration; refused with [`ErrorKind::KeysExist`] while it protects data
    /// keys. Removes its wrapped KEKs in the same transaction.
    pub fn delete_config(&self, uuid: Uuid) -> Result<()> {
        let _gate = self.gate.write();
        let _admin = self.admin.lock();
        let (stored, bytes) = self.load_config(uuid)?;
        let has_keys = !self
            .store
            .scan(&keys::key_index_prefix(uuid), None, 1)
            .map_err(store_failed)?
            .is_empty();
        if has_keys {
            return Err(Error::new(ErrorKind::KeysExist));
        }
        let cfg_key = keys::config(uuid);
        let mut txn = Transaction::new();
        txn.check(Check::Equals(cfg_key.clone(), bytes))
            .delete(cfg_key)
            .delete(keys::scope(stored.svm_uuid()));
        for (k, _) in self
            .store
            .scan(&keys::kek_prefix(uuid), None, usize::MAX)
            .map_err(store_failed)?
        {
            txn.delete(k);
        }
        self.store.commit(txn).map_err(store_failed)?;
        self.keks.write().retain(|(c, _), _| *c != uuid);
        Ok(())
    }

    // ----- the key hierarchy ----------------------------------------------------------------

    /// The configuration that protects `owner`'s keys: the SVM's own, else the cluster's.
    fn config_for_owner(&self, owner: KeyOwner) -> Result<StoredConfig> {
        if let KeyOwner::Svm(u) = owner {
            if self.topology.svm_by_uuid(u).is_none() {
                return Err(Error::new(ErrorKind::SvmNotFound).with_detail(format!(
                    "SVM with uuid \"{u}\" does not exist in this cluster."
                )));
            }
            if let Some(c) = self.config_for_scope(Some(u))? {
                return Ok(c);
            }
        }
        self.config_for_scope(None)?
            .ok_or_else(|| Error::new(ErrorKind::NotConfigured))
    }

    /// The unlocked KEK `generation` of `config`, unwrapping it through the backend on first use.
    fn unlocked_kek(&self, config: &StoredConfig, generation: u32) -> Result<Arc<Kek>> {
        if let Some(k) = self.keks.read().get(&(config.uuid, generation)) {
            return Ok(k.clone());
        }
        let _admin = self.admin.lock();
        if let Some(k) = self.keks.read().get(&(config.uuid, generation)) {
            return Ok(k.clone());
        }
        let wrapped = self
            .store
            .get(&keys::kek(config.uuid, generation))
            .map_err(store_failed)?
            .ok_or_else(|| Error::new(ErrorKind::MissingWrappedKek))?;
        let wrapped = WrappedKek::decode(&wrapped)?;
        let parts = config.unseal(&self.protection)?;
        let access = parts.access();
        let call = BackendCall {
            node: &self.local,
            access: &access,
        };
        let material = self
            .backend
            .unwrap_kek(&call, &wrapped.key_id, &wrapped.wrapped)
            .map_err(|e| {
                Error::new(ErrorKind::KekUnavailable).with_detail(format!(
                    "Unlocking generation {generation} of configuration {} needs AKV, which failed: {e}.",
                    config.uuid
                ))
            })?;
        let material = KeyMaterial::from_slice(material.expose_secret()).ok_or_else(|| {
            Error::new(ErrorKind::KekUnavailable).with_detail(format!(
                "The backend returned {} bytes for a {KEY_LEN}-byte KEK.",
                material.len()
            ))
        })?;
        let kek = Arc::new(Kek::from_material(material, generation));
        let check = kek.aead().open_vec(
            &WrappedKek::check_aad(config.uuid, generation),
            &wrapped.check,
        );
        if !check.is_ok_and(|c| c.as_slice() == WrappedKek::CHECK_PLAINTEXT) {
            return Err(Error::new(ErrorKind::KekUnavailable).with_detail(format!(
                "The backend unwrapped generation {generation} of configuration {} to a different key; the vault key may have been replaced.",
                config.uuid
            )));
        }
        self.keks
            .write()
            .insert((config.uuid, generation), kek.clone());
        Ok(kek)
    }

    /// The active KEK of `config`, creating generation 1 (wrapped by the backend) if the scope
    /// has none yet. Returns the (possibly updated) configuration with the KEK.
    fn active_kek(&self, config: StoredConfig) -> Result<(StoredConfig, Arc<Kek>)> {
        if let Some(g) = config.active_generation {
            let kek = self.unlocked_kek(&config, g)?;
            return Ok((config, kek));
        }
        let _admin = self.admin.lock();
        let (config, bytes) = self.load_config(config.uuid)?;
        if let Some(g) = config.active_generation {
            drop(_admin);
            let kek = self.unlocked_kek(&config, g)?;
            return Ok((config, kek));
        }
        let generation = 1;
        let kek = Kek::generate(generation);
        let parts = config.unseal(&self.protection)?;
        let access = parts.access();
        let call = BackendCall {
            node: &self.local,
            access: &access,
        };
        let wrapped = self
            .backend
            .wrap_kek(&call, &parts.key_id, kek.material())
            .map_err(|e| akv_failed(&e))?;
        let check = kek
            .aead()
            .seal_vec(
                &WrappedKek::check_aad(config.uuid, generation),
                WrappedKek::CHECK_PLAINTEXT,
            )
            .map_err(|_| Error::corrupt("Sealing the KEK check value failed."))?;
        let record = WrappedKek {
            config: config.uuid,
            generation,
            state: KekState::Active,
            created: now_secs(),
            backend: self.backend.kind().to_owned(),
            key_id: parts.key_id.clone(),
            algorithm: self.backend.algorithm().to_owned(),
            wrapped,
            check,
        };
        let mut updated = config.clone();
        updated.active_generation = Some(generation);
        let cfg_key = keys::config(config.uuid);
        let kek_key = keys::kek(config.uuid, generation);
        let mut txn = Transaction::new();
        txn.check(Check::Equals(cfg_key.clone(), bytes))
            .check(Check::Absent(kek_key.clone()))
            .put(kek_key, record.encode())
            .put(cfg_key, updated.encode());
        self.store.commit(txn).map_err(store_failed)?;
        let kek = Arc::new(kek);
        self.keks
            .write()
            .insert((config.uuid, generation), kek.clone());
        Ok((updated, kek))
    }

    /// Creates a 256-bit data key for `owner`, wrapped by the active KEK of the configuration
    /// that protects the owner. The key is durable before its id is returned.
    pub fn create_data_key(&self, owner: KeyOwner, key_tag: KeyTag) -> Result<DataKeyId> {
        let _gate = self.gate.read();
        let config = self.config_for_owner(owner)?;
        let (config, kek) = self.active_kek(config)?;
        let generation = kek.generation();
        let id = DataKeyId::random();
        let material = KeyMaterial::random();
        let aad = WrappedDataKey::aad(config.uuid, &id, generation, owner);
        let mut ciphertext = *material.expose_secret();
        let (nonce, tag) = kek
            .aead()
            .seal_in_place(&aad, &mut ciphertext)
            .map_err(|_| Error::corrupt("Sealing a data key failed."))?;
        kek.count_seal();
        let record = WrappedDataKey {
            config: config.uuid,
            generation,
            owner,
            nonce,
            ciphertext,
            tag,
            key_tag,
        };
        let mut txn = Transaction::new();
        txn.check(Check::Absent(keys::data_key(&id)))
            .check(Check::Present(keys::kek(config.uuid, generation)))
            .put(keys::data_key(&id), record.encode())
            .put(keys::key_index(config.uuid, &id), Vec::new());
        self.store.commit(txn).map_err(|e| match e {
            StoreError::Conflict(_) => Error::new(ErrorKind::StoreFailed)
                .with_detail("The key hierarchy changed during the create; retry."),
            e => store_failed(e),
        })?;
        self.table.keys.insert(id, TableEntry { record, kek });
        Ok(id)
    }

    /// Reads a data key's material, from the node key table (memory) or, on a miss, the store.
    pub fn read_data_key(&self, id: &DataKeyId) -> Result<KeyMaterial> {
        if let Some(entry) = self.table.keys.get(id) {
            return open_entry(id, &entry);
        }
        let record = self.load_data_key(id)?;
        let (config, _) = self.load_config(record.config)?;
        let kek = self.unlocked_kek(&config, record.generation)?;
        let entry = TableEntry { record, kek };
        let material = open_entry(id, &entry)?;
        self.table.keys.insert(*id, entry);
        Ok(material)
    }

    fn load_data_key(&self, id: &DataKeyId) -> Result<WrappedDataKey> {
        let bytes = self
            .store
            .get(&keys::data_key(id))
            .map_err(store_failed)?
            .ok_or_else(|| Error::new(ErrorKind::EntryNotFound).with_target("key_id"))?;
        WrappedDataKey::decode(&bytes)
    }

    /// Deletes a data key durably, then drops it from the node key table.
    pub fn delete_data_key(&self, id: &DataKeyId) -> Result<()> {
        let _gate = self.gate.read();
        let record = self.load_data_key(id)?;
        let mut txn = Transaction::new();
        txn.check(Check::Present(keys::data_key(id)))
            .delete(keys::data_key(id))
            .delete(keys::key_index(record.config, id));
        match self.store.commit(txn) {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(Error::new(ErrorKind::EntryNotFound).with_target("key_id"));
            }
            Err(e) => return Err(store_failed(e)),
        }
        self.table.keys.remove(id);
        Ok(())
    }

    /// The data keys protected by configuration `config`: ids, tags, owners, generations.
    pub fn list_data_keys(&self, config: Uuid) -> Result<Vec<DataKeyInfo>> {
        self.load_config(config)?;
        let prefix = keys::key_index_prefix(config);
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .store
                .scan(&prefix, after.as_deref(), SCAN_PAGE)
                .map_err(store_failed)?;
            let done = page.len() < SCAN_PAGE;
            for (k, _) in &page {
                let raw: [u8; 32] = k[prefix.len()..]
                    .try_into()
                    .map_err(|_| Error::corrupt("A key index entry is malformed."))?;
                let id = DataKeyId::from_bytes(raw);
                let r = self.load_data_key(&id)?;
                out.push(DataKeyInfo {
                    key_id: id,
                    key_tag: r.key_tag,
                    svm_uuid: r.owner.svm(),
                    config_uuid: r.config,
                    kek_generation: r.generation,
                });
                after = Some(k.clone());
            }
            if done {
                break;
            }
        }
        Ok(out)
    }
}

/// Opens a table entry. A failure here means the record or the KEK is not what it claims.
fn open_entry(id: &DataKeyId, e: &TableEntry) -> Result<KeyMaterial> {
    let r = &e.record;
    let aad = WrappedDataKey::aad(r.config, id, r.generation, r.owner);
    let mut buf = r.ciphertext;
    e.kek
        .aead()
        .open_in_place(&r.nonce, &aad, &mut buf, &r.tag)
        .map_err(|_| {
            Error::corrupt(&format!(
                "Data key {id} does not authenticate under its KEK (generation {}).",
                r.generation
            ))
        })?;
    let material = KeyMaterial::from_array(buf);
    zeroize::Zeroize::zeroize(&mut buf);
    Ok(material)
}
