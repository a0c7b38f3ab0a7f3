//! The `Backend` trait: the external key manager that wraps and unwraps KEKs.
//!
//! Owns: the contract between the engine and a root of trust (AKV, the fake, later others).
//! Must never: see a data key. Only KEKs travel to a backend, one call per KEK operation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use uuid::Uuid;

use crate::config::{Credential, ProxyConfig};
use crate::error::{Error, ErrorKind};
use crate::ids::VaultUrl;
use crate::provider::{ExternalKey, Provider};
use crate::secret::{KeyMaterial, SecretBytes};
use crate::topology::Node;

/// What a backend needs to act for one configuration: the common part (which configuration,
/// which revision of its access) and the provider's own part. Built by the engine from the
/// stored configuration; secrets stay redacted in `Debug`.
#[derive(Debug, Clone)]
pub struct BackendAccess {
    /// The configuration this access belongs to (a cache key for clients).
    pub config_uuid: Uuid,
    /// A number that changes whenever credentials or proxy change (a cache key too).
    pub revision: u64,
    /// Where and as whom, in the provider's own terms.
    pub provider: ProviderAccess,
}

impl BackendAccess {
    /// Whose access this is.
    pub fn provider_kind(&self) -> Provider {
        match self.provider {
            ProviderAccess::Azure(_) => Provider::AzureKeyVault,
            ProviderAccess::Aws(_) => Provider::AwsKms,
        }
    }

    /// The Azure part, for an Azure configuration.
    pub fn azure(&self) -> Option<&AzureAccess> {
        match &self.provider {
            ProviderAccess::Azure(a) => Some(a),
            ProviderAccess::Aws(_) => None,
        }
    }

    /// The AWS part, for an AWS configuration.
    pub fn aws(&self) -> Option<&AwsKmsAccess> {
        match &self.provider {
            ProviderAccess::Aws(a) => Some(a),
            ProviderAccess::Azure(_) => None,
        }
    }
}

/// The provider's part of [`BackendAccess`]: exactly what that provider needs.
#[derive(Debug, Clone)]
pub enum ProviderAccess {
    /// An Azure Key Vault configuration.
    Azure(AzureAccess),
    /// An AWS KMS configuration.
    Aws(AwsKmsAccess),
}

/// What Azure Key Vault needs: the vault, the application and its credential, the proxy.
#[derive(Debug, Clone)]
pub struct AzureAccess {
    /// Vault URI of the configuration.
    pub vault: VaultUrl,
    /// Application (client) id.
    pub client_id: String,
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Credential.
    pub credential: Credential,
    /// Optional proxy.
    pub proxy: Option<ProxyConfig>,
}

/// What AWS KMS needs: the region and endpoint, the access key, the record's encryption
/// context, the per-request timeout, the TLS switches and the proxy.
#[derive(Debug, Clone)]
pub struct AwsKmsAccess {
    /// Region, e.g. `us-east-1`.
    pub region: String,
    /// Access key id (readable in the record).
    pub access_key_id: String,
    /// Secret access key (write-only in the record; redacted in `Debug`).
    pub secret_access_key: SecretString,
    /// Endpoint service name (`kms`).
    pub service: String,
    /// Endpoint domain (`amazonaws.com`).
    pub default_domain: String,
    /// Endpoint host overriding `service.region.default_domain`.
    pub host: Option<String>,
    /// Endpoint port (443).
    pub port: u16,
    /// The record's `encryption_context`, sent with every Encrypt and Decrypt.
    pub encryption_context: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Verify the endpoint's certificate.
    pub verify: bool,
    /// Verify that the certificate names the endpoint host.
    pub verify_host: bool,
    /// Optional proxy.
    pub proxy: Option<ProxyConfig>,
}

/// One backend call: on behalf of which node, with which access.
#[derive(Debug, Clone, Copy)]
pub struct BackendCall<'a> {
    /// The node making the call (backends may be reachable from some nodes only).
    pub node: &'a Node,
    /// Where and as whom.
    pub access: &'a BackendAccess,
}

