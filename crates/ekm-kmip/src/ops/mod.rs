//! The KMIP operations, one file per family, and what they share: the lookup of a key for
//! its owner and the conditional update of its KMIP attributes record.
//!
//! Owns: [`find`] (a key is Item Not Found unless it exists and belongs to the client's
//! owner), [`update`] (read, change, write conditional on what was read; retried on conflict),
//! the mapping of engine errors onto Result Reasons (the server's clock is `clock.rs`).
//! Must never: act on a key of another owner; write an attributes record over a concurrent
//! change.
//!
//! | family | operations |
//! |---|---|
//! | [`discover`] | Discover Versions, Query (the versions and operations served) |
//! | [`lifecycle`] | Create, Register, Activate, Revoke, Destroy |
//! | [`get`] | Get |
//! | [`locate`] | Locate |
//! | [`attributes`] | Get Attributes, Get Attribute List, Add / Set / Modify / Delete Attribute, and which attributes a client may change |
//! | [`attr_items`] | (attributes as request and response items, KMIP 1.x and 2.0 forms) |

pub(crate) mod attr_items;
pub(crate) mod attributes;
pub(crate) mod discover;
pub(crate) mod get;
pub(crate) mod lifecycle;
pub(crate) mod locate;

use ekm_core::store::{Check, StoreError, Transaction};
use ekm_core::{DataKeyId, DataKeyMaterial, Engine, ErrorKind, KeyOwner, layout};

use crate::attrs::Stored;
use crate::batch::{Ctx, Failure, OpResult, fail};
use crate::tags::reason;
use crate::ttlv::Item;

/// Item Not Found: the answer for a key that is absent or of another owner.
pub(crate) fn not_found() -> Failure {
    fail(reason::ITEM_NOT_FOUND, "Object not found.")
}

/// The Result Reason of an engine error: the bound on keys per owner is a server policy
/// (Permission Denied).
pub(crate) fn engine_failure(e: ekm_core::Error) -> Failure {
    match e.kind() {
        ErrorKind::EntryNotFound => not_found(),
        _ if e.target() == Some(ekm_core::LIMIT_TARGET) => {
            fail(reason::PERMISSION_DENIED, e.message())
        }
        _ => fail(reason::GENERAL_FAILURE, e.message()),
    }
}

/// Refuses a record over its bounds (`attrs::check_bounds`) with the Result Reason for it.
pub(crate) fn within_bounds(meta: &Stored) -> Result<(), Failure> {
    use crate::attrs::{MAX_CLIENT_ATTRIBUTES, MAX_RECORD_BYTES, OverBound};
    meta.check_bounds().map_err(|o| match o {
        OverBound::TooLong(what, max) => fail(
            reason::INVALID_FIELD,
            format!("The {what} is longer than {max} bytes."),
        ),
        OverBound::TooLarge(n) => fail(
            reason::PERMISSION_DENIED,
            format!("An object's attributes take at most {MAX_RECORD_BYTES} bytes ({n} asked)."),
        ),
        OverBound::TooMany(n) => fail(
            reason::PERMISSION_DENIED,
            format!(
                "An object carries at most {MAX_CLIENT_ATTRIBUTES} client-set attribute instances ({n} asked)."
            ),
        ),
    })
}

pub(crate) use crate::clock::now;

/// A key as found for its owner.
pub(crate) struct Found {
    pub(crate) id: DataKeyId,
    pub(crate) uid: String,
    /// Bytes of the object (1 to 32), as its data key record says.
    pub(crate) len: usize,
    pub(crate) meta: Stored,
    /// The `m/` record as read (`None`: absent).
    pub(crate) meta_bytes: Option<Vec<u8>>,
}

/// The key `uid` if it exists and belongs to the owner: anything else is Item Not Found.
pub(crate) fn find(engine: &Engine, owner: Option<KeyOwner>, uid: &str) -> Result<Found, Failure> {
    let owner = owner.ok_or_else(not_found)?;
    let id = DataKeyId::parse(uid).map_err(|_| not_found())?;
    let info = engine.data_key_info(&id).map_err(engine_failure)?;
    if info.svm_uuid != owner.svm() {
        return Err(not_found());
    }
    let tag = info.key_tag.as_str().to_owned();
    let meta_bytes = engine
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
        len: info.key_len,
        meta,
        meta_bytes,
    })
}

/// Reads, changes and writes a key's attributes, conditional on what was read.
pub(crate) fn update(
    engine: &Engine,
    ctx: &mut Ctx,
    p: &Item,
    mut change: impl FnMut(&mut Found) -> OpResult,
) -> OpResult {
    let uid = ctx.uid(p)?;
    for _ in 0..8 {
        let mut f = find(engine, ctx.owner, &uid)?;
        let before = f.meta.encode().len();
        let out = change(&mut f)?;
        // A record over the bounds (written before they were) may still shrink or change
        // state (a Revoke): only a change that grows it is refused.
        if f.meta.encode().len() > before {
            within_bounds(&f.meta)?;
        }
        f.meta.last_change_date = Some(now());
        let key = layout::kmip_attributes(&f.id);
        let mut txn = Transaction::new();
        txn.check(Check::Present(layout::data_key(&f.id)));
        match &f.meta_bytes {
            Some(b) => txn.check(Check::Equals(key.clone(), b.clone())),
            None => txn.check(Check::Absent(key.clone())),
        };
        txn.put(key, f.meta.encode());
        match engine.store().commit(txn) {
            Ok(()) => {
                ctx.set_placeholder(uid.clone());
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
pub(crate) fn material(engine: &Engine, f: &Found) -> Result<DataKeyMaterial, Failure> {
    engine.read_served_key(&f.id).map_err(engine_failure)
}
