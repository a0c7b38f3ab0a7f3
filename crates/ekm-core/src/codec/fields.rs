//! The field primitives every binary record is built from: a bounds-checked [`Reader`] over
//! untrusted bytes, and length-prefixed writers that refuse, never cut.
//!
//! Owns: reading fixed-width and length-prefixed fields, and the record header (type, version).
//! Must never: panic or read past the end on any input; truncate a field on write.
//!
//! | field | bytes |
//! |---|---|
//! | `u8`, `u16`, `u32`, `u64` | 1, 2, 4, 8, big-endian |
//! | `uuid` | 16 raw |
//! | `str8` | length u8, then UTF-8 (at most 255) |
//! | `bytes16` | length u16, then bytes (at most 65535) |
//! | header | record type 1, then format version 1 (data key `'D'`, KEK `'K'`) |

use uuid::Uuid;

use crate::error::{Error, Result};

/// Format version bytes of the record families.
pub(crate) const V1: u8 = 1;
pub(crate) const V2: u8 = 2;
pub(crate) const V3: u8 = 3;

/// A bounds-checked reader over untrusted bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    fn err(&self) -> Error {
        Error::corrupt(&format!(
            "The {} record is truncated or malformed.",
            self.what
        ))
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(self.err());
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        s.try_into().map_err(|_| self.err())
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn uuid(&mut self) -> Result<Uuid> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    pub(crate) fn str8(&mut self) -> Result<&'a str> {
        let n = self.u8()? as usize;
        let b = self.take(n)?;
        std::str::from_utf8(b).map_err(|_| self.err())
    }

    pub(crate) fn bytes16(&mut self) -> Result<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    /// Reads the record type and a format version among `versions`; returns the version.
    pub(crate) fn header_of(&mut self, tag: u8, versions: &[u8]) -> Result<u8> {
        let (t, v) = (self.u8()?, self.u8()?);
        if t != tag {
            return Err(self.err());
        }
        if !versions.contains(&v) {
            return Err(Error::corrupt(&format!(
                "The {} record has format version {v}, this build reads {versions:?}.",
                self.what
            )));
        }
        Ok(v)
    }

    pub(crate) fn finish(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err())
        }
    }
}

/// Writes a length-prefixed (u8) string; a longer one is refused, never cut.
pub(crate) fn put_str8(out: &mut Vec<u8>, s: &str, what: &str) -> Result<()> {
    let n = u8::try_from(s.len()).map_err(|_| {
        Error::corrupt(&format!(
            "The {what} is {} bytes; a record holds at most 255.",
            s.len()
        ))
    })?;
    out.push(n);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Writes a length-prefixed (u16) byte string; a longer one is refused, never cut.
pub(crate) fn put_bytes16(out: &mut Vec<u8>, b: &[u8], what: &str) -> Result<()> {
    let n = u16::try_from(b.len()).map_err(|_| {
        Error::corrupt(&format!(
            "The {what} is {} bytes; a record holds at most 65535.",
            b.len()
        ))
    })?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_fields_are_refused_not_cut() {
        let mut out = Vec::new();
        assert!(put_str8(&mut out, &"a".repeat(256), "backend name").is_err());
        assert!(put_bytes16(&mut out, &vec![0; 65536], "wrapped KEK").is_err());
        assert!(out.is_empty(), "nothing written on refusal");
        put_str8(&mut out, &"a".repeat(255), "backend name").unwrap();
        assert_eq!(out.len(), 256);
    }
}
