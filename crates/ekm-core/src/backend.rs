//! The `Backend` trait: the external key manager that wraps and unwraps KEKs.
//!
//! Owns: the contract between the engine and a root of trust (AKV, the fake, later others).
//! Must never: see a data key. Only KEKs travel to a backend, one call per KEK operation.

use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use crate::config::{Credential, ProxyConfig};
use crate::error::{Error, ErrorKind};
use crate::ids::{KeyId, VaultUrl};
use crate::secret::{KeyMaterial, SecretBytes};
use crate::topology::Node;

/// What a backend needs to act for one configuration: where, as whom, through which proxy.
/// Built by the engine from the stored configuration; secrets stay redacted in `Debug`.
#[derive(Debug, Clone)]
pub struct BackendAccess {
    /// The configuration this access belongs to (a cache key for clients).
    pub config_uuid: Uuid,
    /// A number that changes whenever credentials or proxy change (a cache key too).
    pub revision: u64,
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
/// Threat contract: `wrapped` given to [`Backend::unwrap_kek`] comes from the store and may be
/// corrupted or forged; unwrapping it must fail cleanly, never panic. The engine checks the
/// length of the material returned.
pub trait Backend: Send + Sync + fmt::Debug {
    /// A short name recorded in every wrapped KEK ("akv", "fake").
    fn kind(&self) -> &'static str;

    /// The algorithm recorded in every wrapped KEK ("RSA-OAEP-256").
    fn algorithm(&self) -> &'static str;

    /// Wraps the KEK with the external key `key` (exactly that version).
    fn wrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &KeyId,
        kek: &KeyMaterial,
    ) -> Result<Vec<u8>, BackendError>;

    /// Unwraps a KEK wrapped by `key` (exactly that version).
    fn unwrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &KeyId,
        wrapped: &[u8],
    ) -> Result<SecretBytes, BackendError>;

    /// Checks reachability, authentication and that `key` can wrap and unwrap.
    fn check(&self, call: &BackendCall<'_>, key: &KeyId) -> Result<(), BackendError>;
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

/// Marks `err` transient when the backend failure `e` was an outage or throttling.
pub(crate) fn transient_if(err: Error, e: &BackendError) -> Error {
    match e.kind {
        BackendErrorKind::Unreachable | BackendErrorKind::Throttled => err.transient(e.retry_after),
        _ => err,
    }
}
