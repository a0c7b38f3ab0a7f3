//! The one error type of ekm and its mapping to ONTAP error codes and HTTP statuses.
//!
//! Every failure a caller can see is an [`Error`]: an [`ErrorKind`] (whose discriminant is the
//! ONTAP code from the seed, and whose message is the seed's text), an optional detail that says
//! what exactly was wrong, and an optional target (the field that caused it).
//!
//! Must never: carry secret material. Details are built from field names, identifiers and backend
//! error classes, never from values of secret fields.

use std::fmt;

/// Every error class ekm reports, with its ONTAP code as the discriminant.
///
/// The messages are the seed's texts; [`Error::detail`] adds what was wrong in this case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u32)]
pub enum ErrorKind {
    /// An unknown configuration, data key or job uuid.
    EntryNotFound = 4,
    /// A field that the operation does not accept.
    UnexpectedArgument = 262_179,
    /// A field with a value of the wrong type or form, or a required field missing.
    InvalidValue = 262_197,
    /// The named SVM is not part of the cluster topology.
    SvmNotFound = 2_621_462,
    /// Missing or wrong credentials (ONTAP's "User is not authorized").
    NotAuthorized = 6_691_623,
    /// A backend (AKV) call failed: unreachable, throttled, authentication, key unusable.
    AkvUnavailable = 346_758,
    /// Deleting a configuration that still protects data keys.
    KeysExist = 65_536_867,
    /// An operation on an SVM (or the cluster) without a configuration.
    NotConfigured = 65_537_120,
    /// A configuration exists already for this SVM or for the cluster.
    AlreadyConfigured = 65_537_500,
    /// The store failed to persist a change.
    StoreFailed = 65_537_504,
    /// Restore failed on some nodes.
    RestorePartial = 65_537_515,
    /// A client-secret configuration change without the secret.
    ClientSecretRequired = 65_537_517,
    /// `key_id` is not a versioned AKV key URL.
    InvalidKeyId = 65_537_523,
    /// The client secret is not acceptable.
    InvalidClientSecret = 65_537_540,
    /// A patch without any field to change.
    NoPatchInputs = 65_537_541,
    /// The wrapped KEK is missing from the store.
    MissingWrappedKek = 65_537_544,
    /// Some of the SVM's keys still sit under the cluster's key manager.
    KeysOnAdminKeyManager = 65_537_547,
    /// rekey-internal on a scope without data keys.
    NoInternalKeys = 65_537_559,
    /// Neither a client secret nor a client certificate was given.
    NoAuthenticationMethod = 65_537_567,
    /// The PKCS#12 client certificate does not parse with its password.
    InvalidClientCertificate = 65_537_573,
    /// A stored record failed to decode or authenticate: the store is damaged or was tampered with.
    CorruptRecord = 65_537_601,
    /// The KEK of a scope could not be unlocked on this node (the backend is needed for that).
    KekUnavailable = 65_537_602,
    /// Another key operation (rekey, restore, migrate) is running for this configuration.
    JobInProgress = 65_537_603,
    /// A configuration of a provider this process does not serve (`ekmd serve --backend`).
    ProviderNotEnabled = 65_537_604,
    /// Deleting a primary configuration while mirrors are attached to it (an ekm code).
    MirrorsAttached = 65_537_605,
    /// An operation on an SVM without an AWS KMS configuration.
    AwsNotConfigured = 65_537_926,
}

