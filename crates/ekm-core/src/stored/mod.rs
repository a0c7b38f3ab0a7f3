//! The stored form of a configuration: plain fields as versioned JSON, secrets sealed under the
//! protection key, and the whole record authenticated under that key.
//!
//! Owns: sealing and unsealing of configuration secrets at rest; authenticating every field of
//! the record (a GMAC — AES-256-GCM over an empty plaintext — whose AAD is the canonical JSON of
//! every other field), so that whoever can write the database but lacks the protection key can
//! neither redirect the proxy password to another host nor have the next KEK wrapped by a vault
//! key of their own.
//! Must never: write a secret to the store in any form but AES-256-GCM ciphertext; hand out a
//! record whose authentication does not verify.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::config::{
    AuthenticationMethod, AwsKmsConfig, AwsSettings, AzureKeyVault, Credential, ProxyConfig,
    ProxyType, Scope,
};
use crate::crypto::ProtectionKey;
use crate::error::{Error, Result};
use crate::ids::{KeyId, VaultUrl};
use crate::pkcs12::ClientCertificate;

mod parts;

use crate::provider::{ExternalKey, Provider};
use crate::topology::SvmRef;
pub(crate) use parts::{AwsParts, AzureParts, ConfigParts, ProviderParts, not_of};

/// Records of this version carry `mac` over every other field. Version 1 records (only the
/// secrets authenticated) are refused, never upgraded: a database writer could have made one.
const CONFIG_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSvm {
    uuid: Uuid,
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredProxy {
    proxy_type: ProxyType,
    host: String,
    port: u16,
    username: Option<String>,
}

/// A configuration record as stored (`c/<uuid>`): a common part (uuid, SVM, key, proxy, sealed
/// secrets, revision, KEK generation, delete mark) and the provider's own (Azure: client,
/// tenant, vault, authentication method; AWS: `aws`). The Azure fields are written only for an
/// Azure record and `aws` only for an AWS one, so a record of an Azure configuration written
/// before there was a second provider reads, and authenticates, exactly as before (the mac is
/// over the record re-encoded).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredConfig {
    v: u32,
    pub(crate) uuid: Uuid,
    svm: Option<StoredSvm>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) tenant_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
    /// The external key's text ([`ExternalKey::as_str`]).
    key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authentication_method: Option<AuthenticationMethod>,
    proxy: Option<StoredProxy>,
    /// base64 of `nonce || ciphertext || tag` of the secrets bundle.
    sealed_secrets: String,
    /// Bumped on every change of credentials, proxy or key.
    pub(crate) revision: u64,
    /// The KEK generation new data keys are wrapped by; `None` until the first data key.
    pub(crate) active_generation: Option<u32>,
    /// base64 of `nonce || tag`: AES-256-GCM under the protection key of an empty plaintext,
    /// AAD `"ekm-config-v2\0" | the record's JSON without this field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    /// Set by a delete before it checks that no data key is left (cluster stores: creates in
    /// other processes then fail their check on this record and see it), cleared if keys are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) deleting: bool,
    /// The AWS KMS settings, for an AWS configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aws: Option<AwsSettings>,
    /// A mirror's primary (`engine/protectors.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mirror_of: Option<Uuid>,
    /// A primary's mirrors, in attach order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mirrors: Vec<Uuid>,
}

/// The secrets bundle before sealing. Borrowed strings only: nothing here outlives the seal.
#[derive(Serialize)]
struct SecretsOut<'a> {
    client_secret: Option<&'a str>,
    client_certificate: Option<&'a str>,
    client_certificate_password: Option<&'a str>,
    proxy_password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_access_key: Option<&'a str>,
}

/// The secrets bundle after opening; secrecy's types wipe themselves.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsIn {
    client_secret: Option<SecretString>,
    client_certificate: Option<SecretString>,
    client_certificate_password: Option<SecretString>,
    proxy_password: Option<SecretString>,
    #[serde(default)]
    secret_access_key: Option<SecretString>,
}

fn secrets_aad(uuid: Uuid) -> Vec<u8> {
    let mut aad = b"ekm-config-secrets-v1".to_vec();
    aad.extend_from_slice(uuid.as_bytes());
    aad
}

