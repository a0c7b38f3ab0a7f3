//! The key-manager configuration: the seed's `azure_key_vault` record, and the create and patch
//! requests parsed from JSON into validated types.
//!
//! Owns: every validation rule of the seed with its ONTAP code.
//! Must never: serialize a secret, echo a secret in an error, or accept a half-valid request.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{KeyId, VaultUrl};
use crate::pkcs12::ClientCertificate;
use crate::topology::{SvmRef, SvmSelector};

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

    fn parse(s: &str) -> Result<Self> {
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

/// A validated create request: everything but the SVM's existence and uniqueness, which the
/// engine checks against the topology and the store.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The SVM named by the request; `None` for the cluster scope.
    pub svm: Option<SvmSelector>,
    /// Application (client) id.
    pub client_id: String,
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Vault URI.
    pub name: VaultUrl,
    /// The external key (with version) that wraps the KEK.
    pub key_id: KeyId,
    /// How to authenticate.
    pub credential: Credential,
    /// Optional proxy.
    pub proxy: Option<ProxyConfig>,
}

/// A validated patch request. Fields left `None` keep their value.
#[derive(Debug, Clone, Default)]
pub struct PatchRequest {
    /// New client id.
    pub client_id: Option<String>,
    /// New tenant id.
    pub tenant_id: Option<String>,
    /// New credential (secret or certificate; switching method is allowed).
    pub credential: Option<Credential>,
    /// Proxy changes.
    pub proxy: ProxyPatch,
}

/// Proxy fields of a patch. `proxy_host: ""` removes the proxy.
#[derive(Debug, Clone, Default)]
pub struct ProxyPatch {
    /// New type.
    pub proxy_type: Option<ProxyType>,
    /// New host; `Some("")` removes the proxy.
    pub host: Option<String>,
    /// New port.
    pub port: Option<u16>,
    /// New user name; `Some("")` removes it.
    pub username: Option<String>,
    /// New password.
    pub password: Option<SecretString>,
}

impl ProxyPatch {
    fn is_empty(&self) -> bool {
        self.proxy_type.is_none()
            && self.host.is_none()
            && self.port.is_none()
            && self.username.is_none()
            && self.password.is_none()
    }

    /// Applies the patch to the current proxy and validates the result.
    pub fn apply(&self, current: Option<&ProxyConfig>) -> Result<Option<ProxyConfig>> {
        if self.is_empty() {
            return Ok(current.cloned());
        }
        if self.host.as_deref() == Some("") {
            return Ok(None);
        }
        let fields = ProxyFields {
            proxy_type: self.proxy_type.or(current.map(|c| c.proxy_type)),
            host: self
                .host
                .clone()
                .or_else(|| current.map(|c| c.host.clone())),
            port: self.port.or(current.map(|c| c.port)),
            username: match self.username.as_deref() {
                Some("") => None,
                Some(u) => Some(u.to_owned()),
                None => current.and_then(|c| c.username.clone()),
            },
            // The stored password goes only to the host it was given for: a new host gets
            // a password only when the request repeats it.
            password: match self.username.as_deref() {
                Some("") => None,
                _ => self.password.clone().or_else(|| {
                    current
                        .filter(|c| self.host.as_ref().is_none_or(|h| *h == c.host))
                        .and_then(|c| c.password.clone())
                }),
            },
        };
        fields.validate()
    }
}

/// Raw proxy fields before validation.
struct ProxyFields {
    proxy_type: Option<ProxyType>,
    host: Option<String>,
    port: Option<u16>,
    username: Option<String>,
    password: Option<SecretString>,
}

