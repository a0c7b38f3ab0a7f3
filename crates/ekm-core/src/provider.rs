//! The provider seam: the kinds of root of trust ekm knows, the external key of each, and the
//! one table of what differs between them (names, REST collection, ONTAP codes).
//!
//! Owns: [`Provider`] and its table; [`ExternalKey`], the exact external key a KEK is wrapped
//! by, and its text form in the store; [`AwsKeyId`].
//! Must never: carry a credential (those are in [`crate::backend::ProviderAccess`]).
//!
//! Adding a provider (Google Cloud KMS, a KMIP server) means: one variant here and one row in
//! each `match` of [`Provider`] (the compiler lists them), one variant of [`ExternalKey`] and of
//! [`crate::backend::ProviderAccess`], and one backend crate implementing
//! [`crate::backend::Backend`] for it.
//!
//! | | Azure Key Vault | AWS KMS |
//! |---|---|---|
//! | `ekmd serve --backend` word | `azure` | `aws` |
//! | `kind` (key-managers list, `protectors`) | `azure_key_vault` | `aws_kms` |
//! | REST collection | `/api/security/azure-key-vaults` | `/api/security/aws-kms` |
//! | reachability field | `azure_reachability` | `amazon_reachability` |
//! | external key text | `https://VAULT/keys/NAME/VERSION` | `aws-kms:REGION:KEY` |
//! | not configured for the SVM | 65537120 | 65537926 |
//! | unreachable or refused | 346758 | 346758 |

use std::fmt;

use crate::error::{Error, ErrorKind, Result};
use crate::ids::KeyId;

/// A kind of root of trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// Azure Key Vault (RSA-OAEP-256 wrap of the KEK).
    AzureKeyVault,
    /// AWS KMS (Encrypt of the KEK with an encryption context).
    AwsKms,
}

impl Provider {
    /// Every provider, in the order they are listed.
    pub const ALL: [Provider; 2] = [Provider::AzureKeyVault, Provider::AwsKms];

    /// The word of `ekmd serve --backend` (`azure`, `aws`).
    pub fn name(self) -> &'static str {
        match self {
            Provider::AzureKeyVault => "azure",
            Provider::AwsKms => "aws",
        }
    }

    /// The provider a `--backend` word names.
    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The `kind` of a configuration in ONTAP's key-managers list (`azure_key_vault`, `aws_kms`).
    pub fn kind(self) -> &'static str {
        match self {
            Provider::AzureKeyVault => "azure_key_vault",
            Provider::AwsKms => "aws_kms",
        }
    }

    /// The product, for messages ("Azure Key Vault", "AWS KMS").
    pub fn title(self) -> &'static str {
        match self {
            Provider::AzureKeyVault => "Azure Key Vault",
            Provider::AwsKms => "AWS KMS",
        }
    }

    /// ONTAP's REST collection of this provider's configurations.
    pub fn collection(self) -> &'static str {
        match self {
            Provider::AzureKeyVault => "/api/security/azure-key-vaults",
            Provider::AwsKms => "/api/security/aws-kms",
        }
    }

    /// The advanced field that says whether each node reaches the provider.
    pub fn reachability_field(self) -> &'static str {
        match self {
            Provider::AzureKeyVault => "azure_reachability",
            Provider::AwsKms => "amazon_reachability",
        }
    }

    /// "This provider is not configured for the SVM" (65537120, 65537926).
    pub fn not_configured(self) -> ErrorKind {
        match self {
            Provider::AzureKeyVault => ErrorKind::NotConfigured,
            Provider::AwsKms => ErrorKind::AwsNotConfigured,
        }
    }

    /// A failed or refused call to the provider, as `*_reachability` and job failures report
    /// it (346758 for both: NetApp documents no AWS-specific code for it).
    pub fn unavailable(self) -> ErrorKind {
        match self {
            Provider::AzureKeyVault | Provider::AwsKms => ErrorKind::AkvUnavailable,
        }
    }

    /// A configuration of this provider in a process that does not serve it: 65537604 (an
    /// ekm code), naming the flag that enables it.
    pub fn not_enabled(self) -> Error {
        Error::new(ErrorKind::ProviderNotEnabled).with_detail(format!(
            "{self} is not enabled in this ekmd: start it with --backend {} (or a list that has it, such as --backend azure,aws).",
            self.name()
        ))
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// An AWS KMS key: the region and the key as AWS names it (a key id, a key ARN, an alias name
/// `alias/...` or an alias ARN). AWS rotates a symmetric key's backing material by itself, so
/// this plus ekm's KEK generation (in the encryption context) is the exact key of a wrap.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AwsKeyId {
    text: String,
    region: String,
    key: String,
}

