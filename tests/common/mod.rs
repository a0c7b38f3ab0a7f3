//! Shared helpers of the end-to-end tests: a fixed topology, a data directory with a store, a
//! persistent fake vault and a protection key, and request bodies.

#![allow(dead_code)]

pub mod hooked;
pub mod kmip;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use base64::Engine as _;
use ekm::core::{
    ClusterInfo, CreateRequest, Engine, EngineOptions, Node, Store, SvmInfo, Topology,
};
use ekm::fake::FakeBackend;
use ekm::store::{StoreKind, protection_key};
use uuid::Uuid;

use hooked::{Call, Hooked};

pub const KEY_ID: &str =
    "https://keyvault-test.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74";
pub const KEY_ID_2: &str =
    "https://keyvault-test.vault.azure.net/keys/key2/0123456789abcdef0123456789abcdef";
pub const VAULT: &str = "https://keyvault-test.vault.azure.net/";
pub const PFX_PASSWORD: &str = "test-pfx-password";

pub const CLUSTER: Uuid = Uuid::from_u128(0x1000);
pub const NODE1: Uuid = Uuid::from_u128(0x2001);
pub const NODE2: Uuid = Uuid::from_u128(0x2002);
pub const VS0: Uuid = Uuid::from_u128(0x3000);
pub const VS1: Uuid = Uuid::from_u128(0x3001);

pub fn topology() -> Topology {
    Topology {
        cluster: ClusterInfo {
            name: "cluster1".into(),
            uuid: CLUSTER,
        },
        nodes: vec![
            Node {
                name: "node1".into(),
                uuid: NODE1,
            },
            Node {
                name: "node2".into(),
                uuid: NODE2,
            },
        ],
        svms: vec![
            SvmInfo {
                name: "vs0".into(),
                uuid: VS0,
            },
            SvmInfo {
                name: "vs1".into(),
                uuid: VS1,
            },
        ],
    }
}

/// A data directory as ekm lays it out.
pub struct DataDir {
    pub path: PathBuf,
    pub kind: StoreKind,
}

impl DataDir {
    pub fn new(path: &Path, kind: StoreKind) -> Self {
        DataDir {
            path: path.to_owned(),
            kind,
        }
    }

    /// Opens store, fake vault and protection key, and the engine over them.
    pub fn open(&self) -> (Arc<Engine>, Arc<FakeBackend>, Arc<dyn Store>) {
        let store = ekm::store::open(self.kind, &self.path.join("store")).expect("store opens");
        let fake = Arc::new(FakeBackend::open(&self.path.join("fake-vault.json")).expect("vault"));
        let pk = protection_key::load_or_create(&self.path.join("protection.key")).expect("pk");
        let engine = Engine::open(EngineOptions::new(
            store.clone(),
            fake.clone(),
            topology(),
            pk,
        ))
        .expect("engine opens");
        (engine, fake, store)
    }
}

