//! ekm-azure: the [`Backend`] on Azure Key Vault, through the official Azure SDK for Rust.
//!
//! - KEKs are wrapped and unwrapped with RSA-OAEP-256 by the vault key named in the key id,
//!   always with the exact version recorded in the wrapped blob.
//! - Authentication: client secret (`ClientSecretCredential`) or a PKCS#12 client certificate
//!   (a signed JWT client assertion through `ClientAssertionCredential`; pure Rust, no OpenSSL).
//! - Network: every client is built on an injected `reqwest::Client` with explicit timeouts, an
//!   optional proxy (and `no_proxy` otherwise, so environment variables never redirect key
//!   traffic), an optional extra trusted CA and host pinning; a bounded retry budget that
//!   honours `Retry-After`.
//!
//! Must never: put a secret in an error, a log or `Debug` output; unwrap with "latest".

#![forbid(unsafe_code)]

mod assertion;
mod errors;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions,
};
use azure_security_keyvault_keys::models::{EncryptionAlgorithm, KeyOperationParameters};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use ekm_core::backend::{
    AzureAccess, Backend, BackendAccess, BackendCall, BackendError, BackendErrorKind,
};
use ekm_core::config::{Credential, ProxyType};
use ekm_core::ids::KeyId;
use ekm_core::provider::{ExternalKey, Provider};
use ekm_core::secret::{ExposeSecret, KeyMaterial, SecretBytes};
use parking_lot::Mutex;
use uuid::Uuid;

pub use errors::classify;

/// The public cloud's login authority.
pub const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";

/// How ekm reaches Azure: authority, trust, name pinning, timeouts, retry budget.
#[derive(Clone)]
pub struct AzureOptions {
    /// Login authority host (sovereign clouds, private endpoints, tests).
    pub authority_host: String,
    /// PEM certificates trusted in addition to the system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Host names pinned to addresses, like curl's `--resolve`.
    pub resolve: Vec<(String, SocketAddr)>,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Retries after the first attempt (429, 5xx, transport errors).
    pub max_retries: u32,
    /// Longest total time spent retrying one call.
    pub max_retry_time: Duration,
    /// Whether the vault's 401 challenge resource must match the vault's domain (true in Azure;
    /// an emulator on a non-standard host may need false).
    pub verify_challenge_resource: bool,
}

impl Default for AzureOptions {
    fn default() -> Self {
        AzureOptions {
            authority_host: PUBLIC_AUTHORITY.into(),
            extra_ca_pem: None,
            resolve: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            max_retries: 3,
            max_retry_time: Duration::from_secs(20),
            verify_challenge_resource: true,
        }
    }
}

impl fmt::Debug for AzureOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureOptions")
            .field("authority_host", &self.authority_host)
            .field("extra_ca", &self.extra_ca_pem.is_some())
            .field("resolve", &self.resolve)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// One configuration's clients, rebuilt when its credentials or proxy change.
struct Clients {
    /// SHA-256 over everything the clients were built from (never leaves memory).
    fingerprint: [u8; 32],
    /// One `KeyClient` per vault origin (a rekey-external may name another vault).
    vaults: Mutex<HashMap<String, Arc<KeyClient>>>,
    credential: Arc<dyn TokenCredential>,
    http: reqwest::Client,
}

/// The Azure Key Vault backend. Blocking calls, run on its own tokio runtime, so it can be
/// called from any thread (including from inside another runtime's blocking pool).
pub struct AzureBackend {
    options: AzureOptions,
    runtime: tokio::runtime::Runtime,
    clients: Mutex<HashMap<Uuid, Arc<Clients>>>,
}

impl fmt::Debug for AzureBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureBackend")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn invalid(msg: impl Into<String>) -> BackendError {
    BackendError::new(BackendErrorKind::InvalidResponse, msg)
}

