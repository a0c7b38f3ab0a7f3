//! What each batch item of a request was, for the embedder's metrics and audit trail:
//! [`Server::handle_with_outcomes`](crate::Server::handle_with_outcomes) reports one
//! [`ItemOutcome`] per answered batch item, in order.
//!
//! Kept apart from the operations: it only reads an item's request, its result and the ID
//! Placeholder, and names operations and result reasons with bounded, fixed labels (never
//! text from the request).
//!
//! Must never: carry key material (a Get's payload is read for its Unique Identifier only).

use std::time::Duration;

use crate::tags::{self, op};
use crate::ttlv::Item;

/// One answered batch item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemOutcome {
    /// The Operation the item named (`None`: it named none).
    pub operation: Option<u32>,
    /// `None` on success, else the Result Reason answered.
    pub reason: Option<u32>,
    /// The object acted on: the Unique Identifier answered, else the one asked for (or the ID
    /// Placeholder it stood for). `None` for operations on no object (Query, Discover
    /// Versions, Locate finding nothing).
    pub uid: Option<String>,
    /// Time spent on the item (its operation, not the message's decoding).
    pub took: Duration,
}

impl ItemOutcome {
    /// The outcome of one item: its request, what the operation answered (the response
    /// payload's items, or the Result Reason), and the ID Placeholder before the item ran.
    pub(crate) fn of(
        operation: Option<u32>,
        request: &Item,
        result: Result<&[Item], u32>,
        placeholder: Option<&str>,
        took: Duration,
    ) -> ItemOutcome {
        let answered = match result {
            Ok(payload) => payload
                .iter()
                .find(|i| i.tag == tags::UNIQUE_IDENTIFIER)
                .and_then(Item::as_text),
            Err(_) => None,
        };
        let asked = request
            .child(tags::REQUEST_PAYLOAD)
            .and_then(|p| p.child(tags::UNIQUE_IDENTIFIER))
            .and_then(Item::as_text);
        let uid = answered
            .or(asked)
            .or(match operation {
                Some(op::CREATE | op::REGISTER | op::LOCATE | op::QUERY)
                | Some(op::DISCOVER_VERSIONS)
                | None => None,
                Some(_) => placeholder,
            })
            // A client's text: bounded before it reaches a log line.
            .map(|u| u.chars().take(128).collect());
        ItemOutcome {
            operation,
            reason: result.err(),
            uid,
            took,
        }
    }

    /// Whether the item asked for a change of stored state, which the audit trail records:
    /// Create, Register, Activate, Revoke, Destroy, and the attribute changes (Add, Modify,
    /// Set, Delete Attribute: a past Activation Date set through them activates the key).
    pub fn is_audited(&self) -> bool {
        self.operation.is_some_and(changes_state)
    }

    /// Whether the item was a Get (a data-path key read).
    pub fn is_get(&self) -> bool {
        self.operation == Some(op::GET)
    }

    /// The operation's label: `snake_case` name of a served operation, `unsupported` for any
    /// other code, `none` when the item named none.
    pub fn operation_name(&self) -> &'static str {
        match self.operation {
            None => "none",
            Some(o) => operation_name(o),
        }
    }

    /// The result's label: `success`, or the Result Reason's `snake_case` name.
    pub fn result_name(&self) -> &'static str {
        match self.reason {
            None => "success",
            Some(r) => reason_name(r),
        }
    }
}

/// The label of operation `o` (a bounded set).
pub fn operation_name(o: u32) -> &'static str {
    match o {
        op::CREATE => "create",
        op::REGISTER => "register",
        op::LOCATE => "locate",
        op::GET => "get",
        op::GET_ATTRIBUTES => "get_attributes",
        op::GET_ATTRIBUTE_LIST => "get_attribute_list",
        op::ADD_ATTRIBUTE => "add_attribute",
        op::MODIFY_ATTRIBUTE => "modify_attribute",
        op::DELETE_ATTRIBUTE => "delete_attribute",
        op::SET_ATTRIBUTE => "set_attribute",
        op::ACTIVATE => "activate",
        op::REVOKE => "revoke",
        op::DESTROY => "destroy",
        op::QUERY => "query",
        op::DISCOVER_VERSIONS => "discover_versions",
        _ => "unsupported",
    }
}