impl ProxyFields {
    fn validate(self) -> Result<Option<ProxyConfig>> {
        let Some(host) = self.host else {
            if self.port.is_some() || self.username.is_some() || self.password.is_some() {
                return Err(Error::invalid_value(
                    "proxy_host",
                    "is required when other proxy fields are given.",
                ));
            }
            return Ok(None);
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        if !host_ok {
            return Err(Error::invalid_value(
                "proxy_host",
                "expected a host name or address without scheme, path or credentials.",
            ));
        }
        let port = match self.port {
            Some(p) if p > 0 => p,
            Some(_) => return Err(Error::invalid_value("proxy_port", "must be 1 to 65535.")),
            None => {
                return Err(Error::invalid_value(
                    "proxy_port",
                    "is required when proxy_host is given.",
                ));
            }
        };
        if let Some(u) = &self.username {
            if u.is_empty() || u.len() > 256 || u.chars().any(char::is_control) {
                return Err(Error::invalid_value(
                    "proxy_username",
                    "expected 1 to 256 printable characters.",
                ));
            }
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(Error::invalid_value(
                "proxy_username",
                "is required when proxy_password is given.",
            ));
        }
        Ok(Some(ProxyConfig {
            proxy_type: self.proxy_type.unwrap_or(ProxyType::Http),
            host,
            port,
            username: self.username,
            password: self.password,
        }))
    }
}

/// The wire form of a create or patch body, before validation. Unknown fields are refused.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    svm: Option<SvmSelector>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    authentication_method: Option<String>,
    #[serde(default)]
    client_secret: Option<SecretString>,
    #[serde(default)]
    client_certificate: Option<SecretString>,
    #[serde(default)]
    client_certificate_password: Option<SecretString>,
    #[serde(default)]
    proxy_type: Option<String>,
    #[serde(default)]
    proxy_host: Option<String>,
    #[serde(default)]
    proxy_port: Option<u16>,
    #[serde(default)]
    proxy_username: Option<String>,
    #[serde(default)]
    proxy_password: Option<SecretString>,
    #[serde(default, rename = "_links")]
    _links: Option<IgnoredAny>,
}

/// Parses JSON into `T`, mapping serde's errors to ONTAP codes without echoing any value.
pub(crate) fn parse_json<'de, T: Deserialize<'de>>(json: &'de [u8]) -> Result<T> {
    if json.len() > MAX_BODY_LEN {
        return Err(Error::invalid_value(
            "body",
            "the request body is larger than 256 KiB.",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let text = inner.to_string();
        if let Some(rest) = text.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or_default();
            // Echo a field name only when it looks like one: a secret pasted as a name stays out.
            let looks_like_name = (1..=64).contains(&field.len())
                && field
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !looks_like_name {
                return Error::new(ErrorKind::UnexpectedArgument)
                    .with_detail("The body has a field that is not accepted here.");
            }
            let full = match path.rsplit_once('.') {
                Some((parent, _)) if path.contains('.') => format!("{parent}.{field}"),
                _ => field.to_owned(),
            };
            return Error::new(ErrorKind::UnexpectedArgument)
                .with_detail(format!(
                    "Field \"{}\" is not accepted here.",
                    full.escape_debug()
                ))
                .with_target(full);
        }
        if inner.is_syntax() || inner.is_eof() || path == "." {
            return Error::invalid_value("body", "expected a JSON object.");
        }
        Error::invalid_value(&path, "has a value of the wrong type or range.")
    })
}

fn required(value: Option<String>, field: &str) -> Result<String> {
    match value {
        Some(v) => Ok(v),
        None => Err(Error::invalid_value(field, "is required.")),
    }
}

/// Client and tenant ids: 1 to 256 printable characters.
fn check_app_id(value: String, field: &str) -> Result<String> {
    if value.trim().is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
        return Err(Error::invalid_value(
            field,
            "expected 1 to 256 printable characters.",
        ));
    }
    Ok(value)
}

fn check_client_secret(secret: SecretString) -> Result<SecretString> {
    let s = secret.expose_secret();
    if s.trim().is_empty() || s.len() > MAX_CLIENT_SECRET_LEN || s.chars().any(char::is_control) {
        return Err(Error::new(ErrorKind::InvalidClientSecret)
            .with_detail("A client secret is 1 to 1024 printable characters and not only spaces.")
            .with_target("client_secret"));
    }
    Ok(secret)
}

fn parse_proxy_type(s: Option<String>) -> Result<Option<ProxyType>> {
    match s.as_deref() {
        None => Ok(None),
        Some("http") => Ok(Some(ProxyType::Http)),
        Some("https") => Ok(Some(ProxyType::Https)),
        Some(_) => Err(Error::invalid_value(
            "proxy_type",
            "expected \"http\" or \"https\".",
        )),
    }
}

