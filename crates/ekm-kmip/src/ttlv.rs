//! TTLV, KMIP's binary encoding: a bounds-checked reader into an untyped tree and a writer.
//!
//! Every item is Tag (3 bytes), Type (1 byte), Length (4 bytes, big-endian), Value, padded
//! with zeros to a multiple of 8. Decoding never panics: every length is checked against the
//! bytes that remain, the nesting depth and the item count are bounded, fixed-size types must
//! have their fixed length, and padding must be zeros.

use std::fmt;

use zeroize::Zeroizing;

/// Deepest structure nesting accepted (KMIP messages nest about 8 deep).
pub const MAX_DEPTH: usize = 24;
/// Most items in one message.
pub const MAX_ITEMS: usize = 10_000;
/// Largest message accepted, in bytes (header included).
pub const MAX_MESSAGE: usize = 1 << 20;

/// Why bytes are not a TTLV item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtlvError {
    /// Fewer bytes than the lengths announce.
    Truncated,
    /// Bytes left over after the item.
    Trailing,
    /// A type byte KMIP does not define.
    UnknownType(u8),
    /// A fixed-size type with another length, or a length that is not allowed.
    BadLength,
    /// Non-zero padding.
    BadPadding,
    /// Text that is not UTF-8, or a boolean that is not 0 or 1.
    BadValue,
    /// Nested deeper than [`MAX_DEPTH`], more than [`MAX_ITEMS`] items, or larger than
    /// [`MAX_MESSAGE`].
    TooLarge,
}

impl fmt::Display for TtlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            TtlvError::Truncated => "truncated TTLV",
            TtlvError::Trailing => "bytes after the TTLV message",
            TtlvError::UnknownType(_) => "unknown TTLV type",
            TtlvError::BadLength => "TTLV length not valid for its type",
            TtlvError::BadPadding => "non-zero TTLV padding",
            TtlvError::BadValue => "TTLV value not valid for its type",
            TtlvError::TooLarge => "TTLV message too large or too deep",
        };
        f.write_str(s)
    }
}

impl std::error::Error for TtlvError {}

/// A TTLV value.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// 0x01: items.
    Structure(Vec<Item>),
    /// 0x02: signed 32-bit.
    Integer(i32),
    /// 0x03: signed 64-bit.
    LongInteger(i64),
    /// 0x04: big-endian two's complement, a multiple of 8 bytes.
    BigInteger(Vec<u8>),
    /// 0x05: unsigned 32-bit.
    Enumeration(u32),
    /// 0x06.
    Boolean(bool),
    /// 0x07: UTF-8.
    TextString(String),
    /// 0x08: bytes, wiped on drop (key material travels here).
    ByteString(Zeroizing<Vec<u8>>),
    /// 0x09: seconds since the epoch.
    DateTime(i64),
    /// 0x0A: seconds.
    Interval(u32),
    /// 0x0B (KMIP 2.0): microseconds since the epoch.
    DateTimeExtended(i64),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Structure(items) => f.debug_list().entries(items).finish(),
            Value::Integer(v) => write!(f, "Integer({v})"),
            Value::LongInteger(v) => write!(f, "LongInteger({v})"),
            Value::BigInteger(v) => write!(f, "BigInteger({} bytes)", v.len()),
            Value::Enumeration(v) => write!(f, "Enumeration({v:#x})"),
            Value::Boolean(v) => write!(f, "Boolean({v})"),
            Value::TextString(v) => write!(f, "TextString({v:?})"),
            // Never the bytes: they may be key material.
            Value::ByteString(v) => write!(f, "ByteString({} bytes)", v.len()),
            Value::DateTime(v) => write!(f, "DateTime({v})"),
            Value::Interval(v) => write!(f, "Interval({v})"),
            Value::DateTimeExtended(v) => write!(f, "DateTimeExtended({v})"),
        }
    }
}

