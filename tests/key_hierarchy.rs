//! The key hierarchy: lazy KEK per scope wrapped once by the backend, data keys durable and
//! bound to their identity, reads after reopen with one unwrap, listing without material.

mod common;

use common::*;
use ekm::core::codec::{WrappedDataKey, WrappedKek};
use ekm::core::layout;
use ekm::core::{ErrorKind, KeyOwner, KeyTag, Transaction};
use ekm::fake::Fault;
use ekm::store::StoreKind;

#[test]
fn kek_is_created_lazily_and_wrapped_once() {
    let dir = tempfile::tempdir().unwrap();
    let (e, fake, store) = DataDir::new(dir.path(), StoreKind::Redb).open();
    let cfg = create(&e, &secret_body(None, "s")).unwrap();
    assert_eq!(fake.counters().wraps, 0, "no KEK before the first data key");
    assert!(
        store
            .scan(&layout::kek_prefix(cfg.uuid), None, 10)
            .unwrap()
            .is_empty()
    );
    for i in 0..100 {
        e.create_data_key(
            KeyOwner::Cluster,
            KeyTag::parse(&format!("vol{i}")).unwrap(),
        )
        .unwrap();
    }
    assert_eq!(
        fake.counters().wraps,
        1,
        "one external wrap per KEK, not per data key"
    );
    let keks = store.scan(&layout::kek_prefix(cfg.uuid), None, 10).unwrap();
    assert_eq!(keks.len(), 1);
    let kek = WrappedKek::decode_unauthenticated(&keks[0].1).unwrap();
    assert_eq!(kek.generation, 1);
    assert_eq!(kek.backend, "fake");
    assert_eq!(
        kek.key_id.as_str(),
        KEY_ID,
        "the blob records the exact key version"
    );
    assert_eq!(e.list_data_keys(cfg.uuid).unwrap().len(), 100);
}

#[test]
fn keys_read_back_after_reopen_with_one_unwrap_per_scope() {
    for kind in [StoreKind::Redb, StoreKind::Sled] {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path(), kind);
        let mut written = Vec::new();
        {
            let (e, _f, _s) = dd.open();
            create(&e, &secret_body(None, "s")).unwrap();
            create(&e, &secret_body(Some("vs0"), "s")).unwrap();
            for owner in [KeyOwner::Cluster, KeyOwner::Svm(VS0), KeyOwner::Svm(VS1)] {
                for _ in 0..20 {
                    let id = e.create_data_key(owner, KeyTag::default()).unwrap();
                    written.push((id, e.read_data_key(&id).unwrap()));
                }
            }
        }
        let (e, fake, _s) = dd.open();
        for (id, material) in &written {
            assert_eq!(&e.read_data_key(id).unwrap(), material);
        }
        // VS1 has no configuration of its own: its keys sit under the cluster's KEK.
        assert_eq!(
            fake.counters().unwraps,
            2,
            "{kind:?}: one unwrap per scope after reopen"
        );
    }
}

#[test]
fn svm_without_own_config_uses_the_cluster_kek_and_lists_owner() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _f, _s) = DataDir::new(dir.path(), StoreKind::Redb).open();
    let cluster = create(&e, &secret_body(None, "s")).unwrap();
    let id = e
        .create_data_key(KeyOwner::Svm(VS1), KeyTag::parse("v").unwrap())
        .unwrap();
    let listed = e.list_data_keys(cluster.uuid).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key_id, id);
    assert_eq!(listed[0].svm_uuid, Some(VS1));
    assert_eq!(listed[0].kek_generation, 1);
    let json = serde_json::to_string(&listed).unwrap();
    let material = hex::encode(e.read_data_key(&id).unwrap().expose_secret());
    assert!(!json.contains(&material));
}

