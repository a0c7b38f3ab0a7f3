//! The fake's faults: which operation a fault applies to, the failures it can produce (each
//! as the backend error class a real vault's failure has), the calls it counts.
//!
//! Owns: the mapping of each injected fault to its [`BackendError`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use ekm_core::backend::{BackendError, BackendErrorKind};
use uuid::Uuid;

/// Which backend operation a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `wrap_kek`.
    Wrap,
    /// `unwrap_kek`.
    Unwrap,
    /// `check`.
    Check,
}

/// A failure the fake can be told to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Network failure.
    Unreachable,
    /// HTTP 429 with this Retry-After.
    Throttled {
        /// How long the vault asks to wait.
        retry_after: Duration,
    },
    /// The identity provider refuses the credential.
    AuthenticationFailed,
    /// Not permitted to use the key.
    Forbidden,
    /// The key version does not exist.
    KeyNotFound,
    /// The key version is disabled.
    KeyDisabled,
    /// Unwrap fails as if the blob was wrapped by another key.
    WrongKey,
    /// Unwrap "succeeds" with 32 random bytes: a broken or replaced vault key.
    WrongKek,
}

impl Fault {
    pub(crate) fn error(self) -> BackendError {
        let (kind, msg) = match self {
            Fault::Unreachable => (
                BackendErrorKind::Unreachable,
                "injected: connection refused",
            ),
            Fault::Throttled { .. } => (BackendErrorKind::Throttled, "injected: HTTP 429"),
            Fault::AuthenticationFailed => (
                BackendErrorKind::AuthenticationFailed,
                "injected: invalid client credential",
            ),
            Fault::Forbidden => (BackendErrorKind::Forbidden, "injected: HTTP 403"),
            Fault::KeyNotFound => (BackendErrorKind::KeyNotFound, "injected: key not found"),
            Fault::KeyDisabled => (BackendErrorKind::KeyDisabled, "injected: key disabled"),
            Fault::WrongKey | Fault::WrongKek => (
                BackendErrorKind::Rejected,
                "injected: unwrap with the wrong key",
            ),
        };
        let mut e = BackendError::new(kind, msg);
        if let Fault::Throttled { retry_after } = self {
            e.retry_after = Some(retry_after);
        }
        e
    }
}

/// Calls served, by operation (counted when the call reaches the fake, faulted or not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// `wrap_kek` calls.
    pub wraps: u64,
    /// `unwrap_kek` calls.
    pub unwraps: u64,
    /// `check` calls.
    pub checks: u64,
}

/// The faults armed, by scope.
#[derive(Default)]
pub(crate) struct Faults {
    pub(crate) always: Option<Fault>,
    pub(crate) next: VecDeque<(Option<Op>, Fault)>,
    pub(crate) latency: Duration,
    pub(crate) node_latency: HashMap<Uuid, Duration>,
    pub(crate) unreachable_nodes: HashSet<Uuid>,
}