impl Value {
    /// The type byte.
    pub fn type_byte(&self) -> u8 {
        match self {
            Value::Structure(_) => 0x01,
            Value::Integer(_) => 0x02,
            Value::LongInteger(_) => 0x03,
            Value::BigInteger(_) => 0x04,
            Value::Enumeration(_) => 0x05,
            Value::Boolean(_) => 0x06,
            Value::TextString(_) => 0x07,
            Value::ByteString(_) => 0x08,
            Value::DateTime(_) => 0x09,
            Value::Interval(_) => 0x0A,
            Value::DateTimeExtended(_) => 0x0B,
        }
    }
}

/// A tagged TTLV item.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Item {
    /// The 24-bit tag (0x42xxxx for KMIP's, 0x54xxxx for extensions).
    pub tag: u32,
    /// The value.
    pub value: Value,
}

impl Item {
    /// A structure.
    pub fn structure(tag: u32, items: Vec<Item>) -> Item {
        Item {
            tag,
            value: Value::Structure(items),
        }
    }
    /// An integer.
    pub fn int(tag: u32, v: i32) -> Item {
        Item {
            tag,
            value: Value::Integer(v),
        }
    }
    /// An enumeration.
    pub fn enumeration(tag: u32, v: u32) -> Item {
        Item {
            tag,
            value: Value::Enumeration(v),
        }
    }
    /// A text string.
    pub fn text(tag: u32, v: impl Into<String>) -> Item {
        Item {
            tag,
            value: Value::TextString(v.into()),
        }
    }
    /// A byte string.
    pub fn bytes(tag: u32, v: Vec<u8>) -> Item {
        Item {
            tag,
            value: Value::ByteString(Zeroizing::new(v)),
        }
    }
    /// A date-time.
    pub fn date(tag: u32, v: i64) -> Item {
        Item {
            tag,
            value: Value::DateTime(v),
        }
    }
    /// A boolean.
    pub fn boolean(tag: u32, v: bool) -> Item {
        Item {
            tag,
            value: Value::Boolean(v),
        }
    }

    /// The children of a structure (empty for any other type).
    pub fn children(&self) -> &[Item] {
        match &self.value {
            Value::Structure(items) => items,
            _ => &[],
        }
    }
    /// The first child with `tag`.
    pub fn child(&self, tag: u32) -> Option<&Item> {
        self.children().iter().find(|i| i.tag == tag)
    }
    /// Every child with `tag`.
    pub fn all(&self, tag: u32) -> impl Iterator<Item = &Item> {
        self.children().iter().filter(move |i| i.tag == tag)
    }
    /// The value as an enumeration.
    pub fn as_enum(&self) -> Option<u32> {
        match self.value {
            Value::Enumeration(v) => Some(v),
            _ => None,
        }
    }
    /// The value as an integer.
    pub fn as_int(&self) -> Option<i32> {
        match self.value {
            Value::Integer(v) => Some(v),
            _ => None,
        }
    }
    /// The value as text.
    pub fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::TextString(v) => Some(v),
            _ => None,
        }
    }
    /// The value as bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.value {
            Value::ByteString(v) => Some(v),
            _ => None,
        }
    }
    /// The value as a date-time (seconds; an extended date-time is truncated to seconds).
    pub fn as_date(&self) -> Option<i64> {
        match self.value {
            Value::DateTime(v) => Some(v),
            Value::DateTimeExtended(v) => Some(v.div_euclid(1_000_000)),
            _ => None,
        }
    }
}

