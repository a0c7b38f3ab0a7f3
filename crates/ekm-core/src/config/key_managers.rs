//! The record views of AWS KMS configurations, and of any configuration of either provider
//! (ONTAP's `/api/security/key-managers` lists them all).
//!
//! Owns: what callers see of an AWS configuration (never the secret access key or the proxy
//! password), and the one type that is either kind.

use serde::Serialize;
use uuid::Uuid;

use super::aws::AwsSettings;
use super::model::*;
use super::view::{EkmipReachability, KekStatus};
use crate::topology::SvmRef;

/// `amazon_reachability`: whether AWS KMS answers.
pub type AmazonReachability = super::view::AzureReachability;

/// An AWS KMS configuration as callers see it: every readable field of ONTAP's `aws_kms`
/// record (never the secret access key or the proxy password). Advanced fields are `None`
/// unless asked for.
#[derive(Debug, Clone, Serialize)]
pub struct AwsKmsConfig {
    /// Configuration uuid.
    pub uuid: Uuid,
    /// "cluster" or "svm".
    pub scope: Scope,
    /// The SVM, for the svm scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svm: Option<SvmRef>,
    /// The KMS key as configured (key id, ARN or alias).
    pub key_id: String,
    /// The readable settings.
    #[serde(flatten)]
    pub settings: AwsSettings,
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
    pub state: Option<KekStatus>,
    /// Advanced: AWS KMS reachability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amazon_reachability: Option<AmazonReachability>,
    /// Advanced: per-node key table status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ekmip_reachability: Option<Vec<EkmipReachability>>,
    /// ekm's extension: for a mirror, the configuration whose scope it also protects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_of: Option<super::view::MirrorOf>,
    /// Advanced (ekm's extension): every root of trust of the scope, primary first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protectors: Option<Vec<super::view::Protector>>,
}

/// Any configuration, of either provider (ONTAP's `/api/security/key-managers` lists them all).
#[derive(Debug, Clone)]
pub enum KeyManagerConfig {
    /// An Azure Key Vault configuration.
    Azure(super::view::AzureKeyVault),
    /// An AWS KMS configuration.
    Aws(AwsKmsConfig),
}

impl KeyManagerConfig {
    /// The configuration's uuid.
    pub fn uuid(&self) -> Uuid {
        match self {
            KeyManagerConfig::Azure(c) => c.uuid,
            KeyManagerConfig::Aws(c) => c.uuid,
        }
    }

    /// Whose configuration this is.
    pub fn provider(&self) -> crate::provider::Provider {
        match self {
            KeyManagerConfig::Azure(_) => crate::provider::Provider::AzureKeyVault,
            KeyManagerConfig::Aws(_) => crate::provider::Provider::AwsKms,
        }
    }

    /// The SVM, for the svm scope.
    pub fn svm(&self) -> Option<&SvmRef> {
        match self {
            KeyManagerConfig::Azure(c) => c.svm.as_ref(),
            KeyManagerConfig::Aws(c) => c.svm.as_ref(),
        }
    }

    /// For a mirror, the configuration whose scope it also protects.
    pub fn mirror_of(&self) -> Option<Uuid> {
        match self {
            KeyManagerConfig::Azure(c) => c.mirror_of.map(|m| m.uuid),
            KeyManagerConfig::Aws(c) => c.mirror_of.map(|m| m.uuid),
        }
    }
}