impl StoredConfig {
    /// Seals the secrets of `parts` and builds the record.
    pub(crate) fn seal(parts: &ConfigParts, pk: &ProtectionKey) -> Result<StoredConfig> {
        let credential = match &parts.provider {
            ProviderParts::Azure(a) => Some(&a.credential),
            ProviderParts::Aws(_) => None,
        };
        let cert_b64: Option<Zeroizing<String>> = match credential {
            Some(Credential::Certificate(c)) => {
                Some(Zeroizing::new(B64.encode(c.pfx().expose_secret())))
            }
            _ => None,
        };
        let out = SecretsOut {
            client_secret: match credential {
                Some(Credential::ClientSecret(s)) => Some(s.expose_secret()),
                _ => None,
            },
            client_certificate: cert_b64.as_deref().map(String::as_str),
            client_certificate_password: match credential {
                Some(Credential::Certificate(c)) => c.password().map(|p| p.expose_secret()),
                _ => None,
            },
            secret_access_key: match &parts.provider {
                ProviderParts::Aws(a) => Some(a.secret_access_key.expose_secret()),
                ProviderParts::Azure(_) => None,
            },
            proxy_password: parts
                .proxy
                .as_ref()
                .and_then(|p| p.password.as_ref())
                .map(|p| p.expose_secret()),
        };
        // Reserve enough that serialization never reallocates (which would leave copies).
        let cap = 256 + cert_b64.as_ref().map_or(0, |c| c.len()) + 4 * 1024;
        let mut plain = Zeroizing::new(Vec::with_capacity(cap));
        serde_json::to_writer(&mut *plain, &out)
            .map_err(|_| Error::corrupt("The configuration secrets could not be encoded."))?;
        let sealed = pk
            .aead()
            .seal_vec(&secrets_aad(parts.uuid), &plain)
            .map_err(|_| Error::corrupt("The configuration secrets could not be sealed."))?;
        let azure = match &parts.provider {
            ProviderParts::Azure(a) => Some(a),
            ProviderParts::Aws(_) => None,
        };
        Ok(StoredConfig {
            v: CONFIG_VERSION,
            uuid: parts.uuid,
            svm: parts.svm.as_ref().map(|s| StoredSvm {
                uuid: s.uuid(),
                name: s.name().to_owned(),
            }),
            client_id: azure.map(|a| a.client_id.clone()).unwrap_or_default(),
            tenant_id: azure.map(|a| a.tenant_id.clone()).unwrap_or_default(),
            name: azure
                .map(|a| a.name.as_str().to_owned())
                .unwrap_or_default(),
            key_id: parts.external_key().as_str().to_owned(),
            authentication_method: credential.map(Credential::method),
            proxy: parts.proxy.as_ref().map(|p| StoredProxy {
                proxy_type: p.proxy_type,
                host: p.host.clone(),
                port: p.port,
                username: p.username.clone(),
            }),
            sealed_secrets: B64.encode(sealed),
            revision: parts.revision,
            active_generation: parts.active_generation,
            mac: None,
            deleting: false,
            aws: match &parts.provider {
                ProviderParts::Aws(a) => Some(a.settings.clone()),
                ProviderParts::Azure(_) => None,
            },
            mirror_of: parts.mirror_of,
            mirrors: parts.mirrors.clone(),
        })
    }

    /// Opens the secrets and returns the validated parts.
    pub(crate) fn unseal(&self, pk: &ProtectionKey) -> Result<ConfigParts> {
        let bad = |what: &str| Error::corrupt(&format!("Configuration {}: {what}", self.uuid));
        let sealed = B64
            .decode(&self.sealed_secrets)
            .map_err(|_| bad("the sealed secrets are not base64."))?;
        let plain = pk
            .aead()
            .open_vec(&secrets_aad(self.uuid), &sealed)
            .map_err(|_| {
                bad("the secrets do not open with this node's protection key (wrong key file?).")
            })?;
        let secrets: SecretsIn =
            serde_json::from_slice(&plain).map_err(|_| bad("the secrets bundle is malformed."))?;
        let proxy = self.proxy.as_ref().map(|p| ProxyConfig {
            proxy_type: p.proxy_type,
            host: p.host.clone(),
            port: p.port,
            username: p.username.clone(),
            password: secrets.proxy_password.clone(),
        });
        let provider = match (&self.aws, self.external_key()?) {
            (Some(settings), ExternalKey::Aws(key)) => ProviderParts::Aws(AwsParts {
                settings: settings.clone(),
                key,
                secret_access_key: secrets
                    .secret_access_key
                    .ok_or_else(|| bad("the secret access key is missing."))?,
            }),
            (None, ExternalKey::Azure(key_id)) => {
                let credential = match (
                    self.authentication_method,
                    secrets.client_secret,
                    secrets.client_certificate,
                ) {
                    (Some(AuthenticationMethod::ClientSecret), Some(s), None) => {
                        Credential::ClientSecret(s)
                    }
                    (Some(AuthenticationMethod::Certificate), None, Some(c)) => {
                        Credential::Certificate(
                            ClientCertificate::from_base64(&c, secrets.client_certificate_password)
                                .map_err(|_| bad("the stored certificate does not open."))?,
                        )
                    }
                    _ => return Err(bad("the secrets do not match the authentication method.")),
                };
                ProviderParts::Azure(AzureParts {
                    client_id: self.client_id.clone(),
                    tenant_id: self.tenant_id.clone(),
                    name: self.vault()?,
                    key_id,
                    credential,
                })
            }
            _ => return Err(bad("the key is not of the record's provider.")),
        };
        Ok(ConfigParts {
            uuid: self.uuid,
            svm: self.svm_ref(),
            provider,
            proxy,
            revision: self.revision,
            active_generation: self.active_generation,
            mirror_of: self.mirror_of,
            mirrors: self.mirrors.clone(),
        })
    }