/// The length of a whole message from its first 8 bytes (tag, type, length), for framing a
/// stream: `None` when the header is not a structure's or the message would exceed
/// [`MAX_MESSAGE`].
pub fn message_len(header: &[u8; 8]) -> Option<usize> {
    if header[3] != 0x01 {
        return None;
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let total = len.checked_add(8)?;
    (total <= MAX_MESSAGE && len % 8 == 0).then_some(total)
}

struct Reader<'a> {
    buf: &'a [u8],
    items: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TtlvError> {
        if n > self.buf.len() {
            return Err(TtlvError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn item(&mut self, depth: usize) -> Result<Item, TtlvError> {
        if depth > MAX_DEPTH {
            return Err(TtlvError::TooLarge);
        }
        self.items += 1;
        if self.items > MAX_ITEMS {
            return Err(TtlvError::TooLarge);
        }
        let h = self.take(8)?;
        let tag = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        let ty = h[3];
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let padded = len.checked_add(7).ok_or(TtlvError::TooLarge)? / 8 * 8;
        if padded > self.buf.len() {
            return Err(TtlvError::Truncated);
        }
        let body = self.take(padded)?;
        let (v, pad) = body.split_at(len);
        if pad.iter().any(|b| *b != 0) {
            return Err(TtlvError::BadPadding);
        }
        let fixed = |n: usize| {
            if len == n {
                Ok(())
            } else {
                Err(TtlvError::BadLength)
            }
        };
        let be4 = |v: &[u8]| [v[0], v[1], v[2], v[3]];
        let be8 = |v: &[u8]| [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]];
        let value = match ty {
            0x01 => {
                if len % 8 != 0 {
                    return Err(TtlvError::BadLength);
                }
                let mut inner = Reader {
                    buf: v,
                    items: self.items,
                };
                let mut items = Vec::new();
                while !inner.buf.is_empty() {
                    items.push(inner.item(depth + 1)?);
                }
                self.items = inner.items;
                Value::Structure(items)
            }
            0x02 => {
                fixed(4)?;
                Value::Integer(i32::from_be_bytes(be4(v)))
            }
            0x03 => {
                fixed(8)?;
                Value::LongInteger(i64::from_be_bytes(be8(v)))
            }
            0x04 => {
                if len == 0 || len % 8 != 0 {
                    return Err(TtlvError::BadLength);
                }
                Value::BigInteger(v.to_vec())
            }
            0x05 => {
                fixed(4)?;
                Value::Enumeration(u32::from_be_bytes(be4(v)))
            }
            0x06 => {
                fixed(8)?;
                match u64::from_be_bytes(be8(v)) {
                    0 => Value::Boolean(false),
                    1 => Value::Boolean(true),
                    _ => return Err(TtlvError::BadValue),
                }
            }
            0x07 => Value::TextString(
                std::str::from_utf8(v)
                    .map_err(|_| TtlvError::BadValue)?
                    .to_owned(),
            ),
            0x08 => Value::ByteString(Zeroizing::new(v.to_vec())),
            0x09 => {
                fixed(8)?;
                Value::DateTime(i64::from_be_bytes(be8(v)))
            }
            0x0A => {
                fixed(4)?;
                Value::Interval(u32::from_be_bytes(be4(v)))
            }
            0x0B => {
                fixed(8)?;
                Value::DateTimeExtended(i64::from_be_bytes(be8(v)))
            }
            other => return Err(TtlvError::UnknownType(other)),
        };
        Ok(Item { tag, value })
    }
}

/// Decodes exactly one item filling `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Item, TtlvError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(TtlvError::TooLarge);
    }
    let mut r = Reader {
        buf: bytes,
        items: 0,
    };
    let item = r.item(0)?;
    if !r.buf.is_empty() {
        return Err(TtlvError::Trailing);
    }
    Ok(item)
}

/// Encodes an item (wiped on drop: responses carry key material).
pub fn encode(item: &Item) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(256));
    write(item, &mut out);
    out
}

