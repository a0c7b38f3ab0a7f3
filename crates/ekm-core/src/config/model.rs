//! The configuration's domain model: scope, authentication method, credential, proxy.
use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pkcs12::ClientCertificate;

/// Largest request body the parsers accept.
pub const MAX_BODY_LEN: usize = 256 * 1024;
/// Longest client secret accepted.
pub const MAX_CLIENT_SECRET_LEN: usize = 1024;

/// Whether a configuration protects the cluster's keys or one SVM's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The cluster (admin SVM).
    Cluster,
    /// One data SVM.
    Svm,
}

impl Scope {
    /// The seed's string.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Cluster => "cluster",
            Scope::Svm => "svm",
        }
    }
}

/// How ekm authenticates to AKV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthenticationMethod {
    /// Client secret (`ClientSecretCredential`).
    #[serde(rename = "client_secret")]
    ClientSecret,
    /// PKCS#12 client certificate (signed client assertion).
    #[serde(rename = "certificate")]
    Certificate,
}

impl AuthenticationMethod {
    /// The seed's string.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthenticationMethod::ClientSecret => "client_secret",
            AuthenticationMethod::Certificate => "certificate",
        }
    }

    pub(super) fn parse(s: &str) -> Result<Self> {
        match s {
            "client_secret" => Ok(AuthenticationMethod::ClientSecret),
            "certificate" => Ok(AuthenticationMethod::Certificate),
            _ => Err(Error::invalid_value(
                "authentication_method",
                "expected \"client_secret\" or \"certificate\".",
            )),
        }
    }
}

/// The credential a configuration authenticates with. Never serialized; `Debug` redacts.
#[derive(Clone)]
pub enum Credential {
    /// A client secret.
    ClientSecret(SecretString),
    /// A PKCS#12 client certificate that opens with its password.
    Certificate(ClientCertificate),
}

impl Credential {
    /// Which method this credential uses.
    pub fn method(&self) -> AuthenticationMethod {
        match self {
            Credential::ClientSecret(_) => AuthenticationMethod::ClientSecret,
            Credential::Certificate(_) => AuthenticationMethod::Certificate,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::ClientSecret(_) => f.write_str("ClientSecret([redacted])"),
            Credential::Certificate(_) => f.write_str("Certificate([redacted])"),
        }
    }
}

/// Proxy protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyType {
    /// Plain HTTP proxy (CONNECT).
    Http,
    /// TLS to the proxy.
    Https,
}

impl ProxyType {
    /// The seed's string.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyType::Http => "http",
            ProxyType::Https => "https",
        }
    }
}

/// An outbound proxy for AKV traffic. The password is write-only.
#[derive(Clone)]
pub struct ProxyConfig {
    /// Protocol to the proxy.
    pub proxy_type: ProxyType,
    /// Host name or address (no scheme, no path).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Optional user name.
    pub username: Option<String>,
    /// Optional password (requires a user name).
    pub password: Option<SecretString>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("proxy_type", &self.proxy_type)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}
