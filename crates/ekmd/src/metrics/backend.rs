//! The metered backend: a decorator of the real [`Backend`] that counts and times every call
//! into the metrics, so `ekm-core` stays free of metrics.
//!
//! Owns: which backend calls are measured, and under which operation name.
//! Must never: change what the backend is asked or answers, or record key material.
//!
//! | `Backend` call | `operation` label | series |
//! |---|---|---|
//! | `wrap_kek` | `wrap` | `ekm_backend_calls`, `ekm_backend_call_duration_seconds` (and `ekm_backend_throttled`, `ekm_backend_throttle_wait_seconds` when throttled) |
//! | `unwrap_kek` | `unwrap` | the same |
//! | `check` | `check` | the same |
//! | `kind`, `algorithm` | not measured | — |

use std::sync::Arc;
use std::time::Instant;

use ekm_core::{Backend, BackendCall, BackendError, KeyId, KeyMaterial, SecretBytes};

use super::registry::Metrics;

/// A [`Backend`] that counts and times every call of the one it wraps.
#[derive(Debug)]
pub struct MeteredBackend {
    inner: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
}

impl MeteredBackend {
    /// `inner`, measured into `metrics`.
    pub fn new(inner: Arc<dyn Backend>, metrics: Arc<Metrics>) -> Self {
        MeteredBackend { inner, metrics }
    }
}

impl Backend for MeteredBackend {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn algorithm(&self) -> &'static str {
        self.inner.algorithm()
    }

    fn wrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &KeyId,
        kek: &KeyMaterial,
    ) -> Result<Vec<u8>, BackendError> {
        let t = Instant::now();
        let r = self.inner.wrap_kek(call, key, kek);
        self.metrics.backend_call("wrap", t, &r);
        r
    }

    fn unwrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &KeyId,
        wrapped: &[u8],
    ) -> Result<SecretBytes, BackendError> {
        let t = Instant::now();
        let r = self.inner.unwrap_kek(call, key, wrapped);
        self.metrics.backend_call("unwrap", t, &r);
        r
    }

    fn check(&self, call: &BackendCall<'_>, key: &KeyId) -> Result<(), BackendError> {
        let t = Instant::now();
        let r = self.inner.check(call, key);
        self.metrics.backend_call("check", t, &r);
        r
    }
}
