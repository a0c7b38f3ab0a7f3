//! Create, Register, Activate, Revoke and Destroy: the life of a managed object from its making
//! to its destruction.
//!
//! Owns: what may be made (AES keys of 128, 192 or 256 bits; secret data of 1 to 32 bytes),
//! the attributes a new object is stored with, and the state changes.
//! Must never: store an object before its every attribute is accepted; destroy an Active
//! object; take a Compromised object out of Compromised.
//!
//! | operation | from | to | refused |
//! |---|---|---|---|
//! | Create, Register | | Pre-Active (Active with an Activation Date not in the future) | an attribute not accepted: Invalid Field / Permission Denied |
//! | Activate | Pre-Active | Active | any other state: Permission Denied |
//! | Revoke, Key Compromise | any | Compromised | |
//! | Revoke, another reason | any but Compromised | Deactivated | Compromised: Permission Denied |
//! | Destroy | any but Active (as read when the delete commits) | (deleted; Result Message while its erase is pending on a node) | Active: Permission Denied |
//!
//! The state follows the dates: a Pre-Active object whose Activation Date has come is Active
//! (`Stored::decode`), so it cannot be destroyed either.

use std::sync::Arc;

use ekm_core::{DataKeyMaterial, Engine, KeyTag, layout};

use super::attr_items::{Attr, request_attributes};
use super::attributes::set_attribute_value;
use super::{engine_failure, find, not_found, now, update, within_bounds};
use crate::attrs::Stored;
use crate::batch::{Ctx, Failure, OpResult, fail};
use crate::tags::{self, reason, state};
use crate::ttlv::{Item, Value};

/// What a Create or Register makes.
struct NewObject {
    object_type: u32,
    secret_data_type: Option<u32>,
    /// Created by the server (it then reports its Random Number Generator).
    server_generated: bool,
}

/// Create.
pub(crate) fn create(engine: &Engine, ctx: &mut Ctx, p: &Item) -> OpResult {
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
    let uid = store_new(engine, ctx, attrs, new, material)?;
    Ok(vec![
        Item::enumeration(tags::OBJECT_TYPE, tags::OBJECT_SYMMETRIC_KEY),
        Item::text(tags::UNIQUE_IDENTIFIER, uid),
    ])
}

/// Register.
pub(crate) fn register(engine: &Engine, ctx: &mut Ctx, p: &Item) -> OpResult {
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
    let uid = store_new(engine, ctx, attrs, new, material)?;
    Ok(vec![Item::text(tags::UNIQUE_IDENTIFIER, uid)])
}

/// Stores a new object with its attributes; returns its Unique Identifier.
fn store_new(
    engine: &Engine,
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
    within_bounds(&meta)?;
    let tag_text = meta.names.first().cloned().unwrap_or_default();
    let tag = KeyTag::parse(&tag_text)
        .map_err(|_| fail(reason::INVALID_FIELD, "The Name is not a valid key tag."))?;
    let id = engine
        .import_data_key_with_attributes(
            ctx.owner.ok_or_else(not_found)?,
            tag,
            material,
            Some(meta.encode()),
        )
        .map_err(engine_failure)?;
    let uid = id.to_hex();
    ctx.set_placeholder(uid.clone());
    Ok(uid)
}

/// Activate.
pub(crate) fn activate(engine: &Engine, ctx: &mut Ctx, p: &Item) -> OpResult {
    update(engine, ctx, p, |f| {
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

/// Revoke.
pub(crate) fn revoke(engine: &Engine, ctx: &mut Ctx, p: &Item) -> OpResult {
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
    update(engine, ctx, p, |f| {
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

/// Destroy: refused while the object is Active, as read when the delete commits (an Activate
/// on another connection in between makes it look again); then waits up to
/// [`ekm_core::ERASE_WAIT`] for every node to evict the key (`Engine::track_erase`).
pub(crate) fn destroy(engine: &Arc<Engine>, ctx: &mut Ctx, p: &Item) -> OpResult {
    let uid = ctx.uid(p)?;
    let mut deleted = None;
    for _ in 0..8 {
        let f = find(engine, ctx.owner, &uid)?;
        if f.meta.state == state::ACTIVE {
            return Err(fail(
                reason::PERMISSION_DENIED,
                "An Active object cannot be destroyed: revoke it first.",
            ));
        }
        let key = layout::kmip_attributes(&f.id);
        let condition = Some((key.as_slice(), f.meta_bytes.as_deref()));
        if engine
            .delete_data_key_if(&f.id, condition)
            .map_err(engine_failure)?
        {
            deleted = Some(f.id);
            break;
        }
    }
    let id =
        deleted.ok_or_else(|| fail(reason::GENERAL_FAILURE, "The object kept changing; retry."))?;
    // Destroyed (committed): a success whatever follows; only the note says how the erase
    // stands.
    match engine.track_erase(&id) {
        Ok(None) => {}
        Ok(Some(job)) => {
            ctx.note = Some(format!("Destroyed; {} (job {}).", job.message, job.uuid));
        }
        Err(e) => {
            ctx.note = Some(format!(
                "Destroyed; the erase on every node is not confirmed yet: {}",
                e.message()
            ));
        }
    }
    ctx.set_placeholder(uid.clone());
    Ok(vec![Item::text(tags::UNIQUE_IDENTIFIER, uid)])
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