    /// A mirror's primary.
    pub(crate) fn mirror_of(&self) -> Option<Uuid> {
        self.mirror_of
    }

    /// A primary's mirrors, in attach order.
    pub(crate) fn mirrors(&self) -> &[Uuid] {
        &self.mirrors
    }

    /// Appends `mirror` to a primary's mirrors.
    pub(crate) fn add_mirror(&mut self, mirror: Uuid) {
        self.mirrors.push(mirror);
    }

    /// Removes `mirror` from a primary's mirrors.
    pub(crate) fn remove_mirror(&mut self, mirror: Uuid) {
        self.mirrors.retain(|m| *m != mirror);
    }

    pub(crate) fn svm_ref(&self) -> Option<SvmRef> {
        self.svm
            .as_ref()
            .map(|s| SvmRef::from_stored(s.uuid, s.name.clone()))
    }

    /// Whose configuration this is.
    pub(crate) fn provider(&self) -> Provider {
        if self.aws.is_some() {
            Provider::AwsKms
        } else {
            Provider::AzureKeyVault
        }
    }

    /// The external key the KEK is wrapped by, of the record's provider.
    pub(crate) fn external_key(&self) -> Result<ExternalKey> {
        let bad = || Error::corrupt(&format!("Configuration {}: invalid key id.", self.uuid));
        let key = ExternalKey::parse(&self.key_id).map_err(|_| bad())?;
        if key.provider() != self.provider() {
            return Err(bad());
        }
        Ok(key)
    }

    /// The same configuration wrapping with another external key (rekey-external).
    pub(crate) fn with_key_id(&self, key_id: &ExternalKey) -> StoredConfig {
        let mut c = self.clone();
        c.key_id = key_id.as_str().to_owned();
        c.revision += 1;
        c
    }

    /// The current AKV key, for an Azure configuration (else 404: this is not one).
    pub(crate) fn key_id(&self) -> Result<KeyId> {
        match self.external_key()? {
            ExternalKey::Azure(k) => Ok(k),
            ExternalKey::Aws(_) => Err(not_of(self.uuid, Provider::AzureKeyVault)),
        }
    }

    /// The vault (`name`).
    pub(crate) fn vault(&self) -> Result<VaultUrl> {
        VaultUrl::parse(&self.name)
            .map_err(|_| Error::corrupt(&format!("Configuration {}: invalid vault.", self.uuid)))
    }

    /// The current external key id, as stored.
    pub(crate) fn key_id_str(&self) -> &str {
        &self.key_id
    }

    /// The SVM uuid, for the svm scope.
    pub(crate) fn svm_uuid(&self) -> Option<Uuid> {
        self.svm.as_ref().map(|s| s.uuid)
    }

    /// What callers see (no secrets, no advanced fields).
    pub(crate) fn view(&self) -> Result<AzureKeyVault> {
        let key_id = self.key_id()?;
        let name = self.vault()?;
        let svm = self.svm_ref();
        let authentication_method = self.authentication_method.ok_or_else(|| {
            Error::corrupt(&format!(
                "Configuration {}: no authentication method.",
                self.uuid
            ))
        })?;
        Ok(AzureKeyVault {
            uuid: self.uuid,
            scope: if svm.is_some() {
                Scope::Svm
            } else {
                Scope::Cluster
            },
            svm,
            client_id: self.client_id.clone(),
            tenant_id: self.tenant_id.clone(),
            name,
            key_id,
            authentication_method,
            proxy_type: self.proxy.as_ref().map(|p| p.proxy_type),
            proxy_host: self.proxy.as_ref().map(|p| p.host.clone()),
            proxy_port: self.proxy.as_ref().map(|p| p.port),
            proxy_username: self.proxy.as_ref().and_then(|p| p.username.clone()),
            state: None,
            azure_reachability: None,
            ekmip_reachability: None,
            mirror_of: self.mirror_of.map(|uuid| crate::config::MirrorOf { uuid }),
            protectors: None,
        })
    }

