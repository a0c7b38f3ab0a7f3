//! The key hierarchy: every wrap, unwrap, seal and open of it, and what each one's AAD binds.
//!
//! ```text
//! external key (AKV RSA key; key_id URL *with* version)          ── outside ekm
//!   │  wrap_kek / unwrap_kek: the backend (RSA-OAEP-256 for AKV), one call per KEK operation;
//!   │  unwrap uses exactly the key version recorded in the WrappedKek, never "latest"
//!   ▼
//! KEK: 256-bit AES, one per configuration and generation (g1, g2, ...)
//!   │  check value: AES-256-GCM of "ekm-kek-check-v1" under the KEK itself,
//!   │     AAD = "ekm-kek-check-v1" | config uuid | generation
//!   │     (proves that what a backend unwrapped is this KEK, not some other 32 bytes)
//!   │  seal_data_key / open_data_key: AES-256-GCM, random 96-bit nonce from the OS RNG,
//!   │     AAD (record format 2) = "ekm-dk-v2" | config uuid | key id | generation |
//!   │                             owner kind | owner uuid | tag length | key tag
//!   │     (format 3, a key shorter than 32 bytes: "ekm-dk-v3", the same, then | key length;
//!   │      format 1, read only: "ekm-dk-v1" and no tag)
//!   ▼
//! data keys: 256-bit, 64-hex key id (32 random bytes), key tag, owner (cluster or one SVM);
//!   a KMIP object of 1 to 31 bytes is the first bytes of its data key, random filler after
//! ```
//!
//! Beside it, not part of it: configuration secrets and the authentication of configuration
//! records are sealed under the node-local protection key (`stored/mod.rs`).
//!
//! Owns: the cryptographic steps of the hierarchy. The engine decides when they happen and
//! what is stored; this module decides how, and what binds to what.
//! Must never: return key material that did not authenticate; hand the backend anything but a
//! KEK; open a blob under an identity other than the one it was sealed for.

use uuid::Uuid;

use crate::backend::{Backend, BackendCall, provider_failed, transient_if};
use crate::codec::{DataKeyFormat, KekState, WrappedDataKey, WrappedKek};
use crate::crypto::{Kek, NonceSource};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{DataKeyId, KeyOwner, KeyTag};
use crate::provider::ExternalKey;
use crate::secret::{DataKeyMaterial, KEY_LEN, KeyMaterial};

/// The constant sealed under every KEK as its check value.
pub const KEK_CHECK_PLAINTEXT: &[u8] = b"ekm-kek-check-v1";

/// The AAD of a KEK's check value: configuration and generation.
pub fn kek_check_aad(config: Uuid, generation: u32) -> [u8; 36] {
    let mut aad = [0u8; 36];
    aad[..16].copy_from_slice(KEK_CHECK_PLAINTEXT);
    aad[16..32].copy_from_slice(config.as_bytes());
    aad[32..].copy_from_slice(&generation.to_be_bytes());
    aad
}

/// Longest data key AAD: the fixed part, the tag length, the longest tag and (format 3) the
/// key length.
#[cfg(test)]
const DATA_KEY_AAD_MAX: usize = 78 + 1 + crate::ids::MAX_KEY_TAG_LEN + 1;

/// Key tags up to this length are bound from a buffer on the stack (the read path builds one
/// AAD per read); longer ones from the heap.
const INLINE_TAG: usize = 64;

/// The AAD of a data key.
pub enum DataKeyAad {
    /// The fixed part, a short tag and (format 3) the key length, on the stack.
    Inline([u8; 78 + 1 + INLINE_TAG + 1], usize),
    /// With a long tag.
    Heap(Vec<u8>),
}

impl DataKeyAad {
    /// The AAD bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            DataKeyAad::Inline(buf, len) => &buf[..*len],
            DataKeyAad::Heap(v) => v,
        }
    }
}

