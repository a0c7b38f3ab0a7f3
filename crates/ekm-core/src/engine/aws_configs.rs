//! AWS KMS configurations (ONTAP's `/api/security/aws-kms`): create, list, get; and every
//! configuration of either provider (ONTAP's `/api/security/key-managers`).
//!
//! Owns: the AWS create path (the SVM, uniqueness of the scope, the proof against KMS). What
//! does not depend on the provider (delete, data keys, unlock, the jobs) is the same code as
//! for Azure.
//! Must never: commit a configuration KMS has not wrapped and unwrapped with.

use uuid::Uuid;

use super::Engine;
use super::configs::already_configured;
use super::helpers::store_failed;
use crate::config::{AwsCreateRequest, AwsKmsConfig, KeyManagerConfig};
use crate::error::Result;
use crate::layout;
use crate::provider::Provider;
use crate::stored::{AwsParts, ConfigParts, ProviderParts, StoredConfig};

impl Engine {
    /// Creates an AWS KMS configuration: checks the SVM and that the scope has none, proves the
    /// key (DescribeKey, a wrap and an unwrap) with these credentials, then persists it. Nothing
    /// is written on any failure.
    pub fn create_aws_config(&self, req: AwsCreateRequest) -> Result<AwsKmsConfig> {
        let svm = req
            .svm
            .as_ref()
            .map(|s| self.topology.resolve_svm(s))
            .transpose()?;
        let for_svm = svm.is_some();
        let scope_key = layout::scope(svm.as_ref().map(|s| s.uuid()));
        if self.store.get(&scope_key).map_err(store_failed)?.is_some() {
            return Err(already_configured(for_svm));
        }
        let parts = ConfigParts {
            uuid: Uuid::new_v4(),
            svm,
            provider: ProviderParts::Aws(AwsParts {
                settings: req.settings,
                key: req.key,
                secret_access_key: req.secret_access_key,
            }),
            proxy: req.proxy,
            revision: 1,
            active_generation: None,
        };
        self.commit_new_config(&parts, scope_key, || already_configured(for_svm))?
            .aws_view()
    }

    /// Every AWS KMS configuration: the cluster's first, then the SVMs' by SVM name.
    pub fn list_aws_configs(&self) -> Result<Vec<AwsKmsConfig>> {
        Ok(self
            .list_key_managers()?
            .into_iter()
            .filter_map(|c| match c {
                KeyManagerConfig::Aws(a) => Some(a),
                KeyManagerConfig::Azure(_) => None,
            })
            .collect())
    }

    /// One AWS KMS configuration; [`crate::ErrorKind::EntryNotFound`] for an unknown uuid or
    /// a configuration of another provider.
    pub fn get_aws_config(&self, uuid: Uuid) -> Result<AwsKmsConfig> {
        self.load_config(uuid)?.0.aws_view()
    }

    /// Every configuration of every provider: the cluster's first, then the SVMs' by SVM
    /// name.
    pub fn list_key_managers(&self) -> Result<Vec<KeyManagerConfig>> {
        let mut out = Vec::new();
        for (_, v) in self.scan_all(layout::CONFIG)? {
            out.push(StoredConfig::decode(&v, &self.protection)?.any_view()?);
        }
        out.sort_by_key(|c| c.svm().map(|s| s.name().to_owned()));
        Ok(out)
    }

    /// Configuration `uuid`, of either provider.
    pub fn key_manager(&self, uuid: Uuid) -> Result<KeyManagerConfig> {
        self.load_config(uuid)?.0.any_view()
    }

    /// Configuration `uuid` if it is one of `provider`'s; 404 otherwise (as ONTAP answers a
    /// uuid of another kind on a provider's paths).
    pub fn key_manager_of(&self, uuid: Uuid, provider: Provider) -> Result<KeyManagerConfig> {
        let c = self.key_manager(uuid)?;
        if c.provider() != provider {
            return Err(crate::stored::not_of(uuid, provider));
        }
        Ok(c)
    }

    /// Whose configuration `uuid` is.
    pub fn config_provider(&self, uuid: Uuid) -> Result<Provider> {
        Ok(self.load_config(uuid)?.0.provider())
    }
}
