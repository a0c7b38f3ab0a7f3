//! ekm-fake: a fake external key manager with fault injection.
//!
//! It is a test tool and the embedded default of the quick start, not a shortcut: it really
//! wraps KEKs (AES-256-GCM under a per-key vault secret, bound to the key id, and for an AWS KMS
//! key also to the configuration and the KEK generation, as KMS binds them), keeps its vault
//! state in a file when asked, counts the calls it served, and fails on command — unreachable,
//! throttled with a retry-after, added latency, authentication refused, key missing, disabled or
//! wrong, and unreachable from chosen nodes only. Faults are deterministic: nothing is random.
//!
//! Must never: be mistaken for a root of trust. Its vault file holds key material in the clear
//! (mode 0600); with it, the whole hierarchy opens.

#![forbid(unsafe_code)]

mod faults;

use faults::Faults;
pub use faults::{Counters, Fault, Op};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ekm_core::backend::{Backend, BackendCall, BackendError, BackendErrorKind};
use ekm_core::crypto::AeadKey;
use ekm_core::provider::{ExternalKey, Provider};
use ekm_core::secret::{KeyMaterial, SecretBytes};
use parking_lot::Mutex;
use uuid::Uuid;
use zeroize::Zeroizing;

/// The largest fake vault file read (a few thousand keys).
const MAX_VAULT_FILE: usize = 16 << 20;

/// One key of the fake vault.
struct VaultKey {
    material: KeyMaterial,
    enabled: bool,
}

/// The fake vault: key id (with version) → secret.
#[derive(Default)]
struct Vault {
    keys: BTreeMap<String, VaultKey>,
}

/// The fake backend. See the crate docs.
pub struct FakeBackend {
    vault: Mutex<Vault>,
    path: Option<PathBuf>,
    auto_create: bool,
    faults: Mutex<Faults>,
    wraps: AtomicU64,
    unwraps: AtomicU64,
    checks: AtomicU64,
}