/// Why a backend call failed. The classes let operators act; messages carry no secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// Network failure, DNS, TLS, timeout, proxy refused.
    Unreachable,
    /// The identity provider refused the credential.
    AuthenticationFailed,
    /// Authenticated, but not permitted to use the key.
    Forbidden,
    /// The key or key version does not exist (or is soft-deleted).
    KeyNotFound,
    /// The key version is disabled or expired.
    KeyDisabled,
    /// Throttled; retry after the given delay.
    Throttled,
    /// The vault refused to unwrap: the blob was not wrapped by this key.
    Rejected,
    /// The vault answered something the backend cannot use.
    InvalidResponse,
}

impl BackendErrorKind {
    /// A short phrase for messages.
    pub fn describe(self) -> &'static str {
        match self {
            BackendErrorKind::Unreachable => "the vault is unreachable",
            BackendErrorKind::AuthenticationFailed => "authentication failed",
            BackendErrorKind::Forbidden => "the application is not permitted to use the key",
            BackendErrorKind::KeyNotFound => "the key or key version does not exist",
            BackendErrorKind::KeyDisabled => "the key version is disabled or expired",
            BackendErrorKind::Throttled => "the vault is throttling requests",
            BackendErrorKind::Rejected => "the vault refused to unwrap with this key",
            BackendErrorKind::InvalidResponse => "the vault returned an unusable answer",
        }
    }
}

/// A failed backend call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    /// The class of failure.
    pub kind: BackendErrorKind,
    /// What happened, for operators. Never contains a secret.
    pub message: String,
    /// For [`BackendErrorKind::Throttled`]: how long the vault asked to wait.
    pub retry_after: Option<Duration>,
}

impl BackendError {
    /// A failure of `kind` with an operator-facing message.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        BackendError {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.describe(), self.message)?;
        if let Some(d) = self.retry_after {
            write!(f, " (retry after {} s)", d.as_secs())?;
        }
        Ok(())
    }
}

impl std::error::Error for BackendError {}

/// An external key manager. Implementations are `Send + Sync` and may block (the engine calls
/// them from blocking contexts); they must time out on their own within seconds.
///
/// A backend serves one or more [`Provider`]s ([`Backend::serves`]); the engine refuses a
/// configuration of a provider no backend serves. Each call's [`BackendAccess`] carries the
/// provider's own part, and the key is that provider's [`ExternalKey`].
///
/// Threat contract: `wrapped` given to [`Backend::unwrap_kek`] comes from the store and may be
/// corrupted or forged; unwrapping it must fail cleanly, never panic. The engine checks the
/// length of the material returned.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Whether this backend serves configurations of `provider`.
    fn serves(&self, provider: Provider) -> bool;

    /// A short name recorded in every wrapped KEK of `provider` ("akv", "aws", "fake").
    fn kind(&self, provider: Provider) -> &'static str;

    /// The algorithm recorded in every wrapped KEK of `provider` ("RSA-OAEP-256").
    fn algorithm(&self, provider: Provider) -> &'static str;

    /// Wraps generation `generation` of the call's configuration's KEK with the external key
    /// `key` (exactly that version). A provider that can bind context to a wrap (AWS KMS's
    /// encryption context) binds the configuration and the generation, so the blob unwraps
    /// only as that very KEK.
    fn wrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        kek: &KeyMaterial,
    ) -> Result<Vec<u8>, BackendError>;

    /// Unwraps generation `generation` of the KEK, wrapped by `key` (exactly that version).
    fn unwrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        wrapped: &[u8],
    ) -> Result<SecretBytes, BackendError>;

    /// Checks reachability, authentication and that `key` can wrap and unwrap.
    fn check(&self, call: &BackendCall<'_>, key: &ExternalKey) -> Result<(), BackendError>;

    /// The exact key `key` names now: what a new configuration and a rekey-external record,
    /// so that no wrapped KEK depends on a name that can be re-pointed (an AWS alias resolves
    /// to the ARN of its key). The default, for keys that are exact already: `key` itself.
    fn resolve(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
    ) -> Result<ExternalKey, BackendError> {
        let _ = call;
        Ok(key.clone())
    }
}