#[test]
fn a_blob_moved_to_another_id_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), StoreKind::Redb);
    let (a, b);
    {
        let (e, _f, store) = dd.open();
        create(&e, &secret_body(None, "s")).unwrap();
        a = e
            .create_data_key(KeyOwner::Cluster, KeyTag::default())
            .unwrap();
        b = e
            .create_data_key(KeyOwner::Cluster, KeyTag::default())
            .unwrap();
        // An attacker with write access to the store swaps a's blob into b's place.
        let cfg = e.list_configs().unwrap()[0].uuid;
        let blob_a = store
            .get(&layout::record(cfg, KeyOwner::Cluster, &a))
            .unwrap()
            .unwrap();
        let mut t = Transaction::new();
        t.put(layout::record(cfg, KeyOwner::Cluster, &b), blob_a);
        store.commit(t).unwrap();
    }
    let raw = {
        let (e, _f, store) = dd.open();
        assert!(e.read_data_key(&a).is_ok());
        let err = e.read_data_key(&b).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptRecord, "{err}");
        // A truncated record is reported, not a panic.
        let mut t = Transaction::new();
        let cfg = e.list_configs().unwrap()[0].uuid;
        let rkey = layout::record(cfg, KeyOwner::Cluster, &a);
        let raw = store.get(&rkey).unwrap().unwrap();
        t.put(rkey, raw[..40].to_vec());
        store.commit(t).unwrap();
        raw
    };
    let (e, _f, _s) = dd.open();
    assert_eq!(
        e.read_data_key(&a).unwrap_err().kind(),
        ErrorKind::CorruptRecord
    );
    assert!(WrappedDataKey::decode(&raw).is_ok());
}

#[test]
fn deleted_keys_are_gone_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), StoreKind::Redb);
    let (e, _f, _s) = dd.open();
    let cfg = create(&e, &secret_body(None, "s")).unwrap();
    let id = e
        .create_data_key(KeyOwner::Cluster, KeyTag::default())
        .unwrap();
    e.read_data_key(&id).unwrap();
    e.delete_data_key(&id).unwrap();
    assert_eq!(e.read_data_key(&id).unwrap_err().code(), 4);
    assert_eq!(e.delete_data_key(&id).unwrap_err().code(), 4);
    assert!(e.list_data_keys(cfg.uuid).unwrap().is_empty());
    drop((e, _f, _s));
    let (e, _f, _s) = dd.open();
    assert_eq!(e.read_data_key(&id).unwrap_err().code(), 4);
}

#[test]
fn akv_down_at_3am_the_engine_opens_and_says_why_keys_are_locked() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), StoreKind::Redb);
    let id = {
        let (e, _f, _s) = dd.open();
        create(&e, &secret_body(None, "s")).unwrap();
        e.create_data_key(KeyOwner::Cluster, KeyTag::default())
            .unwrap()
    };
    let (e, fake, _s) = dd.open();
    fake.set_fault(Some(Fault::Unreachable));
    // Management reads still work without AKV.
    assert_eq!(e.list_configs().unwrap().len(), 1);
    let err = e.read_data_key(&id).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KekUnavailable);
    assert!(err.message().contains("unreachable"), "{err}");
    assert!(err.kind().is_retryable());
    // When AKV is back, the same read succeeds with no restart.
    fake.set_fault(None);
    e.read_data_key(&id).unwrap();
    drop((e, fake, _s));
    // A backend that returns the wrong key is caught, not used.
    let (e2, fake2, _s) = dd.open();
    fake2.fail_next(None, Fault::WrongKey, 1);
    assert_eq!(
        e2.read_data_key(&id).unwrap_err().kind(),
        ErrorKind::KekUnavailable
    );
    fake2.fail_next(None, Fault::WrongKek, 1);
    let err = e2.read_data_key(&id).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KekUnavailable);
    assert!(err.message().contains("different key"), "{err}");
    e2.read_data_key(&id).unwrap();
}

