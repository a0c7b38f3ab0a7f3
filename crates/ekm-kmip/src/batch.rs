//! KMIP batches: the batch items of one request message, the Batch Error Continuation
//! Option, and the ID Placeholder carried from one item to the next.
//!
//! Owns: the per-message context ([`Ctx`]: who asks, in which version, the ID Placeholder);
//! the rule that an item naming no Unique Identifier acts on the ID Placeholder; the loop over
//! the items (one response item and one [`ItemOutcome`] each, stopping at the first failure
//! unless the client asked to continue); a refused item's Result Reason and Message
//! ([`Failure`]).
//! Must never: let a later item act on an older object through the ID Placeholder after an
//! item failed or a Locate found nothing (the placeholder is then spoiled, and the items that
//! would use it fail with Item Not Found); run an item after a failed one unless the option
//! is Continue.
//!
//! ```text
//!   item 1 ──ok──► response item (Success, payload)    ID Placeholder := the UID it acted on
//!   item 2 ──(no Unique Identifier: the ID Placeholder)──► ...
//!   item n ──failed──► response item (Operation Failed, Result Reason, Result Message)
//!             │        ID Placeholder spoiled: an item relying on it fails (Item Not Found)
//!             └─ Batch Error Continuation Option = Continue (1) ? next item : stop here
//! ```
//!
//! The ID Placeholder is set by Create, Register, Get, Get Attributes, Get Attribute List,
//! Add / Set / Modify / Delete Attribute, Activate, Revoke, Destroy (the object acted on) and
//! Locate (the first object of its answer); Query and Discover Versions leave it. A failed item
//! and a Locate that finds nothing spoil it (KMIP 1.4 §2.1.10: no usable placeholder).

use std::time::Instant;

use ekm_core::KeyOwner;

use crate::outcome::ItemOutcome;
use crate::tags::{self, reason};
use crate::ttlv::Item;

/// A refused batch item: its Result Reason and Result Message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// Result Reason.
    pub(crate) reason: u32,
    /// Result Message (never secret).
    pub(crate) message: String,
}

/// A refused batch item of Result Reason `reason`.
pub(crate) fn fail(reason: u32, message: impl Into<String>) -> Failure {
    Failure {
        reason,
        message: message.into(),
    }
}

/// What one batch item answers: its response payload's items, or why it was refused.
pub(crate) type OpResult = Result<Vec<Item>, Failure>;

/// Per-message context: who asks, in which version, and the ID Placeholder.
pub(crate) struct Ctx {
    /// The owner of keys the client acts as (`None`: it names none).
    pub(crate) owner: Option<KeyOwner>,
    /// Whether the message is answered in KMIP 2.0.
    pub(crate) v2: bool,
    placeholder: Placeholder,
    /// A Result Message for the succeeding item being answered (a Destroy whose erase is
    /// pending on a node says so).
    pub(crate) note: Option<String>,
}

/// The ID Placeholder between batch items.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placeholder {
    /// No item set it yet.
    Unset,
    /// The object the last item that set it acted on.
    Set(String),
    /// An item failed, or a Locate found nothing: no object to carry on with (KMIP 1.4
    /// §2.1.10), so the items that would use it fail too rather than act on an older object.
    Spoiled(&'static str),
}

impl Ctx {
    /// The context of a message from `owner` answered in KMIP 2.0 (`v2`) or 1.x; no ID
    /// Placeholder yet.
    pub(crate) fn new(owner: Option<KeyOwner>, v2: bool) -> Ctx {
        Ctx {
            owner,
            v2,
            placeholder: Placeholder::Unset,
            note: None,
        }
    }

