//! KMIP requests and answers for the root tests that talk to `ekm_kmip::Server` directly.

use ekm::core::KeyOwner;
use ekm_kmip::Server;
use ekm_kmip::tags::{self as t, op};
use ekm_kmip::ttlv::{self, Item, Value};

/// An Attribute of `name` and `value`.
pub fn attribute(name: &str, value: Value) -> Item {
    Item::structure(
        t::ATTRIBUTE,
        vec![
            Item::text(t::ATTRIBUTE_NAME, name),
            Item {
                tag: t::ATTRIBUTE_VALUE,
                value,
            },
        ],
    )
}

/// The batch item of a Create of an AES-256 key with `extra` attributes.
pub fn create_items(extra: Vec<Item>) -> Vec<(u32, Vec<Item>)> {
    let mut attrs = vec![
        attribute(
            "Cryptographic Algorithm",
            Value::Enumeration(t::ALGORITHM_AES),
        ),
        attribute("Cryptographic Length", Value::Integer(256)),
        attribute("Cryptographic Usage Mask", Value::Integer(12)),
    ];
    attrs.extend(extra);
    vec![(
        op::CREATE,
        vec![
            Item::enumeration(t::OBJECT_TYPE, t::OBJECT_SYMMETRIC_KEY),
            Item::structure(t::TEMPLATE_ATTRIBUTE, attrs),
        ],
    )]
}

/// (status, reason, payload) of each batch item of the answer to `items` (KMIP 1.4) from
/// `owner`.
pub fn answer(
    server: &Server,
    owner: KeyOwner,
    items: Vec<(u32, Vec<Item>)>,
) -> Vec<(u32, Option<u32>, Item)> {
    let req = ekm_kmip::request_message((1, 4), items);
    ttlv::decode(&server.handle(Some(owner), &req))
        .unwrap()
        .all(t::BATCH_ITEM)
        .map(|b| {
            (
                b.child(t::RESULT_STATUS).and_then(Item::as_enum).unwrap(),
                b.child(t::RESULT_REASON).and_then(Item::as_enum),
                b.child(t::RESPONSE_PAYLOAD)
                    .cloned()
                    .unwrap_or(Item::structure(t::RESPONSE_PAYLOAD, vec![])),
            )
        })
        .collect()
}

/// The Unique Identifier of a response payload.
pub fn uid_of(payload: &Item) -> String {
    payload
        .child(t::UNIQUE_IDENTIFIER)
        .and_then(Item::as_text)
        .unwrap()
        .to_owned()
}
