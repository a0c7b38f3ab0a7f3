//! AWS KMS configurations (ONTAP's `/api/security/aws-kms`): create, list, get, patch; and every
//! configuration of either provider (ONTAP's `/api/security/key-managers`).
//!
//! Owns: the AWS create path (the SVM, uniqueness of the scope, the proof against KMS). What
//! does not depend on the provider (delete, data keys, unlock, the jobs) is the same code as
//! for Azure.
//! Must never: commit a configuration KMS has not wrapped and unwrapped with.

use uuid::Uuid;

use super::Engine;
use super::helpers::{CONDITIONAL_ATTEMPTS, store_failed};
use crate::backend::BackendCall;
use crate::config::{AwsCreateRequest, AwsKmsConfig, AwsPatchRequest, KeyManagerConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::layout;
use crate::provider::Provider;
use crate::store::{Check, StoreError, Transaction};
use crate::stored::{AwsParts, ProviderParts, StoredConfig};

impl Engine {
    /// Creates an AWS KMS configuration: checks the SVM and that the scope has none, proves the
    /// key (DescribeKey, a wrap and an unwrap) with these credentials, then persists it. Nothing
    /// is written on any failure.
    pub fn create_aws_config(&self, req: AwsCreateRequest) -> Result<AwsKmsConfig> {
        let provider = ProviderParts::Aws(AwsParts {
            settings: req.settings,
            key: req.key,
            secret_access_key: req.secret_access_key,
        });
        self.create_new(req.svm.as_ref(), req.mirror_of, provider, req.proxy)?
            .aws_view()
    }

    /// Updates an AWS configuration: the new settings are proven against KMS first (the old
    /// ones stay in force until then). A new `encryption_context` rewraps every KEK generation
    /// under it (one unwrap here and one wrap each) in the patch's own commit, with the nodes'
    /// copies, so no wrapped KEK is ever bound to a context the record no longer names. The
    /// commit is conditional on the record proven against, and on no job holding the
    /// configuration.
    pub fn patch_aws_config(&self, uuid: Uuid, patch: AwsPatchRequest) -> Result<AwsKmsConfig> {
        for _ in 0..CONDITIONAL_ATTEMPTS {
            let (stored, old_bytes) = self.load_config(uuid)?;
            stored.aws_view()?;
            let mut parts = stored.unseal(&self.protection)?;
            parts.proxy = patch.proxy.apply(parts.proxy.as_ref())?;
            let ProviderParts::Aws(aws) = &mut parts.provider else {
                return Err(crate::stored::not_of(uuid, Provider::AwsKms));
            };
            let old_context = aws.settings.encryption_context.clone();
            patch.apply(&mut aws.settings, &mut aws.secret_access_key);
            let rewrap = aws.settings.encryption_context != old_context;
            parts.revision += 1;
            let access = parts.access();
            let call = BackendCall {
                node: &self.nodes[self.local].node,
                access: &access,
            };
            let key = parts.external_key();
            self.backend
                .check(&call, &key)
                .map_err(|e| super::configs::refused_credentials(&e, &parts))?;
            let record = StoredConfig::seal(&parts, &self.protection)?;
            let cfg_key = layout::config(uuid);
            let mut txn = Transaction::new();
            txn.check(Check::Equals(cfg_key.clone(), old_bytes))
                .check(Check::Absent(layout::marker(uuid)))
                .put(cfg_key, record.encode(&self.protection)?);
            if rewrap {
                self.rewrap_all(&mut txn, &stored, &call, &key)?;
            }
            match self.store.commit(txn) {
                Ok(()) => {
                    return record.aws_view();
                }
                Err(StoreError::Conflict(_)) => {
                    if self
                        .store
                        .get(&layout::marker(uuid))
                        .map_err(store_failed)?
                        .is_some()
                    {
                        return Err(Error::new(ErrorKind::JobInProgress).with_detail(
                            "A rekey or restore job runs on this key manager: patch it when the job has ended.",
                        ));
                    }
                    continue;
                }
                Err(e) => return Err(store_failed(e)),
            }
        }
        Err(Error::new(ErrorKind::StoreFailed)
            .with_detail("The configuration kept changing during the update; retry."))
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
