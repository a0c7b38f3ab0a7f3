//! The store's format marker (`meta/format`): a format 5 store (before the deletion marks of
//! format 6) opens and is marked 6, its keys all there; an unknown format is refused.

mod common;

use common::*;
use ekm::core::{KeyOwner, KeyTag, Transaction, layout};
use ekm::store::StoreKind;

/// Writes `v` as the format of the (closed) store of `dir`.
fn set_format(dir: &DataDir, v: &[u8]) {
    let store = ekm::store::open(StoreKind::Redb, &dir.path.join("store")).unwrap();
    let mut txn = Transaction::new();
    txn.put(layout::FORMAT, v);
    store.commit(txn).unwrap();
}

#[test]
fn a_format_5_store_opens_and_is_marked_6() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path(), StoreKind::Redb);
    let id = {
        let (e, _, _) = dir.open();
        create(&e, &secret_body(None, "s")).unwrap();
        let id = e
            .create_data_key(KeyOwner::Cluster, KeyTag::default())
            .unwrap();
        e.shutdown();
        id
    };
    set_format(&dir, b"5");
    let (e, _, store) = dir.open();
    assert_eq!(
        store.get(layout::FORMAT).unwrap().as_deref(),
        Some(&b"6"[..])
    );
    e.read_data_key(&id).expect("the key is there");
    e.delete_data_key(&id).expect("and deletes");
}

#[test]
fn an_unknown_format_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path(), StoreKind::Redb);
    dir.open().0.shutdown();
    for v in [&b"4"[..], b"7"] {
        set_format(&dir, v);
        let store = ekm::store::open(StoreKind::Redb, &tmp.path().join("store")).unwrap();
        let pk =
            ekm::store::protection_key::load_or_create(&tmp.path().join("protection.key")).unwrap();
        let fake = std::sync::Arc::new(ekm::fake::FakeBackend::in_memory());
        let err = ekm::core::Engine::open(ekm::core::EngineOptions::new(
            store.clone(),
            fake,
            topology(),
            pk,
        ))
        .map(drop)
        .expect_err("refused");
        assert!(err.message().contains("format version"), "{err}");
        assert_eq!(store.get(layout::FORMAT).unwrap().as_deref(), Some(v));
    }
}

/// On etcd, a format 5 store is not upgraded while a process of the earlier build is alive
/// (its liveness record lacks "marks_deletions"): it deletes records without the deletion
/// mark. Once it is gone, the store opens and is marked 6.
#[test]
fn a_format_5_cluster_is_not_upgraded_while_an_earlier_build_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = ekm_etcd::testing::EtcdCluster::start(3).expect("etcd cluster starts");
    let store: std::sync::Arc<dyn ekm::core::Store> =
        ekm_etcd::EtcdStore::open(ekm_etcd::EtcdOptions::new(cluster.endpoints())).unwrap();
    let mut txn = Transaction::new();
    txn.put(layout::FORMAT, b"5".to_vec());
    store.commit(txn).unwrap();
    let old = layout::liveness(uuid::Uuid::from_u128(77));
    store.put_ephemeral(&old, br#"{"v":1,"keks":[]}"#).unwrap();
    let pk =
        ekm::store::protection_key::load_or_create(&tmp.path().join("protection.key")).unwrap();
    let open = || {
        ekm::core::Engine::open(ekm::core::EngineOptions::new(
            store.clone(),
            std::sync::Arc::new(ekm::fake::FakeBackend::in_memory()),
            topology(),
            ekm::core::ProtectionKey::from_material(pk.material().clone()),
        ))
    };
    let err = open()
        .map(drop)
        .expect_err("refused while the earlier build runs");
    assert!(err.message().contains("earlier build"), "{err}");
    assert_eq!(
        store.get(layout::FORMAT).unwrap().as_deref(),
        Some(&b"5"[..])
    );
    let mut txn = Transaction::new();
    txn.delete(old);
    store.commit(txn).unwrap();
    let e = open().expect("opens once it is gone");
    assert_eq!(
        store.get(layout::FORMAT).unwrap().as_deref(),
        Some(&b"6"[..])
    );
    e.shutdown();
}
