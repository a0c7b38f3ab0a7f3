//! Secret-holding types: key material and configuration secrets.
//!
//! Owns: the types that hold plaintext key material and credentials in memory.
//! Must never: implement `Serialize`, show bytes in `Debug`/`Display`, or outlive their use without
//! being wiped. A secret becomes visible only through a method named `expose_secret`.
//!
//! | type | holds |
//! |---|---|
//! | [`KeyMaterial`] | 32 bytes ([`KEY_LEN`]): a KEK, a protection key, a data key's sealed form |
//! | [`DataKeyMaterial`] | a data key: 32 bytes of material, of which the first 1 to 32 are served |
//! | [`SecretBytes`] | variable-length secret bytes (a PKCS#12 file, an unwrapped blob) |
//! | [`SecretString`], [`SecretBox`] | credentials (from `secrecy`) |

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub use secrecy::{ExposeSecret, SecretBox, SecretString};

/// Length in bytes of a data key and of a KEK (AES-256).
pub const KEY_LEN: usize = 32;

/// Plaintext material of a 256-bit key, wiped on drop, with a redacting `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct KeyMaterial([u8; KEY_LEN]);

impl KeyMaterial {
    /// Fresh random material from the OS RNG.
    pub fn random() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        crate::random::fill_random(&mut bytes);
        KeyMaterial(bytes)
    }

    /// Takes material of exactly [`KEY_LEN`] bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(KeyMaterial(array))
    }

    /// Wraps an owned array.
    pub fn from_array(bytes: [u8; KEY_LEN]) -> Self {
        KeyMaterial(bytes)
    }

    /// The plaintext bytes. Keep the borrow short; never log or persist them.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial([redacted])")
    }
}

/// The plaintext of a data key: 32 bytes of material, of which the first [`len`](Self::len)
/// (1 to 32) are the key as its owner is served it. A key registered shorter (a KMIP AES-128 or
/// AES-192 key, a Secret Data password) is followed by random filler that no reader is served;
/// the filler is sealed with the key and kept through every rewrap, so the 32 bytes never change.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKeyMaterial {
    material: KeyMaterial,
    len: u8,
}

impl DataKeyMaterial {
    /// A key of all 32 bytes of `material`.
    pub fn full(material: KeyMaterial) -> Self {
        DataKeyMaterial {
            material,
            len: KEY_LEN as u8,
        }
    }

    /// The first `len` bytes of `material`; `None` unless `len` is 1 to 32.
    pub fn prefix(material: KeyMaterial, len: usize) -> Option<Self> {
        if len == 0 || len > KEY_LEN {
            return None;
        }
        Some(DataKeyMaterial {
            material,
            len: len as u8,
        })
    }

    /// Fresh random material of `len` bytes (1 to 32); `None` for any other length.
    pub fn random(len: usize) -> Option<Self> {
        Self::prefix(KeyMaterial::random(), len)
    }

    /// A key of exactly `bytes` (1 to 32 of them), padded to 32 with random filler; `None` for
    /// any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut padded = Zeroizing::new([0u8; KEY_LEN]);
        crate::random::fill_random(&mut padded[..]);
        padded.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Self::prefix(KeyMaterial::from_array(*padded), bytes.len())
    }

    /// How many bytes the key is (1 to 32; not secret).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the key is empty (never: 1 to 32 bytes by construction).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All 32 bytes as sealed, filler included.
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// All 32 bytes as sealed, filler included.
    pub fn into_material(self) -> KeyMaterial {
        self.material
    }

    /// The key's bytes as served: the first [`len`](Self::len). Keep the borrow short; never
    /// log or persist them.
    pub fn expose_secret(&self) -> &[u8] {
        &self.material.expose_secret()[..self.len()]
    }
}

impl fmt::Debug for DataKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKeyMaterial([redacted; {}])", self.len)
    }
}

/// Variable-length secret bytes (a decoded PKCS#12 file, an unwrapped blob), wiped on drop.
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The plaintext bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted; {}])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = KeyMaterial::from_array([0xAB; KEY_LEN]);
        let s = format!("{k:?}");
        assert!(!s.to_lowercase().contains("ab"), "{s}");
        let b = SecretBytes::new(b"canary-bytes".to_vec());
        assert!(!format!("{b:?}").contains("canary"));
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(KeyMaterial::from_slice(&[1; 31]).is_none());
        assert!(KeyMaterial::from_slice(&[1; 33]).is_none());
        assert!(KeyMaterial::from_slice(&[1; 32]).is_some());
    }

    #[test]
    fn a_data_key_is_1_to_32_bytes_and_serves_only_its_own() {
        assert!(DataKeyMaterial::from_bytes(&[]).is_none());
        assert!(DataKeyMaterial::from_bytes(&[1; 33]).is_none());
        assert!(DataKeyMaterial::random(0).is_none());
        assert!(DataKeyMaterial::random(33).is_none());
        let k = DataKeyMaterial::from_bytes(&[7; 16]).unwrap();
        assert_eq!(k.len(), 16);
        assert_eq!(k.expose_secret(), &[7; 16]);
        assert_eq!(&k.material().expose_secret()[..16], &[7; 16]);
        let full = DataKeyMaterial::full(KeyMaterial::from_array([5; KEY_LEN]));
        assert_eq!(full.expose_secret(), &[5; KEY_LEN]);
        assert!(!format!("{k:?}").contains('7'), "{k:?}");
    }
}