/// Longest AWS key reference accepted (AWS's KeyId limit).
const MAX_AWS_KEY_LEN: usize = 2048;

/// The prefix of an AWS key's text form in the store.
const AWS_PREFIX: &str = "aws-kms:";

impl AwsKeyId {
    /// `key` in `region`; an empty, over-long or non-printable key, or a region that is not
    /// lowercase letters, digits and dashes, is 65537523 on `key_id` (or 262197 on `region`).
    pub fn new(region: &str, key: &str) -> Result<AwsKeyId> {
        let region_ok = (1..=64).contains(&region.len())
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(Error::invalid_value(
                "region",
                "expected an AWS region such as \"us-east-1\".",
            ));
        }
        let key_ok =
            (1..=MAX_AWS_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
        if !key_ok {
            return Err(Error::new(ErrorKind::InvalidKeyId)
                .with_message("Invalid key ID format.")
                .with_detail(
                    "An AWS KMS key_id is a key id, a key ARN, an alias (alias/NAME) or an alias ARN.",
                )
                .with_target("key_id"));
        }
        Ok(AwsKeyId {
            text: format!("{AWS_PREFIX}{region}:{key}"),
            region: region.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The key as AWS names it (what goes into `KeyId`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The text form in the store: `aws-kms:REGION:KEY`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for AwsKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AwsKeyId({})", self.text)
    }
}

/// The exact external key a KEK generation is wrapped by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExternalKey {
    /// An Azure Key Vault key version.
    Azure(KeyId),
    /// An AWS KMS key.
    Aws(AwsKeyId),
}

impl ExternalKey {
    /// Whose key this is.
    pub fn provider(&self) -> Provider {
        match self {
            ExternalKey::Azure(_) => Provider::AzureKeyVault,
            ExternalKey::Aws(_) => Provider::AwsKms,
        }
    }

    /// The text form in the store and in messages: an AKV key URL, or `aws-kms:REGION:KEY`.
    pub fn as_str(&self) -> &str {
        match self {
            ExternalKey::Azure(k) => k.as_str(),
            ExternalKey::Aws(k) => k.as_str(),
        }
    }

    /// Parses the text form. Records written before there was more than one provider hold an
    /// AKV key URL, which parses as before: they need no upgrade.
    pub fn parse(text: &str) -> Result<ExternalKey> {
        match text.strip_prefix(AWS_PREFIX) {
            Some(rest) => {
                let (region, key) = rest
                    .split_once(':')
                    .ok_or_else(|| Error::new(ErrorKind::InvalidKeyId).with_target("key_id"))?;
                Ok(ExternalKey::Aws(AwsKeyId::new(region, key)?))
            }
            None => Ok(ExternalKey::Azure(KeyId::parse(text)?)),
        }
    }

    /// The AKV key, for an Azure key.
    pub fn as_azure(&self) -> Option<&KeyId> {
        match self {
            ExternalKey::Azure(k) => Some(k),
            ExternalKey::Aws(_) => None,
        }
    }

    /// The AWS key, for an AWS key.
    pub fn as_aws(&self) -> Option<&AwsKeyId> {
        match self {
            ExternalKey::Aws(k) => Some(k),
            ExternalKey::Azure(_) => None,
        }
    }
}

impl From<KeyId> for ExternalKey {
    fn from(k: KeyId) -> Self {
        ExternalKey::Azure(k)
    }
}

impl fmt::Display for ExternalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_keys_print_back_as_they_parse() {
        let akv = "https://v.vault.azure.net/keys/k1/a8e619fd8f234db3b0b95c59540e2a74";
        let k = ExternalKey::parse(akv).unwrap();
        assert_eq!((k.provider(), k.as_str()), (Provider::AzureKeyVault, akv));
        let arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let aws = ExternalKey::Aws(AwsKeyId::new("us-east-1", arn).unwrap());
        let again = ExternalKey::parse(aws.as_str()).unwrap();
        assert_eq!(again, aws);
        assert_eq!(again.as_aws().unwrap().key(), arn);
        assert_eq!(again.as_aws().unwrap().region(), "us-east-1");
    }

    #[test]
    fn bad_external_keys_are_refused_without_a_panic() {
        for bad in [
            "",
            "aws-kms:",
            "aws-kms:us-east-1",
            "aws-kms:US:k",
            "aws-kms:us-east-1:",
            "aws-kms:us-east-1:a b",
            "http://v/keys/k/1",
        ] {
            assert!(ExternalKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_provider_has_its_own_names() {
        for p in Provider::ALL {
            assert_eq!(Provider::from_name(p.name()), Some(p));
        }
        assert_eq!(Provider::from_name("fake"), None);
        assert_ne!(
            Provider::AzureKeyVault.not_configured().code(),
            Provider::AwsKms.not_configured().code()
        );
    }
}
