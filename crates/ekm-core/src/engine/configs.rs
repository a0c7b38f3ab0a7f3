//! Configurations: create, list, get, patch and delete a key manager configuration (the seed's
//! `/api/security/azure-key-vaults`), and finding the one that protects a scope or an owner.
//!
//! Owns: the `c/` records and the `s/` scope index; proving new settings against the backend
//! before they are committed.
//! Must never: hold a lock across a backend call; commit settings the backend refused; delete a
//! configuration that protects data keys or that a job holds.
//!
//! | operation | checked in its commit |
//! |---|---|
//! | create | `Absent(s/<scope>)`: the scope has no configuration |
//! | patch | `Equals(c/<uuid>)`: the record the new settings were proven against |
//! | delete | `Equals(c/<uuid>)`, `Absent(a/<uuid>)`; in a shared store the record is marked `deleting` first, then the keys are counted |

use uuid::Uuid;

use super::Engine;
use super::data_keys::OwnerConfig;
use super::helpers::{CONDITIONAL_ATTEMPTS, store_failed};
use crate::backend::{BackendCall, BackendError, BackendErrorKind, provider_failed};
use crate::config::{AuthenticationMethod, AzureKeyVault, CreateRequest, PatchRequest};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::KeyOwner;
use crate::layout;
use crate::provider::Provider;
use crate::store::{Check, StoreError, Transaction};
use crate::stored::{AzureParts, ConfigParts, ProviderParts, StoredConfig};

impl Engine {
    pub(crate) fn load_config(&self, uuid: Uuid) -> Result<(StoredConfig, Vec<u8>)> {
        let bytes = self
            .store
            .get(&layout::config(uuid))
            .map_err(store_failed)?
            .ok_or_else(|| Error::new(ErrorKind::EntryNotFound).with_target("uuid"))?;
        let config = StoredConfig::decode(&bytes, &self.protection)?;
        if config.uuid != uuid {
            return Err(Error::corrupt(&format!(
                "The record stored as configuration {uuid} is configuration {}.",
                config.uuid
            )));
        }
        Ok((config, bytes))
    }

    pub(crate) fn config_for_scope(
        &self,
        svm: Option<Uuid>,
    ) -> Result<Option<(StoredConfig, Vec<u8>)>> {
        let Some(raw) = self.store.get(&layout::scope(svm)).map_err(store_failed)? else {
            return Ok(None);
        };
        let uuid = Uuid::from_slice(&raw)
            .map_err(|_| Error::corrupt("A scope index entry is malformed."))?;
        let (config, bytes) = self.load_config(uuid)?;
        if config.svm_uuid() != svm {
            return Err(Error::corrupt(&format!(
                "The scope index points at configuration {uuid}, which is not that scope's."
            )));
        }
        Ok(Some((config, bytes)))
    }

    /// The configuration that protects `owner`'s new keys: the SVM's own, else the cluster's;
    /// with the checks that prove, inside a commit, that this is still so besides the
    /// configuration record itself: the SVM's own scope entry still absent when the cluster's
    /// configuration was used. (A scope entry that was found needs no check of its own: it
    /// changes only when its configuration is deleted, in the same transaction, and the commit
    /// checks the configuration record.)
    pub(crate) fn config_for_owner(&self, owner: KeyOwner) -> Result<OwnerConfig> {
        let mut checks = Vec::new();
        if let KeyOwner::Svm(u) = owner {
            if self.topology.svm_by_uuid(u).is_none() {
                return Err(Error::new(ErrorKind::SvmNotFound).with_detail(format!(
                    "SVM with uuid \"{u}\" does not exist in this cluster."
                )));
            }
            if let Some((config, bytes)) = self.config_for_scope(Some(u))? {
                return Ok(OwnerConfig {
                    config,
                    bytes,
                    checks,
                });
            }
            checks.push(Check::Absent(layout::scope(Some(u))));
        }
        let (config, bytes) = self.config_for_scope(None)?.ok_or_else(|| match owner {
            KeyOwner::Cluster => Error::for_scope(ErrorKind::NotConfigured, false),
            KeyOwner::Svm(u) => Error::new(ErrorKind::NotConfigured).with_detail(format!(
                "SVM with uuid \"{u}\" has no key manager, and neither has the cluster."
            )),
        })?;
        Ok(OwnerConfig {
            config,
            bytes,
            checks,
        })
    }

