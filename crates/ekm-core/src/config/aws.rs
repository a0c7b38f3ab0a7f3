//! The AWS KMS configuration (ONTAP's `/api/security/aws-kms` record): its settings, its
//! create body parsed into a validated request, and the record as callers see it.
//!
//! Owns: the AWS record's fields and their defaults (service `kms`, domain `amazonaws.com`,
//! port 443, timeout 10 s, every TLS check on), and the validation of each.
//! Must never: serialize the secret access key or the proxy password.

use secrecy::SecretString;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::json::parse_json;
use super::model::*;
use super::validate::*;
use crate::error::{Error, Result};
use crate::provider::AwsKeyId;
use crate::topology::SvmSelector;

/// Longest `encryption_context` accepted.
const MAX_CONTEXT_LEN: usize = 4096;

/// The readable settings of an AWS KMS configuration (everything but the key, the secrets and
/// the proxy). Stored as they are shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsSettings {
    /// Region, e.g. `us-east-1`.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Endpoint service name.
    pub service: String,
    /// Endpoint domain.
    pub default_domain: String,
    /// Endpoint host overriding `service.region.default_domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Endpoint port.
    pub port: u16,
    /// Sent as the KMS encryption context of every wrap (ekm adds its own binding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context: Option<String>,
    /// Reachability polling period in minutes, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling_period: Option<u32>,
    /// Per-request timeout in seconds.
    pub timeout: u32,
    /// Verify the endpoint's certificate.
    pub verify: bool,
    /// Verify that the certificate names the host.
    pub verify_host: bool,
    /// Verify that the certificate names the address (ekm verifies names only).
    pub verify_ip: bool,
}

/// A validated create body of `POST /api/security/aws-kms`.
#[derive(Debug, Clone)]
pub struct AwsCreateRequest {
    /// The SVM named by the request; `None` for the cluster scope.
    pub svm: Option<SvmSelector>,
    /// The settings.
    pub settings: AwsSettings,
    /// The KMS key (in `settings.region`).
    pub key: AwsKeyId,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// Optional proxy.
    pub proxy: Option<ProxyConfig>,
    /// ekm's extension: attach as an additional root of trust of this configuration's scope.
    pub mirror_of: Option<uuid::Uuid>,
}

/// The wire form of an AWS create body. Unknown fields are refused.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AwsBody {
    #[serde(default)]
    svm: Option<SvmSelector>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    access_key_id: Option<String>,
    #[serde(default)]
    secret_access_key: Option<SecretString>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    default_domain: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    encryption_context: Option<String>,
    #[serde(default)]
    polling_period: Option<u32>,
    #[serde(default)]
    timeout: Option<u32>,
    #[serde(default)]
    verify: Option<bool>,
    #[serde(default)]
    verify_host: Option<bool>,
    #[serde(default)]
    verify_ip: Option<bool>,
    #[serde(default)]
    skip_verify: Option<bool>,
    #[serde(default)]
    mirror_of: Option<super::validate::UuidRef>,
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

/// A DNS name or address: 1 to 253 characters of letters, digits, `.`, `-`, `:` (IPv6).
fn check_host(value: String, field: &str) -> Result<String> {
    let ok = (1..=253).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    if ok {
        Ok(value)
    } else {
        Err(Error::invalid_value(
            field,
            "expected a host name or address.",
        ))
    }
}

/// `polling_period` in minutes: 1 to 10080 (a week).
fn check_polling_period(p: Option<u32>) -> Result<()> {
    match p {
        Some(m) if !(1..=10_080).contains(&m) => Err(Error::invalid_value(
            "polling_period",
            "expected 1 to 10080 minutes.",
        )),
        _ => Ok(()),
    }
}

/// A DNS label sequence such as `kms` or `amazonaws.com`.
fn check_label(value: String, field: &str) -> Result<String> {
    let ok = (1..=253).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    if ok {
        Ok(value)
    } else {
        Err(Error::invalid_value(
            field,
            "expected letters, digits, dots and dashes.",
        ))
    }
}

