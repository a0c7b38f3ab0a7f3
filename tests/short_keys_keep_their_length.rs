//! A data key shorter than 32 bytes (a KMIP AES-128/192 key, Secret Data) keeps its length
//! and its bytes through every rewrap: rekey-internal and migrate seal it again in record
//! format 3 with the same length, and it reads back the same, from the key table and from the
//! store (a reopened engine).

mod common;

use std::time::Duration;

use common::*;
use ekm::core::codec::KeyLocation;
use ekm::core::{DataKeyId, DataKeyMaterial, Engine, JobState, KeyOwner, KeyTag, Store, layout};
use ekm::store::StoreKind;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// The key's record as stored: its format version byte and (format 3) its length byte.
fn record_version_and_len(store: &dyn Store, id: &DataKeyId) -> (u8, u8) {
    let location = store.get(&layout::data_key(id)).unwrap().unwrap();
    let key = KeyLocation::decode(&location).unwrap().record_key(id);
    let bytes = store.get(&key).unwrap().unwrap();
    (bytes[1], *bytes.last().unwrap())
}

/// Every key reads back as its bytes, with its length, in `config` at `generation`.
fn assert_kept(
    e: &Engine,
    store: &dyn Store,
    keys: &[(DataKeyId, Vec<u8>)],
    config: Uuid,
    generation: u32,
    after: &str,
) {
    for (id, bytes) in keys {
        let served = e.read_served_key(id).unwrap();
        assert_eq!(served.expose_secret(), bytes.as_slice(), "{after}");
        let info = e.data_key_info(id).unwrap();
        assert_eq!(
            (info.key_len, info.config_uuid, info.kek_generation),
            (bytes.len(), config, generation),
            "{after}"
        );
        let (version, last) = record_version_and_len(store, id);
        if bytes.len() == 32 {
            assert_eq!(version, 2, "{after}: a 32-byte key stays in format 2");
        } else {
            assert_eq!(
                (version, usize::from(last)),
                (3, bytes.len()),
                "{after}: format 3, with its length"
            );
        }
    }
}

#[test]
fn a_short_key_keeps_its_length_and_bytes_through_rekey_internal_and_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), StoreKind::Redb);
    let (e, _fake, store) = dd.open();
    let cluster = create(&e, &secret_body(None, "s")).unwrap().uuid;
    // VS0's keys, held by the cluster's key manager until VS0 has its own.
    let owner = KeyOwner::Svm(VS0);
    let mut keys = Vec::new();
    for bytes in [
        (0u8..16).collect::<Vec<u8>>(),
        vec![0x5A; 24],
        b"pw".to_vec(),
    ] {
        let id = e
            .import_data_key_with_attributes(
                owner,
                KeyTag::parse("short").unwrap(),
                DataKeyMaterial::from_bytes(&bytes).unwrap(),
                None,
            )
            .unwrap();
        keys.push((id, bytes));
    }
    let full = e.create_data_key(owner, KeyTag::default()).unwrap();
    keys.push((
        full,
        e.read_data_key(&full).unwrap().expose_secret().to_vec(),
    ));
    assert_kept(&e, &*store, &keys, cluster, 1, "after import");

    let job = e.start_rekey_internal(cluster).unwrap();
    let job = e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    assert_kept(&e, &*store, &keys, cluster, 2, "after rekey-internal");

    let vs0 = create(&e, &secret_body(Some("vs0"), "s")).unwrap().uuid;
    let job = e.start_migrate(cluster, vs0).unwrap();
    let job = e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    assert_kept(&e, &*store, &keys, vs0, 1, "after migrate");

    let job = e.start_rekey_internal(vs0).unwrap();
    let job = e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    assert_kept(&e, &*store, &keys, vs0, 2, "after the SVM's rekey-internal");

    // From the store, not the key table: a fresh engine over the same directory.
    e.shutdown();
    drop(e);
    drop(store);
    let (e, _fake, store) = dd.open();
    assert_kept(&e, &*store, &keys, vs0, 2, "after reopening");
}
