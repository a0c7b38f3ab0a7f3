//! One audit record: what it says, the line it is written as, and the hash that chains it.
//!
//! ```text
//! {"seq":7,"time":"...","node":"node1","user":"admin","source":"127.0.0.1","operation":"key.create",
//!  "target":"<config uuid>","key_id":"...","status":201,"result":"0","job":null,
//!  "prev":"<hash of record 6>","hash":"<SHA-256 of this line up to ,\"hash\">"}
//! ```
//!
//! `hash` is the SHA-256 (hex) of the line's bytes before `,"hash":`; `prev` is the previous
//! record's `hash` ([`GENESIS`] for record 1), so an edited byte breaks its own hash, and a
//! deleted, inserted or reordered line breaks the next record's `prev` (and the `seq` run).
//! `key_id`, `status`, `state`, `phase`, `intent` and `count` are left out when empty.
//!
//! A change is recorded twice: an *intent* (`"operation":"<op>.intent"`, `"phase":"intent"`,
//! `"result":"pending"`) written
//! and fsync'd before the change is attempted, and its *outcome* (`"intent":<seq of the
//! intent>`, the status and result) after. An intent with no outcome is a change whose result
//! the trail does not know (ekmd died, or the outcome could not be written): look at the object.
//!
//! Owns: the fields of a record, their order, and how a line is hashed and checked.
//! Must never: hold a secret, a password, a certificate, key material, a request body or an
//! error message (only codes and identifiers).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const HASH_FIELD: &str = ",\"hash\":\"";

/// What one record says (the chain fields are added by [`super::AuditLog::append`]).
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// The authenticated user (or KMIP client identity); none for a failed login or a job end.
    pub user: Option<String>,
    /// The client address.
    pub source: Option<String>,
    /// What was done: `config.create`, `key.delete`, `login.failed`, `job.end`, ...
    pub operation: String,
    /// The configuration (or other object) acted on.
    pub target: Option<String>,
    /// The data key acted on (an identifier, never material).
    pub key_id: Option<String>,
    /// The HTTP status answered (none for a job end).
    pub status: Option<u16>,
    /// The ONTAP result code: "0" on success.
    pub result: String,
    /// The job started or ended.
    pub job: Option<String>,
    /// A job's final state.
    pub state: Option<String>,
    /// `"intent"` on the record written *before* a change is attempted (its `result` is
    /// `"pending"`); absent on every other record.
    pub phase: Option<&'static str>,
    /// On the outcome of a change: the `seq` of its intent record.
    pub intent: Option<u64>,
    /// On a refused-login summary: how many refusals of this kind from this address it
    /// stands for (absent: one).
    pub count: Option<u64>,
}

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    time: String,
    node: &'a str,
    user: &'a Option<String>,
    source: &'a Option<String>,
    operation: &'a str,
    target: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    result: &'a str,
    job: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    intent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    prev: &'a str,
}

/// The chain fields of a stored record, and what pairs an intent with its outcome.
#[derive(Deserialize)]
struct Chain {
    seq: u64,
    prev: String,
    hash: String,
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    intent: Option<u64>,
}

/// What [`check_line`] reads of a record.
#[derive(Debug)]
pub(super) struct Checked {
    pub(super) seq: u64,
    pub(super) prev: String,
    pub(super) hash: String,
    /// The record is an intent (written before its change).
    pub(super) is_intent: bool,
    /// The record is the outcome of the intent of this `seq`.
    pub(super) outcome_of: Option<u64>,
}

fn hex_sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The line (newline included) of record `seq` of `node` saying `ev`, stamped with the time
/// now and chained to `prev`, and its hash.
pub(super) fn seal(
    seq: u64,
    node: &str,
    ev: &Event,
    prev: &str,
) -> std::io::Result<(String, String)> {
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let body = serde_json::to_string(&Line {
        seq,
        time,
        node,
        user: &ev.user,
        source: &ev.source,
        operation: &ev.operation,
        target: &ev.target,
        key_id: &ev.key_id,
        status: ev.status,
        result: &ev.result,
        job: &ev.job,
        state: &ev.state,
        phase: ev.phase,
        intent: ev.intent,
        count: ev.count,
        prev,
    })
    .map_err(std::io::Error::other)?;
    let body = body.strip_suffix('}').unwrap_or(&body);
    let hash = hex_sha256(body.as_bytes());
    let line = format!("{body}{HASH_FIELD}{hash}\"}}\n");
    Ok((line, hash))
}

/// Checks one line's own hash, and returns its chain fields.
pub(super) fn check_line(line: &[u8]) -> Result<Checked, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let at = text
        .rfind(HASH_FIELD)
        .ok_or_else(|| "no hash field (not a complete record)".to_owned())?;
    let chain: Chain =
        serde_json::from_str(text).map_err(|e| format!("not a complete JSON record ({e})"))?;
    let computed = hex_sha256(&line[..at]);
    if computed != chain.hash || !text.ends_with(&format!("{HASH_FIELD}{}\"}}", chain.hash)) {
        return Err("its hash does not match its contents (edited)".into());
    }
    Ok(Checked {
        seq: chain.seq,
        prev: chain.prev,
        hash: chain.hash,
        is_intent: chain.phase.as_deref() == Some("intent"),
        outcome_of: chain.intent,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A record of `op` by `admin` from loopback (for the tests of the trail).
    pub(in crate::audit) fn ev(op: &str) -> Event {
        Event {
            user: Some("admin".into()),
            source: Some("127.0.0.1".into()),
            operation: op.into(),
            target: Some(uuid::Uuid::nil().to_string()),
            status: Some(200),
            result: "0".into(),
            ..Default::default()
        }
    }
}
