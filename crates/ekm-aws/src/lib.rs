//! ekm-aws: the AWS KMS client layer of ekm's second root of trust, on the official AWS SDK for
//! Rust (`aws-sdk-kms`).
//!
//! Owns: wrapping a KEK (KMS `Encrypt`), unwrapping it (`Decrypt`) and checking a key
//! (`DescribeKey` plus a wrap/unwrap probe), one KMS call per operation, each with ekm's binding in
//! the EncryptionContext; the SDK clients of each configuration, on a runtime of its own behind a
//! blocking API.
//!
//! Must never: put a secret (secret access key, proxy password, KEK) in an error, a
//! log or `Debug` output; read credentials, region, endpoint or proxy from the environment or from
//! `~/.aws`.
//!
//! - [`AwsKms::wrap`]: `Encrypt(KeyId, Plaintext = KEK, EncryptionContext)` → the blob.
//! - [`AwsKms::unwrap`]: `Decrypt(KeyId, CiphertextBlob, EncryptionContext)`; a blob of another
//!   key or context is [`Rejected`](BackendErrorKind::Rejected), never a panic.
//! - [`AwsKms::check`]: `DescribeKey` (KeyState must be `Enabled`, the key symmetric), then a
//!   probe of 32 random bytes wrapped and unwrapped.
//!
//! # Encryption context
//!
//! A KEK's context is `{"ekm:config": <configuration uuid>, "ekm:generation": "<n>"}`
//! ([`Binding`]), plus `{"ontap:context": <string>}` when the ONTAP record's `encryption_context`
//! is set and not empty. The ONTAP string is taken verbatim under one key rather than parsed as
//! `k=v` pairs: any string ONTAP accepts works, nothing can collide with ekm's keys, and a key
//! policy can still condition on it (`kms:EncryptionContext:ontap:context`). Decrypt needs the very
//! same map, so a record whose `encryption_context` changes must have its KEK rewrapped (or
//! remember the string it was wrapped with). `check`'s probe uses `{"ekm:probe": "check"}` plus the
//! record's context.
//!
//! # Errors
//!
//! One map, in [`errors`]: `DisabledException`, `KMSInvalidStateException` → `KeyDisabled`;
//! `NotFoundException` → `KeyNotFound`; `AccessDeniedException` → `Forbidden`, except on Decrypt
//! when it is not about a permission ("... is not authorized to perform ...") but about the
//! ciphertext (AWS: "The ciphertext refers to a customer master key that does not exist ..."; moto:
//! a bare code for a blob of another key) → `Rejected`; `UnrecognizedClientException`,
//! `InvalidSignatureException`, `SignatureDoesNotMatch`, `InvalidClientTokenId`, expired tokens →
//! `AuthenticationFailed`; `IncorrectKeyException`, `InvalidCiphertextException` → `Rejected`;
//! `ThrottlingException` (matched by code: the SDK has no typed variant) → `Throttled` with a
//! `retry_after`; `KMSInternalException`, `DependencyTimeoutException`, 5xx, connection, DNS, TLS
//! failures and timeouts → `Unreachable`. Retries (throttling, 5xx, transport) stay within
//! [`AwsOptions`]' budget: `max_retries`, per-attempt `timeout`, `max_call_time` in all.
//!
//! # Why these SDK crates and features
//!
//! `aws-sdk-kms` is taken with `default-features = false` and only `rt-tokio` (the SDK's sleeps and
//! timeouts on tokio). Its default `default-https-client`/`rustls` features would bring the SDK's
//! own hyper + rustls connector (`aws-smithy-http-client`), which cannot do what an ONTAP record
//! asks: its DNS hook returns addresses without ports (no `--aws-resolve HOST=IP:PORT`), its TLS
//! context has no `verify`/`verify_host` switches, and its proxy configuration keeps the proxy
//! password in a plain `String` that its `Debug` prints. Instead the SDK sends through a small
//! `HttpClient` of ours (`http.rs`) on `reqwest` 0.13 with only its `rustls` feature (rustls 0.23
//! on aws-lc-rs with the platform verifier, HTTP/1.1; proxies only as configured, `no_proxy`
//! otherwise), exactly as ekm-azure does, so both roots of trust share one TLS stack, one proxy
//! behaviour and the crates already in the lock (the SDK adds only its own `aws-*` crates).
//! `aws-config` is not used at all: it exists to read credentials, region and endpoints from the
//! environment, profiles, IMDS and SSO, all of which ekm must ignore (every value comes from the
//! configuration), and it would add the SSO/STS clients. `aws-smithy-runtime-api` (`client`) and
//! `aws-smithy-types` (`http-body-1-x`) are named only for the `HttpClient` trait and for bodies
//! whose `Debug` hides their bytes: the SDK traces every request and answer it transmits
//! (`aws_smithy_runtime` at TRACE), and an Encrypt request or a Decrypt answer carries the KEK. The
//! answers we hand the SDK are always opaque; requests are made opaque by our interceptor once
//! signed (aws-smithy-runtime 1.16's own body-size telemetry happens to wrap them too, but nothing
//! promises it will stay). Stalled-stream protection is off: bodies are read whole by reqwest
//! within the attempt timeout. The behavior version is pinned (`v2026_11_17`) and every timeout and
//! retry value is set explicitly.