/// Resolves the credential of a body. `method` is the explicit `authentication_method`.
fn credential_of(
    method: Option<AuthenticationMethod>,
    secret: Option<SecretString>,
    cert: Option<SecretString>,
    cert_password: Option<SecretString>,
) -> Result<Option<Credential>> {
    match (secret, cert) {
        (Some(_), Some(_)) => Err(Error::invalid_value(
            "client_certificate",
            "give either client_secret or client_certificate, not both.",
        )),
        (Some(secret), None) => {
            if method == Some(AuthenticationMethod::Certificate) {
                return Err(Error::new(ErrorKind::InvalidClientCertificate)
                    .with_detail("authentication_method is \"certificate\" but no client_certificate was given.")
                    .with_target("client_certificate"));
            }
            if cert_password.is_some() {
                return Err(Error::invalid_value(
                    "client_certificate_password",
                    "is only accepted with client_certificate.",
                ));
            }
            Ok(Some(Credential::ClientSecret(check_client_secret(secret)?)))
        }
        (None, Some(cert)) => {
            if method == Some(AuthenticationMethod::ClientSecret) {
                return Err(
                    Error::new(ErrorKind::ClientSecretRequired).with_target("client_secret")
                );
            }
            Ok(Some(Credential::Certificate(
                ClientCertificate::from_base64(&cert, cert_password)?,
            )))
        }
        (None, None) => {
            if cert_password.is_some() {
                return Err(Error::new(ErrorKind::InvalidClientCertificate)
                    .with_detail(
                        "client_certificate_password was given without client_certificate.",
                    )
                    .with_target("client_certificate"));
            }
            match method {
                Some(AuthenticationMethod::ClientSecret) => {
                    Err(Error::new(ErrorKind::ClientSecretRequired).with_target("client_secret"))
                }
                Some(AuthenticationMethod::Certificate) => Err(Error::new(
                    ErrorKind::InvalidClientCertificate,
                )
                .with_detail(
                    "authentication_method is \"certificate\" but no client_certificate was given.",
                )
                .with_target("client_certificate")),
                None => Ok(None),
            }
        }
    }
}

impl CreateRequest {
    /// Parses and validates a create body (`POST /api/security/azure-key-vaults`).
    pub fn from_json(json: &[u8]) -> Result<CreateRequest> {
        let body: Body = parse_json(json)?;
        let client_id = check_app_id(required(body.client_id, "client_id")?, "client_id")?;
        let tenant_id = check_app_id(required(body.tenant_id, "tenant_id")?, "tenant_id")?;
        let key_id = KeyId::parse(&required(body.key_id, "key_id")?)?;
        let name = VaultUrl::parse(&required(body.name, "name")?)?;
        let method = body
            .authentication_method
            .as_deref()
            .map(AuthenticationMethod::parse)
            .transpose()?;
        let credential = credential_of(
            method,
            body.client_secret,
            body.client_certificate,
            body.client_certificate_password,
        )?
        .ok_or_else(|| Error::new(ErrorKind::NoAuthenticationMethod))?;
        let svm = body.svm.filter(|s| s.uuid.is_some() || s.name.is_some());
        match body.scope.as_deref() {
            None => {}
            Some("svm") if svm.is_some() => {}
            Some("cluster") if svm.is_none() => {}
            Some("svm") => {
                return Err(Error::invalid_value(
                    "svm",
                    "scope \"svm\" requires svm.uuid or svm.name.",
                ));
            }
            Some("cluster") => {
                return Err(Error::invalid_value(
                    "scope",
                    "scope \"cluster\" does not take an svm.",
                ));
            }
            Some(_) => {
                return Err(Error::invalid_value(
                    "scope",
                    "expected \"svm\" or \"cluster\".",
                ));
            }
        }
        let proxy = ProxyFields {
            proxy_type: parse_proxy_type(body.proxy_type)?,
            host: body.proxy_host.filter(|h| !h.is_empty()),
            port: body.proxy_port,
            username: body.proxy_username.filter(|u| !u.is_empty()),
            password: body.proxy_password,
        }
        .validate()?;
        Ok(CreateRequest {
            svm,
            client_id,
            tenant_id,
            name,
            key_id,
            credential,
            proxy,
        })
    }
}

