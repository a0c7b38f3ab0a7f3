//! The key-manager configuration: the seed's `azure_key_vault` record, and the create and patch
//! requests parsed from JSON into validated types.
//!
//! | file | holds |
//! |---|---|
//! | `model.rs` | the domain model: scope, authentication method, credential, proxy |
//! | `requests.rs` | the REST bodies (create, patch, rekey-external) and their parsing |
//! | `validate.rs` | the seed's validation rules, each with its ONTAP code |
//! | `json.rs` | serde's errors mapped to ONTAP codes without echoing a value |
//! | `view.rs` | the record as callers see it, with the advanced status fields |
//! | `aws.rs` | the AWS KMS record's settings; its create, patch and rekey-external bodies |
//! | `key_managers.rs` | the AWS KMS record as callers see it; any configuration of either provider |
//!
//! Owns: every validation rule of the seed with its ONTAP code.
//! Must never: serialize a secret, echo a secret in an error, or accept a half-valid request.

mod aws;
mod json;
mod key_managers;
mod model;
mod requests;
mod validate;
mod view;

pub use aws::*;
pub use json::parse_json;
pub use key_managers::*;
pub use model::*;
pub use requests::*;
pub(crate) use validate::check_key_in_vault;
pub use view::*;