impl ErrorKind {
    /// Every kind, for tests and documentation.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::EntryNotFound,
        ErrorKind::UnexpectedArgument,
        ErrorKind::InvalidValue,
        ErrorKind::SvmNotFound,
        ErrorKind::NotAuthorized,
        ErrorKind::AkvUnavailable,
        ErrorKind::KeysExist,
        ErrorKind::NotConfigured,
        ErrorKind::AlreadyConfigured,
        ErrorKind::StoreFailed,
        ErrorKind::RestorePartial,
        ErrorKind::ClientSecretRequired,
        ErrorKind::InvalidKeyId,
        ErrorKind::InvalidClientSecret,
        ErrorKind::NoPatchInputs,
        ErrorKind::MissingWrappedKek,
        ErrorKind::KeysOnAdminKeyManager,
        ErrorKind::NoInternalKeys,
        ErrorKind::NoAuthenticationMethod,
        ErrorKind::InvalidClientCertificate,
        ErrorKind::CorruptRecord,
        ErrorKind::KekUnavailable,
        ErrorKind::JobInProgress,
        ErrorKind::ProviderNotEnabled,
        ErrorKind::MirrorsAttached,
        ErrorKind::AwsNotConfigured,
    ];

    /// The ONTAP error code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The kind whose ONTAP code is `code`, if any: the one way back from a stored code.
    pub fn from_code(code: u32) -> Option<ErrorKind> {
        ErrorKind::ALL.iter().copied().find(|k| k.code() == code)
    }

    /// The seed's message for this code.
    pub fn message(self) -> &'static str {
        match self {
            ErrorKind::EntryNotFound => "entry doesn't exist",
            ErrorKind::UnexpectedArgument => "Unexpected argument.",
            ErrorKind::InvalidValue => "Invalid value.",
            ErrorKind::SvmNotFound => "The specified SVM does not exist.",
            ErrorKind::NotAuthorized => "User is not authorized.",
            ErrorKind::AkvUnavailable => "AKV service is not reachable or refused the request.",
            ErrorKind::KeysExist => {
                "Volume encryption keys (VEK) for one or more encrypted volumes are stored on the key manager configured for the given SVM."
            }
            ErrorKind::NotConfigured => "Azure Key Vault is not configured for the given SVM.",
            ErrorKind::AlreadyConfigured => {
                "A key manager has already been configured for this SVM."
            }
            ErrorKind::StoreFailed => {
                "Internal error. Failed to store configuration in internal database."
            }
            ErrorKind::RestorePartial => "Failed to restore keys on some nodes in the cluster.",
            ErrorKind::ClientSecretRequired => "The field \"client_secret\" must be specified.",
            ErrorKind::InvalidKeyId => {
                "Invalid key ID format. Example key ID format: \"https://mykeyvault.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74\"."
            }
            ErrorKind::InvalidClientSecret => "Invalid client secret.",
            ErrorKind::NoPatchInputs => "No inputs were provided for the patch request.",
            ErrorKind::MissingWrappedKek => {
                "Missing wrapped top-level internal key protection key (KEK) from internal database."
            }
            ErrorKind::KeysOnAdminKeyManager => {
                "One or more volume encryption keys for encrypted volumes of this data SVM are stored in the key manager configured for the admin SVM. Use the REST API POST method to migrate this data SVM's keys from the admin SVM's key manager to this data SVM's key manager before running the rekey operation."
            }
            ErrorKind::NoInternalKeys => {
                "There are no existing internal keys for the SVM. A rekey operation is allowed for an SVM with one or more encryption keys."
            }
            ErrorKind::NoAuthenticationMethod => "No authentication method provided.",
            ErrorKind::InvalidClientCertificate => "Invalid client certificate.",
            ErrorKind::CorruptRecord => "Internal error. A stored record is damaged.",
            ErrorKind::KekUnavailable => {
                "Top-level internal key protection key (KEK) is unavailable on this node."
            }
            ErrorKind::JobInProgress => {
                "Another key operation is in progress for this key manager."
            }
            ErrorKind::ProviderNotEnabled => {
                "This kind of key manager is not enabled on this cluster."
            }
            ErrorKind::AwsNotConfigured => "AWS KMS is not configured for the given SVM.",
            ErrorKind::MirrorsAttached => {
                "This key manager has other roots of trust attached (mirror_of); delete them first."
            }
        }
    }

    /// The HTTP status a REST front end answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::EntryNotFound => 404,
            ErrorKind::NotAuthorized => 401,
            ErrorKind::UnexpectedArgument
            | ErrorKind::InvalidValue
            | ErrorKind::SvmNotFound
            | ErrorKind::NotConfigured
            | ErrorKind::AwsNotConfigured
            | ErrorKind::ProviderNotEnabled
            | ErrorKind::ClientSecretRequired
            | ErrorKind::InvalidKeyId
            | ErrorKind::InvalidClientSecret
            | ErrorKind::NoPatchInputs
            | ErrorKind::NoInternalKeys
            | ErrorKind::NoAuthenticationMethod
            | ErrorKind::InvalidClientCertificate => 400,
            ErrorKind::AlreadyConfigured
            | ErrorKind::KeysExist
            | ErrorKind::KeysOnAdminKeyManager
            | ErrorKind::JobInProgress
            | ErrorKind::MirrorsAttached => 409,
            ErrorKind::AkvUnavailable | ErrorKind::RestorePartial | ErrorKind::KekUnavailable => {
                503
            }
            ErrorKind::StoreFailed | ErrorKind::MissingWrappedKek | ErrorKind::CorruptRecord => 500,
        }
    }

    /// Whether the caller may succeed by retrying the same request later (backend outages).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::AkvUnavailable | ErrorKind::RestorePartial | ErrorKind::KekUnavailable
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// An ekm error: a kind with its ONTAP code, plus what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    /// Replaces the seed's text where it would be wrong for this case.
    text: Option<std::borrow::Cow<'static, str>>,
    /// Set when the same request may succeed later as it is (a backend that was unreachable,
    /// timed out or throttled; a store transaction that lost a race): how long to wait first,
    /// if the failing side said.
    transient: Option<Option<std::time::Duration>>,
    detail: Option<String>,
    target: Option<String>,
}