impl fmt::Debug for FakeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBackend")
            .field("path", &self.path)
            .field("auto_create", &self.auto_create)
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl Default for FakeBackend {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl FakeBackend {
    fn with(path: Option<PathBuf>, vault: Vault) -> Self {
        FakeBackend {
            vault: Mutex::new(vault),
            path,
            auto_create: true,
            faults: Mutex::new(Faults::default()),
            wraps: AtomicU64::new(0),
            unwraps: AtomicU64::new(0),
            checks: AtomicU64::new(0),
        }
    }

    /// A vault in memory: any well-formed key id names a key created on first use.
    pub fn in_memory() -> Self {
        Self::with(None, Vault::default())
    }

    /// A vault kept in the file `path` (mode 0600, rewritten atomically when a key is created),
    /// so that a restarted process unwraps what the previous one wrapped.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let vault = match ekm_store::secret_file::read(path, MAX_VAULT_FILE) {
            Ok(bytes) => parse_vault(&bytes).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a fake vault file", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vault::default(),
            Err(e) => return Err(e),
        };
        Ok(Self::with(Some(path.to_owned()), vault))
    }

    /// Only keys added with [`FakeBackend::add_key`] exist (others are "not found").
    pub fn without_auto_create(mut self) -> Self {
        self.auto_create = false;
        self
    }

    /// Adds (or re-enables) a key: an AKV [`KeyId`](ekm_core::KeyId) or any [`ExternalKey`] (by its text).
    pub fn add_key<K: fmt::Display + ?Sized>(&self, key: &K) -> std::io::Result<()> {
        let key = key.to_string();
        let mut v = self.vault.lock();
        match v.keys.get_mut(&key) {
            Some(k) => k.enabled = true,
            None => {
                v.keys.insert(
                    key,
                    VaultKey {
                        material: KeyMaterial::random(),
                        enabled: true,
                    },
                );
            }
        }
        self.persist(&v)
    }

    /// Disables a key version (calls with it fail with "disabled").
    pub fn disable_key<K: fmt::Display + ?Sized>(&self, key: &K) -> std::io::Result<()> {
        let mut v = self.vault.lock();
        if let Some(k) = v.keys.get_mut(&key.to_string()) {
            k.enabled = false;
        }
        self.persist(&v)
    }

    /// Every call fails with `fault` until cleared with `None`.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.faults.lock().always = fault;
    }

    /// The next `count` calls of `op` (any op when `None`) fail with `fault`.
    pub fn fail_next(&self, op: Option<Op>, fault: Fault, count: usize) {
        let mut f = self.faults.lock();
        for _ in 0..count {
            f.next.push_back((op, fault));
        }
    }

    /// Every call sleeps `latency` first.
    pub fn set_latency(&self, latency: Duration) {
        self.faults.lock().latency = latency;
    }

    /// Calls made as `node` sleep `latency` (on top of [`FakeBackend::set_latency`]); zero
    /// removes it.
    pub fn set_node_latency(&self, node: Uuid, latency: Duration) {
        let mut f = self.faults.lock();
        if latency.is_zero() {
            f.node_latency.remove(&node);
        } else {
            f.node_latency.insert(node, latency);
        }
    }

    /// Makes the vault unreachable (or reachable again) from one node only.
    pub fn set_node_reachable(&self, node: Uuid, reachable: bool) {
        let mut f = self.faults.lock();
        if reachable {
            f.unreachable_nodes.remove(&node);
        } else {
            f.unreachable_nodes.insert(node);
        }
    }

    /// Clears every fault and the latency.
    pub fn clear_faults(&self) {
        *self.faults.lock() = Faults::default();
    }

    /// The calls served so far.
    pub fn counters(&self) -> Counters {
        Counters {
            wraps: self.wraps.load(Ordering::Relaxed),
            unwraps: self.unwraps.load(Ordering::Relaxed),
            checks: self.checks.load(Ordering::Relaxed),
        }
    }

    /// Counts the call, sleeps the latency, then returns the first matching fault.
    fn enter(&self, op: Op, call: &BackendCall<'_>) -> Result<(), Fault> {
        let counter = match op {
            Op::Wrap => &self.wraps,
            Op::Unwrap => &self.unwraps,
            Op::Check => &self.checks,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let (latency, fault) = {
            let mut f = self.faults.lock();
            let fault = if f.unreachable_nodes.contains(&call.node.uuid) {
                Some(Fault::Unreachable)
            } else if let Some(pos) = f.next.iter().position(|(o, _)| o.is_none_or(|o| o == op)) {
                f.next.remove(pos).map(|(_, fault)| fault)
            } else {
                f.always
            };
            let node_latency = f.node_latency.get(&call.node.uuid).copied();
            (f.latency + node_latency.unwrap_or_default(), fault)
        };
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        match fault {
            Some(fault) => Err(fault),
            None => Ok(()),
        }
    }

    /// The vault key for `key`, created on first use when allowed.
    fn key(&self, key: &ExternalKey) -> Result<AeadKey, BackendError> {
        let mut v = self.vault.lock();
        if !v.keys.contains_key(key.as_str()) {
            // Several processes may share the vault file (one ekmd per node on one machine):
            // take the keys another one created since this one read it.
            self.merge_file(&mut v);
        }
        if !v.keys.contains_key(key.as_str()) {
            if !self.auto_create {
                return Err(BackendError::new(
                    BackendErrorKind::KeyNotFound,
                    format!("key {key} does not exist in the fake vault"),
                ));
            }
            v.keys.insert(
                key.as_str().to_owned(),
                VaultKey {
                    material: KeyMaterial::random(),
                    enabled: true,
                },
            );
            self.persist(&v).map_err(|e| {
                BackendError::new(
                    BackendErrorKind::Unreachable,
                    format!("fake vault file: {e}"),
                )
            })?;
        }
        match v.keys.get(key.as_str()) {
            Some(k) if k.enabled => Ok(AeadKey::new(k.material.clone())),
            Some(_) => Err(BackendError::new(
                BackendErrorKind::KeyDisabled,
                format!("key {key} is disabled"),
            )),
            None => Err(BackendError::new(
                BackendErrorKind::KeyNotFound,
                "key vanished",
            )),
        }
    }

    /// Adds to `v` the keys of the vault file that it lacks (created by another process).
    fn merge_file(&self, v: &mut Vault) {
        let Some(path) = &self.path else { return };
        let Ok(bytes) = ekm_store::secret_file::read(path, MAX_VAULT_FILE) else {
            return;
        };
        if let Some(on_disk) = parse_vault(&bytes) {
            for (id, k) in on_disk.keys {
                v.keys.entry(id).or_insert(k);
            }
        }
    }

    fn persist(&self, v: &Vault) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut text = Zeroizing::new(String::from("{\"format\":\"ekm-fake-vault-1\",\"keys\":["));
        for (i, (id, k)) in v.keys.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let entry = serde_json::json!({
                "key_id": id,
                "enabled": k.enabled,
                "secret": Zeroizing::new(hex::encode(k.material.expose_secret())).as_str(),
            });
            text.push_str(&entry.to_string());
        }
        text.push_str("]}");
        ekm_store::secret_file::replace(path, text.as_bytes())?;
        Ok(())
    }
}

