//! `ekm check`: ONTAP's `security key-manager external azure check` layout — per node, the
//! categories `service_reachability` (the vault answers), `ekmip_server` (the node's KMIP
//! server) and `kms_wrapped_key_status` (the node holds the KEK), each with a Status (`OK`,
//! `NOT OK`, `UNKNOWN`) and a Message — from the advanced fields `state`,
//! `azure_reachability` and `ekmip_reachability` of the configuration.
//!
//! Owns: how those fields map to categories, and the per-node parts of their cluster-wide
//! messages. Must never: call a node OK that a field reports failing, or show `false` for
//! "no data key yet".

use reqwest::Method;
use serde_json::Value;

use super::Session;
use crate::Failure;
use crate::args::TargetOnly;
use crate::client::Kind;
use crate::output::{cell, table};

/// What ekmd says in `state` of a key manager without a data key (so without a KEK).
const NO_KEYS: &str = "No data keys created yet";
/// What ekmd prefixes to a node's `ekmip_reachability` message when it cannot tell.
const KMIP_UNAVAILABLE: &str = "embedded KMIP server status unavailable on node. ";
/// What ekmd says of a node whose KMIP listener did not answer its probe.
const KMIP_NO_ANSWER: &str = "Its KMIP server did not answer";
/// How ekmd's `ekmip_reachability` says KMIP is off on a node.
const KMIP_OFF: &str = "KMIP is off";
/// The node is down (a `state` reason).
const NODE_DOWN: &str = "The node is down";

/// `ekm check`: the target's status, one row per node and category.
pub fn check(s: &Session, a: TargetOnly) -> Result<(), Failure> {
    let (kind, km) = s.client.key_manager_any(&a.target)?;
    let reachability = match kind {
        Kind::Azure => "azure_reachability",
        Kind::Aws => "amazon_reachability",
    };
    let r = s.client.call(
        Method::GET,
        &format!(
            "{}/{}?fields=state,{reachability},ekmip_reachability",
            kind.base(),
            km.uuid
        ),
        None,
    )?;
    s.answer(&r, |r| {
        println!("Key manager {} ({})", km.uuid, km.label);
        println!();
        table(
            &["Node", "Category", "Status", "Message"],
            &rows(r, &km.flags),
        );
    });
    Ok(())
}

/// One row per node and category: node, category, status, message.
fn rows(r: &Value, flags: &str) -> Vec<Vec<String>> {
    let nodes: Vec<&Value> = r["ekmip_reachability"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let names: Vec<String> = nodes.iter().map(|n| cell(&n["node"]["name"])).collect();
    let state = &r["state"];
    let kek = if state["available"] == true {
        vec![None; names.len()]
    } else {
        per_node(&text(&state["message"]), &names, |n| {
            format!("Node: {n}. Reason: ")
        })
    };
    // The provider's reachability: Azure's or AWS's, whichever the record carries.
    let azure = match r.get("amazon_reachability") {
        Some(aws) => aws,
        None => &r["azure_reachability"],
    };
    let vault = if azure["reachable"] == true {
        vec![None; names.len()]
    } else {
        let msg = text(&azure["message"]);
        let body = msg.split_once(" - ").map(|(_, b)| b).unwrap_or(&msg);
        per_node(body, &names, |n| format!("{n}: "))
    };
    let mut out = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let node = &names[i];
        let kek_reason = kek[i].as_deref();
        let down = kek_reason.is_some_and(|r| r.starts_with(NODE_DOWN));
        let row = |category: &str, (status, message): (&str, String)| {
            vec![node.clone(), category.into(), status.into(), message]
        };
        out.push(row(
            "service_reachability",
            match &vault[i] {
                _ if down => ("UNKNOWN", "not checked: the node is down".into()),
                Some(why) => ("NOT OK", why.clone()),
                None => ("OK", String::new()),
            },
        ));
        out.push(row("ekmip_server", kmip(n, kek_reason)));
        out.push(row(
            "kms_wrapped_key_status",
            match kek_reason {
                None => ("OK", String::new()),
                Some(r) if r.starts_with(NO_KEYS) => (
                    "UNKNOWN",
                    format!(
                        "No data keys yet: the wrapped KEK is made with the first one (ekm key create{flags})."
                    ),
                ),
                Some(r) => ("NOT OK", r.to_owned()),
            },
        ));
    }
    out
}

