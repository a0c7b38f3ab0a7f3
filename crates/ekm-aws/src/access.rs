//! What one AWS KMS configuration needs (endpoint, key, credentials, proxy) and the encryption
//! context a wrapped KEK is bound to.
//!
//! Owns: the ONTAP record's fields as the client layer sees them, the endpoint they name, the
//! mapping of ekm's binding and the record's `encryption_context` to a KMS EncryptionContext.
//! Must never: show the secret access key or the proxy password in `Debug`.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use ekm_core::config::ProxyConfig;
use ekm_core::secret::SecretString;
use uuid::Uuid;

/// The EncryptionContext key holding the configuration uuid a KEK belongs to.
pub const CONTEXT_CONFIG: &str = "ekm:config";
/// The EncryptionContext key holding the KEK generation (decimal).
pub const CONTEXT_GENERATION: &str = "ekm:generation";
/// The EncryptionContext key of `check`'s probe (value [`PROBE_VALUE`]); never on a real KEK.
pub const CONTEXT_PROBE: &str = "ekm:probe";
/// The value of [`CONTEXT_PROBE`].
pub const PROBE_VALUE: &str = "check";
/// The EncryptionContext key holding the ONTAP record's `encryption_context` string, verbatim.
pub const CONTEXT_ONTAP: &str = "ontap:context";

/// What one configuration needs to reach its AWS KMS key: the ONTAP `aws-kms` record's fields.
#[derive(Clone)]
pub struct AwsAccess {
    /// AWS region, e.g. `us-east-1` (also the SigV4 signing region).
    pub region: String,
    /// The KMS key: key id, key ARN, alias name (`alias/...`) or alias ARN.
    pub key_id: String,
    /// Access key id (not secret: ONTAP reads it back).
    pub access_key_id: String,
    /// Secret access key (write-only in ONTAP).
    pub secret_access_key: SecretString,
    /// Service name in the endpoint host (ONTAP default `kms`).
    pub service: String,
    /// Domain of the endpoint host (ONTAP default `amazonaws.com`).
    pub default_domain: String,
    /// Overrides the whole endpoint host (`{service}.{region}.{default_domain}` otherwise).
    pub host: Option<String>,
    /// Endpoint port (ONTAP default 443).
    pub port: u16,
    /// The record's `encryption_context`: sent verbatim under [`CONTEXT_ONTAP`]; `None` or an
    /// empty string adds nothing.
    pub encryption_context: Option<String>,
    /// Per-attempt timeout in seconds (ONTAP `timeout`, default 10; 0 is taken as 1).
    pub timeout_secs: u32,
    /// Verify the endpoint's certificate chain (ONTAP `verify`, default true).
    pub verify: bool,
    /// Verify that the certificate names the endpoint host (ONTAP `verify_host`, default true).
    pub verify_host: bool,
    /// Optional HTTP CONNECT proxy (`http` or `https` to the proxy, optional basic auth).
    pub proxy: Option<ProxyConfig>,
}

impl AwsAccess {
    /// An access with ONTAP's defaults: service `kms`, domain `amazonaws.com`, port 443,
    /// timeout 10 s, both TLS checks on, no proxy, no extra context.
    pub fn new(
        region: impl Into<String>,
        key_id: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: SecretString,
    ) -> Self {
        AwsAccess {
            region: region.into(),
            key_id: key_id.into(),
            access_key_id: access_key_id.into(),
            secret_access_key,
            service: "kms".into(),
            default_domain: "amazonaws.com".into(),
            host: None,
            port: 443,
            encryption_context: None,
            timeout_secs: 10,
            verify: true,
            verify_host: true,
            proxy: None,
        }
    }

    /// The endpoint host: `host` if set, else `{service}.{region}.{default_domain}`.
    pub fn endpoint_host(&self) -> String {
        match self.host.as_deref().map(str::trim) {
            Some(h) if !h.is_empty() => h.to_owned(),
            _ => format!("{}.{}.{}", self.service, self.region, self.default_domain),
        }
    }

    /// The endpoint URL, `https://{host}:{port}` (IPv6 literals bracketed; `:443` left out, so
    /// the URL is AWS's own and a `resolve` pin can carry the port).
    pub fn endpoint(&self) -> String {
        let host = self.endpoint_host();
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        if self.port == 443 {
            format!("https://{host}")
        } else {
            format!("https://{host}:{}", self.port)
        }
    }

