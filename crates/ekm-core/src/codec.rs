//! On-disk records. Every record is versioned and self-describing; the byte layout is drawn in
//! `docs/ARCHITECTURE.md`. Where each record is stored: [`crate::layout`].
//!
//! Owns: encoding and decoding of wrapped data keys, wrapped KEKs and config records.
//! Must never: panic on any bytes read from disk (they may be truncated, corrupted or forged).

use uuid::Uuid;

use crate::crypto::{NONCE_LEN, ProtectionKey, TAG_LEN};
use crate::error::{Error, Result};
use crate::ids::{DataKeyId, KeyId, KeyTag};
use crate::secret::KEY_LEN;

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
fn put_str8(out: &mut Vec<u8>, s: &str, what: &str) -> Result<()> {
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
fn put_bytes16(out: &mut Vec<u8>, b: &[u8], what: &str) -> Result<()> {
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

/// Who a data key belongs to: the cluster, or one SVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyOwner {
    /// The cluster (admin SVM).
    Cluster,
    /// A data SVM.
    Svm(Uuid),
}

impl KeyOwner {
    fn encode(self, out: &mut Vec<u8>) {
        match self {
            KeyOwner::Cluster => {
                out.push(0);
                out.extend_from_slice(Uuid::nil().as_bytes());
            }
            KeyOwner::Svm(u) => {
                out.push(1);
                out.extend_from_slice(u.as_bytes());
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let kind = r.u8()?;
        let uuid = r.uuid()?;
        // Canonical only: the cluster with the nil uuid, an SVM with a real one. Anything else
        // would decode to a value that encodes to other bytes.
        match (kind, uuid.is_nil()) {
            (0, true) => Ok(KeyOwner::Cluster),
            (1, false) => Ok(KeyOwner::Svm(uuid)),
            _ => Err(Error::corrupt(
                "A record has an unknown or malformed owner.",
            )),
        }
    }

    /// The SVM uuid, if any.
    pub fn svm(self) -> Option<Uuid> {
        match self {
            KeyOwner::Cluster => None,
            KeyOwner::Svm(u) => Some(u),
        }
    }
}

/// Where a data key's record is: its configuration and owner (the value of `d/<id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLocation {
    /// Configuration whose KEK wraps it.
    pub config: Uuid,
    /// Owner.
    pub owner: KeyOwner,
}

impl KeyLocation {
    /// Encodes: config uuid 16 | owner kind 1 | owner uuid 16.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(33);
        out.extend_from_slice(self.config.as_bytes());
        self.owner.encode(&mut out);
        out
    }

    /// Decodes a location read from the store.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "key location");
        let config = r.uuid()?;
        let owner = KeyOwner::decode(&mut r)?;
        r.finish()?;
        Ok(KeyLocation { config, owner })
    }

    /// The store key of the record.
    pub fn record_key(&self, id: &DataKeyId) -> Vec<u8> {
        crate::layout::record(self.config, self.owner, id)
    }
}

/// Algorithm id of AES-256-GCM in data key records.
pub const ALG_AES256GCM: u8 = 1;

/// Which AAD a data key record was sealed with (its format version byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKeyFormat {
    /// Version 1: the AAD binds configuration, key id, generation and owner.
    V1,
    /// Version 2: the AAD binds the key tag too. Every new seal (create, rekey, migrate) of a
    /// 32-byte key.
    V2,
    /// Version 3: a key shorter than 32 bytes (a KMIP AES-128/192 key, Secret Data). As
    /// version 2, and the record ends with the key's length, which the AAD binds too.
    V3,
}

