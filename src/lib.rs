//! ekm: an embeddable key manager for storage systems.
//!
//! This facade re-exports the workspace crates: [`core`] (domain, key hierarchy, engine),
//! [`store`] (redb and sled stores, the protection key file), [`azure`] (the Azure Key Vault
//! backend), [`aws`] (the AWS KMS backend) and [`fake`] (a fake backend with fault injection,
//! for tests and the embedded default).

#![forbid(unsafe_code)]

pub use ekm_aws as aws;
pub use ekm_azure as azure;
pub use ekm_core as core;
pub use ekm_fake as fake;
pub use ekm_store as store;

/// The README's Rust blocks, compiled and run as doctests (`cargo test --doc`), so that a
/// snippet of the README can never stop compiling unnoticed. Blocks of other languages are
/// tagged (`sh`, `text`, ...) and skipped.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The Rust blocks of `docs/ARCHITECTURE.md`, compiled like the README's.
#[cfg(doctest)]
#[doc = include_str!("../docs/ARCHITECTURE.md")]
pub struct ArchitectureDoctests;

/// The Rust blocks of `docs/THREAT-MODEL.md`, compiled like the README's.
#[cfg(doctest)]
#[doc = include_str!("../docs/THREAT-MODEL.md")]
pub struct ThreatModelDoctests;

/// The Rust blocks of `docs/PERFORMANCE.md`, compiled like the README's.
#[cfg(doctest)]
#[doc = include_str!("../docs/PERFORMANCE.md")]
pub struct PerformanceDoctests;
