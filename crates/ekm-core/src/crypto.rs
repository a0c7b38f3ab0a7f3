//! The one module that touches the AEAD: AES-256-GCM seal and open with random 96-bit nonces.
//!
//! Owns: the KEK type, the node-local protection key type, nonce generation.
//! Must never: reuse a nonce on purpose, return partial plaintext, or say why an open failed
//! (the error is deliberately opaque). Swapping the AEAD implementation happens here only.
//!
//! | type | key | seals |
//! |---|---|---|
//! | [`AeadKey`] | any 256-bit [`KeyMaterial`] | `nonce 12 \| ciphertext \| tag 16` ([`AeadKey::seal_vec`]) or in place |
//! | [`Kek`] | one configuration's KEK, one generation | data keys (`hierarchy.rs` decides the AAD) |
//! | [`ProtectionKey`] | the node-local key file | configuration secrets and record macs (`stored/mod.rs`, `codec`) |

use std::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

// Its home is `random.rs`; named here too because other crates call
// `ekm_core::crypto::fill_random`.
pub use crate::random::fill_random;
use crate::secret::{KEY_LEN, KeyMaterial};

/// Nonce length of AES-GCM in bytes.
pub const NONCE_LEN: usize = 12;
/// Authentication tag length of AES-GCM in bytes.
pub const TAG_LEN: usize = 16;

/// Seals per KEK generation after which status advises rekey-internal (NIST SP 800-38D caps
/// random-nonce GCM at 2^32 invocations per key; we warn at 2^31).
pub const SEAL_WARN_LIMIT: u64 = 1 << 31;

/// Random nonces drawn from the OS RNG 256 at a time, for bulk rewraps: one system call per
/// 256 seals instead of one per seal. Lives on the stack of one operation; never shared.
pub struct NonceSource {
    buf: [u8; NONCE_LEN * 256],
    pos: usize,
}

impl Default for NonceSource {
    fn default() -> Self {
        NonceSource {
            buf: [0; NONCE_LEN * 256],
            pos: NONCE_LEN * 256,
        }
    }
}

impl NonceSource {
    /// The next fresh nonce.
    pub fn next_nonce(&mut self) -> [u8; NONCE_LEN] {
        if self.pos == self.buf.len() {
            fill_random(&mut self.buf);
            self.pos = 0;
        }
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&self.buf[self.pos..self.pos + NONCE_LEN]);
        // Each nonce is handed out once.
        self.buf[self.pos..self.pos + NONCE_LEN].fill(0);
        self.pos += NONCE_LEN;
        n
    }
}

/// An AES-256-GCM failure. Deliberately says nothing about why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AeadError;

impl fmt::Display for AeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("authenticated decryption failed")
    }
}

impl std::error::Error for AeadError {}

/// An AES-256-GCM key with its expanded key schedule, wiped on drop.
pub struct AeadKey {
    material: KeyMaterial,
    cipher: Aes256Gcm,
}

impl AeadKey {
    /// Builds the cipher for `material`.
    pub fn new(material: KeyMaterial) -> Self {
        let cipher = Aes256Gcm::new(material.expose_secret().into());
        AeadKey { material, cipher }
    }

    /// The raw key bytes (to hand to a backend for wrapping).
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// Encrypts `plaintext` in place under a fresh random nonce; returns the nonce and the tag.
    pub fn seal_in_place(
        &self,
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<([u8; NONCE_LEN], [u8; TAG_LEN]), AeadError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, buf)
            .map_err(|_| AeadError)?;
        Ok((nonce, tag.into()))
    }

    /// Encrypts in place under a nonce the caller drew from the OS RNG (see [`NonceSource`]).
    pub fn seal_in_place_with(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadError> {
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, buf)
            .map_err(|_| AeadError)?;
        Ok(tag.into())
    }

    /// Decrypts `buf` in place; on failure `buf` is wiped.
    pub fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AeadError> {
        let result = self.cipher.decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            buf,
            Tag::from_slice(tag),
        );
        if result.is_err() {
            buf.fill(0);
            return Err(AeadError);
        }
        Ok(())
    }

    /// Seals `plaintext` into `nonce || ciphertext || tag`.
    pub fn seal_vec(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&[0u8; NONCE_LEN]);
        out.extend_from_slice(plaintext);
        let (nonce, tag) = self.seal_in_place(aad, &mut out[NONCE_LEN..])?;
        out[..NONCE_LEN].copy_from_slice(&nonce);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens a `nonce || ciphertext || tag` blob made by [`AeadKey::seal_vec`].
    pub fn open_vec(
        &self,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, AeadError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(AeadError);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| AeadError)?;
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| AeadError)?;
        let mut buf = zeroize::Zeroizing::new(ct.to_vec());
        self.open_in_place(nonce, aad, &mut buf, tag)?;
        Ok(buf)
    }
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeadKey([redacted])")
    }
}

