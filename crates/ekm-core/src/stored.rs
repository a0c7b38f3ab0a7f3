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

use crate::backend::{AzureAccess, BackendAccess, ProviderAccess};
use crate::config::{
    AuthenticationMethod, AzureKeyVault, Credential, ProxyConfig, ProxyType, Scope,
};
use crate::crypto::ProtectionKey;
use crate::error::{Error, Result};
use crate::ids::{KeyId, VaultUrl};
use crate::pkcs12::ClientCertificate;
use crate::topology::SvmRef;

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

/// A configuration record as stored (`c/<uuid>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredConfig {
    v: u32,
    pub(crate) uuid: Uuid,
    svm: Option<StoredSvm>,
    pub(crate) client_id: String,
    pub(crate) tenant_id: String,
    name: String,
    key_id: String,
    authentication_method: AuthenticationMethod,
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
}

/// The secrets bundle before sealing. Borrowed strings only: nothing here outlives the seal.
#[derive(Serialize)]
struct SecretsOut<'a> {
    client_secret: Option<&'a str>,
    client_certificate: Option<&'a str>,
    client_certificate_password: Option<&'a str>,
    proxy_password: Option<&'a str>,
}

/// The secrets bundle after opening; secrecy's types wipe themselves.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsIn {
    client_secret: Option<SecretString>,
    client_certificate: Option<SecretString>,
    client_certificate_password: Option<SecretString>,
    proxy_password: Option<SecretString>,
}

fn secrets_aad(uuid: Uuid) -> Vec<u8> {
    let mut aad = b"ekm-config-secrets-v1".to_vec();
    aad.extend_from_slice(uuid.as_bytes());
    aad
}

/// Everything a configuration is made of, validated.
pub(crate) struct ConfigParts {
    pub uuid: Uuid,
    pub svm: Option<SvmRef>,
    pub client_id: String,
    pub tenant_id: String,
    pub name: VaultUrl,
    pub key_id: KeyId,
    pub credential: Credential,
    pub proxy: Option<ProxyConfig>,
    pub revision: u64,
    pub active_generation: Option<u32>,
}

impl StoredConfig {
    /// Seals the secrets of `parts` and builds the record.
    pub(crate) fn seal(parts: &ConfigParts, pk: &ProtectionKey) -> Result<StoredConfig> {
        let cert_b64: Option<Zeroizing<String>> = match &parts.credential {
            Credential::Certificate(c) => Some(Zeroizing::new(B64.encode(c.pfx().expose_secret()))),
            Credential::ClientSecret(_) => None,
        };
        let out = SecretsOut {
            client_secret: match &parts.credential {
                Credential::ClientSecret(s) => Some(s.expose_secret()),
                Credential::Certificate(_) => None,
            },
            client_certificate: cert_b64.as_deref().map(String::as_str),
            client_certificate_password: match &parts.credential {
                Credential::Certificate(c) => c.password().map(|p| p.expose_secret()),
                Credential::ClientSecret(_) => None,
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
        Ok(StoredConfig {
            v: CONFIG_VERSION,
            uuid: parts.uuid,
            svm: parts.svm.as_ref().map(|s| StoredSvm {
                uuid: s.uuid(),
                name: s.name().to_owned(),
            }),
            client_id: parts.client_id.clone(),
            tenant_id: parts.tenant_id.clone(),
            name: parts.name.as_str().to_owned(),
            key_id: parts.key_id.as_str().to_owned(),
            authentication_method: parts.credential.method(),
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
        let credential = match (
            self.authentication_method,
            secrets.client_secret,
            secrets.client_certificate,
        ) {
            (AuthenticationMethod::ClientSecret, Some(s), None) => Credential::ClientSecret(s),
            (AuthenticationMethod::Certificate, None, Some(c)) => Credential::Certificate(
                ClientCertificate::from_base64(&c, secrets.client_certificate_password)
                    .map_err(|_| bad("the stored certificate does not open."))?,
            ),
            _ => return Err(bad("the secrets do not match the authentication method.")),
        };
        let proxy = self.proxy.as_ref().map(|p| ProxyConfig {
            proxy_type: p.proxy_type,
            host: p.host.clone(),
            port: p.port,
            username: p.username.clone(),
            password: secrets.proxy_password.clone(),
        });
        let (svm, name, key_id) = self.public_parts()?;
        Ok(ConfigParts {
            uuid: self.uuid,
            svm,
            client_id: self.client_id.clone(),
            tenant_id: self.tenant_id.clone(),
            name,
            key_id,
            credential,
            proxy,
            revision: self.revision,
            active_generation: self.active_generation,
        })
    }

    fn public_parts(&self) -> Result<(Option<SvmRef>, VaultUrl, KeyId)> {
        let bad = |what: &str| Error::corrupt(&format!("Configuration {}: {what}", self.uuid));
        let name = VaultUrl::parse(&self.name).map_err(|_| bad("invalid vault URL."))?;
        let key_id = KeyId::parse(&self.key_id).map_err(|_| bad("invalid key id."))?;
        let svm = self
            .svm
            .as_ref()
            .map(|s| SvmRef::from_stored(s.uuid, s.name.clone()));
        Ok((svm, name, key_id))
    }

    /// The same configuration wrapping with another external key (rekey-external).
    pub(crate) fn with_key_id(&self, key_id: &KeyId) -> StoredConfig {
        let mut c = self.clone();
        c.key_id = key_id.as_str().to_owned();
        c.revision += 1;
        c
    }

    /// The current external key id.
    pub(crate) fn key_id(&self) -> Result<KeyId> {
        KeyId::parse(&self.key_id)
            .map_err(|_| Error::corrupt(&format!("Configuration {}: invalid key id.", self.uuid)))
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
        let (svm, name, key_id) = self.public_parts()?;
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
            authentication_method: self.authentication_method,
            proxy_type: self.proxy.as_ref().map(|p| p.proxy_type),
            proxy_host: self.proxy.as_ref().map(|p| p.host.clone()),
            proxy_port: self.proxy.as_ref().map(|p| p.port),
            proxy_username: self.proxy.as_ref().and_then(|p| p.username.clone()),
            state: None,
            azure_reachability: None,
            ekmip_reachability: None,
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

impl ConfigParts {
    /// The backend access these parts describe.
    pub(crate) fn access(&self) -> BackendAccess {
        BackendAccess {
            config_uuid: self.uuid,
            revision: self.revision,
            provider: ProviderAccess::Azure(AzureAccess {
                vault: self.name.clone(),
                client_id: self.client_id.clone(),
                tenant_id: self.tenant_id.clone(),
                credential: self.credential.clone(),
                proxy: self.proxy.clone(),
            }),
        }
    }
}
