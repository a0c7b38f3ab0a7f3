//! Attributes as KMIP items: read from a request, written into a response, in the KMIP 1.x and
//! 2.0 forms.
//!
//! Owns: the one reading of a request's attributes ([`Attr`]) and the one writing of an
//! attribute instance into an answer; the KMIP 2.0 form of a custom attribute (`x-name` is
//! Vendor Identification `x`, Attribute Name `name`).
//! Must never: decide whether an attribute may be set (`attributes.rs` does).
//!
//! | KMIP 1.x | KMIP 2.0 |
//! |---|---|
//! | Attribute (Attribute Name, Attribute Index, Attribute Value), in Template-Attribute or not | a child of Attributes, New Attribute or Current Attribute, tagged as the attribute |
//! | custom `x-name` | Vendor Attribute (Vendor Identification `x`, Attribute Name `name`, Attribute Value) |
//! | Attribute Name (Get Attributes, Get Attribute List, Delete Attribute) | Attribute Reference: a tag, or Vendor Identification and Attribute Name |

use crate::attrs;
use crate::batch::{Failure, fail};
use crate::tags::{self, reason};
use crate::ttlv::{Item, Value};

/// One attribute of a request: its name, index and value.
pub(crate) struct Attr {
    pub(crate) name: String,
    pub(crate) index: Option<i32>,
    pub(crate) value: Value,
}

/// A custom attribute's KMIP 2.0 form: `x-name` is Vendor Identification `x`, Attribute
/// Name `name` (KMIP 2.0 reserves the vendors `x` and `y` for 1.x custom attributes).
pub(crate) fn vendor_parts(name: &str) -> Option<(&str, &str)> {
    if attrs::is_custom(name) {
        name.split_once('-')
    } else {
        None
    }
}

/// An attribute instance as a KMIP 2.0 Attributes child (`None`: not expressible).
pub(crate) fn attribute_v2(name: &str, value: Value) -> Option<Item> {
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
pub(crate) fn reference_name(r: &Item) -> Option<String> {
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
pub(crate) fn request_attributes(p: &Item, v2: bool) -> Vec<Attr> {
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
pub(crate) fn one_attribute(p: &Item, v2: bool, wrappers: &[u32]) -> Result<Attr, Failure> {
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

/// The text of a Name attribute's value.
pub(crate) fn name_text(v: &Value) -> Result<String, Failure> {
    let s = Item {
        tag: tags::NAME,
        value: v.clone(),
    };
    s.child(tags::NAME_VALUE)
        .and_then(Item::as_text)
        .map(str::to_owned)
        .ok_or_else(|| fail(reason::INVALID_FIELD, "Name has no Name Value."))
}

/// A 1.x Attribute item.
pub(crate) fn attribute_item(name: &str, index: Option<i32>, value: Value) -> Item {
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
pub(crate) fn attribute_items(chosen: &[&(String, Value)]) -> Vec<Item> {
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