/// A data key as stored: wrapped by one KEK generation of one configuration.
///
/// Layout (versions 1 and 2): `'D' 01|02 | config uuid 16 | generation u32 | owner kind 1 |
/// owner uuid 16 | alg 1 | nonce 12 | ciphertext 32 | tag 16 | tag-length 1 | key tag`;
/// version 3: `'D' 03 |` the same `| key length 1` (1 to 32). The ciphertext is always of 32
/// bytes; of a shorter key they are its bytes and random filler. The version says which AAD
/// sealed it ([`DataKeyFormat`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    /// Which AAD sealed it.
    pub format: DataKeyFormat,
    /// Configuration whose KEK wraps the key.
    pub config: Uuid,
    /// KEK generation.
    pub generation: u32,
    /// Owner.
    pub owner: KeyOwner,
    /// Nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext of the 32-byte key.
    pub ciphertext: [u8; KEY_LEN],
    /// GCM tag.
    pub tag: [u8; TAG_LEN],
    /// Caller's label.
    pub key_tag: KeyTag,
    /// How many of the 32 bytes are the key as served: 32 in versions 1 and 2, 1 to 32 in
    /// version 3 (written for shorter keys only).
    pub key_len: u8,
}

const DATA_KEY_TAG: u8 = b'D';
const KEK_TAG: u8 = b'K';
const V1: u8 = 1;
const V2: u8 = 2;
const V3: u8 = 3;

impl WrappedDataKey {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let version = match self.format {
            DataKeyFormat::V1 => V1,
            DataKeyFormat::V2 => V2,
            DataKeyFormat::V3 => V3,
        };
        let tag = self.key_tag.as_str().as_bytes();
        let len_byte = usize::from(self.format == DataKeyFormat::V3);
        let mut out = Vec::with_capacity(101 + tag.len() + len_byte);
        out.extend_from_slice(&[DATA_KEY_TAG, version]);
        out.extend_from_slice(self.config.as_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        self.owner.encode(&mut out);
        out.push(ALG_AES256GCM);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out.extend_from_slice(&self.tag);
        // A KeyTag is at most MAX_KEY_TAG_LEN (255) bytes by construction: the length fits.
        out.push(tag.len() as u8);
        out.extend_from_slice(tag);
        if self.format == DataKeyFormat::V3 {
            out.push(self.key_len);
        }
        out
    }

    /// Decodes a record read from the store.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "data key");
        let format = match r.header_of(DATA_KEY_TAG, &[V1, V2, V3])? {
            V1 => DataKeyFormat::V1,
            V2 => DataKeyFormat::V2,
            _ => DataKeyFormat::V3,
        };
        let config = r.uuid()?;
        let generation = r.u32()?;
        let owner = KeyOwner::decode(&mut r)?;
        if r.u8()? != ALG_AES256GCM {
            return Err(Error::corrupt(
                "The data key record names an unknown algorithm.",
            ));
        }
        let nonce = r.array()?;
        let ciphertext = r.array()?;
        let tag = r.array()?;
        let key_tag = KeyTag::parse(r.str8()?)
            .map_err(|_| Error::corrupt("The data key record has an invalid key tag."))?;
        let key_len = match format {
            DataKeyFormat::V1 | DataKeyFormat::V2 => KEY_LEN as u8,
            DataKeyFormat::V3 => match r.u8()? {
                n @ 1..=32 => n,
                n => {
                    return Err(Error::corrupt(&format!(
                        "The data key record says the key is {n} bytes; keys are 1 to 32."
                    )));
                }
            },
        };
        r.finish()?;
        Ok(WrappedDataKey {
            format,
            config,
            generation,
            owner,
            nonce,
            ciphertext,
            tag,
            key_tag,
            key_len,
        })
    }

    /// How many bytes the key is as served (1 to 32).
    pub fn key_len(&self) -> usize {
        usize::from(self.key_len)
    }
}

/// State of a KEK generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KekState {
    /// New data keys are wrapped by it.
    Active,
    /// Being replaced by rekey-internal; still opens keys not yet rewrapped.
    Retiring,
}