impl AzureBackend {
    /// A backend with `options`. Fails only when the runtime or the CA cannot be set up.
    pub fn new(options: AzureOptions) -> Result<Self, String> {
        if let Some(pem) = &options.extra_ca_pem {
            reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the extra CA file is not PEM certificates: {e}"))?;
        }
        url_is_https(&options.authority_host)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ekm-azure")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the Azure runtime: {e}"))?;
        Ok(AzureBackend {
            options,
            runtime,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The HTTP client every request of one configuration goes through.
    fn http_client(&self, az: &AzureAccess) -> Result<reqwest::Client, BackendError> {
        let o = &self.options;
        let mut b = reqwest::Client::builder()
            .connect_timeout(o.connect_timeout)
            .timeout(o.request_timeout)
            .https_only(true);
        if let Some(pem) = &o.extra_ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| invalid("the extra CA is not valid PEM"))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        for (host, addr) in &o.resolve {
            b = b.resolve(host, *addr);
        }
        b = match &az.proxy {
            None => b.no_proxy(),
            Some(p) => {
                let scheme = match p.proxy_type {
                    ProxyType::Http => "http",
                    ProxyType::Https => "https",
                };
                let host = if p.host.contains(':') && !p.host.starts_with('[') {
                    format!("[{}]", p.host)
                } else {
                    p.host.clone()
                };
                let mut proxy = reqwest::Proxy::all(format!("{scheme}://{host}:{}", p.port))
                    .map_err(|_| {
                        BackendError::new(
                            BackendErrorKind::Unreachable,
                            "the proxy address is not usable",
                        )
                    })?;
                if let Some(user) = &p.username {
                    let pw = p.password.as_ref().map(|s| s.expose_secret()).unwrap_or("");
                    proxy = proxy.basic_auth(user, pw);
                }
                b.proxy(proxy)
            }
        };
        b.build().map_err(|e| {
            BackendError::new(
                BackendErrorKind::Unreachable,
                format!("cannot build the HTTP client: {}", errors::chain(&e)),
            )
        })
    }

    fn client_options(&self, http: &reqwest::Client) -> ClientOptions {
        let o = &self.options;
        let mut custom = CustomConfiguration::default();
        custom.authority_host = o.authority_host.clone();
        ClientOptions {
            transport: Some(Transport::new(Arc::new(http.clone()))),
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: o.max_retries,
                max_total_elapsed: azure_core::time::Duration::try_from(o.max_retry_time)
                    .unwrap_or(azure_core::time::Duration::seconds(20)),
                max_delay: azure_core::time::Duration::seconds(10),
            }),
            // Always explicit: never the AZURE_AUTHORITY_HOST environment variable.
            cloud: Some(Arc::new(CloudConfiguration::from(custom))),
            ..ClientOptions::default()
        }
    }

    /// The clients of a configuration for exactly these credentials and proxy: a patch that
    /// is being proven, or one that was refused, never reuses or poisons the clients in force.
    fn clients(&self, access: &BackendAccess) -> Result<Arc<Clients>, BackendError> {
        let az = access
            .azure()
            .ok_or_else(|| invalid("the configuration is not an Azure Key Vault one"))?;
        let fingerprint = fingerprint(az);
        if let Some(c) = self.clients.lock().get(&access.config_uuid) {
            if c.fingerprint == fingerprint {
                return Ok(c.clone());
            }
        }
        let http = self.http_client(az)?;
        let credential: Arc<dyn TokenCredential> = match &az.credential {
            Credential::ClientSecret(secret) => ClientSecretCredential::new(
                &az.tenant_id,
                az.client_id.clone(),
                Secret::new(secret.expose_secret().to_owned()),
                Some(ClientSecretCredentialOptions {
                    client_options: self.client_options(&http),
                }),
            )
            .map_err(|e| {
                BackendError::new(BackendErrorKind::AuthenticationFailed, errors::describe(&e))
            })?,
            Credential::Certificate(cert) => {
                let assertion = assertion::CertificateAssertion::new(
                    cert,
                    &az.client_id,
                    &self.options.authority_host,
                    &az.tenant_id,
                )?;
                ClientAssertionCredential::new(
                    az.tenant_id.clone(),
                    az.client_id.clone(),
                    assertion,
                    Some(ClientAssertionCredentialOptions {
                        client_options: self.client_options(&http),
                    }),
                )
                .map_err(|e| {
                    BackendError::new(BackendErrorKind::AuthenticationFailed, errors::describe(&e))
                })?
            }
        };
        let clients = Arc::new(Clients {
            fingerprint,
            vaults: Mutex::new(HashMap::new()),
            credential,
            http,
        });
        self.clients
            .lock()
            .insert(access.config_uuid, clients.clone());
        Ok(clients)
    }

    fn key_client(
        &self,
        access: &BackendAccess,
        key: &KeyId,
    ) -> Result<Arc<KeyClient>, BackendError> {
        let clients = self.clients(access)?;
        let mut vaults = clients.vaults.lock();
        if let Some(c) = vaults.get(key.vault()) {
            return Ok(c.clone());
        }
        let options = KeyClientOptions {
            client_options: self.client_options(&clients.http),
            verify_challenge_resource: Some(self.options.verify_challenge_resource),
            ..Default::default()
        };
        let client = Arc::new(
            KeyClient::new(key.vault(), clients.credential.clone(), Some(options)).map_err(
                |e| {
                    invalid(format!(
                        "cannot create a Key Vault client: {}",
                        errors::describe(&e)
                    ))
                },
            )?,
        );
        vaults.insert(key.vault().to_owned(), client.clone());
        Ok(client)
    }

    /// Runs a future on the backend's runtime and waits for it, from any thread.
    fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, BackendError>> + Send + 'static,
    ) -> Result<T, BackendError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(invalid("the Azure runtime stopped")))
    }

    fn wrap(
        &self,
        access: &BackendAccess,
        key: &KeyId,
        plain: Vec<u8>,
    ) -> Result<Vec<u8>, BackendError> {
        let client = self.key_client(access, key)?;
        let (name, version) = (key.name().to_owned(), key.version().to_owned());
        self.run(async move {
            let body = oaep_body(plain)?;
            let options = azure_security_keyvault_keys::models::KeyClientWrapKeyOptions {
                key_version: Some(version),
                ..Default::default()
            };
            let rsp = client
                .wrap_key(&name, body, Some(options))
                .await
                .map_err(|e| classify(&e))?;
            let result = rsp
                .into_model()
                .map_err(|e| invalid(errors::describe(&e)))?;
            result
                .result
                .ok_or_else(|| invalid("the vault returned no wrapped value"))
        })
    }

    fn unwrap(
        &self,
        access: &BackendAccess,
        key: &KeyId,
        wrapped: Vec<u8>,
    ) -> Result<SecretBytes, BackendError> {
        let client = self.key_client(access, key)?;
        let (name, version) = (key.name().to_owned(), key.version().to_owned());
        self.run(async move {
            let body = oaep_body(wrapped)?;
            let rsp = client
                .unwrap_key(&name, &version, body, None)
                .await
                .map_err(|e| classify(&e))?;
            let result = rsp
                .into_model()
                .map_err(|e| invalid(errors::describe(&e)))?;
            result
                .result
                .map(SecretBytes::new)
                .ok_or_else(|| invalid("the vault returned no unwrapped value"))
        })
    }
}

