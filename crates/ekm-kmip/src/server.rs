//! The KMIP server of one node: one request message in, one response message out.
//!
//! Owns: the [`Server`] type; the mapping of a client certificate's subject CN to a key owner;
//! the request entry point (decoding the message, choosing the protocol version it is answered
//! in, encoding the response message) and the dispatch of each batch item's operation to its
//! family in [`crate::ops`]. The batch loop and the ID Placeholder are [`crate::batch`]'s.
//! Must never: panic on input; answer with key material anywhere but a Get's payload; let a
//! client that names no owner do more than discover versions and query the server.
//!
//! Every failure of one batch item is answered in that item with a KMIP Result Reason; a
//! message that is not TTLV, or not a Request Message, is answered with one failed item
//! (Invalid Message).
//!
//! | a batch item's | answered with |
//! |---|---|
//! | no Operation | Invalid Message |
//! | an Operation not in [`OPERATIONS`] | Operation Not Supported |
//! | no Request Payload | Invalid Message |
//! | any operation but Discover Versions / Query, from no owner | Permission Denied |
//! | Discover Versions, Query | `ops/discover.rs` |
//! | Create, Register, Activate, Revoke, Destroy | `ops/lifecycle.rs` |
//! | Get | `ops/get.rs` |
//! | Locate | `ops/locate.rs` |
//! | Get Attributes, Get Attribute List, Add / Set / Modify / Delete Attribute | `ops/attributes.rs` |

use std::sync::Arc;

use ekm_core::{Engine, KeyOwner};
use zeroize::Zeroizing;

use crate::batch::{self, Ctx, OpResult, fail};
use crate::ops::discover::{self, OPERATIONS, VERSIONS, protocol_version};
use crate::ops::{self, attributes, get, lifecycle, locate};
use crate::outcome::ItemOutcome;
use crate::tags::{self, op, reason};
use crate::ttlv::{self, Item};

/// The KMIP server of one node.
#[derive(Clone)]
pub struct Server {
    engine: Arc<Engine>,
}

impl Server {
    /// A server over `engine` (reads are served by its local node).
    pub fn new(engine: Arc<Engine>) -> Server {
        Server { engine }
    }

    /// The owner named by a client certificate's subject CN: the cluster's name (cluster-scope
    /// keys) or an SVM's name. `None` for any other name.
    pub fn owner_of(&self, cn: &str) -> Option<KeyOwner> {
        let topo = self.engine.topology();
        if topo.cluster.name == cn {
            return Some(KeyOwner::Cluster);
        }
        topo.svms
            .iter()
            .find(|s| s.name == cn)
            .map(|s| KeyOwner::Svm(s.uuid))
    }

    /// Answers one request message (TTLV bytes) from a client acting as `owner`; a client
    /// that names no owner (`None`) may only discover versions and query the server.
    pub fn handle(&self, owner: Option<KeyOwner>, request: &[u8]) -> Zeroizing<Vec<u8>> {
        self.handle_with_outcomes(owner, request, &mut Vec::new())
    }

    /// [`Server::handle`], reporting what each answered batch item was into `outcomes` (in
    /// order) for the embedder's metrics and audit trail. Nothing is added for a message
    /// refused as a whole (not TTLV, not a request, no batch item: Invalid Message).
    pub fn handle_with_outcomes(
        &self,
        owner: Option<KeyOwner>,
        request: &[u8],
        outcomes: &mut Vec<ItemOutcome>,
    ) -> Zeroizing<Vec<u8>> {
        let msg = match ttlv::decode(request) {
            Ok(m) if m.tag == tags::REQUEST_MESSAGE => m,
            Ok(_) => return invalid_message((1, 0), "Not a KMIP Request Message."),
            Err(e) => return invalid_message((1, 0), &format!("Malformed message: {e}.")),
        };
        let Some(header) = msg.child(tags::REQUEST_HEADER) else {
            return invalid_message((1, 0), "The request has no Request Header.");
        };
        let version = answered_version(header);
        let ctx = Ctx::new(owner, version.0 >= 2);
        let answered = batch::run(
            &msg,
            header,
            ctx,
            outcomes,
            |ctx, operation, payload| match (operation, payload) {
                (None, _) => Err(fail(
                    reason::INVALID_MESSAGE,
                    "The batch item has no Operation.",
                )),
                (Some(o), _) if !OPERATIONS.contains(&o) => Err(fail(
                    reason::OPERATION_NOT_SUPPORTED,
                    format!("Operation {o:#x} is not supported."),
                )),
                (Some(_), None) => Err(fail(
                    reason::INVALID_MESSAGE,
                    "The batch item has no Request Payload.",
                )),
                (Some(o), Some(p)) => self.dispatch(ctx, o, p, version),
            },
        );
        match answered {
            Some(out) => response(version, out),
            None => invalid_message(version, "The request has no Batch Item."),
        }
    }