    /// What callers see of an AWS configuration (no secrets, no advanced fields); 404 for an
    /// Azure one.
    pub(crate) fn aws_view(&self) -> Result<AwsKmsConfig> {
        let (Some(settings), ExternalKey::Aws(key)) = (&self.aws, self.external_key()?) else {
            return Err(not_of(self.uuid, Provider::AwsKms));
        };
        let svm = self.svm_ref();
        Ok(AwsKmsConfig {
            uuid: self.uuid,
            scope: if svm.is_some() {
                Scope::Svm
            } else {
                Scope::Cluster
            },
            svm,
            key_id: key.key().to_owned(),
            settings: settings.clone(),
            proxy_type: self.proxy.as_ref().map(|p| p.proxy_type),
            proxy_host: self.proxy.as_ref().map(|p| p.host.clone()),
            proxy_port: self.proxy.as_ref().map(|p| p.port),
            proxy_username: self.proxy.as_ref().and_then(|p| p.username.clone()),
            state: None,
            amazon_reachability: None,
            ekmip_reachability: None,
            mirror_of: self.mirror_of.map(|uuid| crate::config::MirrorOf { uuid }),
            protectors: None,
        })
    }

    /// What callers see, of either provider.
    pub(crate) fn any_view(&self) -> Result<crate::config::KeyManagerConfig> {
        Ok(match self.provider() {
            Provider::AzureKeyVault => crate::config::KeyManagerConfig::Azure(self.view()?),
            Provider::AwsKms => crate::config::KeyManagerConfig::Aws(self.aws_view()?),
        })
    }

    /// The bytes the record's `mac` authenticates: every field but the mac itself.
    fn mac_aad(&self) -> Result<Vec<u8>> {
        let unsigned = StoredConfig {
            mac: None,
            ..self.clone()
        };
        let mut aad = b"ekm-config-v2\0".to_vec();
        serde_json::to_writer(&mut aad, &unsigned)
            .map_err(|_| Error::corrupt("A configuration record could not be encoded."))?;
        Ok(aad)
    }

    /// The record as stored: JSON with its authentication under `pk`.
    pub(crate) fn encode(&self, pk: &ProtectionKey) -> Result<Vec<u8>> {
        let mut c = StoredConfig {
            v: CONFIG_VERSION,
            mac: None,
            ..self.clone()
        };
        let mac = pk
            .aead()
            .seal_vec(&c.mac_aad()?, b"")
            .map_err(|_| Error::corrupt("A configuration record could not be authenticated."))?;
        c.mac = Some(B64.encode(mac));
        serde_json::to_vec(&c)
            .map_err(|_| Error::corrupt("A configuration record could not be encoded."))
    }

    fn parse(bytes: &[u8]) -> Result<StoredConfig> {
        serde_json::from_slice(bytes)
            .map_err(|_| Error::corrupt("A configuration record is malformed."))
    }

