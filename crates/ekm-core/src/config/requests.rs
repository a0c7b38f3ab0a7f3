//! The REST bodies of create, patch and rekey-external, parsed into validated requests.

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::json::parse_json;
use super::model::*;
use super::validate::*;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{KeyId, VaultUrl};
use crate::topology::SvmSelector;

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
    /// ekm's extension: attach as an additional root of trust of this configuration's scope.
    pub mirror_of: Option<uuid::Uuid>,
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
    pub(super) fn is_empty(&self) -> bool {
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
    #[serde(default)]
    mirror_of: Option<super::validate::UuidRef>,
    #[serde(default, rename = "_links")]
    _links: Option<IgnoredAny>,
}

impl Body {
    /// The credential the body gives, if any (its fields are taken out).
    fn take_credential(&mut self) -> Result<Option<Credential>> {
        let method = self
            .authentication_method
            .as_deref()
            .map(AuthenticationMethod::parse)
            .transpose()?;
        credential_of(
            method,
            self.client_secret.take(),
            self.client_certificate.take(),
            self.client_certificate_password.take(),
        )
    }
}

impl CreateRequest {
    /// Parses and validates a create body (`POST /api/security/azure-key-vaults`).
    pub fn from_json(json: &[u8]) -> Result<CreateRequest> {
        let mut body: Body = parse_json(json)?;
        let credential = body.take_credential();
        let client_id = check_app_id(required(body.client_id, "client_id")?, "client_id")?;
        let tenant_id = check_app_id(required(body.tenant_id, "tenant_id")?, "tenant_id")?;
        let key_id = KeyId::parse(&required(body.key_id, "key_id")?)?;
        let name = VaultUrl::parse(&required(body.name, "name")?)?;
        check_key_in_vault(&key_id, &name, false)?;
        let credential =
            credential?.ok_or_else(|| Error::new(ErrorKind::NoAuthenticationMethod))?;
        let svm = body.svm.filter(|s| s.uuid.is_some() || s.name.is_some());
        check_scope(body.scope.as_deref(), svm.is_some())?;
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
            mirror_of: super::validate::mirror_of(body.mirror_of)?,
        })
    }
}

impl PatchRequest {
    /// Parses and validates a patch body (`PATCH /api/security/azure-key-vaults/{uuid}`).
    /// Fields that cannot change (`key_id`, `name`, `svm`, `scope`) are refused; an empty patch
    /// is [`ErrorKind::NoPatchInputs`].
    pub fn from_json(json: &[u8]) -> Result<PatchRequest> {
        let mut body: Body = parse_json(json)?;
        refuse_unmodifiable(&[
            (
                body.key_id.is_some(),
                "key_id",
                "use rekey-external to change the key.",
            ),
            (
                body.mirror_of.is_some(),
                "mirror_of",
                "a root of trust is attached by creating it with mirror_of, and detached by deleting it.",
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
        ])?;
        let credential = body.take_credential()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    const KEY: &str =
        "https://keyvault-test.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74";

    fn body(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"client_id":"client1","tenant_id":"tenant1","name":"https://keyvault-test.vault.azure.net/","key_id":"{KEY}"{extra}}}"#
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
