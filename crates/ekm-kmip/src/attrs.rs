//! The KMIP attributes and state of a key, as stored in `m/<key id>` (JSON), and their TTLV
//! views. A key never touched over KMIP has no record: it reads as an Active AES-256 key named
//! by its key tag.
//!
//! Every managed object is an ekm data key: 32 bytes wrapped under the KEK. A KMIP object of
//! fewer bytes (an AES-128 or AES-192 key, a Secret Data password) is the first bytes of its
//! data key, and its length is part of the data key's record (sealed with it, format 3), not
//! of this one: the socket serves the key from the node's key table without reading the
//! store, and the length comes with it. The rest is random filler that nobody is served.

use serde::{Deserialize, Serialize};

use crate::tags::{self, state};
use crate::ttlv::{self, Item, Value};

/// What is stored for one key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stored {
    /// KMIP State.
    pub state: u32,
    /// Object Type (Symmetric Key or Secret Data); records written before Secret Data was
    /// served have none and are symmetric keys.
    #[serde(default = "symmetric_key")]
    pub object_type: u32,
    /// Secret Data Type of a Secret Data object.
    #[serde(default)]
    pub secret_data_type: Option<u32>,
    /// Name attribute instances (text names).
    pub names: Vec<String>,
    /// Object Group instances.
    #[serde(default)]
    pub object_groups: Vec<String>,
    /// Cryptographic Usage Mask.
    pub usage_mask: Option<i32>,
    /// Initial Date.
    pub initial_date: Option<i64>,
    /// Original Creation Date (KMIP 1.4): when the object was created or registered.
    #[serde(default)]
    pub original_creation_date: Option<i64>,
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
    /// Fresh (KMIP 1.1): the object has not yet been served to a client by Get.
    #[serde(default)]
    pub fresh: bool,
    /// Whether the server generated the material (Create): the object then has a Random
    /// Number Generator attribute.
    #[serde(default)]
    pub server_generated: bool,
    /// Custom (`x-`, `y-`) attributes: name and the hex of the TTLV-encoded Attribute Value.
    pub custom: Vec<(String, String)>,
}

/// Longest value of a client-set text or byte-string attribute (a Name, an Object Group,
/// Contact Information, a Revocation Message, a custom attribute as encoded), in bytes.
pub const MAX_ATTRIBUTE_BYTES: usize = 1024;
/// Most client-set attribute instances one object may carry (Names, Object Groups, Contact
/// Information and custom attributes together).
pub const MAX_CLIENT_ATTRIBUTES: usize = 64;
/// Longest custom attribute name, in bytes.
pub const MAX_ATTRIBUTE_NAME_BYTES: usize = 128;
/// Largest attributes record (`m/<key id>`) as stored, in bytes.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

/// Why a record is over its bounds: too long a value (Invalid Field), or too many instances
/// (Permission Denied: a server policy, which KMIP 1.4 has no more precise reason for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverBound {
    /// An attribute value (or custom name) longer than its bound: what, and the bound.
    TooLong(String, usize),
    /// More than [`MAX_CLIENT_ATTRIBUTES`] client-set instances.
    TooMany(usize),
    /// A record larger than [`MAX_RECORD_BYTES`] as stored.
    TooLarge(usize),
}

fn symmetric_key() -> u32 {
    tags::OBJECT_SYMMETRIC_KEY
}

impl Stored {
    /// The record of a key with no `m/` entry (created over REST).
    pub fn default_for(tag: &str) -> Stored {
        Stored {
            state: state::ACTIVE,
            object_type: tags::OBJECT_SYMMETRIC_KEY,
            secret_data_type: None,
            names: if tag.is_empty() {
                Vec::new()
            } else {
                vec![tag.to_owned()]
            },
            object_groups: Vec::new(),
            usage_mask: Some(0x0C),
            initial_date: None,
            original_creation_date: None,
            last_change_date: None,
            activation_date: None,
            deactivation_date: None,
            compromise_date: None,
            compromise_occurrence_date: None,
            revocation: None,
            contact: None,
            fresh: false,
            server_generated: true,
            custom: Vec::new(),
        }
    }