    /// Decodes a stored record and verifies that every field is as ekm wrote it under `pk`.
    pub(crate) fn decode(bytes: &[u8], pk: &ProtectionKey) -> Result<StoredConfig> {
        let c = StoredConfig::parse(bytes)?;
        if c.v != CONFIG_VERSION {
            return Err(Error::corrupt(&format!(
                "Configuration {}: the record has format version {}, this build reads {CONFIG_VERSION}.",
                c.uuid, c.v
            )));
        }
        let tampered = || {
            Error::corrupt(&format!(
                "Configuration {}: the record does not authenticate under this node's protection key; it was changed outside ekm, or the protection key file is not the one that wrote it. The record is not used.",
                c.uuid
            ))
        };
        let mac = c
            .mac
            .as_deref()
            .and_then(|m| B64.decode(m).ok())
            .ok_or_else(tampered)?;
        match pk.aead().open_vec(&c.mac_aad()?, &mac) {
            Ok(plain) if plain.is_empty() => Ok(c),
            _ => Err(tampered()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "https://v.vault.azure.net/keys/k1/a8e619fd8f234db3b0b95c59540e2a74";

    /// A configuration record exactly as the build before the provider seam wrote it: every
    /// field, in its order, the Azure ones unconditional.
    #[derive(Serialize)]
    struct BeforeTheSeam<'a> {
        v: u32,
        uuid: Uuid,
        svm: Option<StoredSvm>,
        client_id: &'a str,
        tenant_id: &'a str,
        name: &'a str,
        key_id: &'a str,
        authentication_method: AuthenticationMethod,
        proxy: Option<StoredProxy>,
        sealed_secrets: String,
        revision: u64,
        active_generation: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
    }

    #[test]
    fn an_azure_record_written_before_the_provider_seam_reads_and_authenticates() {
        let pk = ProtectionKey::generate();
        let uuid = Uuid::new_v4();
        let bundle = br#"{"client_secret":"s3cret","client_certificate":null,"client_certificate_password":null,"proxy_password":"pw"}"#;
        let sealed = B64.encode(pk.aead().seal_vec(&secrets_aad(uuid), bundle).unwrap());
        let mut old = BeforeTheSeam {
            v: CONFIG_VERSION,
            uuid,
            svm: Some(StoredSvm {
                uuid: Uuid::from_u128(21),
                name: "vs0".into(),
            }),
            client_id: "c",
            tenant_id: "t",
            name: "https://v.vault.azure.net/",
            key_id: KEY,
            authentication_method: AuthenticationMethod::ClientSecret,
            proxy: Some(StoredProxy {
                proxy_type: ProxyType::Http,
                host: "proxy.example".into(),
                port: 3128,
                username: Some("u".into()),
            }),
            sealed_secrets: sealed,
            revision: 3,
            active_generation: Some(2),
            mac: None,
        };
        let mut aad = b"ekm-config-v2\0".to_vec();
        serde_json::to_writer(&mut aad, &old).unwrap();
        old.mac = Some(B64.encode(pk.aead().seal_vec(&aad, b"").unwrap()));
        let bytes = serde_json::to_vec(&old).unwrap();

        let c = StoredConfig::decode(&bytes, &pk).expect("the old record authenticates");
        assert_eq!(c.provider(), Provider::AzureKeyVault);
        let v = c.view().unwrap();
        assert_eq!((v.client_id.as_str(), v.key_id.as_str()), ("c", KEY));
        assert_eq!(v.svm.unwrap().name(), "vs0");
        let parts = c.unseal(&pk).unwrap();
        let ProviderParts::Azure(az) = &parts.provider else {
            panic!("an Azure record unseals as Azure")
        };
        assert!(
            matches!(&az.credential, Credential::ClientSecret(s) if s.expose_secret() == "s3cret")
        );
        let proxy = parts.proxy.unwrap();
        assert_eq!(proxy.password.unwrap().expose_secret(), "pw");
        assert!(c.aws_view().is_err(), "not an AWS configuration");

        // Still authenticated field by field.
        let forged = String::from_utf8(bytes)
            .unwrap()
            .replace("\"c\"", "\"attacker\"");
        assert!(StoredConfig::decode(forged.as_bytes(), &pk).is_err());
    }

    #[test]
    fn an_aws_record_seals_its_secret_and_reads_back() {
        let pk = ProtectionKey::generate();
        let req = crate::config::AwsCreateRequest::from_json(
            br#"{"region":"eu-west-1","key_id":"alias/ekm","access_key_id":"AKIAX","secret_access_key":"canary-SECRET-9f1"}"#,
        )
        .unwrap();
        let parts = ConfigParts {
            uuid: Uuid::new_v4(),
            svm: None,
            provider: ProviderParts::Aws(AwsParts {
                settings: req.settings,
                key: req.key,
                secret_access_key: req.secret_access_key,
            }),
            proxy: None,
            revision: 1,
            active_generation: None,
            mirror_of: None,
            mirrors: Vec::new(),
        };
        let bytes = StoredConfig::seal(&parts, &pk)
            .unwrap()
            .encode(&pk)
            .unwrap();
        assert!(
            !bytes.windows(17).any(|w| w == b"canary-SECRET-9f1"),
            "the secret access key is sealed"
        );
        let c = StoredConfig::decode(&bytes, &pk).unwrap();
        assert_eq!(c.provider(), Provider::AwsKms);
        assert!(c.view().is_err(), "not an Azure configuration");
        let v = c.aws_view().unwrap();
        assert_eq!(
            (v.key_id.as_str(), v.settings.region.as_str()),
            ("alias/ekm", "eu-west-1")
        );
        let back = c.unseal(&pk).unwrap();
        let ProviderParts::Aws(aws) = &back.provider else {
            panic!("an AWS record unseals as AWS")
        };
        assert_eq!(aws.secret_access_key.expose_secret(), "canary-SECRET-9f1");
        assert_eq!(back.external_key().as_str(), "aws-kms:eu-west-1:alias/ekm");
    }
}