/// The AAD that binds a data key's ciphertext to its identity: configuration, key id,
/// generation, owner, (from format 2) key tag and (format 3) key length. Moving a blob to
/// another key id, scope, generation or SVM, giving it another key's tag, or changing how many
/// of its bytes are served, makes it fail to open. `key_len` is bound in format 3 only.
pub fn data_key_aad(
    format: DataKeyFormat,
    config: Uuid,
    id: &DataKeyId,
    generation: u32,
    owner: KeyOwner,
    key_tag: &KeyTag,
    key_len: u8,
) -> DataKeyAad {
    let mut fixed = [0u8; 78 + 1 + INLINE_TAG + 1];
    fixed[..9].copy_from_slice(match format {
        DataKeyFormat::V1 => b"ekm-dk-v1",
        DataKeyFormat::V2 => b"ekm-dk-v2",
        DataKeyFormat::V3 => b"ekm-dk-v3",
    });
    fixed[9..25].copy_from_slice(config.as_bytes());
    fixed[25..57].copy_from_slice(id.as_bytes());
    fixed[57..61].copy_from_slice(&generation.to_be_bytes());
    match owner {
        KeyOwner::Cluster => fixed[61] = 0,
        KeyOwner::Svm(u) => {
            fixed[61] = 1;
            fixed[62..78].copy_from_slice(u.as_bytes());
        }
    }
    if format == DataKeyFormat::V1 {
        return DataKeyAad::Inline(fixed, 78);
    }
    let tag = key_tag.as_str().as_bytes();
    // At most MAX_KEY_TAG_LEN (255) bytes by construction: the length fits a u8.
    fixed[78] = tag.len() as u8;
    let end = 79 + tag.len();
    let with_len = format == DataKeyFormat::V3;
    if tag.len() <= INLINE_TAG {
        fixed[79..end].copy_from_slice(tag);
        if with_len {
            fixed[end] = key_len;
            return DataKeyAad::Inline(fixed, end + 1);
        }
        return DataKeyAad::Inline(fixed, end);
    }
    let mut v = Vec::with_capacity(end + 1);
    v.extend_from_slice(&fixed[..79]);
    v.extend_from_slice(tag);
    if with_len {
        v.push(key_len);
    }
    DataKeyAad::Heap(v)
}