    /// Creates a configuration: checks the SVM, uniqueness, and that the backend can be reached
    /// and the key can wrap and unwrap with these credentials; then persists it. Nothing is
    /// written on any failure. No lock is held across the backend call: the commit's
    /// precondition (the scope has no configuration) decides between concurrent creates.
    pub fn create_config(&self, req: CreateRequest) -> Result<AzureKeyVault> {
        let provider = ProviderParts::Azure(AzureParts {
            client_id: req.client_id,
            tenant_id: req.tenant_id,
            name: req.name,
            key_id: req.key_id,
            credential: req.credential,
        });
        self.create_new(req.svm.as_ref(), req.mirror_of, provider, req.proxy)?
            .view()
    }

    /// Creates a configuration of any provider: the scope's own (with its scope entry), or,
    /// with `mirror_of`, an additional root of trust of that configuration's scope
    /// (`protectors.rs`), whose SVM it takes.
    pub(crate) fn create_new(
        &self,
        svm: Option<&crate::topology::SvmSelector>,
        mirror_of: Option<Uuid>,
        provider: ProviderParts,
        proxy: Option<crate::config::ProxyConfig>,
    ) -> Result<StoredConfig> {
        let svm = svm.map(|s| self.topology.resolve_svm(s)).transpose()?;
        let mut parts = ConfigParts {
            uuid: Uuid::new_v4(),
            svm,
            provider,
            proxy,
            revision: 1,
            active_generation: None,
            mirror_of: None,
            mirrors: Vec::new(),
        };
        if let Some(primary) = mirror_of {
            let prim = self.mirror_target(primary, parts.svm.as_ref())?;
            parts.svm = prim.svm_ref();
            parts.mirror_of = Some(primary);
            self.prove_new_config(&mut parts)?;
            return self.attach_mirror(&parts);
        }
        let for_svm = parts.svm.is_some();
        let scope_key = layout::scope(parts.svm.as_ref().map(|s| s.uuid()));
        if self.store.get(&scope_key).map_err(store_failed)?.is_some() {
            return Err(already_configured(for_svm));
        }
        self.commit_new_config(&mut parts, scope_key, || already_configured(for_svm))
    }

    /// Proves and commits a new configuration of any provider, the scope's entry with it.
    pub(crate) fn commit_new_config(
        &self,
        parts: &mut ConfigParts,
        scope_key: Vec<u8>,
        already: impl Fn() -> Error,
    ) -> Result<StoredConfig> {
        self.prove_new_config(parts)?;
        let record = StoredConfig::seal(parts, &self.protection)?;
        let mut txn = Transaction::new();
        txn.check(Check::Absent(scope_key.clone()))
            .put(scope_key, parts.uuid.as_bytes().to_vec())
            .put(layout::config(parts.uuid), record.encode(&self.protection)?);
        match self.store.commit(txn) {
            Ok(()) => Ok(record),
            Err(StoreError::Conflict(_)) => Err(already()),
            Err(e) => Err(store_failed(e)),
        }
    }

    /// A new configuration's provider is served, its key resolves to the exact key (which goes
    /// into `parts`), and its backend accepts the credential and wraps and unwraps with it.
    fn prove_new_config(&self, parts: &mut ConfigParts) -> Result<()> {
        let provider = parts.external_key().provider();
        if !self.backend.serves(provider) {
            return Err(provider.not_enabled());
        }
        // The exact key goes into the record (an AWS alias resolves to its key's ARN).
        let access = parts.access();
        let call = BackendCall {
            node: &self.nodes[self.local].node,
            access: &access,
        };
        let exact = self
            .backend
            .resolve(&call, &parts.external_key())
            .map_err(|e| provider_failed(provider, &e))?;
        parts.set_external_key(exact)?;
        self.check_backend(parts)
            .map_err(|e| provider_failed(provider, &e))
    }

    /// Proves the backend accepts `parts`' credentials and can wrap and unwrap with its key.
    fn check_backend(&self, parts: &ConfigParts) -> std::result::Result<(), BackendError> {
        let access = parts.access();
        let call = BackendCall {
            node: &self.nodes[self.local].node,
            access: &access,
        };
        self.backend.check(&call, &parts.external_key())
    }

    /// All configurations: the cluster's first, then the SVMs' by SVM name.
    pub fn list_configs(&self) -> Result<Vec<AzureKeyVault>> {
        let mut out = Vec::new();
        for (_, v) in self.scan_all(layout::CONFIG)? {
            let c = StoredConfig::decode(&v, &self.protection)?;
            if c.provider() == Provider::AzureKeyVault {
                out.push(c.view()?);
            }
        }
        out.sort_by(|a, b| {
            let key = |c: &AzureKeyVault| c.svm.as_ref().map(|s| s.name().to_owned());
            key(a).cmp(&key(b))
        });
        Ok(out)
    }