/// Several backends as one (`ekmd serve --backend azure,aws`): each call goes to the first
/// backend that serves the provider of its configuration.
#[derive(Debug)]
pub struct Backends {
    backends: Vec<Arc<dyn Backend>>,
}

impl Backends {
    /// The backends, each serving the providers it says it serves; the first wins where two
    /// serve the same provider.
    pub fn new(backends: Vec<Arc<dyn Backend>>) -> Backends {
        Backends { backends }
    }

    fn of(&self, provider: Provider) -> Result<&dyn Backend, BackendError> {
        self.backends
            .iter()
            .find(|b| b.serves(provider))
            .map(|b| &**b)
            .ok_or_else(|| {
                // Not transient: retrying cannot help until ekmd is started with the provider.
                BackendError::new(
                    BackendErrorKind::InvalidResponse,
                    format!(
                        "{provider} is not enabled in this process (ekmd serve --backend {})",
                        provider.name()
                    ),
                )
            })
    }
}

impl Backend for Backends {
    fn serves(&self, provider: Provider) -> bool {
        self.backends.iter().any(|b| b.serves(provider))
    }

    fn kind(&self, provider: Provider) -> &'static str {
        self.of(provider).map_or("none", |b| b.kind(provider))
    }

    fn algorithm(&self, provider: Provider) -> &'static str {
        self.of(provider).map_or("none", |b| b.algorithm(provider))
    }

    fn wrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        kek: &KeyMaterial,
    ) -> Result<Vec<u8>, BackendError> {
        call.same_provider(key)?;
        self.of(key.provider())?
            .wrap_kek(call, key, generation, kek)
    }

    fn unwrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        wrapped: &[u8],
    ) -> Result<SecretBytes, BackendError> {
        call.same_provider(key)?;
        self.of(key.provider())?
            .unwrap_kek(call, key, generation, wrapped)
    }

    fn check(&self, call: &BackendCall<'_>, key: &ExternalKey) -> Result<(), BackendError> {
        call.same_provider(key)?;
        self.of(key.provider())?.check(call, key)
    }

    fn resolve(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
    ) -> Result<ExternalKey, BackendError> {
        call.same_provider(key)?;
        self.of(key.provider())?.resolve(call, key)
    }
}

impl BackendCall<'_> {
    /// Refuses `key` when it is not of the provider of this call's configuration (a
    /// programming error the backends refuse rather than send).
    pub fn same_provider(&self, key: &ExternalKey) -> Result<(), BackendError> {
        if key.provider() == self.access.provider_kind() {
            return Ok(());
        }
        Err(BackendError::new(
            BackendErrorKind::InvalidResponse,
            format!(
                "a {} key was given with the access of a {} configuration",
                key.provider(),
                self.access.provider_kind()
            ),
        ))
    }
}

/// A backend failure as ekm reports it: `346758` with the cause (and the wait the vault asked
/// for), transient when it was an outage or throttling.
pub(crate) fn akv_failed(e: &BackendError) -> Error {
    let mut detail = format!("Cause: {e}.");
    if let Some(d) = e.retry_after {
        detail.push_str(&format!(" Retry after {} seconds.", d.as_secs().max(1)));
    }
    transient_if(Error::new(ErrorKind::AkvUnavailable).with_detail(detail), e)
}

/// A backend failure of a `provider` configuration: [`akv_failed`], in that provider's words
/// (the code is 346758 for both: NetApp documents no AWS-specific one).
pub(crate) fn provider_failed(provider: Provider, e: &BackendError) -> Error {
    let err = akv_failed(e);
    match provider {
        Provider::AzureKeyVault => err,
        Provider::AwsKms => err.with_message("AWS KMS is not reachable or refused the request."),
    }
}

/// Marks `err` transient when the backend failure `e` was an outage or throttling.
pub(crate) fn transient_if(err: Error, e: &BackendError) -> Error {
    match e.kind {
        BackendErrorKind::Unreachable | BackendErrorKind::Throttled => err.transient(e.retry_after),
        _ => err,
    }
}
