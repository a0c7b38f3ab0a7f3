//! On-disk binary records, one file per record family. Every record is versioned and
//! self-describing; the byte layouts are drawn in each file and in `docs/ARCHITECTURE.md`.
//! Where each record is stored: [`crate::layout`].
//!
//! Owns: encoding and decoding of wrapped data keys, their locations, and wrapped KEKs.
//! Must never: panic on any bytes read from disk (they may be truncated, corrupted or forged).
//!
//! | record | type, versions | stored at | file |
//! |---|---|---|---|
//! | [`KeyLocation`] | none (33 bytes) | `d/<id>` | `data_key.rs` |
//! | [`WrappedDataKey`] | `'D'`, 1 2 3 | `r/<config><owner><id>` | `data_key.rs` |
//! | [`WrappedKek`] | `'K'`, 2 (1 refused) | `k/<config><gen>`, node records | `kek.rs` |
//! | fields: `Reader`, length-prefixed writers, version bytes | — | — | `fields.rs` |
//!
//! Not here: configuration records are JSON (`stored/mod.rs`); node availability and liveness
//! records are JSON (`engine::node_records`, `engine::liveness`).

mod data_key;
mod fields;
mod kek;

pub use data_key::{ALG_AES256GCM, DataKeyFormat, KeyLocation, WrappedDataKey};
pub use kek::{KekState, WrappedKek};
