//! The KMIP attributes and state of a key, as stored in `m/<key id>` (JSON), and their TTLV
//! views. A key never touched over KMIP has no record: it reads as an Active AES-256 key named
//! by its key tag.

use serde::{Deserialize, Serialize};

use crate::tags::{self, state};
use crate::ttlv::{self, Item, Value};

/// What is stored for one key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stored {
    /// KMIP State.
    pub state: u32,
    /// Name attribute instances (text names).
    pub names: Vec<String>,
    /// Cryptographic Usage Mask.
    pub usage_mask: Option<i32>,
    /// Initial Date.
    pub initial_date: Option<i64>,
    /// Last Change Date.
    pub last_change_date: Option<i64>,
    /// Activation Date.
    pub activation_date: Option<i64>,
    /// Deactivation Date.
    pub deactivation_date: Option<i64>,
    /// Compromise Date.
    pub compromise_date: Option<i64>,
    /// Compromise Occurrence Date.
    pub compromise_occurrence_date: Option<i64>,
    /// Revocation Reason: code and message.
    pub revocation: Option<(u32, Option<String>)>,
    /// Contact Information.
    pub contact: Option<String>,
    /// Custom (`x-`, `y-`) attributes: name and the hex of the TTLV-encoded Attribute Value.
    pub custom: Vec<(String, String)>,
}

impl Stored {
    /// The record of a key with no `m/` entry (created over REST).
    pub fn default_for(tag: &str) -> Stored {
        Stored {
            state: state::ACTIVE,
            names: if tag.is_empty() {
                Vec::new()
            } else {
                vec![tag.to_owned()]
            },
            usage_mask: Some(0x0C),
            initial_date: None,
            last_change_date: None,
            activation_date: None,
            deactivation_date: None,
            compromise_date: None,
            compromise_occurrence_date: None,
            revocation: None,
            contact: None,
            custom: Vec::new(),
        }
    }

    /// A new key's record.
    pub fn new_key(now: i64) -> Stored {
        Stored {
            state: state::PRE_ACTIVE,
            names: Vec::new(),
            usage_mask: None,
            initial_date: Some(now),
            last_change_date: Some(now),
            ..Stored::default_for("")
        }
    }

    /// JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// From JSON.
    pub fn decode(bytes: &[u8]) -> Option<Stored> {
        serde_json::from_slice(bytes).ok()
    }

    /// Every attribute instance: (name, value with tag Attribute Value). `digest` is the
    /// SHA-256 of the key material.
    pub fn instances(&self, uid: &str, digest: Option<[u8; 32]>) -> Vec<(String, Value)> {
        let v = tags::ATTRIBUTE_VALUE;
        let mut out: Vec<(String, Value)> = vec![
            ("Unique Identifier".into(), Value::TextString(uid.into())),
            (
                "Object Type".into(),
                Value::Enumeration(tags::OBJECT_SYMMETRIC_KEY),
            ),
            (
                "Cryptographic Algorithm".into(),
                Value::Enumeration(tags::ALGORITHM_AES),
            ),
            ("Cryptographic Length".into(), Value::Integer(256)),
        ];
        for n in &self.names {
            out.push((
                "Name".into(),
                Value::Structure(vec![
                    Item::text(tags::NAME_VALUE, n.clone()),
                    Item::enumeration(tags::NAME_TYPE, tags::NAME_TYPE_TEXT),
                ]),
            ));
        }
        if let Some(m) = self.usage_mask {
            out.push(("Cryptographic Usage Mask".into(), Value::Integer(m)));
        }
        if let Some(d) = digest {
            out.push((
                "Digest".into(),
                Value::Structure(vec![
                    Item::enumeration(tags::HASHING_ALGORITHM, tags::HASH_SHA256),
                    Item::bytes(tags::DIGEST_VALUE, d.to_vec()),
                    Item::enumeration(tags::KEY_FORMAT_TYPE, tags::KEY_FORMAT_RAW),
                ]),
            ));
        }
        out.push(("State".into(), Value::Enumeration(self.state)));
        let dates = [
            ("Initial Date", self.initial_date),
            ("Activation Date", self.activation_date),
            ("Deactivation Date", self.deactivation_date),
            ("Compromise Date", self.compromise_date),
            (
                "Compromise Occurrence Date",
                self.compromise_occurrence_date,
            ),
            ("Last Change Date", self.last_change_date),
        ];
        for (n, d) in dates {
            if let Some(d) = d {
                out.push((n.into(), Value::DateTime(d)));
            }
        }
        if let Some((code, msg)) = &self.revocation {
            let mut items = vec![Item::enumeration(tags::REVOCATION_REASON_CODE, *code)];
            if let Some(m) = msg {
                items.push(Item::text(tags::REVOCATION_MESSAGE, m.clone()));
            }
            out.push(("Revocation Reason".into(), Value::Structure(items)));
        }
        if let Some(c) = &self.contact {
            out.push(("Contact Information".into(), Value::TextString(c.clone())));
        }
        for (n, hexv) in &self.custom {
            if let Some(item) = hex::decode(hexv).ok().and_then(|b| ttlv::decode(&b).ok()) {
                out.push((n.clone(), item.value));
            }
        }
        let _ = v;
        out
    }
}

/// Whether an attribute name is a client's custom one.
pub fn is_custom(name: &str) -> bool {
    name.starts_with("x-") || name.starts_with("y-")
}