impl Error {
    /// An error of `kind` with the seed's message only.
    pub fn new(kind: ErrorKind) -> Self {
        Error {
            kind,
            text: None,
            transient: None,
            detail: None,
            target: None,
        }
    }

    /// Marks the failure as transient: retrying the same request later may succeed, after
    /// `retry_after` if the failing side asked for a wait.
    pub fn transient(mut self, retry_after: Option<std::time::Duration>) -> Self {
        self.transient = Some(retry_after);
        self
    }

    /// Whether a later retry of the same request may succeed: the kind is retryable
    /// ([`ErrorKind::is_retryable`]) or the store lost a race, and the cause was marked
    /// transient (an outage or throttling, not a refused credential or a disabled key).
    pub fn is_transient(&self) -> bool {
        self.transient.is_some()
            && (self.kind.is_retryable() || self.kind == ErrorKind::StoreFailed)
    }

    /// How long the failing side asked to wait before a retry, if it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.transient.flatten()
    }

    /// Replaces the seed's text of the code, for a case the seed's text misnames (65537500
    /// "...for this SVM" said of the cluster).
    pub fn with_message(mut self, text: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Adds what exactly was wrong. Never pass a secret value here.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Names the request field that caused the error.
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// The error class.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The ONTAP error code.
    pub fn code(&self) -> u32 {
        self.kind.code()
    }

    /// The detail, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The field that caused the error, if any.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// The full message: the seed's text, then the detail.
    pub fn message(&self) -> String {
        let text = self.text.as_deref().unwrap_or(self.kind.message());
        match &self.detail {
            Some(d) => format!("{text} {d}"),
            None => text.to_owned(),
        }
    }

    /// An error of `kind` said of its scope: the seed's text (which names "the SVM") for an
    /// SVM, the same text naming the cluster for the cluster (the seed has no cluster text).
    pub fn for_scope(kind: ErrorKind, svm: bool) -> Self {
        let e = Error::new(kind);
        let cluster = match kind {
            _ if svm => None,
            ErrorKind::NotConfigured => Some("Azure Key Vault is not configured for the cluster."),
            ErrorKind::AlreadyConfigured => {
                Some("A key manager has already been configured for the cluster.")
            }
            ErrorKind::KeysExist => Some(
                "Volume encryption keys (VEK) for one or more encrypted volumes are stored on the key manager configured for the cluster.",
            ),
            ErrorKind::NoInternalKeys => Some(
                "There are no existing internal keys for the cluster. A rekey operation is allowed for a cluster with one or more encryption keys.",
            ),
            _ => None,
        };
        match cluster {
            Some(text) => e.with_message(text),
            None => e,
        }
    }

    pub(crate) fn invalid_value(field: &str, why: &str) -> Self {
        Error::new(ErrorKind::InvalidValue)
            .with_detail(format!("Field \"{field}\": {why}"))
            .with_target(field)
    }

    pub(crate) fn corrupt(what: &str) -> Self {
        Error::new(ErrorKind::CorruptRecord).with_detail(what.to_owned())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message(), self.code())
    }
}

impl std::error::Error for Error {}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}

/// Result with an ekm [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_listed() {
        let codes: HashSet<u32> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn display_has_code_message_and_detail() {
        let e = Error::new(ErrorKind::InvalidKeyId).with_detail("The path has no version.");
        let s = e.to_string();
        assert!(s.contains("65537523"));
        assert!(s.contains("Invalid key ID format."));
        assert!(s.ends_with("The path has no version. (code 65537523)"));
    }
}