#![forbid(unsafe_code)]

mod access;
mod backend;
pub mod errors;
mod http;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

use std::collections::HashMap;
use std::fmt;

use aws_sdk_kms::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{
    BehaviorVersion, Credentials, Region, SharedHttpClient, StalledStreamProtectionConfig,
};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};
use ekm_core::backend::{BackendError, BackendErrorKind};
use ekm_core::secret::{ExposeSecret, KeyMaterial, SecretBytes};
use parking_lot::Mutex;

pub use access::{
    AwsAccess, AwsOptions, Binding, CONTEXT_CONFIG, CONTEXT_GENERATION, CONTEXT_ONTAP,
    CONTEXT_PROBE, KeyInfo, PROBE_VALUE,
};
pub use backend::client_access;
pub use errors::{Operation, THROTTLE_RETRY_AFTER};

/// SDK clients kept at most (one per distinct endpoint, credentials and proxy).
const MAX_CLIENTS: usize = 64;

/// The AWS KMS client layer: blocking calls, run on its own tokio runtime, so it can be
/// called from any thread (including from inside another runtime's blocking pool).
pub struct AwsKms {
    options: AwsOptions,
    runtime: tokio::runtime::Runtime,
    /// SDK clients by a digest of everything they were built from (never leaves memory).
    clients: Mutex<HashMap<[u8; 32], aws_sdk_kms::Client>>,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn invalid(msg: impl Into<String>) -> BackendError {
    BackendError::new(BackendErrorKind::InvalidResponse, msg)
}

impl AwsKms {
    /// A client layer with `options`. Fails only when the runtime or the CA cannot be set up.
    pub fn new(options: AwsOptions) -> Result<Self, String> {
        if let Some(pem) = &options.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the extra CA file is not PEM certificates: {e}"))?;
            if certs.is_empty() {
                return Err("the extra CA file holds no certificate".into());
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ekm-aws")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the AWS runtime: {e}"))?;
        Ok(AwsKms {
            options,
            runtime,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &AwsOptions {
        &self.options
    }

    /// The SDK client for exactly this endpoint, credentials, proxy and timeout: a patch being
    /// proven never reuses or poisons the client in force.
    pub(crate) fn client(&self, access: &AwsAccess) -> Result<aws_sdk_kms::Client, BackendError> {
        let fp = fingerprint(access);
        if let Some(c) = self.clients.lock().get(&fp) {
            return Ok(c.clone());
        }
        let http = http::ReqwestHttpClient::new(&self.options, access)?;
        let o = &self.options;
        let attempt = access.attempt_timeout();
        let credentials = Credentials::new(
            access.access_key_id.clone(),
            access.secret_access_key.expose_secret().to_owned(),
            None,
            None,
            "ekm",
        );
        let config = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::v2026_11_17())
            .region(Region::new(access.region.clone()))
            .endpoint_url(access.endpoint())
            .credentials_provider(credentials)
            .http_client(SharedHttpClient::new(http))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(o.max_retries.saturating_add(1))
                    .with_initial_backoff(o.initial_backoff)
                    .with_max_backoff(o.max_backoff),
            )
            // Each configuration its own retry quota: one throttled tenant cannot spend
            // another's.
            .retry_partition(RetryPartition::new(format!(
                "ekm-aws-{}",
                hex::encode(&fp[..8])
            )))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(o.connect_timeout.min(attempt))
                    .read_timeout(attempt)
                    .operation_attempt_timeout(attempt)
                    .operation_timeout(o.max_call_time)
                    .build(),
            )
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .interceptor(http::HideBodies)
            .build();
        let client = aws_sdk_kms::Client::from_conf(config);
        let mut clients = self.clients.lock();
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(fp, client.clone());
        Ok(client)
    }