fn parse_vault(bytes: &[u8]) -> Option<Vault> {
    #[derive(serde::Deserialize)]
    struct File {
        format: String,
        keys: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        key_id: String,
        enabled: bool,
        secret: ekm_core::secret::SecretString,
    }
    let f: File = serde_json::from_slice(bytes).ok()?;
    if f.format != "ekm-fake-vault-1" {
        return None;
    }
    let mut vault = Vault::default();
    for e in f.keys {
        let raw = Zeroizing::new(
            hex::decode(ekm_core::secret::ExposeSecret::expose_secret(&e.secret)).ok()?,
        );
        let material = KeyMaterial::from_slice(&raw)?;
        vault.keys.insert(
            e.key_id,
            VaultKey {
                material,
                enabled: e.enabled,
            },
        );
    }
    Some(vault)
}

/// What a fake blob is bound to: the key's text, and for an AWS key also the configuration,
/// the KEK generation and the record's `encryption_context`, as AWS KMS's encryption context
/// binds them (so a wrong generation
/// or configuration is refused on the fake as it is by KMS). An AKV blob binds the key alone,
/// as RSA-OAEP does (and as fake vaults written before there was a second provider did).
fn binding(call: &BackendCall<'_>, key: &ExternalKey, generation: u32) -> Vec<u8> {
    let mut aad = key.as_str().as_bytes().to_vec();
    if let ExternalKey::Aws(_) = key {
        aad.push(0);
        aad.extend_from_slice(call.access.config_uuid.as_bytes());
        aad.extend_from_slice(&generation.to_be_bytes());
        let context = call
            .access
            .aws()
            .and_then(|a| a.encryption_context.as_deref());
        aad.extend_from_slice(context.unwrap_or_default().as_bytes());
    }
    aad
}

/// The fake fakes every provider: one vault file holds keys of all of them, each by its text.
impl Backend for FakeBackend {
    fn serves(&self, _: Provider) -> bool {
        true
    }