impl AwsCreateRequest {
    /// Parses and validates a create body (`POST /api/security/aws-kms`).
    pub fn from_json(json: &[u8]) -> Result<AwsCreateRequest> {
        let body: AwsBody = parse_json(json)?;
        if body.skip_verify == Some(true) {
            return Err(Error::invalid_value(
                "skip_verify",
                "ekm always proves a new configuration (a wrap and an unwrap with its key); it cannot skip that.",
            ));
        }
        let region = required(body.region, "region")?;
        let key = AwsKeyId::new(&region, &required(body.key_id, "key_id")?)?;
        let access_key_id = check_app_id(
            required(body.access_key_id, "access_key_id")?,
            "access_key_id",
        )?;
        let secret_access_key = body
            .secret_access_key
            .ok_or_else(|| Error::invalid_value("secret_access_key", "is required."))?;
        if !is_printable_secret(&secret_access_key) {
            return Err(Error::invalid_value(
                "secret_access_key",
                "expected 1 to 1024 printable characters.",
            ));
        }
        let encryption_context = match body.encryption_context {
            Some(c) if c.len() > MAX_CONTEXT_LEN || c.chars().any(char::is_control) => {
                return Err(Error::invalid_value(
                    "encryption_context",
                    "expected at most 4096 printable characters.",
                ));
            }
            c => c.filter(|c| !c.is_empty()),
        };
        let timeout = body.timeout.unwrap_or(10);
        if !(1..=600).contains(&timeout) {
            return Err(Error::invalid_value(
                "timeout",
                "expected 1 to 600 seconds.",
            ));
        }
        let settings = AwsSettings {
            region: key.region().to_owned(),
            access_key_id,
            service: check_label(body.service.unwrap_or_else(|| "kms".into()), "service")?,
            default_domain: check_label(
                body.default_domain
                    .unwrap_or_else(|| "amazonaws.com".into()),
                "default_domain",
            )?,
            host: body
                .host
                .filter(|h| !h.is_empty())
                .map(|h| check_host(h, "host"))
                .transpose()?,
            port: match body.port.unwrap_or(443) {
                0 => return Err(Error::invalid_value("port", "expected 1 to 65535.")),
                p => p,
            },
            encryption_context,
            polling_period: body.polling_period,
            timeout,
            verify: body.verify.unwrap_or(true),
            verify_host: body.verify_host.unwrap_or(true),
            verify_ip: body.verify_ip.unwrap_or(false),
        };
        if !settings.verify || !settings.verify_host {
            return Err(Error::invalid_value(
                if settings.verify {
                    "verify_host"
                } else {
                    "verify"
                },
                "ekm verifies the endpoint's certificate and name always; trust a private CA with ekmd serve --aws-ca-file instead.",
            ));
        }
        let svm = body.svm.filter(|s| s.uuid.is_some() || s.name.is_some());
        check_scope(body.scope.as_deref(), svm.is_some())?;
        if settings.verify_ip {
            return Err(Error::invalid_value(
                "verify_ip",
                "ekm verifies the endpoint by its host name (verify_host); it does not check certificates for IP addresses.",
            ));
        }
        check_polling_period(settings.polling_period)?;
        let proxy = ProxyFields {
            proxy_type: parse_proxy_type(body.proxy_type)?,
            host: body.proxy_host.filter(|h| !h.is_empty()),
            port: body.proxy_port,
            username: body.proxy_username.filter(|u| !u.is_empty()),
            password: body.proxy_password,
        }
        .validate()?;
        Ok(AwsCreateRequest {
            svm,
            settings,
            key,
            secret_access_key,
            proxy,
            mirror_of: super::validate::mirror_of(body.mirror_of)?,
        })
    }
}

/// A validated patch of an AWS configuration (`PATCH /api/security/aws-kms/{uuid}`). Fields
/// left `None` keep their value; `host: ""` and `encryption_context: ""` clear theirs.
#[derive(Debug, Clone, Default)]
pub struct AwsPatchRequest {
    /// New access key id (with its secret).
    pub access_key_id: Option<String>,
    /// New secret access key.
    pub secret_access_key: Option<SecretString>,
    /// New endpoint service name.
    pub service: Option<String>,
    /// New endpoint domain.
    pub default_domain: Option<String>,
    /// New endpoint host; `Some(None)` clears it.
    pub host: Option<Option<String>>,
    /// New endpoint port.
    pub port: Option<u16>,
    /// New encryption context; `Some(None)` clears it. Every KEK generation is rewrapped
    /// under the new context in the patch's own commit.
    pub encryption_context: Option<Option<String>>,
    /// New polling period.
    pub polling_period: Option<u32>,
    /// New timeout.
    pub timeout: Option<u32>,
    /// New `verify_ip`.
    pub verify_ip: Option<bool>,
    /// Proxy changes.
    pub proxy: super::ProxyPatch,
}