fn write(item: &Item, out: &mut Vec<u8>) {
    let t = item.tag.to_be_bytes();
    out.extend_from_slice(&t[1..]);
    out.push(item.value.type_byte());
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let start = out.len();
    match &item.value {
        Value::Structure(items) => {
            for i in items {
                write(i, out);
            }
        }
        Value::Integer(v) => out.extend_from_slice(&v.to_be_bytes()),
        Value::LongInteger(v) => out.extend_from_slice(&v.to_be_bytes()),
        Value::BigInteger(v) => out.extend_from_slice(v),
        Value::Enumeration(v) => out.extend_from_slice(&v.to_be_bytes()),
        Value::Boolean(v) => out.extend_from_slice(&u64::from(*v).to_be_bytes()),
        Value::TextString(v) => out.extend_from_slice(v.as_bytes()),
        Value::ByteString(v) => out.extend_from_slice(v),
        Value::DateTime(v) | Value::DateTimeExtended(v) => out.extend_from_slice(&v.to_be_bytes()),
        Value::Interval(v) => out.extend_from_slice(&v.to_be_bytes()),
    }
    let len = out.len() - start;
    out[len_at..len_at + 4].copy_from_slice(&(len as u32).to_be_bytes());
    let pad = (8 - len % 8) % 8;
    out.extend(std::iter::repeat_n(0u8, pad));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_type() {
        let item = Item::structure(
            0x420078,
            vec![
                Item::int(0x42006A, 1),
                Item {
                    tag: 0x420001,
                    value: Value::LongInteger(-5),
                },
                Item {
                    tag: 0x420002,
                    value: Value::BigInteger(vec![0; 8]),
                },
                Item::enumeration(0x42005C, 0x0A),
                Item::boolean(0x420003, true),
                Item::text(0x420055, "vol-1 ünïcode"),
                Item::bytes(0x420043, vec![1, 2, 3]),
                Item::date(0x420092, 1_700_000_000),
                Item {
                    tag: 0x420049,
                    value: Value::Interval(7),
                },
                Item {
                    tag: 0x420004,
                    value: Value::DateTimeExtended(1),
                },
            ],
        );
        let bytes = encode(&item);
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(decode(&bytes).unwrap(), item);
    }

    #[test]
    fn refuses_malformed_input() {
        // The KMIP spec's example: an Integer 8 padded to 8 bytes.
        let ok = hex("42002002000000040000000800000000");
        assert_eq!(decode(&ok).unwrap(), Item::int(0x420020, 8));
        assert_eq!(decode(&ok[..15]), Err(TtlvError::Truncated));
        let mut bad_pad = ok.clone();
        bad_pad[15] = 1;
        assert_eq!(decode(&bad_pad), Err(TtlvError::BadPadding));
        let mut bad_len = ok.clone();
        bad_len[7] = 8;
        assert_eq!(decode(&bad_len), Err(TtlvError::BadLength));
        let mut bad_type = ok.clone();
        bad_type[3] = 0x0C;
        assert_eq!(decode(&bad_type), Err(TtlvError::UnknownType(0x0C)));
        let mut trailing = ok.clone();
        trailing.extend_from_slice(&[0; 8]);
        assert_eq!(decode(&trailing), Err(TtlvError::Trailing));
        // A length near u32::MAX must not overflow or allocate.
        let huge = hex("420020080fffffff");
        assert_eq!(decode(&huge), Err(TtlvError::Truncated));
        let bad_bool = hex("4200200600000008 0000000000000002");
        assert_eq!(decode(&bad_bool), Err(TtlvError::BadValue));
        let bad_utf8 = hex("4200200700000001 ff00000000000000");
        assert_eq!(decode(&bad_utf8), Err(TtlvError::BadValue));
    }

    #[test]
    fn refuses_deep_nesting() {
        let mut item = Item::int(0x420020, 1);
        for _ in 0..(MAX_DEPTH + 2) {
            item = Item::structure(0x420078, vec![item]);
        }
        assert_eq!(decode(&encode(&item)), Err(TtlvError::TooLarge));
    }

    #[test]
    fn byte_strings_are_redacted_in_debug() {
        let item = Item::bytes(0x420043, vec![0xAB; 32]);
        let shown = format!("{item:?}");
        assert!(
            shown.contains("32 bytes") && !shown.contains("171"),
            "{shown}"
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