impl PatchRequest {
    /// Parses and validates a patch body (`PATCH /api/security/azure-key-vaults/{uuid}`).
    /// Fields that cannot change (`key_id`, `name`, `svm`, `scope`) are refused; an empty patch
    /// is [`ErrorKind::NoPatchInputs`].
    pub fn from_json(json: &[u8]) -> Result<PatchRequest> {
        let body: Body = parse_json(json)?;
        for (present, field, hint) in [
            (
                body.key_id.is_some(),
                "key_id",
                "use rekey-external to change the key.",
            ),
            (
                body.name.is_some(),
                "name",
                "the vault of a configuration cannot change.",
            ),
            (
                body.svm.is_some(),
                "svm",
                "the SVM of a configuration cannot change.",
            ),
            (
                body.scope.is_some(),
                "scope",
                "the scope of a configuration cannot change.",
            ),
        ] {
            if present {
                return Err(Error::new(ErrorKind::UnexpectedArgument)
                    .with_detail(format!("Field \"{field}\" cannot be modified: {hint}"))
                    .with_target(field));
            }
        }
        let method = body
            .authentication_method
            .as_deref()
            .map(AuthenticationMethod::parse)
            .transpose()?;
        let credential = credential_of(
            method,
            body.client_secret,
            body.client_certificate,
            body.client_certificate_password,
        )?;
        let patch = PatchRequest {
            client_id: body
                .client_id
                .map(|v| check_app_id(v, "client_id"))
                .transpose()?,
            tenant_id: body
                .tenant_id
                .map(|v| check_app_id(v, "tenant_id"))
                .transpose()?,
            credential,
            proxy: ProxyPatch {
                proxy_type: parse_proxy_type(body.proxy_type)?,
                host: body.proxy_host,
                port: body.proxy_port,
                username: body.proxy_username,
                password: body.proxy_password,
            },
        };
        if patch.client_id.is_none()
            && patch.tenant_id.is_none()
            && patch.credential.is_none()
            && patch.proxy.is_empty()
        {
            return Err(Error::new(ErrorKind::NoPatchInputs));
        }
        Ok(patch)
    }
}

/// A validated rekey-external body: the new key id, and optionally the SVM it is meant for.
#[derive(Debug, Clone)]
pub struct RekeyExternalRequest {
    /// The new external key, with version.
    pub key_id: KeyId,
    /// The SVM named by the request, if any (it must own the configuration).
    pub svm: Option<SvmSelector>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RekeyBody {
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    svm: Option<SvmSelector>,
}

impl RekeyExternalRequest {
    /// Parses `POST /api/security/azure-key-vaults/{uuid}/rekey-external`'s body. A missing or
    /// malformed `key_id` is [`ErrorKind::InvalidKeyId`].
    pub fn from_json(json: &[u8]) -> Result<RekeyExternalRequest> {
        let body: RekeyBody = parse_json(json)?;
        let key_id = KeyId::parse(body.key_id.as_deref().unwrap_or_default())?;
        if let Some(s) = body.scope.as_deref() {
            if s != "svm" && s != "cluster" {
                return Err(Error::invalid_value(
                    "scope",
                    "expected \"svm\" or \"cluster\".",
                ));
            }
        }
        let svm = body.svm.filter(|s| s.uuid.is_some() || s.name.is_some());
        Ok(RekeyExternalRequest { key_id, svm })
    }
}

/// `state`: whether the wrapped KEK is available on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KekState {
    /// True when every node holds the current KEK.
    pub available: bool,
    /// "0" when available.
    pub code: String,
    /// Which nodes lack the KEK and why.
    pub message: String,
}

/// `azure_reachability`: whether AKV answers from every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AzureReachability {
    /// True when reachable.
    pub reachable: bool,
    /// "0" when reachable.
    pub code: String,
    /// Why not, when not.
    pub message: String,
}

/// One entry of `ekmip_reachability`: the node's key table status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EkmipReachability {
    /// The node.
    pub node: crate::topology::Node,
    /// True when the node serves this configuration's keys.
    pub reachable: bool,
    /// "0" when reachable.
    pub code: String,
    /// Why not, when not.
    pub message: String,
}

/// A configuration as callers see it: every field of the seed's record except the write-only
/// secrets. Advanced fields are `None` unless asked for.
#[derive(Debug, Clone, Serialize)]
pub struct AzureKeyVault {
    /// Configuration uuid.
    pub uuid: Uuid,
    /// "cluster" or "svm".
    pub scope: Scope,
    /// The SVM, for the svm scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svm: Option<SvmRef>,
    /// Application (client) id.
    pub client_id: String,
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Vault URI.
    pub name: VaultUrl,
    /// Current external key.
    pub key_id: KeyId,
    /// "client_secret" or "certificate".
    pub authentication_method: AuthenticationMethod,
    /// Proxy type, when a proxy is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_type: Option<ProxyType>,
    /// Proxy host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_host: Option<String>,
    /// Proxy port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_port: Option<u16>,
    /// Proxy user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_username: Option<String>,
    /// Advanced: KEK availability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<KekState>,
    /// Advanced: AKV reachability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure_reachability: Option<AzureReachability>,
    /// Advanced: per-node key table status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ekmip_reachability: Option<Vec<EkmipReachability>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "https://keyvault-test.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74";

