//! Locate: the client's owner's objects that match every attribute given, newest first.
//!
//! Owns: the matching of attribute filters (a Name by its text, any other attribute by its
//! value) and the paging by Maximum Items and Offset Items. A Locate reads the owner's own
//! records (`Engine::list_data_keys_of`) and their attributes: it costs what the owner's keys
//! cost, whatever other tenants hold.
//! Must never: list an object of another owner.
//!
//! | request | answer |
//! |---|---|
//! | no Maximum / Offset Items | every match's Unique Identifier |
//! | Maximum and / or Offset Items, 1.0-1.2 | the page's Unique Identifiers |
//! | Maximum and / or Offset Items, 1.3+ | Located Items (all matches), the page's Unique Identifiers |
//! | a negative Maximum or Offset Items | Invalid Field |

use ekm_core::{DataKeyId, Engine, KeyOwner, layout};

use super::attr_items::{Attr, name_text, request_attributes};
use super::{engine_failure, not_found};
use crate::attrs::Stored;
use crate::batch::{Ctx, Failure, OpResult, fail};
use crate::tags::{self, reason};
use crate::ttlv::{Item, Value};

/// The owner's keys, read from its own records only (never another owner's).
fn keys_of(engine: &Engine, owner: KeyOwner) -> Result<Vec<(DataKeyId, String, usize)>, Failure> {
    Ok(engine
        .list_data_keys_of(owner)
        .map_err(engine_failure)?
        .into_iter()
        .map(|k| (k.key_id, k.key_tag.as_str().to_owned(), k.key_len))
        .collect())
}

/// Locate.
pub(crate) fn locate(engine: &Engine, ctx: &mut Ctx, p: &Item, version: (i32, i32)) -> OpResult {
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
    for (id, tag, len) in keys_of(engine, ctx.owner.ok_or_else(not_found)?)? {
        let meta = engine
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
    match page.first() {
        Some(first) => ctx.set_placeholder(first.clone()),
        None => ctx.spoil_placeholder("the Locate before it found nothing"),
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