    fn dispatch(&self, ctx: &mut Ctx, o: u32, p: &Item, version: (i32, i32)) -> OpResult {
        let e = &self.engine;
        match o {
            op::DISCOVER_VERSIONS => Ok(discover::discover_versions(p)),
            op::QUERY => Ok(discover::query(p)),
            _ if ctx.owner.is_none() => Err(fail(
                reason::PERMISSION_DENIED,
                "The client certificate names no owner of keys on this cluster.",
            )),
            op::CREATE => lifecycle::create(e, ctx, p),
            op::REGISTER => lifecycle::register(e, ctx, p),
            op::GET => get::get(e, ctx, p),
            op::GET_ATTRIBUTES => attributes::get_attributes(e, ctx, p),
            op::GET_ATTRIBUTE_LIST => attributes::get_attribute_list(e, ctx, p),
            op::LOCATE => locate::locate(e, ctx, p, version),
            op::ADD_ATTRIBUTE => attributes::add_attribute(e, ctx, p),
            op::MODIFY_ATTRIBUTE => attributes::modify_attribute(e, ctx, p),
            op::SET_ATTRIBUTE => attributes::set_attribute(e, ctx, p),
            op::DELETE_ATTRIBUTE => attributes::delete_attribute(e, ctx, p),
            op::ACTIVATE => lifecycle::activate(e, ctx, p),
            op::REVOKE => lifecycle::revoke(e, ctx, p),
            op::DESTROY => lifecycle::destroy(e, ctx, p),
            _ => Err(fail(
                reason::OPERATION_NOT_SUPPORTED,
                "Operation not supported.",
            )),
        }
    }
}

/// The version a request of `header` is answered in: the one asked for when served, else the
/// highest served below it.
fn answered_version(header: &Item) -> (i32, i32) {
    let asked = header
        .child(tags::PROTOCOL_VERSION)
        .and_then(|v| {
            Some((
                v.child(tags::PROTOCOL_VERSION_MAJOR)?.as_int()?,
                v.child(tags::PROTOCOL_VERSION_MINOR)?.as_int()?,
            ))
        })
        .unwrap_or((1, 0));
    VERSIONS
        .iter()
        .copied()
        .find(|v| *v <= asked)
        .unwrap_or((1, 0))
}

/// The operations of a request message's batch items that change stored state
/// ([`crate::outcome::changes_state`]), in order; none for a message that is not a readable
/// request. For an embedder that records an intent before the change.
pub fn changing_operations(request: &[u8]) -> Vec<u32> {
    let Ok(msg) = ttlv::decode(request) else {
        return Vec::new();
    };
    msg.all(tags::BATCH_ITEM)
        .filter_map(|i| i.child(tags::OPERATION).and_then(Item::as_enum))
        .filter(|o| crate::outcome::changes_state(*o))
        .collect()
}

/// The answer that refuses every batch item of `request` with General Failure and `message`,
/// carrying none out (the embedder could not record the request's intent).
pub fn refuse_all(request: &[u8], message: &str) -> Zeroizing<Vec<u8>> {
    let Some(msg) = ttlv::decode(request).ok() else {
        return invalid_message((1, 0), "Malformed message.");
    };
    let version = msg
        .child(tags::REQUEST_HEADER)
        .map_or((1, 0), answered_version);
    let items = msg
        .all(tags::BATCH_ITEM)
        .map(|i| {
            let mut r = Vec::new();
            if let Some(o) = i.child(tags::OPERATION) {
                r.push(o.clone());
            }
            if let Some(b) = i.child(tags::UNIQUE_BATCH_ITEM_ID) {
                r.push(b.clone());
            }
            r.push(Item::enumeration(
                tags::RESULT_STATUS,
                tags::status::OPERATION_FAILED,
            ));
            r.push(Item::enumeration(
                tags::RESULT_REASON,
                reason::GENERAL_FAILURE,
            ));
            r.push(Item::text(tags::RESULT_MESSAGE, message));
            Item::structure(tags::BATCH_ITEM, r)
        })
        .collect();
    response(version, items)
}

fn response(version: (i32, i32), items: Vec<Item>) -> Zeroizing<Vec<u8>> {
    let count = i32::try_from(items.len()).unwrap_or(i32::MAX);
    let mut children = vec![Item::structure(
        tags::RESPONSE_HEADER,
        vec![
            protocol_version(version),
            Item::date(tags::TIME_STAMP, ops::now()),
            Item::int(tags::BATCH_COUNT, count),
        ],
    )];
    children.extend(items);
    ttlv::encode(&Item::structure(tags::RESPONSE_MESSAGE, children))
}

fn invalid_message(version: (i32, i32), message: &str) -> Zeroizing<Vec<u8>> {
    response(
        version,
        vec![Item::structure(
            tags::BATCH_ITEM,
            vec![
                Item::enumeration(tags::RESULT_STATUS, tags::status::OPERATION_FAILED),
                Item::enumeration(tags::RESULT_REASON, reason::INVALID_MESSAGE),
                Item::text(tags::RESULT_MESSAGE, message),
            ],
        )],
    )
}