/// A KEK wrapped by the external key manager, with everything needed to unwrap it again.
///
/// Layout (version 2): `'K' 02 | config uuid 16 | generation u32 | state 1 | created u64 |
/// backend str8 | key id bytes16 | algorithm str8 | wrapped bytes16 | check bytes16 |
/// mac bytes16`. The mac is AES-256-GCM under the protection key of an empty plaintext, AAD
/// `"ekm-kek-v2\0" | every byte before it`: whoever can write the store but lacks the
/// protection key cannot put a KEK of their own (RSA-OAEP-wrapped with the vault key's
/// *public* half, which anyone can do) where the nodes would unwrap it and seal new data keys
/// under it. Version 1 records (no mac) are refused, never upgraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKek {
    /// Configuration the KEK belongs to.
    pub config: Uuid,
    /// Generation.
    pub generation: u32,
    /// Active or retiring.
    pub state: KekState,
    /// Unix seconds of creation.
    pub created: u64,
    /// Backend kind that wrapped it ("akv", "fake").
    pub backend: String,
    /// External key, with the exact version, that wrapped it.
    pub key_id: KeyId,
    /// Wrapping algorithm ("RSA-OAEP-256").
    pub algorithm: String,
    /// The wrapped bytes as the backend returned them.
    pub wrapped: Vec<u8>,
    /// A known constant sealed under the KEK itself: proves that what a backend unwrapped is
    /// this KEK and not some other 32 bytes (see [`crate::hierarchy::kek_check_aad`]).
    pub check: Vec<u8>,
}

impl WrappedKek {
    /// Encodes the record, authenticated under `pk`.
    pub fn encode(&self, pk: &ProtectionKey) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(96 + self.key_id.as_str().len() + self.wrapped.len());
        out.extend_from_slice(&[KEK_TAG, V2]);
        out.extend_from_slice(self.config.as_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.push(match self.state {
            KekState::Active => 1,
            KekState::Retiring => 2,
        });
        out.extend_from_slice(&self.created.to_be_bytes());
        put_str8(&mut out, &self.backend, "backend name")?;
        put_bytes16(&mut out, self.key_id.as_str().as_bytes(), "external key id")?;
        put_str8(&mut out, &self.algorithm, "wrapping algorithm name")?;
        put_bytes16(&mut out, &self.wrapped, "wrapped KEK")?;
        put_bytes16(&mut out, &self.check, "KEK check value")?;
        let mac = pk
            .aead()
            .seal_vec(&kek_mac_aad(&out), b"")
            .map_err(|_| Error::corrupt("A wrapped KEK record could not be authenticated."))?;
        put_bytes16(&mut out, &mac, "KEK record mac")?;
        Ok(out)
    }

    /// Decodes a record read from the store and verifies that it was written under `pk`.
    pub fn decode(bytes: &[u8], pk: &ProtectionKey) -> Result<Self> {
        let (k, body_len, mac) = Self::parse(bytes)?;
        match pk.aead().open_vec(&kek_mac_aad(&bytes[..body_len]), mac) {
            Ok(plain) if plain.is_empty() => Ok(k),
            _ => Err(Error::corrupt(&format!(
                "The wrapped KEK of generation {} of configuration {} does not authenticate under this node's protection key; it was changed outside ekm, or the protection key file is not the one that wrote it. It is not used.",
                k.generation, k.config
            ))),
        }
    }

    /// Decodes a record WITHOUT verifying its mac: for inspecting a store (tests, fuzzing,
    /// tooling), never for a KEK that is going to be unwrapped or trusted.
    pub fn decode_unauthenticated(bytes: &[u8]) -> Result<Self> {
        Self::parse(bytes).map(|(k, _, _)| k)
    }