    /// The Unique Identifier a payload names, else the ID Placeholder.
    pub(crate) fn uid(&self, p: &Item) -> Result<String, Failure> {
        match p.child(tags::UNIQUE_IDENTIFIER) {
            Some(i) => i
                .as_text()
                .map(str::to_owned)
                .ok_or_else(|| fail(reason::INVALID_FIELD, "Unique Identifier is not text.")),
            None => match &self.placeholder {
                Placeholder::Set(uid) => Ok(uid.clone()),
                Placeholder::Unset => Err(fail(
                    reason::MISSING_DATA,
                    "No Unique Identifier and no ID Placeholder.",
                )),
                Placeholder::Spoiled(why) => Err(fail(
                    reason::ITEM_NOT_FOUND,
                    format!("No Unique Identifier, and no ID Placeholder: {why}."),
                )),
            },
        }
    }

    /// Sets the ID Placeholder to `uid`, the object a succeeding item acted on.
    pub(crate) fn set_placeholder(&mut self, uid: String) {
        self.placeholder = Placeholder::Set(uid);
    }

    /// Leaves no usable ID Placeholder, for the reason `why` (an item failed, a Locate found
    /// nothing).
    pub(crate) fn spoil_placeholder(&mut self, why: &'static str) {
        self.placeholder = Placeholder::Spoiled(why);
    }

    fn placeholder_uid(&self) -> Option<&str> {
        match &self.placeholder {
            Placeholder::Set(uid) => Some(uid),
            _ => None,
        }
    }
}

/// Answers the batch items of request message `msg` (of header `header`) in order with
/// `answer` (given each item's Operation and Request Payload, when it has them), reporting
/// each into `outcomes`. `None`: the message has no batch item.
pub(crate) fn run(
    msg: &Item,
    header: &Item,
    mut ctx: Ctx,
    outcomes: &mut Vec<ItemOutcome>,
    mut answer: impl FnMut(&mut Ctx, Option<u32>, Option<&Item>) -> OpResult,
) -> Option<Vec<Item>> {
    let continue_on_error = header
        .child(tags::BATCH_ERROR_CONTINUATION_OPTION)
        .and_then(Item::as_enum)
        == Some(1);
    let mut out = Vec::new();
    let items: Vec<&Item> = msg.all(tags::BATCH_ITEM).collect();
    if items.is_empty() {
        return None;
    }
    for item in items {
        let operation = item.child(tags::OPERATION).and_then(Item::as_enum);
        let batch_id = item.child(tags::UNIQUE_BATCH_ITEM_ID).cloned();
        let (started, placeholder) = (Instant::now(), ctx.placeholder_uid().map(str::to_owned));
        let result = answer(&mut ctx, operation, item.child(tags::REQUEST_PAYLOAD));
        if result.is_err() {
            ctx.spoil_placeholder("the item that would have set it failed");
        }
        outcomes.push(ItemOutcome::of(
            operation,
            item,
            result.as_deref().map_err(|f| f.reason),
            placeholder.as_deref(),
            started.elapsed(),
        ));
        let mut r = Vec::new();
        if let Some(o) = operation {
            r.push(Item::enumeration(tags::OPERATION, o));
        }
        if let Some(b) = batch_id {
            r.push(b);
        }
        let failed = result.is_err();
        match result {
            Ok(payload) => {
                r.push(Item::enumeration(
                    tags::RESULT_STATUS,
                    tags::status::SUCCESS,
                ));
                if let Some(note) = ctx.note.take() {
                    r.push(Item::text(tags::RESULT_MESSAGE, note));
                }
                r.push(Item::structure(tags::RESPONSE_PAYLOAD, payload));
            }
            Err(f) => {
                r.push(Item::enumeration(
                    tags::RESULT_STATUS,
                    tags::status::OPERATION_FAILED,
                ));
                r.push(Item::enumeration(tags::RESULT_REASON, f.reason));
                r.push(Item::text(tags::RESULT_MESSAGE, f.message));
            }
        }
        out.push(Item::structure(tags::BATCH_ITEM, r));
        if failed && !continue_on_error {
            break;
        }
    }
    Some(out)
}