/// The label of Result Reason `r` (KMIP 1.4's list, a bounded set).
pub fn reason_name(r: u32) -> &'static str {
    match r {
        0x01 => "item_not_found",
        0x02 => "response_too_large",
        0x03 => "authentication_not_successful",
        0x04 => "invalid_message",
        0x05 => "operation_not_supported",
        0x06 => "missing_data",
        0x07 => "invalid_field",
        0x08 => "feature_not_supported",
        0x09 => "operation_canceled_by_requester",
        0x0A => "cryptographic_failure",
        0x0B => "illegal_operation",
        0x0C => "permission_denied",
        0x0D => "object_archived",
        0x0E => "index_out_of_bounds",
        0x0F => "application_namespace_not_supported",
        0x10 => "key_format_type_not_supported",
        0x11 => "key_compression_type_not_supported",
        0x12 => "encoding_option_error",
        0x13 => "key_value_not_present",
        0x14 => "attestation_required",
        0x15 => "attestation_failed",
        0x16 => "sensitive",
        0x17 => "not_extractable",
        0x18 => "object_already_exists",
        0x100 => "general_failure",
        _ => "other_failure",
    }
}

/// Whether operation `op` asks for a change of stored state: Create, Register, Activate,
/// Revoke, Destroy, and the attribute changes (Add, Modify, Set, Delete Attribute: a past
/// Activation Date set through them activates the key).
pub fn changes_state(op: u32) -> bool {
    matches!(
        op,
        op::CREATE
            | op::REGISTER
            | op::ACTIVATE
            | op::REVOKE
            | op::DESTROY
            | op::ADD_ATTRIBUTE
            | op::MODIFY_ATTRIBUTE
            | op::SET_ATTRIBUTE
            | op::DELETE_ATTRIBUTE
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::reason;

    fn get_request(uid: Option<&str>) -> Item {
        let payload = uid
            .map(|u| vec![Item::text(tags::UNIQUE_IDENTIFIER, u)])
            .unwrap_or_default();
        Item::structure(
            tags::BATCH_ITEM,
            vec![
                Item::enumeration(tags::OPERATION, op::GET),
                Item::structure(tags::REQUEST_PAYLOAD, payload),
            ],
        )
    }

    #[test]
    fn the_uid_is_the_answered_one_then_the_asked_one_then_the_placeholder() {
        let answer = [
            Item::text(tags::UNIQUE_IDENTIFIER, "answered"),
            Item::bytes(tags::KEY_MATERIAL, vec![0xAB; 32]),
        ];
        let o = ItemOutcome::of(
            Some(op::GET),
            &get_request(Some("asked")),
            Ok(&answer),
            Some("placeholder"),
            Duration::ZERO,
        );
        assert_eq!(o.uid.as_deref(), Some("answered"));
        assert_eq!((o.operation_name(), o.result_name()), ("get", "success"));
        let o = ItemOutcome::of(
            Some(op::GET),
            &get_request(Some("asked")),
            Err(reason::ITEM_NOT_FOUND),
            Some("placeholder"),
            Duration::ZERO,
        );
        assert_eq!(o.uid.as_deref(), Some("asked"));
        assert_eq!(o.result_name(), "item_not_found");
        let o = ItemOutcome::of(
            Some(op::GET),
            &get_request(None),
            Err(reason::ITEM_NOT_FOUND),
            Some("placeholder"),
            Duration::ZERO,
        );
        assert_eq!(o.uid.as_deref(), Some("placeholder"));
    }

    #[test]
    fn labels_are_bounded() {
        let mut names: std::collections::BTreeSet<&str> = Default::default();
        for code in 0..0x1_0000 {
            names.insert(operation_name(code));
            names.insert(reason_name(code));
        }
        assert!(names.len() < 50, "{names:?}");
        assert_eq!(operation_name(0xFFFF_FFFF), "unsupported");
        assert_eq!(reason_name(0xFFFF_FFFF), "other_failure");
    }
}