pub fn secret_body(svm: Option<&str>, secret: &str) -> String {
    let svm = svm
        .map(|s| format!(r#""svm":{{"name":"{s}"}},"#))
        .unwrap_or_default();
    format!(
        r#"{{{svm}"client_id":"client1","tenant_id":"tenant1","name":"{VAULT}","key_id":"{KEY_ID}","client_secret":"{secret}"}}"#
    )
}

pub fn create(engine: &Engine, body: &str) -> ekm::core::Result<ekm::core::AzureKeyVault> {
    engine.create_config(CreateRequest::from_json(body.as_bytes())?)
}

pub fn pfx(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .expect("fixture")
}

pub fn pfx_b64(name: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pfx(name))
}

/// Every record of the store, for "nothing changed" checks.
pub fn dump(store: &dyn Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    store.scan(b"", None, usize::MAX).expect("scan")
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A store that makes the first `allowed` commits durable and fails every later one, as if the
/// process died right after its `allowed`-th durable write (redb's CrashBackend pattern). A
/// rewritten page is one commit. Reads keep working: they cannot change what a crash leaves
/// behind.
pub struct CrashingStore {
    pub store: Arc<Hooked>,
    crashed: Arc<AtomicBool>,
}

impl CrashingStore {
    pub fn new(inner: Arc<dyn Store>, allowed: usize) -> CrashingStore {
        let left = AtomicUsize::new(allowed);
        let crashed = Arc::new(AtomicBool::new(false));
        let flag = crashed.clone();
        let store = Hooked::new("crashing", inner, move |call| match call {
            Call::Commit(_) | Call::Rewrite(_)
                if left
                    .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                    .is_err() =>
            {
                flag.store(true, SeqCst);
                Err(ekm::core::StoreError::Io("simulated crash".into()))
            }
            _ => Ok(()),
        });
        CrashingStore {
            store: Arc::new(store),
            crashed,
        }
    }

    pub fn has_crashed(&self) -> bool {
        self.crashed.load(SeqCst)
    }
}

/// Opens an engine over `store` with the test topology and a shared fake backend.
pub fn engine_over(
    store: Arc<dyn Store>,
    fake: Arc<FakeBackend>,
    pk: &Path,
    batch: usize,
) -> Arc<Engine> {
    let pk = protection_key::load_or_create(pk).expect("pk");
    Engine::open(EngineOptions::new(store, fake, topology(), pk).rekey_batch(batch))
        .expect("engine opens")
}

/// Every KEK record of a configuration: (generation, active?).
pub fn kek_generations(store: &dyn Store, config: Uuid) -> Vec<(u32, bool)> {
    store
        .scan(&ekm::core::layout::kek_prefix(config), None, 100)
        .expect("scan")
        .iter()
        .map(|(_, v)| {
            let k = ekm::core::codec::WrappedKek::decode_unauthenticated(v).expect("kek record");
            (k.generation, k.state == ekm::core::codec::KekState::Active)
        })
        .collect()
}

/// An AKV emulator with one secret app, one certificate app and two keys (two versions of
/// `key1`, one of `key2`), and the options that make ekm-azure reach it on loopback.
pub struct AzureLab {
    pub emu: akv_emulator::Emulator,
    pub options: ekm::azure::AzureOptions,
    pub key1_v1: String,
    pub key1_v2: String,
    pub key2: String,
}

pub const AZ_TENANT: &str = "tenant1";
pub const AZ_SECRET_APP: &str = "client-secret-app";
pub const AZ_CERT_APP: &str = "client-cert-app";
pub const AZ_SECRET: &str = "emulator-client-secret-9f1c";

impl AzureLab {
    pub fn start() -> AzureLab {
        let emu = akv_emulator::Emulator::start().expect("emulator starts");
        emu.add_secret_app(AZ_TENANT, AZ_SECRET_APP, AZ_SECRET);
        let store = p12_keystore::KeyStore::from_pkcs12(
            &pfx("client-aes256.p12"),
            PFX_PASSWORD,
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .expect("fixture opens");
        let cert_der = store.private_key_chain().expect("chain").1.certs()[0]
            .as_der()
            .to_vec();
        emu.add_cert_app(AZ_TENANT, AZ_CERT_APP, &cert_der)
            .expect("cert app");
        let v1 = emu.add_key("key1", 2048).expect("key");
        let v2 = emu.add_key("key1", 2048).expect("key");
        let k2 = emu.add_key("key2", 3072).expect("key");
        let addr = emu.addr();
        let options = ekm::azure::AzureOptions {
            authority_host: emu.authority(),
            extra_ca_pem: Some(emu.ca_pem().as_bytes().to_vec()),
            resolve: vec![
                (akv_emulator::LOGIN_HOST.to_owned(), addr),
                ("myvault.vault.localhost".to_owned(), addr),
                ("othervault.vault.localhost".to_owned(), addr),
            ],
            connect_timeout: std::time::Duration::from_secs(2),
            request_timeout: std::time::Duration::from_secs(5),
            max_retries: 2,
            max_retry_time: std::time::Duration::from_secs(8),
            verify_challenge_resource: true,
        };
        AzureLab {
            key1_v1: emu.key_id("myvault", "key1", &v1),
            key1_v2: emu.key_id("myvault", "key1", &v2),
            key2: emu.key_id("myvault", "key2", &k2),
            emu,
            options,
        }
    }

    pub fn backend(&self) -> Arc<ekm::azure::AzureBackend> {
        Arc::new(ekm::azure::AzureBackend::new(self.options.clone()).expect("backend"))
    }

    pub fn vault(&self) -> String {
        format!("{}/", self.emu.vault_url("myvault"))
    }

    /// A create body for this lab, with client-secret authentication.
    pub fn secret_body(&self, svm: Option<&str>, key_id: &str) -> String {
        let svm = svm
            .map(|s| format!(r#""svm":{{"name":"{s}"}},"#))
            .unwrap_or_default();
        format!(
            r#"{{{svm}"client_id":"{AZ_SECRET_APP}","tenant_id":"{AZ_TENANT}","name":"{}","key_id":"{key_id}","client_secret":"{AZ_SECRET}"}}"#,
            self.vault()
        )
    }

    /// A create body with certificate authentication (`file` from tests/data).
    pub fn cert_body(
        &self,
        svm: Option<&str>,
        key_id: &str,
        file: &str,
        password: Option<&str>,
    ) -> String {
        let svm = svm
            .map(|s| format!(r#""svm":{{"name":"{s}"}},"#))
            .unwrap_or_default();
        let pw = password
            .map(|p| format!(r#","client_certificate_password":"{p}""#))
            .unwrap_or_default();
        format!(
            r#"{{{svm}"client_id":"{AZ_CERT_APP}","tenant_id":"{AZ_TENANT}","name":"{}","key_id":"{key_id}","client_certificate":"{}"{pw}}}"#,
            self.vault(),
            pfx_b64(file)
        )
    }
}

/// Collects a child's stderr on a thread, for the failure message of a child that died on its
/// own (a panic) instead of by the signal a test sent it.
pub fn collect_stderr(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Asserts the child died of the SIGKILL the test sent, and not of anything else (a panic
/// exits 101; an early exit 0), and that it had not panicked before the kill (a panicking child
/// spends a while printing its backtrace, so the kill often lands before its own exit).
/// `stderr` is what the child wrote, shown on failure.
pub fn assert_sigkilled(status: std::process::ExitStatus, stderr: &str, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "{what}: the child was not killed by SIGKILL but ended with {status}; its stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "{what}: the child panicked before it was killed; its stderr:\n{stderr}"
    );
}
