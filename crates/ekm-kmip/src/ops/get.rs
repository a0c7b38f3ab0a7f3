//! Get: a managed object's bytes, in the one format each type is served in.
//!
//! Owns: the managed object of a Get answer, and clearing Fresh once an object was served.
//! Must never: wrap a key (Key Wrapping Specification is refused); serve a format other than
//! the type's own.
//!
//! | object | served as | refused |
//! |---|---|---|
//! | Symmetric Key | Key Block: Raw, Key Material, AES, its length in bits | another Key Format Type: Key Format Type Not Supported |
//! | Secret Data | Secret Data Type; Key Block: Opaque, Key Material | another Key Format Type: Key Format Type Not Supported |
//! | either, with a Key Wrapping Specification | | Feature Not Supported |

use ekm_core::store::{Check, Transaction};
use ekm_core::{DataKeyMaterial, Engine, layout};

use super::{Found, find, material};
use crate::attrs::Stored;
use crate::batch::{Ctx, OpResult, fail};
use crate::tags::{self, reason};
use crate::ttlv::Item;

/// Get.
pub(crate) fn get(engine: &Engine, ctx: &mut Ctx, p: &Item) -> OpResult {
    if p.child(tags::KEY_WRAPPING_SPECIFICATION).is_some() {
        return Err(fail(
            reason::FEATURE_NOT_SUPPORTED,
            "Key wrapping is not supported.",
        ));
    }
    let uid = ctx.uid(p)?;
    let f = find(engine, ctx.owner, &uid)?;
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
    let m = material(engine, &f)?;
    if f.meta.fresh {
        served(engine, &f);
    }
    ctx.set_placeholder(uid.clone());
    Ok(vec![
        Item::enumeration(tags::OBJECT_TYPE, f.meta.object_type),
        Item::text(tags::UNIQUE_IDENTIFIER, uid),
        object_item(&f.meta, &m),
    ])
}

/// Records that a Fresh object was served (Fresh becomes false). Best effort: a
/// concurrent change of the record wins, and the next Get tries again.
fn served(engine: &Engine, f: &Found) {
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
    let _ = engine.store().commit(txn);
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