/// Seals a data key under `kek`, with a nonce from `nonces`: a 32-byte key in record format 2,
/// a shorter one in format 3 (its length recorded and bound).
pub fn seal_data_key(
    kek: &Kek,
    config: Uuid,
    id: &DataKeyId,
    owner: KeyOwner,
    material: &DataKeyMaterial,
    key_tag: KeyTag,
    nonces: &mut NonceSource,
) -> Result<WrappedDataKey> {
    let generation = kek.generation();
    let format = if material.len() == KEY_LEN {
        DataKeyFormat::V2
    } else {
        DataKeyFormat::V3
    };
    // 1 to 32 by construction of DataKeyMaterial: fits a u8.
    let key_len = material.len() as u8;
    let aad = data_key_aad(format, config, id, generation, owner, &key_tag, key_len);
    let mut ciphertext = *material.material().expose_secret();
    let nonce = nonces.next_nonce();
    let tag = kek
        .aead()
        .seal_in_place_with(nonce, aad.as_bytes(), &mut ciphertext)
        .map_err(|_| Error::corrupt("Sealing a data key failed."))?;
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

/// Opens a wrapped data key: its 32 bytes and how many of them are the key (32 in formats 1
/// and 2, the authenticated length in format 3). A failure means the record or the KEK is not
/// what it claims.
pub fn open_data_key(id: &DataKeyId, r: &WrappedDataKey, kek: &Kek) -> Result<DataKeyMaterial> {
    let aad = data_key_aad(
        r.format,
        r.config,
        id,
        r.generation,
        r.owner,
        &r.key_tag,
        r.key_len,
    );
    let mut buf = r.ciphertext;
    kek.aead()
        .open_in_place(&r.nonce, aad.as_bytes(), &mut buf, &r.tag)
        .map_err(|_| {
            Error::corrupt(&format!(
                "Data key {id} does not authenticate under its KEK (generation {}).",
                r.generation
            ))
        })?;
    let material = KeyMaterial::from_array(buf);
    zeroize::Zeroize::zeroize(&mut buf);
    let len = match r.format {
        DataKeyFormat::V1 | DataKeyFormat::V2 => KEY_LEN,
        DataKeyFormat::V3 => r.key_len(),
    };
    DataKeyMaterial::prefix(material, len).ok_or_else(|| {
        Error::corrupt(&format!(
            "Data key {id} has a length of {len} bytes; keys are 1 to 32."
        ))
    })
}

/// Wraps `kek` with the external key `key_id` (one backend call) and builds its
/// self-describing record with the check value. `created` is unix seconds.
pub fn wrap_kek(
    backend: &dyn Backend,
    call: &BackendCall<'_>,
    config: Uuid,
    key_id: ExternalKey,
    kek: &Kek,
    state: KekState,
    created: u64,
) -> Result<WrappedKek> {
    let wrapped = backend
        .wrap_kek(call, &key_id, kek.generation(), kek.material())
        .map_err(|e| provider_failed(key_id.provider(), &e))?;
    let check = kek
        .aead()
        .seal_vec(
            &kek_check_aad(config, kek.generation()),
            KEK_CHECK_PLAINTEXT,
        )
        .map_err(|_| Error::corrupt("Sealing the KEK check value failed."))?;
    Ok(WrappedKek {
        config,
        generation: kek.generation(),
        state,
        created,
        backend: backend.kind(key_id.provider()).to_owned(),
        algorithm: backend.algorithm(key_id.provider()).to_owned(),
        key_id,
        wrapped,
        check,
    })
}

/// Unwraps `wrapped` (one backend call, as the node in `call`) and proves it with its check
/// value: a KEK that is not the one wrapped is refused rather than returned. `node_name` is
/// for messages.
pub fn unwrap_kek(
    backend: &dyn Backend,
    call: &BackendCall<'_>,
    wrapped: &WrappedKek,
    node_name: &str,
) -> Result<Kek> {
    let (config, generation) = (wrapped.config, wrapped.generation);
    let material = backend
        .unwrap_kek(call, &wrapped.key_id, generation, &wrapped.wrapped)
        .map_err(|e| {
            let err = Error::new(ErrorKind::KekUnavailable).with_detail(format!(
                "Unlocking generation {generation} of configuration {config} on node {node_name} needs {}, which failed: {e}.",
                wrapped.key_id.provider()
            ));
            transient_if(err, &e)
        })?;
    let material = KeyMaterial::from_slice(material.expose_secret()).ok_or_else(|| {
        Error::new(ErrorKind::KekUnavailable).with_detail(format!(
            "The backend returned {} bytes for a 32-byte KEK.",
            material.len()
        ))
    })?;
    let kek = Kek::from_material(material, generation);
    let check = kek
        .aead()
        .open_vec(&kek_check_aad(config, generation), &wrapped.check);
    if !check.is_ok_and(|c| c.as_slice() == KEK_CHECK_PLAINTEXT) {
        return Err(Error::new(ErrorKind::KekUnavailable).with_detail(format!(
            "The backend unwrapped generation {generation} of configuration {config} to a different key; the vault key may have been replaced."
        )));
    }
    Ok(kek)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_tag_is_bound_from_format_2_on() {
        let (c, id, o) = (Uuid::new_v4(), DataKeyId::random(), KeyOwner::Cluster);
        let a = KeyTag::parse("vol1").unwrap();
        let b = KeyTag::parse("vol2").unwrap();
        let aad = |f, t| data_key_aad(f, c, &id, 1, o, t, 32).as_bytes().to_vec();
        assert_ne!(aad(DataKeyFormat::V2, &a), aad(DataKeyFormat::V2, &b));
        assert_eq!(aad(DataKeyFormat::V1, &a), aad(DataKeyFormat::V1, &b));
        let longest = KeyTag::parse(&"x".repeat(crate::ids::MAX_KEY_TAG_LEN)).unwrap();
        assert_eq!(
            data_key_aad(DataKeyFormat::V3, c, &id, 1, o, &longest, 16)
                .as_bytes()
                .len(),
            DATA_KEY_AAD_MAX
        );
    }

    #[test]
    fn aad_differs_by_identity() {
        let c = Uuid::new_v4();
        let id = DataKeyId::random();
        let t = KeyTag::parse("vol1").unwrap();
        let aad = |c, g, o| {
            data_key_aad(DataKeyFormat::V2, c, &id, g, o, &t, 32)
                .as_bytes()
                .to_vec()
        };
        let a = aad(c, 1, KeyOwner::Cluster);
        assert_ne!(a, aad(c, 2, KeyOwner::Cluster));
        assert_ne!(a, aad(c, 1, KeyOwner::Svm(Uuid::new_v4())));
        assert_ne!(a, aad(Uuid::new_v4(), 1, KeyOwner::Cluster));
    }

    #[test]
    fn a_data_key_opens_only_under_its_identity() {
        let kek = Kek::generate(1);
        let (c, id) = (Uuid::new_v4(), DataKeyId::random());
        let m = DataKeyMaterial::full(KeyMaterial::random());
        let tag = KeyTag::parse("vol1").unwrap();
        let mut nonces = NonceSource::default();
        let r = seal_data_key(&kek, c, &id, KeyOwner::Cluster, &m, tag, &mut nonces).unwrap();
        assert_eq!(
            open_data_key(&id, &r, &kek).unwrap().expose_secret(),
            m.expose_secret()
        );
        assert!(open_data_key(&DataKeyId::random(), &r, &kek).is_err());
        let mut moved = r.clone();
        moved.owner = KeyOwner::Svm(Uuid::new_v4());
        assert!(open_data_key(&id, &moved, &kek).is_err());
        assert!(open_data_key(&id, &r, &Kek::generate(1)).is_err());
    }

    #[test]
    fn a_short_key_is_sealed_in_format_3_and_its_length_is_bound() {
        let kek = Kek::generate(1);
        let (c, id) = (Uuid::new_v4(), DataKeyId::random());
        let tag = KeyTag::parse("vol1").unwrap();
        let mut nonces = NonceSource::default();
        let seal = |m: &DataKeyMaterial, nonces: &mut NonceSource| {
            seal_data_key(&kek, c, &id, KeyOwner::Cluster, m, tag.clone(), nonces).unwrap()
        };
        let full = seal(&DataKeyMaterial::full(KeyMaterial::random()), &mut nonces);
        assert_eq!((full.format, full.key_len()), (DataKeyFormat::V2, 32));
        let short = DataKeyMaterial::from_bytes(&[9; 16]).unwrap();
        let r = seal(&short, &mut nonces);
        assert_eq!((r.format, r.key_len()), (DataKeyFormat::V3, 16));
        let opened = open_data_key(&id, &r, &kek).unwrap();
        assert_eq!(opened.expose_secret(), &[9; 16]);
        assert_eq!(opened, short, "the filler is kept too");
        // A record whose length was changed does not open: the length is in the AAD.
        for len in [15, 24, 32] {
            let mut grown = r.clone();
            grown.key_len = len;
            assert!(open_data_key(&id, &grown, &kek).is_err(), "{len}");
        }
        let mut as_v2 = r.clone();
        as_v2.format = DataKeyFormat::V2;
        assert!(open_data_key(&id, &as_v2, &kek).is_err());
        // Long tags (AAD on the heap) bind the length as well.
        let long = KeyTag::parse(&"t".repeat(200)).unwrap();
        let r = seal_data_key(&kek, c, &id, KeyOwner::Cluster, &short, long, &mut nonces).unwrap();
        assert_eq!(open_data_key(&id, &r, &kek).unwrap(), short);
        let mut grown = r;
        grown.key_len = 17;
        assert!(open_data_key(&id, &grown, &kek).is_err());
    }
}