/// The body of a wrapkey or unwrapkey request: RSA-OAEP-256 over `value`.
fn oaep_body(
    value: Vec<u8>,
) -> Result<azure_core::http::RequestContent<KeyOperationParameters>, BackendError> {
    KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: Some(value),
        ..Default::default()
    }
    .try_into()
    .map_err(|e: azure_core::Error| invalid(errors::describe(&e)))
}

/// A digest of everything a configuration's clients depend on.
fn fingerprint(az: &AzureAccess) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(az.client_id.as_bytes());
    field(az.tenant_id.as_bytes());
    match &az.credential {
        Credential::ClientSecret(s) => {
            field(b"secret");
            field(s.expose_secret().as_bytes());
        }
        Credential::Certificate(c) => {
            field(b"certificate");
            field(c.pfx().expose_secret());
            field(
                c.password()
                    .map(|p| p.expose_secret())
                    .unwrap_or("")
                    .as_bytes(),
            );
        }
    }
    if let Some(p) = &az.proxy {
        field(p.proxy_type.as_str().as_bytes());
        field(p.host.as_bytes());
        field(&p.port.to_be_bytes());
        field(p.username.as_deref().unwrap_or("").as_bytes());
        field(
            p.password
                .as_ref()
                .map(|s| s.expose_secret())
                .unwrap_or("")
                .as_bytes(),
        );
    }
    h.finalize().into()
}

/// The AKV key of a call; the key and the access of another provider are refused.
fn akv_key<'a>(call: &BackendCall<'_>, key: &'a ExternalKey) -> Result<&'a KeyId, BackendError> {
    call.same_provider(key)?;
    key.as_azure()
        .ok_or_else(|| invalid("the key is not an Azure Key Vault key"))
}

fn url_is_https(u: &str) -> Result<(), String> {
    if u.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("{u} is not an https URL"))
    }
}

impl Backend for AzureBackend {
    fn serves(&self, provider: Provider) -> bool {
        provider == Provider::AzureKeyVault
    }

    fn kind(&self, _: Provider) -> &'static str {
        "akv"
    }

    fn algorithm(&self, _: Provider) -> &'static str {
        "RSA-OAEP-256"
    }

    fn wrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        _generation: u32,
        kek: &KeyMaterial,
    ) -> Result<Vec<u8>, BackendError> {
        let key = akv_key(call, key)?;
        self.wrap(call.access, key, kek.expose_secret().to_vec())
    }

    fn unwrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        _generation: u32,
        wrapped: &[u8],
    ) -> Result<SecretBytes, BackendError> {
        let key = akv_key(call, key)?;
        self.unwrap(call.access, key, wrapped.to_vec())
    }

    /// Token obtained, key (that version) readable and enabled, wrap and unwrap permitted: a
    /// random probe wrapped and unwrapped must come back identical.
    fn check(&self, call: &BackendCall<'_>, key: &ExternalKey) -> Result<(), BackendError> {
        let key = akv_key(call, key)?;
        let client = self.key_client(call.access, key)?;
        let (name, version) = (key.name().to_owned(), key.version().to_owned());
        self.run(async move {
            let options = azure_security_keyvault_keys::models::KeyClientGetKeyOptions {
                key_version: Some(version),
                ..Default::default()
            };
            let rsp = client
                .get_key(&name, Some(options))
                .await
                .map_err(|e| classify(&e))?;
            let k = rsp
                .into_model()
                .map_err(|e| invalid(errors::describe(&e)))?;
            if k.attributes.as_ref().and_then(|a| a.enabled) == Some(false) {
                return Err(BackendError::new(
                    BackendErrorKind::KeyDisabled,
                    "the key version is disabled",
                ));
            }
            Ok(())
        })?;
        let probe = KeyMaterial::random();
        let wrapped = self.wrap(call.access, key, probe.expose_secret().to_vec())?;
        let back = self.unwrap(call.access, key, wrapped)?;
        if back.expose_secret() != probe.expose_secret() {
            return Err(invalid("a probe key did not unwrap to itself"));
        }
        Ok(())
    }
}