    fn body(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"client_id":"client1","tenant_id":"tenant1","name":"https://mykeyvault.azure.vault.net/","key_id":"{KEY}"{extra}}}"#
        )
        .into_bytes()
    }

    fn code(r: Result<impl fmt::Debug>) -> u32 {
        r.unwrap_err().code()
    }

    #[test]
    fn seed_example_parses() {
        let r = CreateRequest::from_json(&body(r#","client_secret":"myclientPwd""#)).unwrap();
        assert_eq!(r.credential.method(), AuthenticationMethod::ClientSecret);
        assert!(r.svm.is_none());
        assert!(!format!("{r:?}").contains("myclientPwd"));
    }

    #[test]
    fn create_codes() {
        assert_eq!(code(CreateRequest::from_json(&body(""))), 65_537_567);
        assert_eq!(
            code(CreateRequest::from_json(&body(r#","client_secret":"  ""#))),
            65_537_540
        );
        assert_eq!(
            code(CreateRequest::from_json(&body(
                r#","authentication_method":"client_secret""#
            ))),
            65_537_517
        );
        assert_eq!(
            code(CreateRequest::from_json(&body(
                r#","client_certificate":"bm90IGEgcGZ4""#
            ))),
            65_537_573
        );
        assert_eq!(
            code(CreateRequest::from_json(&body(r#","bogus":1"#))),
            262_179
        );
        assert_eq!(
            code(CreateRequest::from_json(&body(
                r#","client_secret":"s","proxy_port":70000"#
            ))),
            262_197
        );
        let bad_key = br#"{"client_id":"c","tenant_id":"t","name":"https://v.vault.azure.net/","key_id":"https://keyvault1.vault.azure.net/keys/key1","client_secret":"s"}"#;
        assert_eq!(code(CreateRequest::from_json(bad_key)), 65_537_523);
        assert_eq!(code(CreateRequest::from_json(b"[1,2")), 262_197);
    }

    #[test]
    fn wrong_type_error_does_not_echo_values() {
        let e =
            CreateRequest::from_json(&body(r#","client_secret":"s","proxy_port":"CANARY-PORT""#))
                .unwrap_err();
        assert!(!e.to_string().contains("CANARY"), "{e}");
        assert_eq!(e.target(), Some("proxy_port"));
    }

    #[test]
    fn patch_codes() {
        assert_eq!(code(PatchRequest::from_json(b"{}")), 65_537_541);
        assert_eq!(code(PatchRequest::from_json(br#"{"key_id":"x"}"#)), 262_179);
        assert_eq!(
            code(PatchRequest::from_json(br#"{"client_secret":""}"#)),
            65_537_540
        );
        let p = PatchRequest::from_json(br#"{"client_secret":"newSecret"}"#).unwrap();
        assert!(matches!(p.credential, Some(Credential::ClientSecret(_))));
    }

    #[test]
    fn rekey_external_body() {
        let ok =
            RekeyExternalRequest::from_json(format!(r#"{{"key_id":"{KEY}"}}"#).as_bytes()).unwrap();
        assert_eq!(ok.key_id.as_str(), KEY);
        let seed = br#"{"key_id":"https://keyvault1.vault.azure.net/keys/key1","scope":"svm","svm":{"name":"svm1","uuid":"02c9e252-41be-11e9-81d5-00a0986138f7","_links":{}}}"#;
        assert_eq!(code(RekeyExternalRequest::from_json(seed)), 65_537_523);
        assert_eq!(code(RekeyExternalRequest::from_json(b"{}")), 65_537_523);
        assert_eq!(
            code(RekeyExternalRequest::from_json(br#"{"key":1}"#)),
            262_179
        );
    }

    #[test]
    fn proxy_rules() {
        let ok = CreateRequest::from_json(&body(
            r#","client_secret":"s","proxy_type":"http","proxy_host":"proxy.eng.com","proxy_port":1234,"proxy_username":"u","proxy_password":"p""#,
        ))
        .unwrap();
        assert_eq!(ok.proxy.as_ref().unwrap().port, 1234);
        assert_eq!(
            code(CreateRequest::from_json(&body(
                r#","client_secret":"s","proxy_host":"p""#
            ))),
            262_197
        );
        assert_eq!(
            code(CreateRequest::from_json(&body(
                r#","client_secret":"s","proxy_host":"http://p","proxy_port":1"#
            ))),
            262_197
        );
        let removed = ProxyPatch {
            host: Some(String::new()),
            ..Default::default()
        }
        .apply(ok.proxy.as_ref())
        .unwrap();
        assert!(removed.is_none());
    }
}
