//! ekm-core: the domain of the ekm key manager.
//!
//! Configurations with the ONTAP `/api/security/azure-key-vaults` validation rules, the key
//! hierarchy (external key → internal KEK per scope → data keys), and the engine that keeps it
//! in a [`Store`] and reaches the root of trust through a [`Backend`].
//!
//! This crate does no network and no file I/O: both happen behind the two traits.

#![forbid(unsafe_code)]

pub mod backend;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod engine;
pub mod error;
pub mod hierarchy;
pub mod ids;
pub mod layout;
pub mod pkcs12;
mod random;
pub mod secret;
pub mod store;
mod stored;
pub mod topology;

/// Entry points for the fuzz targets into decoders that are otherwise crate-private.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes and authenticates a configuration record under an all-zero protection key;
    /// `true` when it is well-formed and authentic.
    pub fn decode_config(bytes: &[u8]) -> bool {
        let pk = crate::crypto::ProtectionKey::from_material(
            crate::secret::KeyMaterial::from_array([0; crate::secret::KEY_LEN]),
        );
        crate::stored::StoredConfig::decode(bytes, &pk).is_ok_and(|c| c.view().is_ok())
    }

    /// Decodes a node availability record; `true` when it is well-formed.
    pub fn decode_node_record(bytes: &[u8]) -> bool {
        crate::engine::node_records::decode_node_record(bytes)
    }
}

pub use backend::{Backend, BackendAccess, BackendCall, BackendError, BackendErrorKind};
pub use config::{AzureKeyVault, CreateRequest, Credential, PatchRequest, RekeyExternalRequest};
pub use crypto::ProtectionKey;
pub use engine::{
    DEFAULT_MAX_KEYS_PER_OWNER, DataKeyInfo, ERASE_WAIT, Engine, EngineOptions, Job, JobKind,
    JobState, KekUsage, KmipServerState, LIMIT_TARGET, StatusFields, erase_pending_message,
};
pub use error::{Error, ErrorKind, Result};
pub use ids::{DataKeyId, KeyId, KeyOwner, KeyTag, VaultUrl};
pub use secret::{DataKeyMaterial, KeyMaterial, SecretBytes};
pub use store::{
    Change, ChangeCallback, Check, RangeRewrite, Store, StoreError, Transaction, Write,
};
pub use topology::{ClusterInfo, Node, SvmInfo, SvmRef, SvmSelector, Topology};
