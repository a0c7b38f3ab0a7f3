//! ekm's KMIP server: a bounds-checked TTLV codec ([`ttlv`]), the KMIP tags and values it uses
//! ([`tags`]), the stored attributes and state of a key ([`attrs`]), and the operations of
//! KMIP 1.0–1.4 and 2.0 over an [`ekm_core::Engine`] ([`Server`]).
//!
//! The transport (TLS with client certificates) is the embedder's: it resolves the client
//! certificate's subject CN to a key owner with [`Server::owner_of`] and passes each framed
//! request to [`Server::handle`].

pub mod attrs;
mod batch;
mod clock;
mod ops;
pub mod outcome;
mod server;
pub mod tags;
pub mod ttlv;

pub use outcome::{ItemOutcome, changes_state};
pub use server::{Server, changing_operations, refuse_all};

/// Encodes a KMIP request message of protocol `version` (major, minor) with one batch item per
/// `(operation, payload items)`: what a client sends (ekmd's self-probe, the tests and the
/// benchmarks build theirs with it).
pub fn request_message(
    version: (i32, i32),
    items: Vec<(u32, Vec<ttlv::Item>)>,
) -> zeroize::Zeroizing<Vec<u8>> {
    use tags as t;
    use ttlv::Item;
    let mut children = vec![Item::structure(
        t::REQUEST_HEADER,
        vec![
            Item::structure(
                t::PROTOCOL_VERSION,
                vec![
                    Item::int(t::PROTOCOL_VERSION_MAJOR, version.0),
                    Item::int(t::PROTOCOL_VERSION_MINOR, version.1),
                ],
            ),
            Item::int(t::BATCH_COUNT, items.len() as i32),
        ],
    )];
    for (operation, payload) in items {
        children.push(Item::structure(
            t::BATCH_ITEM,
            vec![
                Item::enumeration(t::OPERATION, operation),
                Item::structure(t::REQUEST_PAYLOAD, payload),
            ],
        ));
    }
    ttlv::encode(&Item::structure(t::REQUEST_MESSAGE, children))
}
