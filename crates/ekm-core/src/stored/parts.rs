//! A configuration's parts, validated: the common part and the provider's own, the external
//! key and the backend access they describe.
//!
//! Owns: [`ConfigParts`] and what a backend call is built from.

use secrecy::SecretString;
use uuid::Uuid;

use crate::backend::{AwsKmsAccess, AzureAccess, BackendAccess, ProviderAccess};
use crate::config::{AwsSettings, Credential, ProxyConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{KeyId, VaultUrl};
use crate::provider::{AwsKeyId, ExternalKey, Provider};
use crate::topology::SvmRef;

/// Everything a configuration is made of, validated: the common part and the provider's.
pub(crate) struct ConfigParts {
    pub uuid: Uuid,
    pub svm: Option<SvmRef>,
    pub provider: ProviderParts,
    pub proxy: Option<ProxyConfig>,
    pub revision: u64,
    pub active_generation: Option<u32>,
    /// For a mirror: the primary configuration whose KEK it also wraps.
    pub mirror_of: Option<Uuid>,
    /// For a primary: its mirrors, in attach order.
    pub mirrors: Vec<Uuid>,
}

/// The provider's part of [`ConfigParts`].
pub(crate) enum ProviderParts {
    Azure(AzureParts),
    Aws(AwsParts),
}

/// An Azure Key Vault configuration's own part.
pub(crate) struct AzureParts {
    pub client_id: String,
    pub tenant_id: String,
    pub name: VaultUrl,
    pub key_id: KeyId,
    pub credential: Credential,
}

/// An AWS KMS configuration's own part.
pub(crate) struct AwsParts {
    pub settings: AwsSettings,
    pub key: AwsKeyId,
    pub secret_access_key: SecretString,
}

impl ConfigParts {
    /// The external key these parts wrap with.
    pub(crate) fn external_key(&self) -> ExternalKey {
        match &self.provider {
            ProviderParts::Azure(a) => ExternalKey::Azure(a.key_id.clone()),
            ProviderParts::Aws(a) => ExternalKey::Aws(a.key.clone()),
        }
    }

    /// The parts with `key` as their external key (the exact key a backend resolved); a key
    /// of another provider is refused.
    pub(crate) fn set_external_key(&mut self, key: ExternalKey) -> Result<()> {
        match (&mut self.provider, key) {
            (ProviderParts::Azure(a), ExternalKey::Azure(k)) => a.key_id = k,
            (ProviderParts::Aws(a), ExternalKey::Aws(k)) => a.key = k,
            _ => {
                return Err(Error::corrupt(
                    "A backend resolved a key of another provider.",
                ));
            }
        }
        Ok(())
    }

    /// The backend access these parts describe.
    pub(crate) fn access(&self) -> BackendAccess {
        BackendAccess {
            config_uuid: self.uuid,
            revision: self.revision,
            provider: match &self.provider {
                ProviderParts::Azure(a) => ProviderAccess::Azure(AzureAccess {
                    vault: a.name.clone(),
                    client_id: a.client_id.clone(),
                    tenant_id: a.tenant_id.clone(),
                    credential: a.credential.clone(),
                    proxy: self.proxy.clone(),
                }),
                ProviderParts::Aws(a) => ProviderAccess::Aws(AwsKmsAccess {
                    region: a.settings.region.clone(),
                    access_key_id: a.settings.access_key_id.clone(),
                    secret_access_key: a.secret_access_key.clone(),
                    service: a.settings.service.clone(),
                    default_domain: a.settings.default_domain.clone(),
                    host: a.settings.host.clone(),
                    port: a.settings.port,
                    encryption_context: a.settings.encryption_context.clone(),
                    timeout: std::time::Duration::from_secs(u64::from(a.settings.timeout)),
                    verify: a.settings.verify,
                    verify_host: a.settings.verify_host,
                    proxy: self.proxy.clone(),
                }),
            },
        }
    }
}

/// "Configuration `uuid` is not a `provider` one": 404 on that provider's paths, as ONTAP
/// answers a uuid of another kind.
pub(crate) fn not_of(uuid: Uuid, provider: Provider) -> Error {
    Error::new(ErrorKind::EntryNotFound)
        .with_detail(format!(
            "Key manager {uuid} is not an {provider} configuration."
        ))
        .with_target("uuid")
}
