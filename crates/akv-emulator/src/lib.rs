//! A dev-only Azure Key Vault emulator that speaks the real protocol, so ekm-azure (and
//! Microsoft's own clients) can be tested offline:
//!
//! - HTTPS with a CA generated at start (its PEM is handed to clients);
//! - the vault answers unauthenticated requests with `401` and the `WWW-Authenticate: Bearer
//!   authorization=..., resource=...` challenge the SDKs follow;
//! - an Entra ID token endpoint (`/{tenant}/oauth2/v2.0/token`) for client secrets and for
//!   certificate assertions, whose RS256 signature it verifies against the registered
//!   certificate; and the OpenID discovery document;
//! - keys with versions (real RSA 2048-4096), `GET` of the public JWK, RSA-OAEP-256 `wrapkey` /
//!   `unwrapkey`, `create`; disabled versions (403 `KeyDisabled`) and soft-deleted keys (404);
//! - injectable 429s with `Retry-After`, added latency, and request counters.
//!
//! Must never: be used outside tests. It keeps keys in memory and accepts any scope.

#![forbid(unsafe_code)]

mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rsa::RsaPrivateKey;

pub use server::Counters;

/// The resource (audience) the vault's challenge names; vault hosts end with `.vault.localhost`.
pub const RESOURCE: &str = "https://vault.localhost";
/// Host of the token endpoint.
pub const LOGIN_HOST: &str = "login.localhost";

/// A registered application.
#[derive(Clone)]
pub(crate) struct App {
    pub tenant: String,
    pub secret: Option<String>,
    pub cert_key: Option<rsa::RsaPublicKey>,
}

/// One version of a key.
pub(crate) struct Version {
    pub id: String,
    pub key: RsaPrivateKey,
    pub enabled: bool,
}

/// A key with its versions, newest last.
pub(crate) struct KeyEntry {
    pub versions: Vec<Version>,
    pub deleted: bool,
}

#[derive(Default)]
pub(crate) struct Faults {
    pub throttle_next: usize,
    pub retry_after: u64,
    pub delay: Duration,
}

/// Everything the emulator holds.
#[derive(Default)]
pub(crate) struct State {
    pub apps: HashMap<String, App>,
    pub tokens: HashMap<String, String>,
    pub keys: HashMap<String, KeyEntry>,
    pub faults: Faults,
    pub counters: Counters,
}

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    addr: SocketAddr,
    ca_pem: String,
    state: Arc<Mutex<State>>,
    handle: axum_server::Handle,
    _runtime: Option<tokio::runtime::Runtime>,
}

impl Emulator {
    /// Starts on a free loopback port, on its own runtime.
    pub fn start() -> Result<Emulator, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let mut e = runtime.block_on(Self::start_on("127.0.0.1:0".parse().map_err(|_| "addr")?))?;
        e._runtime = Some(runtime);
        Ok(e)
    }

    /// Starts on `addr` inside the current tokio runtime.
    pub async fn start_on(addr: SocketAddr) -> Result<Emulator, String> {
        let (ca_pem, config) = server::tls_config()?;
        let state = Arc::new(Mutex::new(State::default()));
        let handle = axum_server::Handle::new();
        let app = server::router(state.clone());
        let server = axum_server::bind_rustls(
            addr,
            axum_server::tls_rustls::RustlsConfig::from_config(config),
        )
        .handle(handle.clone());
        tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        let addr = handle
            .listening()
            .await
            .ok_or("the emulator did not start listening")?;
        Ok(Emulator {
            addr,
            ca_pem,
            state,
            handle,
            _runtime: None,
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The login authority URL (`https://login.localhost:PORT`).
    pub fn authority(&self) -> String {
        format!("https://{LOGIN_HOST}:{}", self.port())
    }

    /// The URL of vault `name` (`https://NAME.vault.localhost:PORT`).
    pub fn vault_url(&self, name: &str) -> String {
        format!("https://{name}.vault.localhost:{}", self.port())
    }

    /// Registers an application that authenticates with a client secret.
    pub fn add_secret_app(&self, tenant: &str, client_id: &str, secret: &str) {
        self.state.lock().apps.insert(
            client_id.to_owned(),
            App {
                tenant: tenant.to_owned(),
                secret: Some(secret.to_owned()),
                cert_key: None,
            },
        );
    }

    /// Registers an application that authenticates with a certificate (DER).
    pub fn add_cert_app(
        &self,
        tenant: &str,
        client_id: &str,
        cert_der: &[u8],
    ) -> Result<(), String> {
        let key = server::public_key_of_cert(cert_der)?;
        self.state.lock().apps.insert(
            client_id.to_owned(),
            App {
                tenant: tenant.to_owned(),
                secret: None,
                cert_key: Some(key),
            },
        );
        Ok(())
    }

    /// Adds a new version of key `name` (RSA of `bits`); returns the version.
    pub fn add_key(&self, name: &str, bits: usize) -> Result<String, String> {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), bits).map_err(|e| e.to_string())?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut s = self.state.lock();
        let entry = s.keys.entry(name.to_owned()).or_insert(KeyEntry {
            versions: Vec::new(),
            deleted: false,
        });
        entry.versions.push(Version {
            id: id.clone(),
            key,
            enabled: true,
        });
        Ok(id)
    }

    /// The key id URL of `name`/`version` in vault `vault`.
    pub fn key_id(&self, vault: &str, name: &str, version: &str) -> String {
        format!("{}/keys/{name}/{version}", self.vault_url(vault))
    }

    /// Enables or disables one version.
    pub fn set_enabled(&self, name: &str, version: &str, enabled: bool) {
        if let Some(k) = self.state.lock().keys.get_mut(name) {
            for v in &mut k.versions {
                if v.id == version {
                    v.enabled = enabled;
                }
            }
        }
    }

    /// Soft-deletes (or recovers) a key.
    pub fn set_deleted(&self, name: &str, deleted: bool) {
        if let Some(k) = self.state.lock().keys.get_mut(name) {
            k.deleted = deleted;
        }
    }

    /// The next `n` vault requests answer 429 with `Retry-After: retry_after`.
    pub fn throttle_next(&self, n: usize, retry_after: u64) {
        let mut s = self.state.lock();
        s.faults.throttle_next = n;
        s.faults.retry_after = retry_after;
    }

    /// Every request waits `delay` first.
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().faults.delay = delay;
    }

    /// Requests served so far.
    pub fn counters(&self) -> Counters {
        self.state.lock().counters.clone()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}
