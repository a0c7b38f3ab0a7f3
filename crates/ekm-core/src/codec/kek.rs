//! KEK records: a KEK wrapped by the external key manager, with everything needed to unwrap it
//! again, authenticated under the protection key ([`WrappedKek`], stored at `k/...` and, as the
//! nodes' copies, in their availability records).
//!
//! Owns: the byte layout of the record and its mac.
//! Must never: hand out a record whose mac does not verify (but through
//! [`WrappedKek::decode_unauthenticated`], for inspection only); read a version 1 record.
//!
//! ```text
//! 'K' 02 | config uuid 16 | generation u32 | state 1 | created u64 | backend str8 |
//!          key id bytes16 | algorithm str8 | wrapped bytes16 | check bytes16 | mac bytes16
//!          └──────────────── mac AAD: "ekm-kek-v2\0" | every byte before the mac ────────┘
//! ```

use uuid::Uuid;

use super::fields::{Reader, V1, V2, put_bytes16, put_str8};
use crate::crypto::ProtectionKey;
use crate::error::{Error, Result};
use crate::provider::ExternalKey;

/// State of a KEK generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KekState {
    /// New data keys are wrapped by it.
    Active,
    /// Being replaced by rekey-internal; still opens keys not yet rewrapped.
    Retiring,
}

const KEK_TAG: u8 = b'K';

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
    pub key_id: ExternalKey,
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
            .and_then(|s| ExternalKey::parse(s).ok())
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

    #[test]
    fn kek_roundtrip() {
        let k = WrappedKek {
            config: Uuid::new_v4(),
            generation: 1,
            state: KekState::Active,
            created: 1_700_000_000,
            backend: "fake".into(),
            key_id: ExternalKey::parse(
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
        // An AWS KMS key is recorded as exactly as an AKV one (same layout, its own text form).
        let mut aws = k.clone();
        aws.key_id = ExternalKey::Aws(
            crate::provider::AwsKeyId::new("eu-west-1", "alias/ekm-root").unwrap(),
        );
        let bytes = aws.encode(&pk).unwrap();
        assert_eq!(WrappedKek::decode(&bytes, &pk).unwrap(), aws);
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
            key_id: ExternalKey::parse(
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
}