    /// The record, the length of the authenticated body, and the mac.
    fn parse(bytes: &[u8]) -> Result<(Self, usize, &[u8])> {
        let mut r = Reader::new(bytes, "wrapped KEK");
        match r.header_of(KEK_TAG, &[V1, V2])? {
            V2 => {}
            _ => {
                return Err(Error::corrupt(
                    "The wrapped KEK record has format version 1 (not authenticated); this build reads version 2 only.",
                ));
            }
        }
        let config = r.uuid()?;
        let generation = r.u32()?;
        let state = match r.u8()? {
            1 => KekState::Active,
            2 => KekState::Retiring,
            _ => {
                return Err(Error::corrupt(
                    "The wrapped KEK record has an unknown state.",
                ));
            }
        };
        let created = r.u64()?;
        let backend = r.str8()?.to_owned();
        let key_id = std::str::from_utf8(r.bytes16()?)
            .ok()
            .and_then(|s| KeyId::parse(s).ok())
            .ok_or_else(|| Error::corrupt("The wrapped KEK record has an invalid key id."))?;
        let algorithm = r.str8()?.to_owned();
        let wrapped = r.bytes16()?.to_vec();
        let check = r.bytes16()?.to_vec();
        let body_len = bytes.len() - r.remaining();
        let mac = r.bytes16()?;
        r.finish()?;
        let k = WrappedKek {
            config,
            generation,
            state,
            created,
            backend,
            key_id,
            algorithm,
            wrapped,
            check,
        };
        Ok((k, body_len, mac))
    }
}

