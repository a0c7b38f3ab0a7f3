//! ekm's KMIP server: a bounds-checked TTLV codec ([`ttlv`]), the KMIP tags and values it uses
//! ([`tags`]), the stored attributes and state of a key ([`attrs`]), and the operations of
//! KMIP 1.0–1.4 and 2.0 over an [`ekm_core::Engine`] ([`Server`]).
//!
//! The transport (TLS with client certificates) is the embedder's: it resolves the client
//! certificate's subject CN to a key owner with [`Server::owner_of`] and passes each framed
//! request to [`Server::handle`].

pub mod attrs;
pub mod outcome;
mod server;
pub mod tags;
pub mod ttlv;

pub use outcome::ItemOutcome;
pub use server::Server;