    /// Runs a future on the runtime and waits for it, from any thread; error messages are
    /// scrubbed of `access`'s secrets (belt and braces: KMS never echoes them).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        access: &AwsAccess,
        fut: impl std::future::Future<Output = Result<T, BackendError>> + Send + 'static,
    ) -> Result<T, BackendError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(invalid("the AWS runtime stopped")))
            .map_err(|e| scrub(e, access))
    }

    /// Wraps `kek` with the configuration's KMS key, bound to `binding`: one `Encrypt`.
    /// Returns KMS's ciphertext blob (it names the key and its backing version).
    pub fn wrap(
        &self,
        access: &AwsAccess,
        binding: &Binding,
        kek: &KeyMaterial,
    ) -> Result<Vec<u8>, BackendError> {
        self.encrypt(
            access,
            access.context_for(binding),
            kek.expose_secret().to_vec(),
        )
    }

    /// Unwraps a blob made by [`wrap`](Self::wrap) with the same key and binding: one
    /// `Decrypt`. A blob of another key or context, or a corrupted one, is `Rejected`.
    pub fn unwrap(
        &self,
        access: &AwsAccess,
        binding: &Binding,
        blob: &[u8],
    ) -> Result<SecretBytes, BackendError> {
        self.decrypt(access, access.context_for(binding), blob.to_vec())
    }

    /// Checks credentials, reachability and the key: `DescribeKey` (state `Enabled`, a
    /// symmetric encryption key; `KeyDisabled` names the state otherwise), then a random
    /// 32-byte probe wrapped and unwrapped. Three KMS calls.
    pub fn check(&self, access: &AwsAccess) -> Result<KeyInfo, BackendError> {
        let info = self.describe(access)?;
        let probe = KeyMaterial::random();
        let blob = self.encrypt(
            access,
            access.probe_context(),
            probe.expose_secret().to_vec(),
        )?;
        let back = self.decrypt(access, access.probe_context(), blob)?;
        if back.expose_secret() != probe.expose_secret() {
            return Err(invalid("a probe key did not unwrap to itself"));
        }
        Ok(info)
    }

    /// `DescribeKey` of the access's key: its ARN, id and spec (state `Enabled`, a symmetric
    /// encryption key; `KeyDisabled` naming the state otherwise). One KMS call.
    pub fn describe_key(&self, access: &AwsAccess) -> Result<KeyInfo, BackendError> {
        self.describe(access)
    }

    fn describe(&self, access: &AwsAccess) -> Result<KeyInfo, BackendError> {
        let client = self.client(access)?;
        let (key_id, endpoint, attempt) = call_args(access);
        let op = Operation::DescribeKey;
        self.run(access, async move {
            let out = client
                .describe_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| errors::classify(op, &endpoint, attempt, &e))?;
            let m = out
                .key_metadata
                .ok_or_else(|| invalid("DescribeKey returned no key metadata"))?;
            let arn = m.arn.clone().unwrap_or_default();
            let state = m
                .key_state
                .as_ref()
                .map(|s| s.as_str())
                .unwrap_or("unknown");
            if m.key_state != Some(KeyState::Enabled) {
                return Err(BackendError::new(
                    BackendErrorKind::KeyDisabled,
                    format!("the KMS key {arn} is in state {state}, not Enabled"),
                ));
            }
            let spec = m.key_spec.as_ref().map(|s| s.as_str()).unwrap_or("unknown");
            let usage = m
                .key_usage
                .as_ref()
                .map(|s| s.as_str())
                .unwrap_or("unknown");
            if m.key_spec
                .as_ref()
                .is_some_and(|s| *s != KeySpec::SymmetricDefault)
                || m.key_usage
                    .as_ref()
                    .is_some_and(|u| *u != KeyUsageType::EncryptDecrypt)
            {
                return Err(BackendError::new(
                    BackendErrorKind::Rejected,
                    format!(
                        "the KMS key {arn} is not a symmetric encryption key \
                         (KeySpec {spec}, KeyUsage {usage})"
                    ),
                ));
            }
            Ok(KeyInfo {
                arn,
                key_id: m.key_id,
                key_spec: spec.to_owned(),
                key_manager: m.key_manager.map(|k| k.as_str().to_owned()),
            })
        })
    }

    fn encrypt(
        &self,
        access: &AwsAccess,
        context: HashMap<String, String>,
        plaintext: Vec<u8>,
    ) -> Result<Vec<u8>, BackendError> {
        let client = self.client(access)?;
        let (key_id, endpoint, attempt) = call_args(access);
        let op = Operation::Encrypt;
        self.run(access, async move {
            let out = client
                .encrypt()
                .key_id(key_id)
                .plaintext(Blob::new(plaintext))
                .set_encryption_context(Some(context))
                .send()
                .await
                .map_err(|e| errors::classify(op, &endpoint, attempt, &e))?;
            out.ciphertext_blob
                .map(Blob::into_inner)
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid("Encrypt returned no ciphertext"))
        })
    }

    fn decrypt(
        &self,
        access: &AwsAccess,
        context: HashMap<String, String>,
        blob: Vec<u8>,
    ) -> Result<SecretBytes, BackendError> {
        if blob.is_empty() {
            return Err(BackendError::new(
                BackendErrorKind::Rejected,
                "the wrapped KEK is empty",
            ));
        }
        let client = self.client(access)?;
        let (key_id, endpoint, attempt) = call_args(access);
        let op = Operation::Decrypt;
        self.run(access, async move {
            let out = client
                .decrypt()
                .key_id(key_id)
                .ciphertext_blob(Blob::new(blob))
                .set_encryption_context(Some(context))
                .send()
                .await
                .map_err(|e| errors::classify(op, &endpoint, attempt, &e))?;
            out.plaintext
                .map(|p| SecretBytes::new(p.into_inner()))
                .ok_or_else(|| invalid("Decrypt returned no plaintext"))
        })
    }
}

