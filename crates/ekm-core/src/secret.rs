//! Secret-holding types: key material and configuration secrets.
//!
//! Owns: the types that hold plaintext key material and credentials in memory.
//! Must never: implement `Serialize`, show bytes in `Debug`/`Display`, or outlive their use without
//! being wiped. A secret becomes visible only through a method named `expose_secret`.

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
        crate::crypto::fill_random(&mut bytes);
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
}
