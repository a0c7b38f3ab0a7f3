//! Data key records: where a key is (`d/<id>`, [`KeyLocation`]) and the key itself, wrapped by
//! one KEK generation (`r/...`, [`WrappedDataKey`]); the record form of [`KeyOwner`].
//!
//! Owns: the byte layout of both records, in every format version ekm ever wrote.
//! Must never: decode an owner to a value that encodes to other bytes; accept a key length
//! outside 1 to 32.
//!
//! ```text
//! KeyLocation     config uuid 16 | owner kind 1 | owner uuid 16
//! WrappedDataKey  'D' 01|02 | config uuid 16 | generation u32 | owner kind 1 | owner uuid 16 |
//!                 alg 1 | nonce 12 | ciphertext 32 | tag 16 | tag-length 1 | key tag
//!                 'D' 03    | the same                                  ... | key length 1
//! owner           0 + nil uuid (the cluster) | 1 + SVM uuid
//! ```

use uuid::Uuid;

use super::fields::{Reader, V1, V2, V3};
use crate::crypto::{NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::ids::{DataKeyId, KeyOwner, KeyTag};
use crate::layout;
use crate::secret::KEY_LEN;

/// Writes `owner` as its kind byte and uuid (nil for the cluster).
fn encode_owner(owner: KeyOwner, out: &mut Vec<u8>) {
    match owner {
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

/// Reads an owner written by [`encode_owner`].
fn decode_owner(r: &mut Reader<'_>) -> Result<KeyOwner> {
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
        encode_owner(self.owner, &mut out);
        out
    }

    /// Decodes a location read from the store.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "key location");
        let config = r.uuid()?;
        let owner = decode_owner(&mut r)?;
        r.finish()?;
        Ok(KeyLocation { config, owner })
    }

    /// The store key of the record.
    pub fn record_key(&self, id: &DataKeyId) -> Vec<u8> {
        layout::record(self.config, self.owner, id)
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
        encode_owner(self.owner, &mut out);
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
        let owner = decode_owner(&mut r)?;
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