/// What each call's future needs from `access`, owned.
fn call_args(access: &AwsAccess) -> (String, String, std::time::Duration) {
    (
        access.key_id.clone(),
        access.endpoint(),
        access.attempt_timeout(),
    )
}

/// `e` with every occurrence of one of `access`'s secrets replaced.
fn scrub(mut e: BackendError, access: &AwsAccess) -> BackendError {
    let mut secrets = vec![access.secret_access_key.expose_secret()];
    if let Some(pw) = access.proxy.as_ref().and_then(|p| p.password.as_ref()) {
        secrets.push(pw.expose_secret());
    }
    for s in secrets.into_iter().filter(|s| s.len() >= 4) {
        if e.message.contains(s) {
            e.message = e.message.replace(s, "[redacted]");
        }
    }
    e
}

/// A digest of everything a configuration's SDK client depends on.
fn fingerprint(access: &AwsAccess) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(access.region.as_bytes());
    field(access.endpoint().as_bytes());
    field(access.access_key_id.as_bytes());
    field(access.secret_access_key.expose_secret().as_bytes());
    field(&access.timeout_secs.to_be_bytes());
    field(&[u8::from(access.verify), u8::from(access.verify_host)]);
    if let Some(p) = &access.proxy {
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_client_layer_is_send_and_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<super::AwsKms>();
    }
}