    /// Whether configuration `uuid` protects any data key.
    fn has_records(&self, uuid: Uuid) -> Result<bool> {
        Ok(!self
            .store
            .scan(&layout::records(uuid), None, 1)
            .map_err(store_failed)?
            .is_empty())
    }

    /// One configuration; [`ErrorKind::EntryNotFound`] for an unknown uuid.
    pub fn get_config(&self, uuid: Uuid) -> Result<AzureKeyVault> {
        self.load_config(uuid)?.0.view()
    }

    /// Updates credentials, proxy, client or tenant id. The new settings are proven against the
    /// backend first (a new client or tenant id alone is proven with the stored credential);
    /// the old configuration stays in force until then. No lock is held across the backend
    /// call: the commit is conditional on the record proven against, and a configuration that
    /// changed meanwhile is patched and proven again.
    pub fn patch_config(&self, uuid: Uuid, patch: PatchRequest) -> Result<AzureKeyVault> {
        for _ in 0..CONDITIONAL_ATTEMPTS {
            let (stored, old_bytes) = self.load_config(uuid)?;
            stored.view()?;
            let mut parts = stored.unseal(&self.protection)?;
            parts.proxy = patch.proxy.apply(parts.proxy.as_ref())?;
            if let ProviderParts::Azure(az) = &mut parts.provider {
                if let Some(c) = &patch.client_id {
                    az.client_id = c.clone();
                }
                if let Some(t) = &patch.tenant_id {
                    az.tenant_id = t.clone();
                }
                if let Some(cred) = &patch.credential {
                    az.credential = cred.clone();
                }
            }
            parts.revision += 1;
            self.check_backend(&parts)
                .map_err(|e| refused_credentials(&e, &parts))?;
            let record = StoredConfig::seal(&parts, &self.protection)?;
            let key = layout::config(uuid);
            let mut txn = Transaction::new();
            txn.check(Check::Equals(key.clone(), old_bytes))
                .put(key, record.encode(&self.protection)?);
            match self.store.commit(txn) {
                Ok(()) => return record.view(),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(store_failed(e)),
            }
        }
        Err(Error::new(ErrorKind::StoreFailed)
            .with_detail("The configuration kept changing during the update; retry."))
    }

    /// Deletes a configuration; refused with [`ErrorKind::KeysExist`] while it protects data
    /// keys and with [`ErrorKind::JobInProgress`] while a job runs on it. Removes its wrapped
    /// KEKs, node records and seal counters in the same transaction.
    pub fn delete_config(&self, uuid: Uuid) -> Result<()> {
        let _gate = self.gate.write();
        let _admin = self.admin.lock();
        let (stored, bytes) = self.load_config(uuid)?;
        if !stored.mirrors().is_empty() {
            let names: Vec<String> = stored.mirrors().iter().map(Uuid::to_string).collect();
            return Err(Error::new(ErrorKind::MirrorsAttached).with_detail(format!(
                "Its scope's keys are also protected by {}: delete each of them first (they hold only copies of this key manager's KEK); this one protects the keys last.",
                names.join(", ")
            )));
        }
        if stored.mirror_of().is_some() {
            return self.detach_mirror(uuid);
        }
        let job_running = || -> Result<bool> {
            Ok(self
                .store
                .get(&layout::marker(uuid))
                .map_err(store_failed)?
                .is_some())
        };
        if !self.store.is_shared() && self.has_records(uuid)? {
            return Err(keys_exist(&stored));
        }
        if job_running()? {
            return Err(Error::new(ErrorKind::JobInProgress));
        }
        // The gate holds off this process's creates only. In a cluster store, mark the record
        // first: a create in another process that read it fails its check on it, reads it
        // again and sees the mark; so the scan below sees every key that will ever be created.
        if !self.store.is_shared() {
            return self.remove_config(&stored, bytes);
        }
        let mut marked = stored.clone();
        marked.deleting = true;
        let marked_bytes = marked.encode(&self.protection)?;
        let mut txn = Transaction::new();
        txn.check(Check::Equals(layout::config(uuid), bytes))
            .put(layout::config(uuid), marked_bytes.clone());
        self.store.commit(txn).map_err(store_failed)?;
        let removed = match self.has_records(uuid) {
            Ok(true) => Err(keys_exist(&marked)),
            Ok(false) => self.remove_config(&marked, marked_bytes),
            Err(e) => Err(e),
        };
        if removed.is_err() {
            // Keys exist, a job started, or the store failed: the configuration stays, and
            // creates must work again (a mark left behind would refuse them all).
            let _ = self.clear_delete_mark(uuid);
        }
        removed
    }

