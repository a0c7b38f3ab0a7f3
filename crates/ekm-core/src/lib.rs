//! ekm-core: the domain of the ekm key manager.
//!
//! Configurations with the ONTAP `/api/security/azure-key-vaults` validation rules, the key
//! hierarchy (external key → internal KEK per scope → data keys), and the engine that keeps it
//! in a [`Store`] and reaches the root of trust through a [`Backend`].
//!
//! This crate does no network and no file I/O: both happen behind the two traits.
//!
//! # Start here
//!
//! An [`Engine`] is opened over four parts ([`EngineOptions::new`]): a [`Store`] (`ekm-store`'s
//! redb or sled, or `ekm-etcd`), a [`Backend`] (`ekm-azure`, or `ekm-fake` in tests), the
//! [`Topology`] (cluster, nodes, SVMs; [`Topology::from_toml`] reads the topology file) and the
//! node's [`ProtectionKey`], which seals configuration secrets at rest. Then:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use ekm_core::{CreateRequest, Engine, EngineOptions, JobState, KeyOwner, KeyTag, Topology};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let engine = Engine::open(EngineOptions::new(
//!     ekm_store::open(ekm_store::StoreKind::Redb, dir.path())?,
//!     Arc::new(ekm_fake::FakeBackend::in_memory()),
//!     Topology::single_node(), // cluster1, node1 and SVM vs0
//!     ekm_store::protection_key::load_or_create(&dir.path().join("protection.key"))?,
//! ))?;
//!
//! // A configuration for the cluster: ONTAP's POST body, checked by the seed's rules.
//! let cfg = engine.create_config(CreateRequest::from_json(br#"{
//!     "client_id": "client1", "tenant_id": "tenant1",
//!     "name": "https://myvault.vault.azure.net/",
//!     "key_id": "https://myvault.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74",
//!     "client_secret": "..." }"#)?)?;
//!
//! // A data key, durable when the call returns, then read back (zeroized on drop).
//! let id = engine.create_data_key(KeyOwner::Cluster, KeyTag::parse("vol1")?)?;
//! let key = engine.read_data_key(&id)?;
//!
//! // A rekey-internal: a new KEK generation, every key rewrapped; a job that resumes after a
//! // crash. The key itself does not change.
//! let job = engine.start_rekey_internal(cfg.uuid)?;
//! assert_eq!(engine.wait_job(job.uuid, Duration::from_secs(60))?.state, JobState::Success);
//! assert!(engine.read_data_key(&id)? == key);
//!
//! // Every refusal carries the seed's ONTAP code and HTTP status.
//! let err = engine.create_config(CreateRequest::from_json(br#"{
//!     "client_id": "client1", "tenant_id": "tenant1",
//!     "name": "https://myvault.vault.azure.net/",
//!     "key_id": "https://myvault.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74",
//!     "client_secret": "..." }"#)?).unwrap_err();
//! assert_eq!(err.kind().http_status(), 409); // the cluster already has a key manager
//! # Ok(())
//! # }
//! ```
//!
//! Where to go next: [`engine`] (every operation, its crash rules and its errors), [`config`]
//! (the request and record model), [`hierarchy`] and [`layout`] (what is stored, and where),
//! [`store`] and [`backend`] (the two traits to implement for another store or root of trust).

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
pub mod provider;
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
        crate::stored::StoredConfig::decode(bytes, &pk).is_ok_and(|c| c.any_view().is_ok())
    }

    /// Decodes a node availability record; `true` when it is well-formed.
    pub fn decode_node_record(bytes: &[u8]) -> bool {
        crate::engine::node_records::decode_node_record(bytes)
    }
}

pub use backend::{
    AwsKmsAccess, AzureAccess, Backend, BackendAccess, BackendCall, BackendError, BackendErrorKind,
    Backends, ProviderAccess,
};
pub use config::{
    AwsCreateRequest, AwsKmsConfig, AwsPatchRequest, AwsRekeyExternalRequest, AzureKeyVault,
    CreateRequest, Credential, KeyManagerConfig, MirrorOf, PatchRequest, Protector,
    RekeyExternalRequest,
};
pub use crypto::ProtectionKey;
pub use engine::{
    DEFAULT_MAX_KEYS_PER_OWNER, DataKeyInfo, ERASE_WAIT, Engine, EngineOptions, Job, JobKind,
    JobState, KekUsage, KmipServerState, LIMIT_TARGET, MAX_ROOTS, StatusFields,
    erase_pending_message,
};
pub use error::{Error, ErrorKind, Result};
pub use ids::{DataKeyId, KeyId, KeyOwner, KeyTag, VaultUrl};
pub use provider::{AwsKeyId, ExternalKey, Provider};
pub use secret::{DataKeyMaterial, KeyMaterial, SecretBytes};
pub use store::{
    Change, ChangeCallback, Check, RangeRewrite, Store, StoreError, Transaction, Write,
};
pub use topology::{ClusterInfo, Node, SvmInfo, SvmRef, SvmSelector, Topology};
