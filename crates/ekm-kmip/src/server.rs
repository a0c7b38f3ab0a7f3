//! The KMIP operations over the engine: one request message in, one response message out.
//!
//! Every failure of one batch item is answered in that item with a KMIP Result Reason; a
//! message that is not TTLV, or not a Request Message, is answered with one failed item
//! (Invalid Message). Nothing here panics on input, and no key material appears in a result
//! message.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ekm_core::store::{Check, StoreError, Transaction};
use ekm_core::{DataKeyId, DataKeyMaterial, Engine, ErrorKind, KeyOwner, KeyTag, layout};
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::attrs::{self, Stored};
use crate::outcome::ItemOutcome;
use crate::tags::{self, op, reason, state};
use crate::ttlv::{self, Item, Value};

/// Protocol versions served, most preferred first.
pub const VERSIONS: &[(i32, i32)] = &[(2, 0), (1, 4), (1, 3), (1, 2), (1, 1), (1, 0)];

/// Operations served (Query lists them).
pub const OPERATIONS: &[u32] = &[
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

/// A refused batch item: its Result Reason and Result Message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Result Reason.
    pub reason: u32,
    /// Result Message (never secret).
    pub message: String,
}

fn fail(reason: u32, message: impl Into<String>) -> Failure {
    Failure {
        reason,
        message: message.into(),
    }
}

fn not_found() -> Failure {
    fail(reason::ITEM_NOT_FOUND, "Object not found.")
}

fn engine_failure(e: ekm_core::Error) -> Failure {
    match e.kind() {
        ErrorKind::EntryNotFound => not_found(),
        _ => fail(reason::GENERAL_FAILURE, e.message()),
    }
}

type OpResult = Result<Vec<Item>, Failure>;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One attribute of a request: its name, index and value.
struct Attr {
    name: String,
    index: Option<i32>,
    value: Value,
}

/// Per-message context: who asks, in which version, and the ID Placeholder.
struct Ctx {
    owner: Option<KeyOwner>,
    v2: bool,
    placeholder: Option<String>,
}

/// What a Create or Register makes.
struct NewObject {
    object_type: u32,
    secret_data_type: Option<u32>,
    /// Created by the server (it then reports its Random Number Generator).
    server_generated: bool,
}

