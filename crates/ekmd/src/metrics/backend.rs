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
//! | `resolve` | `resolve` | the same (an AWS alias's DescribeKey) |
//! | `serves`, `kind`, `algorithm` | not measured | — |

use std::sync::Arc;
use std::time::Instant;

use ekm_core::{
    Backend, BackendCall, BackendError, ExternalKey, KeyMaterial, Provider, SecretBytes,
};

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
    fn serves(&self, provider: Provider) -> bool {
        self.inner.serves(provider)
    }

    fn kind(&self, provider: Provider) -> &'static str {
        self.inner.kind(provider)
    }

    fn algorithm(&self, provider: Provider) -> &'static str {
        self.inner.algorithm(provider)
    }

    fn wrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        kek: &KeyMaterial,
    ) -> Result<Vec<u8>, BackendError> {
        let t = Instant::now();
        let r = self.inner.wrap_kek(call, key, generation, kek);
        self.metrics.backend_call("wrap", t, &r);
        r
    }

    fn unwrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        wrapped: &[u8],
    ) -> Result<SecretBytes, BackendError> {
        let t = Instant::now();
        let r = self.inner.unwrap_kek(call, key, generation, wrapped);
        self.metrics.backend_call("unwrap", t, &r);
        r
    }

    fn resolve(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
    ) -> Result<ExternalKey, BackendError> {
        let t = Instant::now();
        let r = self.inner.resolve(call, key);
        self.metrics.backend_call("resolve", t, &r);
        r
    }

    fn check(&self, call: &BackendCall<'_>, key: &ExternalKey) -> Result<(), BackendError> {
        let t = Instant::now();
        let r = self.inner.check(call, key);
        self.metrics.backend_call("check", t, &r);
        r
    }
}