/// An unlocked internal KEK of one configuration, one generation.
pub struct Kek {
    key: AeadKey,
    generation: u32,
}

impl Kek {
    /// A new random KEK for `generation`.
    pub fn generate(generation: u32) -> Self {
        Kek::from_material(KeyMaterial::random(), generation)
    }

    /// A KEK from unwrapped material.
    pub fn from_material(material: KeyMaterial, generation: u32) -> Self {
        Kek {
            key: AeadKey::new(material),
            generation,
        }
    }

    /// The generation (g1, g2, ...).
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The raw key, for wrapping by a backend only.
    pub fn material(&self) -> &KeyMaterial {
        self.key.material()
    }

    /// The AEAD key.
    pub(crate) fn aead(&self) -> &AeadKey {
        &self.key
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("generation", &self.generation)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// The node-local key that seals configuration secrets at rest. Lives in a mode-0600 file
/// outside the database (see `ekm-store`); the engine only ever sees it in memory.
pub struct ProtectionKey(AeadKey);

impl ProtectionKey {
    /// From exactly [`KEY_LEN`] bytes.
    pub fn from_material(material: KeyMaterial) -> Self {
        ProtectionKey(AeadKey::new(material))
    }

    /// A fresh random protection key.
    pub fn generate() -> Self {
        ProtectionKey::from_material(KeyMaterial::random())
    }

    /// The raw bytes, for writing the key file only.
    pub fn material(&self) -> &KeyMaterial {
        self.0.material()
    }

    pub(crate) fn aead(&self) -> &AeadKey {
        &self.0
    }
}

impl fmt::Debug for ProtectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProtectionKey([redacted])")
    }
}

/// Length of a sealed 32-byte key: nonce, ciphertext, tag.
pub const SEALED_KEY_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let k = AeadKey::new(KeyMaterial::random());
        let sealed = k.seal_vec(b"aad", b"hello").unwrap();
        assert_eq!(&k.open_vec(b"aad", &sealed).unwrap()[..], b"hello");
        assert!(k.open_vec(b"other", &sealed).is_err());
        let mut bad = sealed.clone();
        bad[NONCE_LEN] ^= 1;
        assert!(k.open_vec(b"aad", &bad).is_err());
        assert!(k.open_vec(b"aad", &sealed[..10]).is_err());
    }

    #[test]
    fn nonce_source_hands_out_distinct_nonces_across_refills() {
        let mut src = NonceSource::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(src.next_nonce()));
        }
    }

    #[test]
    fn nist_gcm_known_answer() {
        // NIST GCM test vector (gcmEncryptExtIV256, Count 0 with 16-byte PT), key/iv/pt/ct/tag.
        let key = hex::decode("31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22")
            .unwrap();
        let iv: [u8; 12] = hex::decode("0d18e06c7c725ac9e362e1ce")
            .unwrap()
            .try_into()
            .unwrap();
        let mut buf = hex::decode("2db5168e932556f8089a0622981d017d").unwrap();
        let ct = hex::decode("fa4362189661d163fcd6a56d8bf0405a").unwrap();
        let tag: [u8; 16] = hex::decode("d636ac1bbedd5cc3ee727dc2ab4a9489")
            .unwrap()
            .try_into()
            .unwrap();
        let k = AeadKey::new(KeyMaterial::from_slice(&key).unwrap());
        let mut c = ct.clone();
        k.open_in_place(&iv, b"", &mut c, &tag).unwrap();
        assert_eq!(c, buf);
        // and the cipher agrees in the other direction with the same nonce
        k.cipher
            .encrypt_in_place_detached(Nonce::from_slice(&iv), b"", &mut buf)
            .unwrap();
        assert_eq!(buf, ct);
    }
}
