//! [`Backend`] for AWS KMS: the engine's calls, in the core's terms ([`AwsKmsAccess`],
//! [`AwsKeyId`], the KEK generation), mapped onto this crate's client layer ([`AwsKms`]).
//!
//! Owns: which key and endpoint a call uses (the key's own region), and the binding of a KEK
//! (its configuration and generation) in the encryption context.
//! Must never: send a key of another provider, or with the access of another provider's
//! configuration (both refused before any request).

use ekm_core::backend::{AwsKmsAccess, Backend, BackendCall, BackendError};
use ekm_core::provider::{AwsKeyId, ExternalKey, Provider};
use ekm_core::secret::{KeyMaterial, SecretBytes};

use crate::{AwsAccess, AwsKms, Binding, invalid};

impl Backend for AwsKms {
    fn serves(&self, provider: Provider) -> bool {
        provider == Provider::AwsKms
    }

    fn kind(&self, _: Provider) -> &'static str {
        "aws"
    }

    /// KMS `Encrypt` with a symmetric key (`SYMMETRIC_DEFAULT`: AES-256-GCM inside KMS).
    fn algorithm(&self, _: Provider) -> &'static str {
        "SYMMETRIC_DEFAULT"
    }

    fn wrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        kek: &KeyMaterial,
    ) -> Result<Vec<u8>, BackendError> {
        let access = access_of(call, key)?;
        self.wrap(&access, &binding(call, generation), kek)
    }

    fn unwrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        wrapped: &[u8],
    ) -> Result<SecretBytes, BackendError> {
        let access = access_of(call, key)?;
        self.unwrap(&access, &binding(call, generation), wrapped)
    }

    fn check(&self, call: &BackendCall<'_>, key: &ExternalKey) -> Result<(), BackendError> {
        let access = access_of(call, key)?;
        AwsKms::check(self, &access).map(|_| ())
    }

    /// A key id, alias or alias ARN becomes the ARN of the key it names now (one
    /// `DescribeKey`); a key ARN is exact already and is not looked up.
    fn resolve(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
    ) -> Result<ExternalKey, BackendError> {
        let access = access_of(call, key)?;
        let k = key.as_aws().ok_or_else(|| invalid("not an AWS KMS key"))?;
        if k.key().starts_with("arn:") && k.key().contains(":key/") {
            return Ok(key.clone());
        }
        let arn = self.describe_key(&access)?.arn;
        let exact = AwsKeyId::new(k.region(), &arn)
            .map_err(|_| invalid("DescribeKey returned an unusable key ARN"))?;
        Ok(ExternalKey::Aws(exact))
    }
}

/// The KEK's binding: the call's configuration and the generation.
fn binding(call: &BackendCall<'_>, generation: u32) -> Binding {
    Binding {
        config: call.access.config_uuid,
        generation: u64::from(generation),
    }
}

/// The client layer's access for `key` in the call's configuration.
fn access_of(call: &BackendCall<'_>, key: &ExternalKey) -> Result<AwsAccess, BackendError> {
    call.same_provider(key)?;
    let (Some(a), Some(k)) = (call.access.aws(), key.as_aws()) else {
        return Err(invalid(
            "the configuration or the key is not an AWS KMS one",
        ));
    };
    Ok(client_access(a, k))
}

/// The configuration's fields with `key`; the endpoint is in the key's own region.
pub fn client_access(a: &AwsKmsAccess, key: &AwsKeyId) -> AwsAccess {
    AwsAccess {
        region: key.region().to_owned(),
        key_id: key.key().to_owned(),
        access_key_id: a.access_key_id.clone(),
        secret_access_key: a.secret_access_key.clone(),
        service: a.service.clone(),
        default_domain: a.default_domain.clone(),
        host: a.host.clone(),
        port: a.port,
        encryption_context: a.encryption_context.clone(),
        timeout_secs: u32::try_from(a.timeout.as_secs()).unwrap_or(u32::MAX),
        verify: a.verify,
        verify_host: a.verify_host,
        proxy: a.proxy.clone(),
    }
}