    /// A new object's record (Pre-Active, Fresh, dated `now`).
    pub fn new_key(now: i64) -> Stored {
        Stored {
            state: state::PRE_ACTIVE,
            names: Vec::new(),
            usage_mask: None,
            initial_date: Some(now),
            original_creation_date: Some(now),
            last_change_date: Some(now),
            fresh: true,
            server_generated: false,
            ..Stored::default_for("")
        }
    }

    /// JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// From JSON.
    /// The state follows the dates (KMIP 1.4 §3.22): a Pre-Active object whose Activation
    /// Date has come is Active, whether or not anything wrote it since.
    pub fn decode(bytes: &[u8]) -> Option<Stored> {
        let mut s: Stored = serde_json::from_slice(bytes).ok()?;
        s.settle(crate::clock::now());
        Some(s)
    }

    /// Applies the dates to the state at time `now` (Unix seconds): Pre-Active with an
    /// Activation Date not after `now` is Active.
    pub fn settle(&mut self, now: i64) {
        if self.state == state::PRE_ACTIVE && self.activation_date.is_some_and(|d| d <= now) {
            self.state = state::ACTIVE;
        }
    }

    /// Checks the record against [`MAX_ATTRIBUTE_BYTES`], [`MAX_ATTRIBUTE_NAME_BYTES`],
    /// [`MAX_CLIENT_ATTRIBUTES`] and [`MAX_RECORD_BYTES`]; every record is checked before it is
    /// written (a change that does not grow a record is let through).
    pub fn check_bounds(&self) -> Result<(), OverBound> {
        let texts = self
            .names
            .iter()
            .map(|n| ("Name", n.len()))
            .chain(self.object_groups.iter().map(|g| ("Object Group", g.len())))
            .chain(
                self.contact
                    .iter()
                    .map(|c| ("Contact Information", c.len())),
            )
            .chain(
                self.revocation
                    .iter()
                    .filter_map(|(_, m)| m.as_ref())
                    .map(|m| ("Revocation Message", m.len())),
            )
            // Stored as hex: half of it is the encoded value.
            .chain(self.custom.iter().map(|(n, v)| (n.as_str(), v.len() / 2)));
        for (name, len) in texts {
            if len > MAX_ATTRIBUTE_BYTES {
                return Err(OverBound::TooLong(
                    format!("{name} value"),
                    MAX_ATTRIBUTE_BYTES,
                ));
            }
        }
        let instances = self.names.len()
            + self.object_groups.len()
            + usize::from(self.contact.is_some())
            + self.custom.len();
        if instances > MAX_CLIENT_ATTRIBUTES {
            return Err(OverBound::TooMany(instances));
        }
        if self
            .custom
            .iter()
            .any(|(n, _)| n.len() > MAX_ATTRIBUTE_NAME_BYTES)
        {
            return Err(OverBound::TooLong(
                "custom attribute name".into(),
                MAX_ATTRIBUTE_NAME_BYTES,
            ));
        }
        let bytes = self.encode().len();
        if bytes > MAX_RECORD_BYTES {
            return Err(OverBound::TooLarge(bytes));
        }
        Ok(())
    }

    /// Whether the object is a symmetric key (else Secret Data).
    pub fn is_key(&self) -> bool {
        self.object_type == tags::OBJECT_SYMMETRIC_KEY
    }

