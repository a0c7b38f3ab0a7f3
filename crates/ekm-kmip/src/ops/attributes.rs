//! Get Attributes, Get Attribute List, Add / Set / Modify / Delete Attribute, and the rules of
//! which attributes a client may change.
//!
//! Owns: the attribute operations and the one rule for setting ([`set_attribute_value`], also
//! used by Create and Register) and removing an attribute instance.
//! Must never: let a client change a server-owned attribute; change an Activation Date after
//! the object left Pre-Active.
//!
//! | attribute | instances | a client may |
//! |---|---|---|
//! | Activation Date | 1 | set / remove while Pre-Active (a date not in the future activates) |
//! | Name | many | add / remove (each a valid key tag) |
//! | Object Group | many | add / remove |
//! | Contact Information | 1 | set / remove |
//! | Cryptographic Usage Mask | 1 | set / remove |
//! | custom (`x-...`, `y-...`) | many | add / remove |
//! | any other | | nothing: Permission Denied |

use ekm_core::{Engine, KeyTag};
use sha2::Digest as _;

use super::attr_items::{
    Attr, attribute_item, attribute_items, attribute_v2, name_text, one_attribute, reference_name,
    vendor_parts,
};
use super::{Found, find, material, now, update};
use crate::attrs::{self, Stored};
use crate::batch::{Ctx, Failure, OpResult, fail};
use crate::tags::{self, reason, state};
use crate::ttlv::{self, Item, Value};

fn instances(engine: &Engine, f: &Found) -> Result<Vec<(String, Value)>, Failure> {
    let m = material(engine, f)?;
    let digest: [u8; 32] = sha2::Sha256::digest(m.expose_secret()).into();
    Ok(f.meta.instances(&f.uid, m.len(), Some(digest)))
}

/// Get Attributes.
pub(crate) fn get_attributes(engine: &Engine, ctx: &mut Ctx, p: &Item) -> OpResult {
    let uid = ctx.uid(p)?;
    let f = find(engine, ctx.owner, &uid)?;
    let all = instances(engine, &f)?;
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
    ctx.set_placeholder(uid.clone());
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

/// Get Attribute List.
pub(crate) fn get_attribute_list(engine: &Engine, ctx: &mut Ctx, p: &Item) -> OpResult {
    let uid = ctx.uid(p)?;
    let f = find(engine, ctx.owner, &uid)?;
    let all = f.meta.instances(&f.uid, f.len, Some([0; 32]));
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in &all {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    ctx.set_placeholder(uid.clone());
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

/// Add Attribute.
pub(crate) fn add_attribute(engine: &Engine, ctx: &mut Ctx, p: &Item) -> OpResult {
    let a = one_attribute(p, ctx.v2, &[tags::NEW_ATTRIBUTE])?;
    let v2 = ctx.v2;
    update(engine, ctx, p, |f| {
        set_attribute_value(&mut f.meta, &a, true)?;
        Ok(echo(f, &a, v2))
    })
}

/// Set Attribute (KMIP 2.0).
pub(crate) fn set_attribute(engine: &Engine, ctx: &mut Ctx, p: &Item) -> OpResult {
    let a = one_attribute(p, ctx.v2, &[tags::NEW_ATTRIBUTE])?;
    update(engine, ctx, p, |f| {
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

/// Modify Attribute.
pub(crate) fn modify_attribute(engine: &Engine, ctx: &mut Ctx, p: &Item) -> OpResult {
    let a = one_attribute(p, ctx.v2, &[tags::NEW_ATTRIBUTE])?;
    let v2 = ctx.v2;
    update(engine, ctx, p, |f| {
        let index = a.index.unwrap_or(0);
        remove_attribute(&mut f.meta, &a.name, Some(index))?;
        set_attribute_value(&mut f.meta, &a, true)?;
        Ok(echo(f, &a, v2))
    })
}

/// Delete Attribute.
pub(crate) fn delete_attribute(engine: &Engine, ctx: &mut Ctx, p: &Item) -> OpResult {
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
    update(engine, ctx, p, |f| {
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
pub(crate) fn set_attribute_value(
    meta: &mut Stored,
    a: &Attr,
    adding: bool,
) -> Result<(), Failure> {
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
