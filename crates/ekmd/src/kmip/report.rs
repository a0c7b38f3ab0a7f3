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
//! A message that asks for a change first gets an intent record (`kmip.<operation>.intent`,
//! or `kmip.batch.intent` for several, `"phase":"intent"`), fsync'd before any item is carried out; its
//! items' outcome records name it. Records are fsync'd before the answer is written to the
//! socket. A message whose intent cannot be written is refused whole (General Failure for
//! every item, nothing done); reads are never refused for the trail's sake.
//!
//! Owns: the metrics and audit records of KMIP traffic, and the refusal of a change whose
//! intent the trail cannot hold.
//! Must never: carry out a change whose intent the trail does not hold, or label a series with
//! anything a client sent (only the fixed operation and result names).

use std::net::IpAddr;
use std::sync::Arc;

use ekm_core::KeyOwner;
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

/// Answers one request message from `client`: when it asks for a change, first appends (and
/// fsyncs) an intent record, and refuses every item with General Failure, carrying none out,
/// when that cannot be written; then answers it, counts it, and appends the outcome record of
/// each state-changing item, naming the intent. An outcome that cannot be written is logged
/// (the intent shows the change was attempted); the client still gets the real answer.
/// Blocking.
pub fn answer(
    server: &Server,
    reporting: &Reporting,
    client: &Client,
    request: &[u8],
) -> zeroize::Zeroizing<Vec<u8>> {
    let m = &reporting.metrics;
    // The node's own reachability probe (a Discover Versions every few seconds) is not
    // client traffic: it would drown the series of a quiet node.
    let counted = &*client.identity != PROBE_CN;
    let intent = match &reporting.audit {
        Some(audit) => match write_intent(audit, client, request) {
            Ok(seq) => seq,
            Err(e) => {
                tracing::error!("audit intent record not written, KMIP request refused: {e}");
                if counted {
                    m.kmip_request("none", "audit_unavailable");
                }
                return ekm_kmip::refuse_all(
                    request,
                    "The audit trail cannot be written (is its disk full?); nothing was done.",
                );
            }
        },
        None => None,
    };
    let mut outcomes = Vec::new();
    let resp = server.handle_with_outcomes(client.owner, request, &mut outcomes);
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
            intent,
            ..Default::default()
        };
        match audit.append(&ev) {
            Ok(seq) => tracing::info!(seq, operation = %ev.operation, "audit record written"),
            Err(e) => tracing::error!(
                operation = %ev.operation,
                intent,
                "audit outcome record not written (the intent record shows the attempt): {e}"
            ),
        }
    }
    resp
}

/// Appends the intent record of `request` when it asks for a change: `Ok(None)` when it does
/// not, `Ok(Some(seq))` once written.
fn write_intent(audit: &AuditLog, client: &Client, request: &[u8]) -> std::io::Result<Option<u64>> {
    let changing = ekm_kmip::changing_operations(request);
    let operation = match changing.as_slice() {
        [] => return Ok(None),
        [one] => format!("kmip.{}.intent", ekm_kmip::outcome::operation_name(*one)),
        _ => "kmip.batch.intent".to_owned(),
    };
    let ev = Event {
        user: Some(client.identity.to_string()),
        source: Some(client.source.to_string()),
        operation,
        result: "pending".into(),
        phase: Some("intent"),
        ..Default::default()
    };
    audit.append(&ev).map(Some)
}

/// The data-path outcome label of a Get.
fn read_outcome(o: &ItemOutcome) -> &'static str {
    match o.reason {
        None => "ok",
        Some(tags::reason::ITEM_NOT_FOUND) => "not_found",
        Some(_) => "error",
    }
}
