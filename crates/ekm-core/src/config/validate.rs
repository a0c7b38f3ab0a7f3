//! The seed's validation rules for configuration fields, each refusing with its ONTAP code.

use secrecy::{ExposeSecret, SecretString};

use super::model::*;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{KeyId, VaultUrl};
use crate::pkcs12::ClientCertificate;

/// The key `key_id` names must be in the vault `name` names (else the configuration would
/// name one vault and use another): 65537523, the seed's code for a `key_id` that is not
/// acceptable, on target `key_id`. `rekey` says the vault is the existing configuration's.
pub(crate) fn check_key_in_vault(key_id: &KeyId, name: &VaultUrl, rekey: bool) -> Result<()> {
    if key_id.vault() == name.origin() {
        return Ok(());
    }
    let (message, whose) = if rekey {
        (
            "Invalid key ID: the key is not in this key manager's vault.",
            "this key manager's vault (\"name\") is",
        )
    } else {
        (
            "Invalid key ID: the key is not in the vault that \"name\" names.",
            "\"name\" is",
        )
    };
    Err(Error::new(ErrorKind::InvalidKeyId)
        .with_message(message)
        .with_detail(format!(
            "The key_id \"{}\" is in vault \"{}\", but {whose} \"{}\": key_id must name a key of that vault, such as \"{}/keys/<name>/<version>\".",
            key_id.as_str().escape_debug(),
            key_id.vault().escape_debug(),
            name.as_str().escape_debug(),
            name.origin().escape_debug(),
        ))
        .with_target("key_id"))
}

/// Raw proxy fields before validation.
pub(super) struct ProxyFields {
    pub(super) proxy_type: Option<ProxyType>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) username: Option<String>,
    pub(super) password: Option<SecretString>,
}

impl ProxyFields {
    pub(super) fn validate(self) -> Result<Option<ProxyConfig>> {
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

pub(super) fn required(value: Option<String>, field: &str) -> Result<String> {
    match value {
        Some(v) => Ok(v),
        None => Err(Error::invalid_value(field, "is required.")),
    }
}

/// Client and tenant ids: 1 to 256 printable characters.
pub(super) fn check_app_id(value: String, field: &str) -> Result<String> {
    if value.trim().is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
        return Err(Error::invalid_value(
            field,
            "expected 1 to 256 printable characters.",
        ));
    }
    Ok(value)
}

pub(super) fn check_client_secret(secret: SecretString) -> Result<SecretString> {
    if !is_printable_secret(&secret) {
        return Err(Error::new(ErrorKind::InvalidClientSecret)
            .with_detail("A client secret is 1 to 1024 printable characters and not only spaces.")
            .with_target("client_secret"));
    }
    Ok(secret)
}

/// A create body's `scope`, which must agree with its `svm` (`has_svm`): `svm` with an SVM,
/// `cluster` without one, or left out.
/// The wire form of `{"uuid": "..."}` (ekm's `mirror_of`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UuidRef {
    uuid: String,
}

/// `mirror_of` of a create body: the primary configuration's uuid.
pub(super) fn mirror_of(r: Option<UuidRef>) -> Result<Option<uuid::Uuid>> {
    r.map(|r| {
        uuid::Uuid::parse_str(&r.uuid).map_err(|_| {
            Error::invalid_value(
                "mirror_of.uuid",
                "expected the uuid of the configuration to mirror.",
            )
        })
    })
    .transpose()
}

pub(super) fn check_scope(scope: Option<&str>, has_svm: bool) -> Result<()> {
    match scope {
        None => Ok(()),
        Some("svm") if has_svm => Ok(()),
        Some("cluster") if !has_svm => Ok(()),
        Some("svm") => Err(Error::invalid_value(
            "svm",
            "scope \"svm\" requires svm.uuid or svm.name.",
        )),
        Some("cluster") => Err(Error::invalid_value(
            "scope",
            "scope \"cluster\" does not take an svm.",
        )),
        Some(_) => Err(Error::invalid_value(
            "scope",
            "expected \"svm\" or \"cluster\".",
        )),
    }
}

/// A patch naming a field that cannot change: 262179 on the first such field, with its hint.
/// Each entry is (present in the body, field, how to change it instead).
pub(super) fn refuse_unmodifiable(fields: &[(bool, &str, &str)]) -> Result<()> {
    match fields.iter().find(|(present, _, _)| *present) {
        Some((_, field, hint)) => Err(Error::new(ErrorKind::UnexpectedArgument)
            .with_detail(format!("Field \"{field}\" cannot be modified: {hint}"))
            .with_target(*field)),
        None => Ok(()),
    }
}

/// A secret of 1 to 1024 printable characters, not only spaces (what the seed asks of a
/// client secret, and ekm of every other secret).
pub(super) fn is_printable_secret(secret: &SecretString) -> bool {
    let s = secret.expose_secret();
    !(s.trim().is_empty() || s.len() > MAX_CLIENT_SECRET_LEN || s.chars().any(char::is_control))
}

pub(super) fn parse_proxy_type(s: Option<String>) -> Result<Option<ProxyType>> {
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
pub(super) fn credential_of(
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