/// A key as found for its owner.
struct Found {
    id: DataKeyId,
    uid: String,
    tag: String,
    /// Bytes of the object (1 to 32), as its data key record says.
    len: usize,
    meta: Stored,
    /// The `m/` record as read (`None`: absent).
    meta_bytes: Option<Vec<u8>>,
}

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
        let version = header
            .child(tags::PROTOCOL_VERSION)
            .and_then(|v| {
                Some((
                    v.child(tags::PROTOCOL_VERSION_MAJOR)?.as_int()?,
                    v.child(tags::PROTOCOL_VERSION_MINOR)?.as_int()?,
                ))
            })
            .unwrap_or((1, 0));
        // Answer in the version asked for when served, else the highest served below it.
        let version = VERSIONS
            .iter()
            .copied()
            .find(|v| *v <= version)
            .unwrap_or((1, 0));
        let continue_on_error = header
            .child(tags::BATCH_ERROR_CONTINUATION_OPTION)
            .and_then(Item::as_enum)
            == Some(1);
        let mut ctx = Ctx {
            owner,
            v2: version.0 >= 2,
            placeholder: None,
        };
        let mut out = Vec::new();
        let items: Vec<&Item> = msg.all(tags::BATCH_ITEM).collect();
        if items.is_empty() {
            return invalid_message(version, "The request has no Batch Item.");
        }
        for item in items {
            let operation = item.child(tags::OPERATION).and_then(Item::as_enum);
            let batch_id = item.child(tags::UNIQUE_BATCH_ITEM_ID).cloned();
            let (started, placeholder) = (Instant::now(), ctx.placeholder.clone());
            let result = match (operation, item.child(tags::REQUEST_PAYLOAD)) {
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
                (Some(o), Some(p)) => self.dispatch(&mut ctx, o, p, version),
            };
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
        response(version, out)
    }

    fn dispatch(&self, ctx: &mut Ctx, o: u32, p: &Item, version: (i32, i32)) -> OpResult {
        match o {
            op::DISCOVER_VERSIONS => Ok(discover_versions(p)),
            op::QUERY => Ok(query(p)),
            _ if ctx.owner.is_none() => Err(fail(
                reason::PERMISSION_DENIED,
                "The client certificate names no owner of keys on this cluster.",
            )),
            op::CREATE => self.create(ctx, p),
            op::REGISTER => self.register(ctx, p),
            op::GET => self.get(ctx, p),
            op::GET_ATTRIBUTES => self.get_attributes(ctx, p),
            op::GET_ATTRIBUTE_LIST => self.get_attribute_list(ctx, p),
            op::LOCATE => self.locate(ctx, p, version),
            op::ADD_ATTRIBUTE => self.add_attribute(ctx, p),
            op::MODIFY_ATTRIBUTE => self.modify_attribute(ctx, p),
            op::SET_ATTRIBUTE => self.set_attribute(ctx, p),
            op::DELETE_ATTRIBUTE => self.delete_attribute(ctx, p),
            op::ACTIVATE => self.activate(ctx, p),
            op::REVOKE => self.revoke(ctx, p),
            op::DESTROY => self.destroy(ctx, p),
            _ => Err(fail(
                reason::OPERATION_NOT_SUPPORTED,
                "Operation not supported.",
            )),
        }
    }

    // ---- keys ----

    fn uid(&self, ctx: &Ctx, p: &Item) -> Result<String, Failure> {
        match p.child(tags::UNIQUE_IDENTIFIER) {
            Some(i) => i
                .as_text()
                .map(str::to_owned)
                .ok_or_else(|| fail(reason::INVALID_FIELD, "Unique Identifier is not text.")),
            None => ctx.placeholder.clone().ok_or_else(|| {
                fail(
                    reason::MISSING_DATA,
                    "No Unique Identifier and no ID Placeholder.",
                )
            }),
        }
    }

    /// The key `uid` if it exists and belongs to the owner: anything else is Item Not Found.
    fn find(&self, owner: Option<KeyOwner>, uid: &str) -> Result<Found, Failure> {
        let owner = owner.ok_or_else(not_found)?;
        let id = DataKeyId::parse(uid).map_err(|_| not_found())?;
        let info = self.engine.data_key_info(&id).map_err(engine_failure)?;
        if info.svm_uuid != owner.svm() {
            return Err(not_found());
        }
        let tag = info.key_tag.as_str().to_owned();
        let meta_bytes = self
            .engine
            .store()
            .get(&layout::kmip_attributes(&id))
            .map_err(|e| fail(reason::GENERAL_FAILURE, format!("Store failure: {e}")))?;
        let meta = meta_bytes
            .as_deref()
            .and_then(Stored::decode)
            .unwrap_or_else(|| Stored::default_for(&tag));
        Ok(Found {
            id,
            uid: uid.to_owned(),
            tag,
            len: info.key_len,
            meta,
            meta_bytes,
        })
    }

    /// Reads, changes and writes a key's attributes, conditional on what was read.
    fn update(
        &self,
        ctx: &mut Ctx,
        p: &Item,
        mut change: impl FnMut(&mut Found) -> OpResult,
    ) -> OpResult {
        let uid = self.uid(ctx, p)?;
        for _ in 0..8 {
            let mut f = self.find(ctx.owner, &uid)?;
            let out = change(&mut f)?;
            f.meta.last_change_date = Some(now());
            let key = layout::kmip_attributes(&f.id);
            let mut txn = Transaction::new();
            txn.check(Check::Present(layout::data_key(&f.id)));
            match &f.meta_bytes {
                Some(b) => txn.check(Check::Equals(key.clone(), b.clone())),
                None => txn.check(Check::Absent(key.clone())),
            };
            txn.put(key, f.meta.encode());
            match self.engine.store().commit(txn) {
                Ok(()) => {
                    ctx.placeholder = Some(uid.clone());
                    return Ok(out);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(fail(reason::GENERAL_FAILURE, format!("Store failure: {e}"))),
            }
        }
        Err(fail(
            reason::GENERAL_FAILURE,
            "The object kept changing; retry.",
        ))
    }

    /// The object's bytes as served (from the node's key table when it holds the key).
    fn material(&self, f: &Found) -> Result<DataKeyMaterial, Failure> {
        self.engine.read_served_key(&f.id).map_err(engine_failure)
    }

    // ---- operations ----

    fn create(&self, ctx: &mut Ctx, p: &Item) -> OpResult {
        if object_type(p)? != tags::OBJECT_SYMMETRIC_KEY {
            return Err(fail(
                reason::INVALID_FIELD,
                "Create makes symmetric keys only.",
            ));
        }
        let attrs = request_attributes(p, ctx.v2);
        // The length asked for (AES-128, -192 or -256; 256 when not given).
        let mut len = ekm_core::secret::KEY_LEN;
        for a in attrs.iter().filter(|a| a.name == "Cryptographic Length") {
            len = aes_len_bytes(&a.value)?;
        }
        let new = NewObject {
            object_type: tags::OBJECT_SYMMETRIC_KEY,
            secret_data_type: None,
            server_generated: true,
        };
        let material = DataKeyMaterial::random(len).ok_or_else(|| {
            fail(
                reason::INVALID_FIELD,
                "AES keys are 128, 192 or 256 bits long.",
            )
        })?;
        let uid = self.store_new(ctx, attrs, new, material)?;
        Ok(vec![
            Item::enumeration(tags::OBJECT_TYPE, tags::OBJECT_SYMMETRIC_KEY),
            Item::text(tags::UNIQUE_IDENTIFIER, uid),
        ])
    }

    fn register(&self, ctx: &mut Ctx, p: &Item) -> OpResult {
        let ty = object_type(p)?;
        let (object_tag, format, what) = match ty {
            tags::OBJECT_SYMMETRIC_KEY => (tags::SYMMETRIC_KEY, tags::KEY_FORMAT_RAW, "Raw"),
            tags::OBJECT_SECRET_DATA => (tags::SECRET_DATA, tags::KEY_FORMAT_OPAQUE, "Opaque"),
            _ => {
                return Err(fail(
                    reason::INVALID_FIELD,
                    "Only symmetric keys and secret data are served.",
                ));
            }
        };
        let object = p.child(object_tag).ok_or_else(|| {
            fail(
                reason::INVALID_FIELD,
                "The request has no object of its Object Type.",
            )
        })?;
        let block = object
            .child(tags::KEY_BLOCK)
            .ok_or_else(|| fail(reason::INVALID_FIELD, "The object has no Key Block."))?;
        if block.child(tags::KEY_FORMAT_TYPE).and_then(Item::as_enum) != Some(format) {
            return Err(fail(
                reason::KEY_FORMAT_TYPE_NOT_SUPPORTED,
                format!("Objects of this type are registered in {what} format."),
            ));
        }
        let bytes = block
            .child(tags::KEY_VALUE)
            .and_then(|v| v.child(tags::KEY_MATERIAL))
            .and_then(Item::as_bytes)
            .ok_or_else(|| fail(reason::INVALID_FIELD, "The Key Value has no Key Material."))?;
        let mut attrs = request_attributes(p, ctx.v2);
        let new = if ty == tags::OBJECT_SYMMETRIC_KEY {
            if let Some(a) = block
                .child(tags::CRYPTOGRAPHIC_ALGORITHM)
                .and_then(Item::as_enum)
            {
                if a != tags::ALGORITHM_AES {
                    return Err(fail(reason::INVALID_FIELD, "Only AES keys are served."));
                }
            }
            if !matches!(bytes.len(), 16 | 24 | 32) {
                return Err(fail(
                    reason::INVALID_FIELD,
                    "AES keys are 128, 192 or 256 bits long.",
                ));
            }
            if let Some(l) = block
                .child(tags::CRYPTOGRAPHIC_LENGTH)
                .and_then(Item::as_int)
            {
                attrs.push(Attr {
                    name: "Cryptographic Length".into(),
                    index: None,
                    value: Value::Integer(l),
                });
            }
            NewObject {
                object_type: ty,
                secret_data_type: None,
                server_generated: false,
            }
        } else {
            if bytes.is_empty() || bytes.len() > ekm_core::secret::KEY_LEN {
                return Err(fail(
                    reason::INVALID_FIELD,
                    "Secret data of 1 to 32 bytes is served (ekm data keys are 32 bytes).",
                ));
            }
            NewObject {
                object_type: ty,
                secret_data_type: Some(
                    object
                        .child(tags::SECRET_DATA_TYPE)
                        .and_then(Item::as_enum)
                        .ok_or_else(|| {
                            fail(
                                reason::INVALID_FIELD,
                                "Secret Data has no Secret Data Type.",
                            )
                        })?,
                ),
                server_generated: false,
            }
        };
        // The object is the first bytes of a 32-byte data key, sealed with its length.
        let material = DataKeyMaterial::from_bytes(bytes).ok_or_else(|| {
            fail(
                reason::INVALID_FIELD,
                "Objects of 1 to 32 bytes are served.",
            )
        })?;
        // A Register response carries the Unique Identifier alone.
        let uid = self.store_new(ctx, attrs, new, material)?;
        Ok(vec![Item::text(tags::UNIQUE_IDENTIFIER, uid)])
    }

    /// Stores a new object with its attributes; returns its Unique Identifier.
    fn store_new(
        &self,
        ctx: &mut Ctx,
        attrs: Vec<Attr>,
        new: NewObject,
        material: DataKeyMaterial,
    ) -> Result<String, Failure> {
        let t = now();
        let mut meta = Stored::new_key(t);
        meta.object_type = new.object_type;
        meta.secret_data_type = new.secret_data_type;
        meta.server_generated = new.server_generated;
        let is_key = new.object_type == tags::OBJECT_SYMMETRIC_KEY;
        for a in attrs {
            match a.name.as_str() {
                "Cryptographic Algorithm" if is_key => {
                    if a.value != Value::Enumeration(tags::ALGORITHM_AES) {
                        return Err(fail(reason::INVALID_FIELD, "Only AES keys are served."));
                    }
                }
                "Cryptographic Length" if is_key => {
                    if aes_len_bytes(&a.value)? != material.len() {
                        return Err(fail(
                            reason::INVALID_FIELD,
                            "The Cryptographic Length is not the key's length.",
                        ));
                    }
                }
                "Object Type" => {
                    if a.value != Value::Enumeration(new.object_type) {
                        return Err(fail(
                            reason::INVALID_FIELD,
                            "The Object Type attribute is not the object's type.",
                        ));
                    }
                }
                "Operation Policy Name" => {}
                _ => set_attribute_value(&mut meta, &a, true)?,
            }
        }
        let tag_text = meta.names.first().cloned().unwrap_or_default();
        let tag = KeyTag::parse(&tag_text)
            .map_err(|_| fail(reason::INVALID_FIELD, "The Name is not a valid key tag."))?;
        let id = self
            .engine
            .import_data_key_with_attributes(
                ctx.owner.ok_or_else(not_found)?,
                tag,
                material,
                Some(meta.encode()),
            )
            .map_err(engine_failure)?;
        let uid = id.to_hex();
        ctx.placeholder = Some(uid.clone());
        Ok(uid)
    }

    fn get(&self, ctx: &mut Ctx, p: &Item) -> OpResult {
        if p.child(tags::KEY_WRAPPING_SPECIFICATION).is_some() {
            return Err(fail(
                reason::FEATURE_NOT_SUPPORTED,
                "Key wrapping is not supported.",
            ));
        }
        let uid = self.uid(ctx, p)?;
        let f = self.find(ctx.owner, &uid)?;
        let format = if f.meta.is_key() {
            tags::KEY_FORMAT_RAW
        } else {
            tags::KEY_FORMAT_OPAQUE
        };
        if let Some(k) = p.child(tags::KEY_FORMAT_TYPE).and_then(Item::as_enum) {
            if k != format {
                return Err(fail(
                    reason::KEY_FORMAT_TYPE_NOT_SUPPORTED,
                    "Keys are served in Raw format, secret data in Opaque format.",
                ));
            }
        }
        let m = self.material(&f)?;
        if f.meta.fresh {
            self.served(&f);
        }
        ctx.placeholder = Some(uid.clone());
        Ok(vec![
            Item::enumeration(tags::OBJECT_TYPE, f.meta.object_type),
            Item::text(tags::UNIQUE_IDENTIFIER, uid),
            object_item(&f.meta, &m),
        ])
    }

    /// Records that a Fresh object was served (Fresh becomes false). Best effort: a
    /// concurrent change of the record wins, and the next Get tries again.
    fn served(&self, f: &Found) {
        let mut meta = f.meta.clone();
        meta.fresh = false;
        let key = layout::kmip_attributes(&f.id);
        let mut txn = Transaction::new();
        txn.check(Check::Present(layout::data_key(&f.id)));
        match &f.meta_bytes {
            Some(b) => txn.check(Check::Equals(key.clone(), b.clone())),
            None => txn.check(Check::Absent(key.clone())),
        };
        txn.put(key, meta.encode());
        let _ = self.engine.store().commit(txn);
    }

    fn instances(&self, f: &Found) -> Result<Vec<(String, Value)>, Failure> {
        let m = self.material(f)?;
        let digest: [u8; 32] = sha2::Sha256::digest(m.expose_secret()).into();
        Ok(f.meta.instances(&f.uid, m.len(), Some(digest)))
    }

    fn get_attributes(&self, ctx: &mut Ctx, p: &Item) -> OpResult {
        let uid = self.uid(ctx, p)?;
        let f = self.find(ctx.owner, &uid)?;
        let all = self.instances(&f)?;
        let mut wanted: Vec<String> = p
            .all(tags::ATTRIBUTE_NAME)
            .filter_map(|i| i.as_text().map(str::to_owned))
            .collect();
        wanted.extend(p.all(tags::ATTRIBUTE_REFERENCE).filter_map(reference_name));
        // In the order asked for (every instance of each name), else all of them.
        let chosen: Vec<&(String, Value)> = if wanted.is_empty() {
            all.iter().collect()
        } else {
            let mut seen: Vec<&str> = Vec::new();
            let mut out = Vec::new();
            for w in &wanted {
                if seen.contains(&w.as_str()) {
                    continue;
                }
                seen.push(w);
                out.extend(all.iter().filter(|(n, _)| n == w));
            }
            out
        };
        ctx.placeholder = Some(uid.clone());
        let mut out = vec![Item::text(tags::UNIQUE_IDENTIFIER, uid)];
        if ctx.v2 {
            let items = chosen
                .iter()
                .filter_map(|(n, v)| attribute_v2(n, v.clone()))
                .collect();
            out.push(Item::structure(tags::ATTRIBUTES, items));
        } else {
            out.extend(attribute_items(&chosen));
        }
        Ok(out)
    }

    fn get_attribute_list(&self, ctx: &mut Ctx, p: &Item) -> OpResult {
        let uid = self.uid(ctx, p)?;
        let f = self.find(ctx.owner, &uid)?;
        let all = f.meta.instances(&f.uid, f.len, Some([0; 32]));
        let mut names: Vec<&str> = Vec::new();
        for (n, _) in &all {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        ctx.placeholder = Some(uid.clone());
        let mut out = vec![Item::text(tags::UNIQUE_IDENTIFIER, uid)];
        for n in names {
            if ctx.v2 {
                if let Some(t) = tags::attribute_tag_of_name(n) {
                    out.push(Item::enumeration(tags::ATTRIBUTE_REFERENCE, t));
                } else if let Some((vendor, name)) = vendor_parts(n) {
                    out.push(Item::structure(
                        tags::ATTRIBUTE_REFERENCE,
                        vec![
                            Item::text(tags::VENDOR_IDENTIFICATION, vendor),
                            Item::text(tags::ATTRIBUTE_NAME, name),
                        ],
                    ));
                }
            } else {
                out.push(Item::text(tags::ATTRIBUTE_NAME, n));
            }
        }
        Ok(out)
    }

    /// The owner's keys: every configuration's keys whose owner is `owner`.
    fn keys_of(&self, owner: KeyOwner) -> Result<Vec<(DataKeyId, String, usize)>, Failure> {
        let mut out = Vec::new();
        for c in self.engine.list_configs().map_err(engine_failure)? {
            for k in self.engine.list_data_keys(c.uuid).map_err(engine_failure)? {
                if k.svm_uuid == owner.svm() {
                    out.push((k.key_id, k.key_tag.as_str().to_owned(), k.key_len));
                }
            }
        }
        Ok(out)
    }

    fn locate(&self, ctx: &mut Ctx, p: &Item, version: (i32, i32)) -> OpResult {
        let filters = request_attributes(p, ctx.v2);
        let max = p.child(tags::MAXIMUM_ITEMS).and_then(Item::as_int);
        let offset = p
            .child(tags::OFFSET_ITEMS)
            .and_then(Item::as_int)
            .unwrap_or(0);
        if max.is_some_and(|m| m < 0) || offset < 0 {
            return Err(fail(
                reason::INVALID_FIELD,
                "Negative Maximum or Offset Items.",
            ));
        }
        let mut found = Vec::new();
        for (id, tag, len) in self.keys_of(ctx.owner.ok_or_else(not_found)?)? {
            let meta = self
                .engine
                .store()
                .get(&layout::kmip_attributes(&id))
                .map_err(|e| fail(reason::GENERAL_FAILURE, format!("Store failure: {e}")))?
                .as_deref()
                .and_then(Stored::decode)
                .unwrap_or_else(|| Stored::default_for(&tag));
            let uid = id.to_hex();
            let inst = meta.instances(&uid, len, None);
            if filters.iter().all(|f| matches(&inst, f)) {
                found.push((meta.initial_date.unwrap_or(0), uid));
            }
        }
        // Newest first, as KMIP servers customarily answer.
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let total = found.len();
        let page: Vec<String> = found
            .into_iter()
            .skip(offset as usize)
            .take(max.map_or(usize::MAX, |m| m as usize))
            .map(|(_, u)| u)
            .collect();
        if let Some(first) = page.first() {
            ctx.placeholder = Some(first.clone());
        }
        let mut out = Vec::new();
        // Located Items (1.3+) tells a client paging with Maximum / Offset Items how many
        // match in all; an unpaged answer lists them all and omits it (as KMIP allows).
        let paged = p.child(tags::MAXIMUM_ITEMS).is_some() || p.child(tags::OFFSET_ITEMS).is_some();
        if version >= (1, 3) && paged {
            out.push(Item::int(
                tags::LOCATED_ITEMS,
                i32::try_from(total).unwrap_or(i32::MAX),
            ));
        }
        out.extend(
            page.into_iter()
                .map(|u| Item::text(tags::UNIQUE_IDENTIFIER, u)),
        );
        Ok(out)
    }

    fn add_attribute(&self, ctx: &mut Ctx, p: &Item) -> OpResult {
        let a = one_attribute(p, ctx.v2, &[tags::NEW_ATTRIBUTE])?;
        let v2 = ctx.v2;
        self.update(ctx, p, |f| {
            set_attribute_value(&mut f.meta, &a, true)?;
            Ok(echo(f, &a, v2))
        })
    }

    fn set_attribute(&self, ctx: &mut Ctx, p: &Item) -> OpResult {
        let a = one_attribute(p, ctx.v2, &[tags::NEW_ATTRIBUTE])?;
        self.update(ctx, p, |f| {
            remove_attribute(&mut f.meta, &a.name, None).or_else(|e| {
                if e.reason == reason::ITEM_NOT_FOUND {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            set_attribute_value(&mut f.meta, &a, true)?;
            Ok(vec![Item::text(tags::UNIQUE_IDENTIFIER, f.uid.clone())])
        })
    }

    fn modify_attribute(&self, ctx: &mut Ctx, p: &Item) -> OpResult {
        let a = one_attribute(p, ctx.v2, &[tags::NEW_ATTRIBUTE])?;
        let v2 = ctx.v2;
        self.update(ctx, p, |f| {
            let index = a.index.unwrap_or(0);
            remove_attribute(&mut f.meta, &a.name, Some(index))?;
            set_attribute_value(&mut f.meta, &a, true)?;
            Ok(echo(f, &a, v2))
        })
    }

    fn delete_attribute(&self, ctx: &mut Ctx, p: &Item) -> OpResult {
        let (name, index) = if ctx.v2 {
            if let Some(c) = p.child(tags::CURRENT_ATTRIBUTE) {
                let a = one_attribute(p, true, &[tags::CURRENT_ATTRIBUTE])?;
                let _ = c;
                (a.name, None)
            } else {
                // An Attribute Reference is a tag (enumeration) or a structure naming it.
                let n = p
                    .child(tags::ATTRIBUTE_REFERENCE)
                    .and_then(reference_name)
                    .ok_or_else(|| fail(reason::INVALID_FIELD, "No attribute to delete."))?;
                (n, None)
            }
        } else {
            let n = p
                .child(tags::ATTRIBUTE_NAME)
                .and_then(Item::as_text)
                .ok_or_else(|| {
                    fail(
                        reason::INVALID_FIELD,
                        "Delete Attribute takes an Attribute Name.",
                    )
                })?;
            (
                n.to_owned(),
                p.child(tags::ATTRIBUTE_INDEX).and_then(Item::as_int),
            )
        };
        let v2 = ctx.v2;
        self.update(ctx, p, |f| {
            let before = f.meta.instances(&f.uid, f.len, None);
            let idx = index.unwrap_or(0);
            let old = before
                .iter()
                .filter(|(n, _)| *n == name)
                .nth(idx.max(0) as usize)
                .map(|(_, v)| v.clone());
            remove_attribute(&mut f.meta, &name, if v2 { None } else { Some(idx) })?;
            let mut out = vec![Item::text(tags::UNIQUE_IDENTIFIER, f.uid.clone())];
            if !v2 {
                if let Some(v) = old {
                    out.push(attribute_item(&name, Some(idx), v));
                }
            }
            Ok(out)
        })
    }

    fn activate(&self, ctx: &mut Ctx, p: &Item) -> OpResult {
        self.update(ctx, p, |f| {
            if f.meta.state != state::PRE_ACTIVE {
                return Err(fail(
                    reason::PERMISSION_DENIED,
                    "Only a Pre-Active object can be activated.",
                ));
            }
            f.meta.state = state::ACTIVE;
            f.meta.activation_date = Some(now());
            Ok(vec![Item::text(tags::UNIQUE_IDENTIFIER, f.uid.clone())])
        })
    }

    fn revoke(&self, ctx: &mut Ctx, p: &Item) -> OpResult {
        let r = p
            .child(tags::REVOCATION_REASON)
            .ok_or_else(|| fail(reason::INVALID_FIELD, "Revoke takes a Revocation Reason."))?;
        let code = r
            .child(tags::REVOCATION_REASON_CODE)
            .and_then(Item::as_enum)
            .ok_or_else(|| fail(reason::INVALID_FIELD, "Revocation Reason has no code."))?;
        let message = r
            .child(tags::REVOCATION_MESSAGE)
            .and_then(Item::as_text)
            .map(str::to_owned);
        let occurrence = p
            .child(tags::COMPROMISE_OCCURRENCE_DATE)
            .and_then(Item::as_date);
        self.update(ctx, p, |f| {
            let t = now();
            if code == tags::REVOKE_KEY_COMPROMISE {
                f.meta.state = state::COMPROMISED;
                f.meta.compromise_date = Some(t);
                f.meta.compromise_occurrence_date = Some(occurrence.unwrap_or(t));
            } else {
                if f.meta.state == state::COMPROMISED {
                    return Err(fail(
                        reason::PERMISSION_DENIED,
                        "A Compromised object stays Compromised.",
                    ));
                }
                f.meta.state = state::DEACTIVATED;
                f.meta.deactivation_date = Some(t);
            }
            f.meta.revocation = Some((code, message.clone()));
            Ok(vec![Item::text(tags::UNIQUE_IDENTIFIER, f.uid.clone())])
        })
    }

    fn destroy(&self, ctx: &mut Ctx, p: &Item) -> OpResult {
        let uid = self.uid(ctx, p)?;
        let f = self.find(ctx.owner, &uid)?;
        if f.meta.state == state::ACTIVE {
            return Err(fail(
                reason::PERMISSION_DENIED,
                "An Active object cannot be destroyed: revoke it first.",
            ));
        }
        self.engine.delete_data_key(&f.id).map_err(engine_failure)?;
        let _ = &f.tag;
        ctx.placeholder = Some(uid.clone());
        Ok(vec![Item::text(tags::UNIQUE_IDENTIFIER, uid)])
    }
}

// ---- helpers ----

fn response(version: (i32, i32), items: Vec<Item>) -> Zeroizing<Vec<u8>> {
    let count = i32::try_from(items.len()).unwrap_or(i32::MAX);
    let mut children = vec![Item::structure(
        tags::RESPONSE_HEADER,
        vec![
            protocol_version(version),
            Item::date(tags::TIME_STAMP, now()),
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

fn protocol_version((major, minor): (i32, i32)) -> Item {
    Item::structure(
        tags::PROTOCOL_VERSION,
        vec![
            Item::int(tags::PROTOCOL_VERSION_MAJOR, major),
            Item::int(tags::PROTOCOL_VERSION_MINOR, minor),
        ],
    )
}

fn discover_versions(p: &Item) -> Vec<Item> {
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

fn query(p: &Item) -> Vec<Item> {
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

/// The Object Type of a Create or Register request.
fn object_type(p: &Item) -> Result<u32, Failure> {
    p.child(tags::OBJECT_TYPE)
        .and_then(Item::as_enum)
        .ok_or_else(|| fail(reason::INVALID_MESSAGE, "No Object Type."))
}

/// The byte length of an AES key of the Cryptographic Length `v` (bits).
fn aes_len_bytes(v: &Value) -> Result<usize, Failure> {
    match v {
        Value::Integer(128) => Ok(16),
        Value::Integer(192) => Ok(24),
        Value::Integer(256) => Ok(32),
        _ => Err(fail(
            reason::INVALID_FIELD,
            "AES keys are 128, 192 or 256 bits long.",
        )),
    }
}

/// The managed object of a Get answer: a Symmetric Key (Raw) or Secret Data (Opaque) of the
/// bytes its data key is served as.
fn object_item(meta: &Stored, m: &DataKeyMaterial) -> Item {
    let bytes = m.expose_secret().to_vec();
    if meta.is_key() {
        Item::structure(
            tags::SYMMETRIC_KEY,
            vec![Item::structure(
                tags::KEY_BLOCK,
                vec![
                    Item::enumeration(tags::KEY_FORMAT_TYPE, tags::KEY_FORMAT_RAW),
                    Item::structure(
                        tags::KEY_VALUE,
                        vec![Item::bytes(tags::KEY_MATERIAL, bytes)],
                    ),
                    Item::enumeration(tags::CRYPTOGRAPHIC_ALGORITHM, tags::ALGORITHM_AES),
                    Item::int(
                        tags::CRYPTOGRAPHIC_LENGTH,
                        i32::try_from(m.len() * 8).unwrap_or(256),
                    ),
                ],
            )],
        )
    } else {
        Item::structure(
            tags::SECRET_DATA,
            vec![
                Item::enumeration(
                    tags::SECRET_DATA_TYPE,
                    meta.secret_data_type.unwrap_or(tags::SECRET_PASSWORD),
                ),
                Item::structure(
                    tags::KEY_BLOCK,
                    vec![
                        Item::enumeration(tags::KEY_FORMAT_TYPE, tags::KEY_FORMAT_OPAQUE),
                        Item::structure(
                            tags::KEY_VALUE,
                            vec![Item::bytes(tags::KEY_MATERIAL, bytes)],
                        ),
                    ],
                ),
            ],
        )
    }
}

/// A custom attribute's KMIP 2.0 form: `x-name` is Vendor Identification `x`, Attribute
/// Name `name` (KMIP 2.0 reserves the vendors `x` and `y` for 1.x custom attributes).
fn vendor_parts(name: &str) -> Option<(&str, &str)> {
    if attrs::is_custom(name) {
        name.split_once('-')
    } else {
        None
    }
}

/// An attribute instance as a KMIP 2.0 Attributes child (`None`: not expressible).
fn attribute_v2(name: &str, value: Value) -> Option<Item> {
    if let Some(tag) = tags::attribute_tag_of_name(name) {
        return Some(Item { tag, value });
    }
    let (vendor, n) = vendor_parts(name)?;
    Some(Item::structure(
        tags::VENDOR_ATTRIBUTE,
        vec![
            Item::text(tags::VENDOR_IDENTIFICATION, vendor),
            Item::text(tags::ATTRIBUTE_NAME, n),
            Item {
                tag: tags::ATTRIBUTE_VALUE,
                value,
            },
        ],
    ))
}

/// The attribute name a KMIP 2.0 Attribute Reference names: a tag (enumeration) or a
/// structure of Vendor Identification and Attribute Name.
fn reference_name(r: &Item) -> Option<String> {
    if let Some(t) = r.as_enum() {
        return tags::attribute_name_of_tag(t).map(str::to_owned);
    }
    let n = r.child(tags::ATTRIBUTE_NAME)?.as_text()?;
    match r.child(tags::VENDOR_IDENTIFICATION).and_then(Item::as_text) {
        Some(v @ ("x" | "y")) => Some(format!("{v}-{n}")),
        Some("") | None => Some(n.to_owned()),
        Some(_) => None,
    }
}

fn attr_of_v1(a: &Item) -> Option<Attr> {
    Some(Attr {
        name: a.child(tags::ATTRIBUTE_NAME)?.as_text()?.to_owned(),
        index: a.child(tags::ATTRIBUTE_INDEX).and_then(Item::as_int),
        value: a.child(tags::ATTRIBUTE_VALUE)?.value.clone(),
    })
}

fn attr_of_v2(i: &Item) -> Attr {
    if i.tag == tags::VENDOR_ATTRIBUTE {
        let vendor = i.child(tags::VENDOR_IDENTIFICATION).and_then(Item::as_text);
        let name = i.child(tags::ATTRIBUTE_NAME).and_then(Item::as_text);
        if let (Some(v @ ("x" | "y")), Some(n)) = (vendor, name) {
            return Attr {
                name: format!("{v}-{n}"),
                index: None,
                value: i
                    .child(tags::ATTRIBUTE_VALUE)
                    .map_or(Value::Structure(Vec::new()), |a| a.value.clone()),
            };
        }
    }
    Attr {
        name: tags::attribute_name_of_tag(i.tag)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("tag {:#08x}", i.tag)),
        index: None,
        value: i.value.clone(),
    }
}

/// The attributes of a request: 1.x Template-Attribute and Attribute items, 2.0 Attributes.
fn request_attributes(p: &Item, v2: bool) -> Vec<Attr> {
    let mut out: Vec<Attr> = Vec::new();
    let direct = p.all(tags::ATTRIBUTE);
    let templated = p
        .all(tags::TEMPLATE_ATTRIBUTE)
        .flat_map(|t| t.all(tags::ATTRIBUTE));
    out.extend(direct.chain(templated).filter_map(attr_of_v1));
    if v2 {
        out.extend(
            p.all(tags::ATTRIBUTES)
                .flat_map(|a| a.children().iter())
                .map(attr_of_v2),
        );
    }
    out
}

/// The one attribute of an attribute operation (1.x Attribute, 2.0 `wrapper`).
fn one_attribute(p: &Item, v2: bool, wrappers: &[u32]) -> Result<Attr, Failure> {
    if v2 {
        for w in wrappers {
            if let Some(first) = p.child(*w).and_then(|c| c.children().first()) {
                return Ok(attr_of_v2(first));
            }
        }
    }
    p.child(tags::ATTRIBUTE)
        .and_then(attr_of_v1)
        .ok_or_else(|| fail(reason::INVALID_FIELD, "The request has no Attribute."))
}

fn date_of(v: &Value) -> Result<i64, Failure> {
    match v {
        Value::DateTime(d) => Ok(*d),
        Value::DateTimeExtended(d) => Ok(d.div_euclid(1_000_000)),
        _ => Err(fail(
            reason::INVALID_FIELD,
            "A date attribute is not a Date-Time.",
        )),
    }
}

fn name_text(v: &Value) -> Result<String, Failure> {
    let s = Item {
        tag: tags::NAME,
        value: v.clone(),
    };
    s.child(tags::NAME_VALUE)
        .and_then(Item::as_text)
        .map(str::to_owned)
        .ok_or_else(|| fail(reason::INVALID_FIELD, "Name has no Name Value."))
}

/// Refuses a change that KMIP allows only before activation.
fn pre_active_only(meta: &Stored) -> Result<(), Failure> {
    if meta.state == state::PRE_ACTIVE {
        Ok(())
    } else {
        Err(fail(
            reason::PERMISSION_DENIED,
            "The Activation Date can only be changed while the object is Pre-Active.",
        ))
    }
}

/// Adds one instance of a client-settable attribute.
fn set_attribute_value(meta: &mut Stored, a: &Attr, adding: bool) -> Result<(), Failure> {
    let _ = adding;
    match a.name.as_str() {
        "Activation Date" => {
            // Client-modifiable only while Pre-Active (KMIP 1.4 §3.24); a date not in the
            // future activates the object.
            pre_active_only(meta)?;
            let d = date_of(&a.value)?;
            meta.activation_date = Some(d);
            if d <= now() {
                meta.state = state::ACTIVE;
            }
        }
        "Name" => {
            let n = name_text(&a.value)?;
            KeyTag::parse(&n)
                .map_err(|_| fail(reason::INVALID_FIELD, "The Name is not a valid key tag."))?;
            meta.names.push(n);
        }
        "Object Group" => {
            let Value::TextString(g) = &a.value else {
                return Err(fail(reason::INVALID_FIELD, "Object Group is text."));
            };
            meta.object_groups.push(g.clone());
        }
        "Contact Information" => {
            if meta.contact.is_some() {
                return Err(fail(
                    reason::ILLEGAL_OPERATION,
                    "Contact Information has one instance: modify it.",
                ));
            }
            let Value::TextString(s) = &a.value else {
                return Err(fail(reason::INVALID_FIELD, "Contact Information is text."));
            };
            meta.contact = Some(s.clone());
        }
        "Cryptographic Usage Mask" => {
            let Value::Integer(m) = a.value else {
                return Err(fail(reason::INVALID_FIELD, "The usage mask is an integer."));
            };
            meta.usage_mask = Some(m);
        }
        n if attrs::is_custom(n) => {
            let item = Item {
                tag: tags::ATTRIBUTE_VALUE,
                value: a.value.clone(),
            };
            meta.custom
                .push((n.to_owned(), hex::encode(ttlv::encode(&item).as_slice())));
        }
        n => {
            return Err(fail(
                reason::PERMISSION_DENIED,
                format!("The attribute {n} cannot be set by a client."),
            ));
        }
    }
    Ok(())
}

/// Removes instance `index` (or every instance) of a client-settable attribute.
fn remove_attribute(meta: &mut Stored, name: &str, index: Option<i32>) -> Result<(), Failure> {
    let missing = || {
        fail(
            reason::ITEM_NOT_FOUND,
            format!("No such instance of {name}."),
        )
    };
    let pick = |len: usize| -> Result<Option<usize>, Failure> {
        match index {
            None => Ok(None),
            Some(i) if i >= 0 && (i as usize) < len => Ok(Some(i as usize)),
            Some(_) => Err(missing()),
        }
    };
    match name {
        "Activation Date" => {
            pre_active_only(meta)?;
            meta.activation_date.take().ok_or_else(missing)?;
        }
        "Name" => {
            if meta.names.is_empty() {
                return Err(missing());
            }
            match pick(meta.names.len())? {
                Some(i) => {
                    meta.names.remove(i);
                }
                None => meta.names.clear(),
            }
        }
        "Object Group" => {
            if meta.object_groups.is_empty() {
                return Err(missing());
            }
            match pick(meta.object_groups.len())? {
                Some(i) => {
                    meta.object_groups.remove(i);
                }
                None => meta.object_groups.clear(),
            }
        }
        "Contact Information" => {
            if meta.contact.is_none() || pick(1)?.is_some_and(|i| i != 0) {
                return Err(missing());
            }
            meta.contact = None;
        }
        "Cryptographic Usage Mask" => {
            meta.usage_mask.take().ok_or_else(missing)?;
        }
        n if attrs::is_custom(n) => {
            let positions: Vec<usize> = meta
                .custom
                .iter()
                .enumerate()
                .filter(|(_, (cn, _))| cn == n)
                .map(|(i, _)| i)
                .collect();
            if positions.is_empty() {
                return Err(missing());
            }
            match pick(positions.len())? {
                Some(i) => {
                    meta.custom.remove(positions[i]);
                }
                None => meta.custom.retain(|(cn, _)| cn != n),
            }
        }
        n => {
            return Err(fail(
                reason::PERMISSION_DENIED,
                format!("The attribute {n} cannot be changed by a client."),
            ));
        }
    }
    Ok(())
}

fn attribute_item(name: &str, index: Option<i32>, value: Value) -> Item {
    let mut items = vec![Item::text(tags::ATTRIBUTE_NAME, name)];
    if let Some(i) = index.filter(|i| *i != 0) {
        items.push(Item::int(tags::ATTRIBUTE_INDEX, i));
    }
    items.push(Item {
        tag: tags::ATTRIBUTE_VALUE,
        value,
    });
    Item::structure(tags::ATTRIBUTE, items)
}

/// 1.x Attribute items for (name, value) pairs, with each name's instance index.
fn attribute_items(chosen: &[&(String, Value)]) -> Vec<Item> {
    let mut out = Vec::new();
    let mut seen: Vec<(&str, i32)> = Vec::new();
    for (n, v) in chosen {
        let idx = match seen.iter_mut().find(|(s, _)| s == n) {
            Some((_, i)) => {
                *i += 1;
                *i
            }
            None => {
                seen.push((n, 0));
                0
            }
        };
        out.push(attribute_item(n, Some(idx), v.clone()));
    }
    out
}

/// The response of Add / Modify Attribute: the UID and (1.x) the attribute as now stored.
fn echo(f: &Found, a: &Attr, v2: bool) -> Vec<Item> {
    let mut out = vec![Item::text(tags::UNIQUE_IDENTIFIER, f.uid.clone())];
    if !v2 {
        let count = f
            .meta
            .instances(&f.uid, f.len, None)
            .iter()
            .filter(|(n, _)| *n == a.name)
            .count();
        let index = a
            .index
            .unwrap_or_else(|| i32::try_from(count.saturating_sub(1)).unwrap_or(0));
        out.push(attribute_item(&a.name, Some(index), a.value.clone()));
    }
    out
}

/// Whether a key's attribute instances satisfy one Locate filter.
fn matches(inst: &[(String, Value)], f: &Attr) -> bool {
    inst.iter().any(|(n, v)| {
        n == &f.name
            && if n == "Name" {
                name_text(v).ok() == name_text(&f.value).ok()
            } else {
                *v == f.value
            }
    })
}
