//! ekm: an embeddable key manager for storage systems.
//!
//! This facade re-exports the workspace crates: [`core`] (domain, key hierarchy, engine),
//! [`store`] (redb and sled stores, the protection key file), [`azure`] (the Azure Key Vault
//! backend) and [`fake`] (a fake backend with fault injection, for tests and the embedded
//! default).

#![forbid(unsafe_code)]

pub use ekm_azure as azure;
pub use ekm_core as core;
pub use ekm_fake as fake;
pub use ekm_store as store;