    /// The per-attempt timeout.
    pub fn attempt_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_secs.max(1)))
    }

    /// The record's own context entry, if any.
    fn ontap_context(&self) -> Option<(String, String)> {
        self.encryption_context
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| (CONTEXT_ONTAP.to_owned(), c.to_owned()))
    }

    /// The EncryptionContext of a KEK bound to `binding`: ekm's binding plus the record's
    /// context. Decrypt must be given exactly the same map.
    pub fn context_for(&self, binding: &Binding) -> HashMap<String, String> {
        let mut c = HashMap::from([
            (CONTEXT_CONFIG.to_owned(), binding.config.to_string()),
            (
                CONTEXT_GENERATION.to_owned(),
                binding.generation.to_string(),
            ),
        ]);
        c.extend(self.ontap_context());
        c
    }

    /// The EncryptionContext of `check`'s probe: [`CONTEXT_PROBE`] plus the record's context
    /// (so the probe also proves a key policy that conditions on it).
    pub fn probe_context(&self) -> HashMap<String, String> {
        let mut c = HashMap::from([(CONTEXT_PROBE.to_owned(), PROBE_VALUE.to_owned())]);
        c.extend(self.ontap_context());
        c
    }
}

impl fmt::Debug for AwsAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsAccess")
            .field("region", &self.region)
            .field("key_id", &self.key_id)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field("endpoint", &self.endpoint())
            .field("encryption_context", &self.encryption_context)
            .field("timeout_secs", &self.timeout_secs)
            .field("verify", &self.verify)
            .field("verify_host", &self.verify_host)
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// What a wrapped KEK is bound to, sent in its EncryptionContext: which configuration, which
/// KEK generation. Unwrapping needs the same binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The configuration (ONTAP record uuid) the KEK belongs to.
    pub config: Uuid,
    /// The KEK generation (grows with every rekey).
    pub generation: u64,
}

/// What `check` learned about the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's ARN (an alias resolves to the key it names).
    pub arn: String,
    /// The key's id.
    pub key_id: String,
    /// The key spec (`SYMMETRIC_DEFAULT`).
    pub key_spec: String,
    /// Who manages the key (`CUSTOMER` or `AWS`), when KMS says.
    pub key_manager: Option<String>,
}

/// How ekm reaches AWS KMS, for every configuration: trust, name pinning, timeouts, retries.
#[derive(Clone)]
pub struct AwsOptions {
    /// PEM certificates trusted in addition to the system roots (a `--aws-ca-file`).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Host names pinned to addresses, like curl's `--resolve` (the address's port is used when
    /// the endpoint's port is 443; an explicit endpoint port wins).
    pub resolve: Vec<(String, SocketAddr)>,
    /// TCP (and proxy CONNECT) connect timeout; never longer than the attempt timeout.
    pub connect_timeout: Duration,
    /// Retries after the first attempt (throttling, 5xx, transport errors, attempt timeouts).
    pub max_retries: u32,
    /// First retry backoff (exponential with jitter after it).
    pub initial_backoff: Duration,
    /// Longest backoff between two attempts.
    pub max_backoff: Duration,
    /// Longest time one call takes, retries included.
    pub max_call_time: Duration,
}

impl AwsOptions {
    /// Reads the extra trusted CA certificates from a PEM file.
    pub fn with_ca_file(mut self, path: &std::path::Path) -> Result<Self, String> {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
        self.extra_ca_pem = Some(pem);
        Ok(self)
    }
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            extra_ca_pem: None,
            resolve: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            max_retries: 2,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_call_time: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for AwsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsOptions")
            .field("extra_ca", &self.extra_ca_pem.is_some())
            .field("resolve", &self.resolve)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("max_call_time", &self.max_call_time)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> AwsAccess {
        AwsAccess::new("eu-west-3", "alias/k", "AKIA", SecretString::from("s"))
    }

    #[test]
    fn the_endpoint_follows_the_ontap_record() {
        let mut a = access();
        assert_eq!(a.endpoint(), "https://kms.eu-west-3.amazonaws.com");
        a.default_domain = "amazonaws.com.cn".into();
        a.port = 8443;
        assert_eq!(a.endpoint(), "https://kms.eu-west-3.amazonaws.com.cn:8443");
        a.host = Some("vpce-1.kms.eu-west-3.vpce.amazonaws.com".into());
        assert_eq!(
            a.endpoint(),
            "https://vpce-1.kms.eu-west-3.vpce.amazonaws.com:8443"
        );
        a.host = Some("::1".into());
        assert_eq!(a.endpoint(), "https://[::1]:8443");
    }

    #[test]
    fn the_context_is_the_binding_plus_the_record_string() {
        let mut a = access();
        let b = Binding {
            config: Uuid::nil(),
            generation: 3,
        };
        assert_eq!(a.context_for(&b).len(), 2);
        assert_eq!(a.context_for(&b)[CONTEXT_GENERATION], "3");
        a.encryption_context = Some(String::new());
        assert_eq!(a.context_for(&b).len(), 2);
        a.encryption_context = Some("dept=storage,env=prod".into());
        let c = a.context_for(&b);
        assert_eq!(c[CONTEXT_ONTAP], "dept=storage,env=prod");
        assert_eq!(c[CONTEXT_CONFIG], Uuid::nil().to_string());
        assert_eq!(a.probe_context()[CONTEXT_PROBE], PROBE_VALUE);
        assert_eq!(a.probe_context()[CONTEXT_ONTAP], "dept=storage,env=prod");
    }
}