    /// Deletes configuration `stored` (as `bytes`, checked) with its scope entry, KEK
    /// generations, seal counters and node records, unless a job holds it.
    fn remove_config(&self, stored: &StoredConfig, bytes: Vec<u8>) -> Result<()> {
        let uuid = stored.uuid;
        let cfg_key = layout::config(uuid);
        let mut txn = Transaction::new();
        txn.check(Check::Equals(cfg_key.clone(), bytes))
            .check(Check::Absent(layout::marker(uuid)))
            .delete(cfg_key)
            .delete(layout::scope(stored.svm_uuid()))
            .delete(layout::deletions(uuid));
        for (k, _) in self.scan_all(&layout::kek_prefix(uuid))? {
            txn.delete(k);
        }
        for (k, _) in self.scan_all(&layout::seals_of(uuid))? {
            txn.delete(k);
        }
        for (k, _) in self.scan_all(&layout::protector_copies(uuid))? {
            txn.delete(k);
        }
        for n in &self.topology.nodes {
            txn.delete(layout::node(n.uuid, uuid));
        }
        self.store.commit(txn).map_err(store_failed)?;
        for n in &self.nodes {
            n.forget_config(uuid);
        }
        self.seals.lock().retain(|(c, _), _| *c != uuid);
        self.backend_checks.lock().retain(|(_, c), _| *c != uuid);
        Ok(())
    }

    /// Clears the "being deleted" mark of a configuration whose delete did not happen, on the
    /// record as it is now (a job may have rewritten it, mark included, meanwhile).
    fn clear_delete_mark(&self, uuid: Uuid) -> Result<()> {
        for _ in 0..CONDITIONAL_ATTEMPTS {
            let (mut stored, bytes) = self.load_config(uuid)?;
            if !stored.deleting {
                return Ok(());
            }
            stored.deleting = false;
            let mut txn = Transaction::new();
            txn.check(Check::Equals(layout::config(uuid), bytes))
                .put(layout::config(uuid), stored.encode(&self.protection)?);
            match self.store.commit(txn) {
                Err(StoreError::Conflict(_)) => continue,
                r => return r.map_err(store_failed),
            }
        }
        Err(Error::new(ErrorKind::StoreFailed)
            .with_detail("The configuration kept changing while its delete mark was cleared."))
    }
}

/// 65537500, naming the scope: the seed's text says "SVM", which is wrong for the cluster.
pub(super) fn already_configured(svm: bool) -> Error {
    Error::for_scope(ErrorKind::AlreadyConfigured, svm)
}

/// 65536867 for deleting `config` while it protects data keys, said of its scope, with the
/// way out: delete its data keys first.
fn keys_exist(config: &StoredConfig) -> Error {
    let uuid = config.uuid;
    Error::for_scope(ErrorKind::KeysExist, config.svm_uuid().is_some()).with_detail(format!(
        "Delete its data keys first: GET {base}/{uuid}/keys lists them, DELETE {base}/{uuid}/keys/{{key_id}} deletes one; then delete the key manager.",
        base = config.provider().collection()
    ))
}

/// A patch's new settings refused by the backend: an identity provider that refuses the
/// credential is the seed's "invalid client secret" / "invalid client certificate" (AWS KMS:
/// the same 65537540, said of the secret access key — NetApp documents no AWS code for it);
/// anything else (unreachable, throttled, key unusable) is the backend's error.
pub(super) fn refused_credentials(e: &BackendError, parts: &ConfigParts) -> Error {
    if e.kind != BackendErrorKind::AuthenticationFailed {
        return provider_failed(parts.external_key().provider(), e);
    }
    match &parts.provider {
        ProviderParts::Azure(az) => {
            let kind = match az.credential.method() {
                AuthenticationMethod::ClientSecret => ErrorKind::InvalidClientSecret,
                AuthenticationMethod::Certificate => ErrorKind::InvalidClientCertificate,
            };
            Error::new(kind).with_detail(format!(
                "AKV refused the credential for client_id \"{}\" in tenant \"{}\": {e}. The configuration is unchanged.",
                az.client_id, az.tenant_id
            ))
        }
        ProviderParts::Aws(aws) => Error::new(ErrorKind::InvalidClientSecret)
            .with_message("Invalid secret access key.")
            .with_detail(format!(
                "AWS KMS refused the credential of access_key_id \"{}\": {e}. The configuration is unchanged.",
                aws.settings.access_key_id
            )),
    }
}