impl AwsPatchRequest {
    /// Parses and validates a patch body. `svm`, `scope`, `key_id` and `region` cannot change
    /// (262179: `key_id` and `region` change with rekey-external to a key of the region);
    /// an empty patch is 65537541.
    pub fn from_json(json: &[u8]) -> Result<AwsPatchRequest> {
        let body: AwsBody = parse_json(json)?;
        refuse_unmodifiable(&[
            (
                body.key_id.is_some(),
                "key_id",
                "use rekey-external to change the key.",
            ),
            (
                body.region.is_some(),
                "region",
                "a KMS key lives in one region: create a configuration for a key of the new region and migrate the keys to it.",
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
            (
                body.skip_verify.is_some(),
                "skip_verify",
                "ekm always proves the configuration.",
            ),
            (
                body.mirror_of.is_some(),
                "mirror_of",
                "a root of trust is attached by creating it with mirror_of, and detached by deleting it.",
            ),
        ])?;
        if body.verify == Some(false) || body.verify_host == Some(false) {
            return Err(Error::invalid_value(
                if body.verify == Some(false) {
                    "verify"
                } else {
                    "verify_host"
                },
                "ekm verifies the endpoint's certificate and name always; trust a private CA with ekmd serve --aws-ca-file instead.",
            ));
        }
        if body.verify_ip == Some(true) {
            return Err(Error::invalid_value(
                "verify_ip",
                "ekm verifies the endpoint by its host name (verify_host); it does not check certificates for IP addresses.",
            ));
        }
        check_polling_period(body.polling_period)?;
        if body.access_key_id.is_some() && body.secret_access_key.is_none() {
            return Err(Error::invalid_value(
                "secret_access_key",
                "is required with a new access_key_id.",
            ));
        }
        if body
            .secret_access_key
            .as_ref()
            .is_some_and(|s| !is_printable_secret(s))
        {
            return Err(Error::invalid_value(
                "secret_access_key",
                "expected 1 to 1024 printable characters.",
            ));
        }
        if body
            .encryption_context
            .as_ref()
            .is_some_and(|c| c.len() > MAX_CONTEXT_LEN || c.chars().any(char::is_control))
        {
            return Err(Error::invalid_value(
                "encryption_context",
                "expected at most 4096 printable characters.",
            ));
        }
        if body.timeout.is_some_and(|t| !(1..=600).contains(&t)) {
            return Err(Error::invalid_value(
                "timeout",
                "expected 1 to 600 seconds.",
            ));
        }
        if body.port == Some(0) {
            return Err(Error::invalid_value("port", "expected 1 to 65535."));
        }
        let patch = AwsPatchRequest {
            access_key_id: body
                .access_key_id
                .map(|v| check_app_id(v, "access_key_id"))
                .transpose()?,
            secret_access_key: body.secret_access_key,
            service: body
                .service
                .map(|v| check_label(v, "service"))
                .transpose()?,
            default_domain: body
                .default_domain
                .map(|v| check_label(v, "default_domain"))
                .transpose()?,
            host: body
                .host
                .map(|h| (!h.is_empty()).then(|| check_host(h, "host")).transpose())
                .transpose()?,
            port: body.port,
            encryption_context: body
                .encryption_context
                .map(|c| (!c.is_empty()).then_some(c)),
            polling_period: body.polling_period,
            timeout: body.timeout,
            verify_ip: body.verify_ip,
            proxy: super::ProxyPatch {
                proxy_type: parse_proxy_type(body.proxy_type)?,
                host: body.proxy_host,
                port: body.proxy_port,
                username: body.proxy_username,
                password: body.proxy_password,
            },
        };
        let nothing = patch.access_key_id.is_none()
            && patch.secret_access_key.is_none()
            && patch.service.is_none()
            && patch.default_domain.is_none()
            && patch.host.is_none()
            && patch.port.is_none()
            && patch.encryption_context.is_none()
            && patch.polling_period.is_none()
            && patch.timeout.is_none()
            && patch.verify_ip.is_none()
            && body.verify.is_none()
            && body.verify_host.is_none()
            && patch.proxy.is_empty();
        if nothing {
            return Err(Error::new(crate::error::ErrorKind::NoPatchInputs));
        }
        Ok(patch)
    }

    /// The settings and secret after this patch.
    pub fn apply(&self, settings: &mut AwsSettings, secret: &mut SecretString) {
        if let Some(v) = &self.access_key_id {
            settings.access_key_id = v.clone();
        }
        if let Some(v) = &self.secret_access_key {
            *secret = v.clone();
        }
        if let Some(v) = &self.service {
            settings.service = v.clone();
        }
        if let Some(v) = &self.default_domain {
            settings.default_domain = v.clone();
        }
        if let Some(v) = &self.host {
            settings.host = v.clone();
        }
        if let Some(v) = self.port {
            settings.port = v;
        }
        if let Some(v) = &self.encryption_context {
            settings.encryption_context = v.clone();
        }
        if let Some(v) = self.polling_period {
            settings.polling_period = Some(v);
        }
        if let Some(v) = self.timeout {
            settings.timeout = v;
        }
        if let Some(v) = self.verify_ip {
            settings.verify_ip = v;
        }
    }
}

/// A validated rekey-external body of an AWS configuration (`POST
/// /api/security/aws-kms/{uuid}/rekey-external`): the new key, and optionally the SVM it is
/// meant for. The key is checked against the configuration's region when the job starts.
#[derive(Debug, Clone)]
pub struct AwsRekeyExternalRequest {
    /// The new KMS key (key id, key ARN or alias).
    pub key_id: String,
    /// The SVM named by the request, if any (it must own the configuration).
    pub svm: Option<SvmSelector>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsRekeyBody {
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    svm: Option<SvmSelector>,
}

impl AwsRekeyExternalRequest {
    /// Parses the body; a missing or empty `key_id` is 65537523.
    pub fn from_json(json: &[u8]) -> Result<AwsRekeyExternalRequest> {
        let body: AwsRekeyBody = parse_json(json)?;
        let key_id = body.key_id.filter(|k| !k.is_empty()).ok_or_else(|| {
            Error::new(crate::error::ErrorKind::InvalidKeyId)
                .with_message("Invalid key ID format.")
                .with_detail("key_id is required: the new AWS KMS key id, key ARN or alias.")
                .with_target("key_id")
        })?;
        if let Some(s) = body.scope.as_deref() {
            if s != "svm" && s != "cluster" {
                return Err(Error::invalid_value(
                    "scope",
                    "expected \"svm\" or \"cluster\".",
                ));
            }
        }
        let svm = body.svm.filter(|s| s.uuid.is_some() || s.name.is_some());
        Ok(AwsRekeyExternalRequest { key_id, svm })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn body(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"svm":{{"name":"vs1"}},"region":"us-east-1","key_id":"alias/ekm","access_key_id":"AKIAEXAMPLE","secret_access_key":"s3cret"{extra}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_create_body_takes_ontaps_defaults() {
        let r = AwsCreateRequest::from_json(&body("")).unwrap();
        assert_eq!(r.key.key(), "alias/ekm");
        assert_eq!(r.settings.service, "kms");
        assert_eq!(r.settings.default_domain, "amazonaws.com");
        assert_eq!((r.settings.port, r.settings.timeout), (443, 10));
        assert!(r.settings.verify && r.settings.verify_host && !r.settings.verify_ip);
        let debug = format!("{r:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn bad_create_bodies_name_their_field() {
        for (extra, field) in [
            (r#","region":"US East""#, "region"),
            (r#","port":0"#, "port"),
            (r#","timeout":0"#, "timeout"),
            (r#","host":"a b""#, "host"),
            (r#","skip_verify":true"#, "skip_verify"),
            (r#","verify":false"#, "verify"),
            (r#","secret_access_key":" ""#, "secret_access_key"),
        ] {
            let mut b = body("");
            b.pop();
            let mut json = String::from_utf8(b).unwrap();
            // A later duplicate key would be refused by serde: replace the field instead.
            let name = extra.split('"').nth(1).unwrap();
            if let Some(start) = json.find(&format!(",\"{name}\":")) {
                let end = json[start + 1..]
                    .find(",\"")
                    .map_or(json.len(), |e| start + 1 + e);
                json.replace_range(start..end, "");
            }
            json.push_str(extra);
            json.push('}');
            let e = AwsCreateRequest::from_json(json.as_bytes()).unwrap_err();
            assert_eq!(e.target(), Some(field), "{json}: {e}");
        }
        let e = AwsCreateRequest::from_json(br#"{"region":"us-east-1"}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
    }
}
