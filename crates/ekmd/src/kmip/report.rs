//! What the KMIP listener reports of each message it answers: its metrics and audit records.
//!
//! | outcome of a batch item | counted | audit record |
//! |---|---|---|
//! | any operation | `ekm_kmip_requests{operation, result}` | — |
//! | a Get | also `ekm_datapath_key_reads{path="kmip", outcome}` | — |
//! | Create, Register, Activate, Revoke, Destroy | as above | user = the certificate's CN, source, `kmip.<operation>`, uid, result |
//! | a message with no item that could be read | `ekm_kmip_requests{operation="none", result="invalid_message"}` | — |
//! | the self-probe's ([`PROBE_CN`]) | not counted | as above |
//!
//! Records are fsync'd before the answer is written to the socket.
//!
//! Owns: the metrics and audit records of KMIP traffic, and the answer that replaces one the
//! trail could not record.
//! Must never: acknowledge a change the trail does not hold, or label a series with anything a
//! client sent (only the fixed operation and result names).

use std::net::IpAddr;
use std::sync::Arc;

use ekm_core::KeyOwner;
use ekm_kmip::ttlv::{self, Item};
use ekm_kmip::{ItemOutcome, Server, tags};

use super::probe::PROBE_CN;
use crate::audit::{AuditLog, Event};
use crate::metrics::Metrics;

/// Where the listener reports what it answers: the metrics and, when one is kept, the audit
/// trail.
#[derive(Debug, Clone)]
pub struct Reporting {
    /// Counted into.
    pub metrics: Arc<Metrics>,
    /// Written to (and fsync'd) before an answer that changed state leaves.
    pub audit: Option<Arc<AuditLog>>,
}

/// The client of one connection.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its certificate's subject CN (the audit trail's user).
    pub identity: Arc<str>,
    /// Its address.
    pub source: IpAddr,
    /// The owner of keys its CN names, if any.
    pub owner: Option<KeyOwner>,
}

/// Answers one request message from `client`: counts it, and appends (and fsyncs) the audit
/// records of its state-changing items before returning the answer. When a record cannot be
/// written, every item of the answer becomes a General Failure saying so: nothing is
/// acknowledged that the trail does not hold. Blocking.
pub fn answer(
    server: &Server,
    reporting: &Reporting,
    client: &Client,
    request: &[u8],
) -> zeroize::Zeroizing<Vec<u8>> {
    let mut outcomes = Vec::new();
    let resp = server.handle_with_outcomes(client.owner, request, &mut outcomes);
    let m = &reporting.metrics;
    // The node's own reachability probe (a Discover Versions every few seconds) is not
    // client traffic: it would drown the series of a quiet node.
    let counted = &*client.identity != PROBE_CN;
    if counted && outcomes.is_empty() {
        m.kmip_request("none", "invalid_message");
    }
    for o in outcomes.iter().filter(|_| counted) {
        m.kmip_request(o.operation_name(), o.result_name());
        if o.is_get() {
            m.key_read("kmip", read_outcome(o), o.took);
        }
    }
    let Some(audit) = &reporting.audit else {
        return resp;
    };
    for o in outcomes.iter().filter(|o| o.is_audited()) {
        let ev = Event {
            user: Some(client.identity.to_string()),
            source: Some(client.source.to_string()),
            operation: format!("kmip.{}", o.operation_name()),
            key_id: o.uid.clone(),
            result: match o.reason {
                None => "0".into(),
                Some(_) => o.result_name().into(),
            },
            ..Default::default()
        };
        match audit.append(&ev) {
            Ok(seq) => tracing::info!(seq, operation = %ev.operation, "audit record written"),
            Err(e) => {
                tracing::error!(
                    operation = %ev.operation,
                    "audit record could not be written ({e}); the KMIP answer says so"
                );
                return unacknowledged(&resp, &outcomes);
            }
        }
    }
    resp
}

/// The data-path outcome label of a Get.
fn read_outcome(o: &ItemOutcome) -> &'static str {
    match o.reason {
        None => "ok",
        Some(tags::reason::ITEM_NOT_FOUND) => "not_found",
        Some(_) => "error",
    }
}

/// `resp` with every batch item replaced by a General Failure: the audit trail could not
/// record what was done.
fn unacknowledged(resp: &[u8], outcomes: &[ItemOutcome]) -> zeroize::Zeroizing<Vec<u8>> {
    let header = ttlv::decode(resp)
        .ok()
        .and_then(|m| m.child(tags::RESPONSE_HEADER).cloned())
        .unwrap_or_else(|| Item::structure(tags::RESPONSE_HEADER, Vec::new()));
    let mut children = vec![header];
    for o in outcomes {
        let mut item = Vec::new();
        if let Some(op) = o.operation {
            item.push(Item::enumeration(tags::OPERATION, op));
        }
        item.push(Item::enumeration(
            tags::RESULT_STATUS,
            tags::status::OPERATION_FAILED,
        ));
        item.push(Item::enumeration(
            tags::RESULT_REASON,
            tags::reason::GENERAL_FAILURE,
        ));
        item.push(Item::text(
            tags::RESULT_MESSAGE,
            "The audit trail could not record this request; its outcome is not acknowledged.",
        ));
        children.push(Item::structure(tags::BATCH_ITEM, item));
    }
    ttlv::encode(&Item::structure(tags::RESPONSE_MESSAGE, children))
}
