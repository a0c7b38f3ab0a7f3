//! Discover Versions and Query: what the server serves, asked by any client (also one whose
//! certificate names no owner).
//!
//! Owns: the protocol versions served ([`VERSIONS`], also the versions a message is answered
//! in) and the operations served ([`OPERATIONS`], also what the dispatch accepts).
//! Must never: name a version or an operation that is not served; touch a key.
//!
//! | operation | answers |
//! |---|---|
//! | Discover Versions | the versions asked for that are served (all of them when none is asked for) |
//! | Query, Query Operations | [`OPERATIONS`] |
//! | Query, Query Objects | Symmetric Key, Secret Data |
//! | Query, Query Server Information | Vendor Identification `ekm`, an empty Server Information |

use crate::tags::{self, op};
use crate::ttlv::Item;

/// Protocol versions served, most preferred first.
pub(crate) const VERSIONS: &[(i32, i32)] = &[(2, 0), (1, 4), (1, 3), (1, 2), (1, 1), (1, 0)];

/// Operations served (Query lists them).
pub(crate) const OPERATIONS: &[u32] = &[
    op::CREATE,
    op::REGISTER,
    op::LOCATE,
    op::GET,
    op::GET_ATTRIBUTES,
    op::GET_ATTRIBUTE_LIST,
    op::ADD_ATTRIBUTE,
    op::MODIFY_ATTRIBUTE,
    op::DELETE_ATTRIBUTE,
    op::ACTIVATE,
    op::REVOKE,
    op::DESTROY,
    op::QUERY,
    op::DISCOVER_VERSIONS,
    op::SET_ATTRIBUTE,
];

/// A Protocol Version item.
pub(crate) fn protocol_version((major, minor): (i32, i32)) -> Item {
    Item::structure(
        tags::PROTOCOL_VERSION,
        vec![
            Item::int(tags::PROTOCOL_VERSION_MAJOR, major),
            Item::int(tags::PROTOCOL_VERSION_MINOR, minor),
        ],
    )
}

/// Discover Versions.
pub(crate) fn discover_versions(p: &Item) -> Vec<Item> {
    let asked: Vec<(i32, i32)> = p
        .all(tags::PROTOCOL_VERSION)
        .filter_map(|v| {
            Some((
                v.child(tags::PROTOCOL_VERSION_MAJOR)?.as_int()?,
                v.child(tags::PROTOCOL_VERSION_MINOR)?.as_int()?,
            ))
        })
        .collect();
    let answer: Vec<(i32, i32)> = if asked.is_empty() {
        VERSIONS.to_vec()
    } else {
        asked.into_iter().filter(|v| VERSIONS.contains(v)).collect()
    };
    answer.into_iter().map(protocol_version).collect()
}

/// Query.
pub(crate) fn query(p: &Item) -> Vec<Item> {
    let functions: Vec<u32> = p
        .all(tags::QUERY_FUNCTION)
        .filter_map(Item::as_enum)
        .collect();
    let mut out = Vec::new();
    if functions.contains(&tags::query::OPERATIONS) {
        out.extend(
            OPERATIONS
                .iter()
                .map(|o| Item::enumeration(tags::OPERATION, *o)),
        );
    }
    if functions.contains(&tags::query::OBJECTS) {
        out.push(Item::enumeration(
            tags::OBJECT_TYPE,
            tags::OBJECT_SYMMETRIC_KEY,
        ));
        out.push(Item::enumeration(
            tags::OBJECT_TYPE,
            tags::OBJECT_SECRET_DATA,
        ));
    }
    if functions.contains(&tags::query::SERVER_INFORMATION) {
        out.push(Item::text(tags::VENDOR_IDENTIFICATION, "ekm"));
        out.push(Item::structure(tags::SERVER_INFORMATION, Vec::new()));
    }
    out
}