    /// Every attribute instance, in the order Get Attribute List names them (the identifying
    /// attributes first, then by name): (name, value with tag Attribute Value). `len` is the
    /// object's length in bytes (from its data key record), `digest` the SHA-256 of its bytes.
    pub fn instances(
        &self,
        uid: &str,
        len: usize,
        digest: Option<[u8; 32]>,
    ) -> Vec<(String, Value)> {
        let mut out: Vec<(String, Value)> = vec![
            ("Unique Identifier".into(), Value::TextString(uid.into())),
            ("Object Type".into(), Value::Enumeration(self.object_type)),
        ];
        if self.is_key() {
            out.push((
                "Cryptographic Algorithm".into(),
                Value::Enumeration(tags::ALGORITHM_AES),
            ));
            out.push((
                "Cryptographic Length".into(),
                Value::Integer(i32::try_from(len * 8).unwrap_or(256)),
            ));
        }
        let date = |out: &mut Vec<(String, Value)>, n: &str, d: Option<i64>| {
            if let Some(d) = d {
                out.push((n.into(), Value::DateTime(d)));
            }
        };
        date(&mut out, "Activation Date", self.activation_date);
        if self.is_key() {
            // ekm serves key material to its owner (Get, the socket): it is extractable and
            // not sensitive, and always was.
            out.push(("Always Sensitive".into(), Value::Boolean(false)));
        }
        date(&mut out, "Compromise Date", self.compromise_date);
        date(
            &mut out,
            "Compromise Occurrence Date",
            self.compromise_occurrence_date,
        );
        if let Some(c) = &self.contact {
            out.push(("Contact Information".into(), Value::TextString(c.clone())));
        }
        if let Some(m) = self.usage_mask {
            out.push(("Cryptographic Usage Mask".into(), Value::Integer(m)));
        }
        date(&mut out, "Deactivation Date", self.deactivation_date);
        if let Some(d) = digest {
            let format = if self.is_key() {
                tags::KEY_FORMAT_RAW
            } else {
                tags::KEY_FORMAT_OPAQUE
            };
            out.push((
                "Digest".into(),
                Value::Structure(vec![
                    Item::enumeration(tags::HASHING_ALGORITHM, tags::HASH_SHA256),
                    Item::bytes(tags::DIGEST_VALUE, d.to_vec()),
                    Item::enumeration(tags::KEY_FORMAT_TYPE, format),
                ]),
            ));
        }
        if self.is_key() {
            out.push(("Extractable".into(), Value::Boolean(true)));
        }
        out.push(("Fresh".into(), Value::Boolean(self.fresh)));
        date(&mut out, "Initial Date", self.initial_date);
        date(&mut out, "Last Change Date", self.last_change_date);
        for n in &self.names {
            out.push((
                "Name".into(),
                Value::Structure(vec![
                    Item::text(tags::NAME_VALUE, n.clone()),
                    Item::enumeration(tags::NAME_TYPE, tags::NAME_TYPE_TEXT),
                ]),
            ));
        }
        if self.is_key() {
            out.push(("Never Extractable".into(), Value::Boolean(false)));
        }
        for g in &self.object_groups {
            out.push(("Object Group".into(), Value::TextString(g.clone())));
        }
        date(
            &mut out,
            "Original Creation Date",
            self.original_creation_date,
        );
        if self.server_generated {
            // Create draws key material from the operating system's RNG (getrandom): no
            // algorithm KMIP names more precisely than Unspecified.
            out.push((
                "Random Number Generator".into(),
                Value::Structure(vec![Item::enumeration(
                    tags::RNG_ALGORITHM,
                    tags::RNG_UNSPECIFIED,
                )]),
            ));
        }
        if let Some((code, msg)) = &self.revocation {
            let mut items = vec![Item::enumeration(tags::REVOCATION_REASON_CODE, *code)];
            if let Some(m) = msg {
                items.push(Item::text(tags::REVOCATION_MESSAGE, m.clone()));
            }
            out.push(("Revocation Reason".into(), Value::Structure(items)));
        }
        if self.is_key() {
            out.push(("Sensitive".into(), Value::Boolean(false)));
        }
        out.push(("State".into(), Value::Enumeration(self.state)));
        for (n, hexv) in &self.custom {
            if let Some(item) = hex::decode(hexv).ok().and_then(|b| ttlv::decode(&b).ok()) {
                out.push((n.clone(), item.value));
            }
        }
        out
    }
}

/// Whether an attribute name is a client's custom one.
pub fn is_custom(name: &str) -> bool {
    name.starts_with("x-") || name.starts_with("y-")
}