/// What a KEK record's mac authenticates: a domain label, then the record up to the mac.
fn kek_mac_aad(body: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(11 + body.len());
    aad.extend_from_slice(b"ekm-kek-v2\0");
    aad.extend_from_slice(body);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dk() -> WrappedDataKey {
        WrappedDataKey {
            format: DataKeyFormat::V2,
            config: Uuid::new_v4(),
            generation: 3,
            owner: KeyOwner::Svm(Uuid::new_v4()),
            nonce: [1; NONCE_LEN],
            ciphertext: [2; KEY_LEN],
            tag: [3; TAG_LEN],
            key_tag: KeyTag::parse("vol1").unwrap(),
            key_len: KEY_LEN as u8,
        }
    }

    #[test]
    fn data_key_roundtrip_and_every_truncation_fails() {
        let d = dk();
        let bytes = d.encode();
        assert_eq!(bytes.len(), 101 + 4);
        assert_eq!(WrappedDataKey::decode(&bytes).unwrap(), d);
        for n in 0..bytes.len() {
            assert!(WrappedDataKey::decode(&bytes[..n]).is_err(), "{n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(WrappedDataKey::decode(&longer).is_err());
        let mut v4 = bytes.clone();
        v4[1] = 4;
        assert!(
            WrappedDataKey::decode(&v4)
                .unwrap_err()
                .message()
                .contains("version 4")
        );
        // A version 1 record (tag not in the AAD) still decodes, as version 1.
        let mut v1 = bytes;
        v1[1] = 1;
        let old = WrappedDataKey::decode(&v1).unwrap();
        assert_eq!(old.format, DataKeyFormat::V1);
        assert_eq!(old.encode(), v1);
    }

    #[test]
    fn a_short_key_is_version_3_with_its_length_and_only_1_to_32_decodes() {
        let d = WrappedDataKey {
            format: DataKeyFormat::V3,
            key_len: 16,
            ..dk()
        };
        let bytes = d.encode();
        assert_eq!(bytes.len(), 101 + 4 + 1);
        assert_eq!(bytes[1], 3);
        assert_eq!(bytes.last(), Some(&16));
        let back = WrappedDataKey::decode(&bytes).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.key_len(), 16);
        for n in 0..bytes.len() {
            assert!(WrappedDataKey::decode(&bytes[..n]).is_err(), "{n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(WrappedDataKey::decode(&longer).is_err());
        for bad in [0u8, 33, 255] {
            let mut b = bytes.clone();
            *b.last_mut().unwrap() = bad;
            let e = WrappedDataKey::decode(&b).unwrap_err();
            assert!(e.message().contains("1 to 32"), "{bad}: {}", e.message());
        }
        let mut full = bytes;
        *full.last_mut().unwrap() = 32;
        assert_eq!(WrappedDataKey::decode(&full).unwrap().key_len(), 32);
        // Versions 1 and 2 carry no length: their keys are 32 bytes.
        assert_eq!(
            WrappedDataKey::decode(&dk().encode()).unwrap().key_len(),
            32
        );
    }

    #[test]
    fn oversize_fields_are_refused_not_cut() {
        let mut out = Vec::new();
        assert!(put_str8(&mut out, &"a".repeat(256), "backend name").is_err());
        assert!(put_bytes16(&mut out, &vec![0; 65536], "wrapped KEK").is_err());
        assert!(out.is_empty(), "nothing written on refusal");
        put_str8(&mut out, &"a".repeat(255), "backend name").unwrap();
        assert_eq!(out.len(), 256);
    }

    #[test]
    fn kek_roundtrip() {
        let k = WrappedKek {
            config: Uuid::new_v4(),
            generation: 1,
            state: KekState::Active,
            created: 1_700_000_000,
            backend: "fake".into(),
            key_id: KeyId::parse(
                "https://v.vault.azure.net/keys/k1/a8e619fd8f234db3b0b95c59540e2a74",
            )
            .unwrap(),
            algorithm: "RSA-OAEP-256".into(),
            wrapped: vec![9; 256],
            check: vec![7; 44],
        };
        let pk = ProtectionKey::generate();
        let bytes = k.encode(&pk).unwrap();
        let mut huge = k.clone();
        huge.wrapped = vec![9; 70_000];
        assert!(
            huge.encode(&pk).is_err(),
            "a wrapped KEK over 65535 bytes is refused"
        );
        assert_eq!(WrappedKek::decode(&bytes, &pk).unwrap(), k);
        for n in 0..bytes.len() {
            assert!(WrappedKek::decode(&bytes[..n], &pk).is_err());
        }
    }

    #[test]
    fn kek_records_authenticate_under_the_protection_key_only() {
        let pk = ProtectionKey::generate();
        let k = WrappedKek {
            config: Uuid::new_v4(),
            generation: 2,
            state: KekState::Active,
            created: 1_700_000_000,
            backend: "akv".into(),
            key_id: KeyId::parse(
                "https://v.vault.azure.net/keys/k1/a8e619fd8f234db3b0b95c59540e2a74",
            )
            .unwrap(),
            algorithm: "RSA-OAEP-256".into(),
            wrapped: vec![9; 256],
            check: vec![7; 44],
        };
        let bytes = k.encode(&pk).unwrap();
        // A writer without the protection key: its own record, or any byte of ours changed.
        let forged = k.encode(&ProtectionKey::generate()).unwrap();
        assert!(WrappedKek::decode(&forged, &pk).is_err());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(WrappedKek::decode(&b, &pk).is_err(), "byte {i} flipped");
        }
        // A version 1 record (no mac) is refused, not read.
        let mut v1 = bytes.clone();
        v1[1] = 1;
        let mac_len = 2 + 28;
        v1.truncate(bytes.len() - mac_len);
        let e = WrappedKek::decode(&v1, &pk).unwrap_err();
        assert!(e.message().contains("version 1"), "{}", e.message());
        assert_eq!(WrappedKek::decode_unauthenticated(&bytes).unwrap(), k);
    }

    #[test]
    fn fuzz_regression_owner_must_be_canonical() {
        // Found by the `records` fuzz target (fuzz/artifacts, selector byte dropped): a cluster
        // owner with a non-nil uuid decoded, then encoded to different bytes.
        let crash =
            hex::decode("546abb7c01ad496f906101350000000000000050ab3e1be5cedbece3224efa45b6")
                .unwrap();
        assert!(KeyLocation::decode(&crash).is_err());
        let svm_nil = [[7u8; 16].as_slice(), &[1], &[0u8; 16]].concat();
        assert!(KeyLocation::decode(&svm_nil).is_err());
        let ok = KeyLocation {
            config: Uuid::new_v4(),
            owner: KeyOwner::Svm(Uuid::new_v4()),
        };
        assert_eq!(KeyLocation::decode(&ok.encode()).unwrap(), ok);
        let cluster = KeyLocation {
            config: Uuid::new_v4(),
            owner: KeyOwner::Cluster,
        };
        assert_eq!(KeyLocation::decode(&cluster.encode()).unwrap(), cluster);
    }
}