/// The `ekmip_server` category of node record `n` (its `ekmip_reachability`).
fn kmip(n: &Value, kek_reason: Option<&str>) -> (&'static str, String) {
    let msg = text(&n["message"]);
    if n["reachable"] == true {
        return ("OK", msg);
    }
    let why = msg.strip_prefix(KMIP_UNAVAILABLE).unwrap_or(&msg);
    if why.starts_with(KMIP_OFF) {
        return ("OK", why.to_owned());
    }
    if why.starts_with(KMIP_NO_ANSWER) {
        return ("NOT OK", why.to_owned());
    }
    match kek_reason {
        Some(r) if r.starts_with(NO_KEYS) => (
            "UNKNOWN",
            "not known before the first data key: this key manager has no KEK to serve yet.".into(),
        ),
        Some(_) => (
            "UNKNOWN",
            "not known while the node lacks the KEK (see kms_wrapped_key_status).".into(),
        ),
        None => ("NOT OK", why.to_owned()),
    }
}

/// A JSON string, or "" for anything else.
fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// The part of cluster-wide message `msg` about each node of `names`, each part starting
/// after `marker(name)` at the message's start or after a space (so node `a` is not found in
/// `ba: `). A node not named has none; when no node is named at all (a message of another
/// form) every node gets the whole message. Any message splits without a panic.
fn per_node(msg: &str, names: &[String], marker: impl Fn(&str) -> String) -> Vec<Option<String>> {
    let mut at: Vec<(usize, usize, usize)> = names
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let m = marker(n);
            msg.match_indices(&m)
                .find(|&(p, _)| p == 0 || msg[..p].ends_with(' '))
                .map(|(p, _)| (p, p + m.len(), i))
        })
        .collect();
    if at.is_empty() {
        let whole = (!msg.is_empty()).then(|| msg.to_owned());
        return vec![whole; names.len()];
    }
    at.sort();
    let mut out = vec![None; names.len()];
    for (k, &(_, from, i)) in at.iter().enumerate() {
        let to = at.get(k + 1).map(|n| n.0).unwrap_or(msg.len()).max(from);
        let part = msg
            .get(from..to)
            .unwrap_or_default()
            .trim_end_matches([' ', ';']);
        out[i] = Some(part.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::per_node;

    #[test]
    fn a_cluster_wide_message_splits_per_node() {
        let names = vec!["node1".to_owned(), "node10".to_owned(), "node2".to_owned()];
        let parts = per_node("node10: timed out; node1: 403 Forbidden; x.", &names, |n| {
            format!("{n}: ")
        });
        assert_eq!(
            parts,
            vec![
                Some("403 Forbidden; x.".to_owned()),
                Some("timed out".to_owned()),
                None
            ]
        );
        let parts = per_node("something else", &names, |n| format!("{n}: "));
        assert_eq!(parts, vec![Some("something else".to_owned()); 3]);
        // One name inside another's marker: each node its own part, no panic.
        let names = vec!["a".to_owned(), "ba".to_owned()];
        let parts = per_node("ba: down; a: up", &names, |n| format!("{n}: "));
        assert_eq!(parts, vec![Some("up".to_owned()), Some("down".to_owned())]);
        // Markers that overlap whatever the boundary rule: still no panic.
        let names = vec!["x: x".to_owned(), "x".to_owned()];
        let _ = per_node("x: x: y", &names, |n| format!("{n}: "));
    }
}