    fn kind(&self, _: Provider) -> &'static str {
        "fake"
    }

    fn algorithm(&self, _: Provider) -> &'static str {
        "FAKE-A256GCM"
    }

    fn wrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        kek: &KeyMaterial,
    ) -> Result<Vec<u8>, BackendError> {
        call.same_provider(key)?;
        self.enter(Op::Wrap, call).map_err(Fault::error)?;
        self.key(key)?
            .seal_vec(&binding(call, key, generation), kek.expose_secret())
            .map_err(|_| BackendError::new(BackendErrorKind::InvalidResponse, "seal failed"))
    }

    fn unwrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        wrapped: &[u8],
    ) -> Result<SecretBytes, BackendError> {
        call.same_provider(key)?;
        match self.enter(Op::Unwrap, call) {
            Ok(()) => {}
            Err(Fault::WrongKek) => {
                return Ok(SecretBytes::new(
                    KeyMaterial::random().expose_secret().to_vec(),
                ));
            }
            Err(fault) => return Err(fault.error()),
        }
        let plain = self
            .key(key)?
            .open_vec(&binding(call, key, generation), wrapped)
            .map_err(|_| {
                BackendError::new(
                    BackendErrorKind::Rejected,
                    format!("the blob was not wrapped by {key}"),
                )
            })?;
        Ok(SecretBytes::new(plain.to_vec()))
    }

    fn check(&self, call: &BackendCall<'_>, key: &ExternalKey) -> Result<(), BackendError> {
        call.same_provider(key)?;
        self.enter(Op::Check, call).map_err(Fault::error)?;
        let k = self.key(key)?;
        let probe = KeyMaterial::random();
        let sealed = k
            .seal_vec(key.as_str().as_bytes(), probe.expose_secret())
            .map_err(|_| BackendError::new(BackendErrorKind::InvalidResponse, "seal failed"))?;
        let opened = k
            .open_vec(key.as_str().as_bytes(), &sealed)
            .map_err(|_| BackendError::new(BackendErrorKind::Rejected, "probe did not unwrap"))?;
        if opened.as_slice() != probe.expose_secret() {
            return Err(BackendError::new(
                BackendErrorKind::InvalidResponse,
                "probe mismatch",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ekm_core::backend::{AzureAccess, BackendAccess, ProviderAccess};
    use ekm_core::config::Credential;
    use ekm_core::ids::VaultUrl;
    use ekm_core::secret::SecretString;
    use ekm_core::topology::Node;

    const KEY: &str = "https://v.vault.azure.net/keys/k/a8e619fd8f234db3b0b95c59540e2a74";

    fn access() -> BackendAccess {
        BackendAccess {
            config_uuid: Uuid::nil(),
            revision: 1,
            provider: ProviderAccess::Azure(AzureAccess {
                vault: VaultUrl::parse("https://v.vault.azure.net/").unwrap(),
                client_id: "c".into(),
                tenant_id: "t".into(),
                credential: Credential::ClientSecret(SecretString::from("s")),
                proxy: None,
            }),
        }
    }

    fn node(n: u128) -> Node {
        Node {
            name: format!("node{n}"),
            uuid: Uuid::from_u128(n),
        }
    }

    #[test]
    fn an_aws_blob_is_bound_to_its_configuration_and_generation() {
        let f = FakeBackend::in_memory();
        let n = node(1);
        let access = |u: u128| BackendAccess {
            config_uuid: Uuid::from_u128(u),
            revision: 1,
            provider: ProviderAccess::Aws(ekm_core::backend::AwsKmsAccess {
                region: "us-east-1".into(),
                access_key_id: "AKIA".into(),
                secret_access_key: SecretString::from("s"),
                service: "kms".into(),
                default_domain: "amazonaws.com".into(),
                host: None,
                port: 443,
                encryption_context: None,
                timeout: Duration::from_secs(1),
                verify: true,
                verify_host: true,
                proxy: None,
            }),
        };
        let key = ExternalKey::parse("aws-kms:us-east-1:alias/k").unwrap();
        let (a1, a2) = (access(1), access(2));
        let c1 = BackendCall {
            node: &n,
            access: &a1,
        };
        let c2 = BackendCall {
            node: &n,
            access: &a2,
        };
        let kek = KeyMaterial::random();
        let blob = f.wrap_kek(&c1, &key, 3, &kek).unwrap();
        assert!(f.unwrap_kek(&c1, &key, 3, &blob).is_ok());
        for (call, generation) in [(&c1, 4), (&c2, 3)] {
            let e = f.unwrap_kek(call, &key, generation, &blob).unwrap_err();
            assert_eq!(e.kind, BackendErrorKind::Rejected, "{e}");
        }
    }

    #[test]
    fn wraps_unwraps_and_counts() {
        let f = FakeBackend::in_memory();
        let (a, n) = (access(), node(1));
        let call = BackendCall {
            node: &n,
            access: &a,
        };
        let key = ExternalKey::parse(KEY).unwrap();
        let kek = KeyMaterial::random();
        let w = f.wrap_kek(&call, &key, 1, &kek).unwrap();
        assert!(!w.windows(32).any(|x| x == kek.expose_secret()));
        assert_eq!(
            f.unwrap_kek(&call, &key, 1, &w).unwrap().expose_secret(),
            kek.expose_secret()
        );
        let other = ExternalKey::parse(&KEY.replace("/k/", "/k2/")).unwrap();
        let e = f.unwrap_kek(&call, &other, 1, &w).unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::Rejected);
        f.check(&call, &key).unwrap();
        assert_eq!(
            f.counters(),
            Counters {
                wraps: 1,
                unwraps: 2,
                checks: 1
            }
        );
    }

    #[test]
    fn faults_are_deterministic_and_scoped() {
        let f = FakeBackend::in_memory();
        let (a, n1, n2) = (access(), node(1), node(2));
        let key = ExternalKey::parse(KEY).unwrap();
        let c1 = BackendCall {
            node: &n1,
            access: &a,
        };
        let c2 = BackendCall {
            node: &n2,
            access: &a,
        };
        f.fail_next(
            Some(Op::Check),
            Fault::Throttled {
                retry_after: Duration::from_secs(3),
            },
            2,
        );
        let kek = KeyMaterial::random();
        f.wrap_kek(&c1, &key, 1, &kek).unwrap(); // not a check: unaffected
        for _ in 0..2 {
            let e = f.check(&c1, &key).unwrap_err();
            assert_eq!(e.kind, BackendErrorKind::Throttled);
            assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        }
        f.check(&c1, &key).unwrap();
        f.set_node_reachable(n2.uuid, false);
        assert_eq!(
            f.check(&c2, &key).unwrap_err().kind,
            BackendErrorKind::Unreachable
        );
        f.check(&c1, &key).unwrap();
        f.set_node_reachable(n2.uuid, true);
        f.check(&c2, &key).unwrap();
        f.set_fault(Some(Fault::AuthenticationFailed));
        assert_eq!(
            f.check(&c1, &key).unwrap_err().kind,
            BackendErrorKind::AuthenticationFailed
        );
        f.clear_faults();
        f.set_latency(Duration::from_millis(30));
        let t = std::time::Instant::now();
        f.check(&c1, &key).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn vault_file_survives_reopen_and_keys_can_be_missing_or_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.json");
        let (a, n) = (access(), node(1));
        let call = BackendCall {
            node: &n,
            access: &a,
        };
        let key = ExternalKey::parse(KEY).unwrap();
        let kek = KeyMaterial::random();
        let wrapped = FakeBackend::open(&path)
            .unwrap()
            .wrap_kek(&call, &key, 1, &kek)
            .unwrap();
        use std::fs;
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let f = FakeBackend::open(&path).unwrap().without_auto_create();
        assert_eq!(
            f.unwrap_kek(&call, &key, 1, &wrapped)
                .unwrap()
                .expose_secret(),
            kek.expose_secret()
        );
        let missing = ExternalKey::parse(&KEY.replace("/k/", "/nope/")).unwrap();
        assert_eq!(
            f.check(&call, &missing).unwrap_err().kind,
            BackendErrorKind::KeyNotFound
        );
        f.disable_key(&key).unwrap();
        assert_eq!(
            f.check(&call, &key).unwrap_err().kind,
            BackendErrorKind::KeyDisabled
        );
        f.add_key(&key).unwrap();
        f.check(&call, &key).unwrap();
        fs::write(&path, b"{not json").unwrap();
        assert!(FakeBackend::open(&path).is_err());
    }
}