#[test]
fn failed_kek_wrap_leaves_no_key_and_no_kek() {
    let dir = tempfile::tempdir().unwrap();
    let (e, fake, store) = DataDir::new(dir.path(), StoreKind::Redb).open();
    let cfg = create(&e, &secret_body(None, "s")).unwrap();
    let before = dump(&*store);
    fake.fail_next(
        Some(ekm::fake::Op::Wrap),
        Fault::Throttled {
            retry_after: std::time::Duration::from_secs(2),
        },
        1,
    );
    let err = e
        .create_data_key(KeyOwner::Cluster, KeyTag::default())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AkvUnavailable);
    assert_eq!(dump(&*store), before);
    e.create_data_key(KeyOwner::Cluster, KeyTag::default())
        .unwrap();
    assert_eq!(e.list_data_keys(cfg.uuid).unwrap().len(), 1);
}

#[test]
fn seals_are_counted_per_generation_and_rekey_is_advised_near_the_nonce_limit() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), StoreKind::Redb);
    let cfg = {
        let (e, _f, _s) = dd.open();
        let cfg = create(&e, &secret_body(None, "s")).unwrap().uuid;
        e.create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); 40])
            .unwrap();
        e.create_data_key(KeyOwner::Cluster, KeyTag::default())
            .unwrap();
        cfg
    };
    // The count is durable: a restarted process sees it. Counts are persisted at most 64 seals
    // apart, so a process assumes up to 64 more than it finds when it opens, and writes that
    // at its first seal: a reopened engine reports at most 2 x 64 more (over-counting is the
    // safe side).
    let (e, _f, _s) = dd.open();
    let usage = e.kek_usage(cfg).unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].generation, usage[0].rekey_advised), (1, false));
    assert!(
        (41..=41 + 2 * 64).contains(&usage[0].seals),
        "{}",
        usage[0].seals
    );
    e.set_seal_count(cfg, 1, usage[0].seal_limit).unwrap();
    assert!(e.kek_usage(cfg).unwrap()[0].rekey_advised);
    let job = e.start_rekey_internal(cfg).unwrap();
    let job = e
        .wait_job(job.uuid, std::time::Duration::from_secs(30))
        .unwrap();
    assert_eq!(job.state, ekm::core::JobState::Success);
    let usage = e.kek_usage(cfg).unwrap();
    assert_eq!(usage.len(), 1, "the old generation is retired");
    assert_eq!((usage[0].generation, usage[0].rekey_advised), (2, false));
    assert!(
        (41..=41 + 64).contains(&usage[0].seals),
        "{}",
        usage[0].seals
    );
}

#[test]
fn key_tags_are_bound_to_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _fake, store) = DataDir::new(dir.path(), StoreKind::Redb).open();
    let cfg = create(&e, &secret_body(None, "s")).unwrap();
    let a = e
        .create_data_key(KeyOwner::Cluster, KeyTag::parse("vol-a").unwrap())
        .unwrap();
    let b = e
        .create_data_key(KeyOwner::Cluster, KeyTag::parse("vol-b").unwrap())
        .unwrap();
    // Swap the tags in the stored records, as a database writer relabelling volumes would.
    let key_a = layout::record(cfg.uuid, KeyOwner::Cluster, &a);
    let key_b = layout::record(cfg.uuid, KeyOwner::Cluster, &b);
    let mut rec_a = WrappedDataKey::decode(&store.get(&key_a).unwrap().unwrap()).unwrap();
    let mut rec_b = WrappedDataKey::decode(&store.get(&key_b).unwrap().unwrap()).unwrap();
    std::mem::swap(&mut rec_a.key_tag, &mut rec_b.key_tag);
    let mut txn = Transaction::new();
    txn.put(key_a, rec_a.encode()).put(key_b, rec_b.encode());
    store.commit(txn).unwrap();
    e.reset_node(NODE1).unwrap();
    for id in [a, b] {
        let err = e.read_data_key(&id).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CorruptRecord, "{err}");
    }
}
