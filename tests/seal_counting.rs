//! The seal count of a KEK generation never under-counts, even when creates are retried: a
//! reopened engine reports at least as many seals as were durably made (the random-nonce limit
//! of AES-GCM depends on it).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::hooked::{Call, Hooked};
use common::{create, engine_over, secret_body};
use ekm::core::{KeyOwner, KeyTag, Store, StoreError, Write};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;

/// Answers `Conflict` to the next `left` commits that write a seal counter (`x/...`), as if a
/// rekey had switched generations at that moment.
fn conflict_on_seal_writes(inner: Arc<dyn Store>, left: Arc<AtomicUsize>) -> Hooked {
    Hooked::new("conflict-on-seal-writes", inner, move |call| match call {
        Call::Commit(txn)
            if txn
                .writes
                .iter()
                .any(|w| matches!(w, Write::Put(k, _) if k.starts_with(b"x/")))
                && left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok() =>
        {
            Err(StoreError::Conflict(0))
        }
        _ => Ok(()),
    })
}

#[test]
fn a_retried_create_does_not_leave_the_stored_count_behind() {
    let dir = tempfile::tempdir().unwrap();
    let inner = ekm::store::open(StoreKind::Redb, &dir.path().join("store")).unwrap();
    let left = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(conflict_on_seal_writes(inner.clone(), left.clone()));
    let fake = Arc::new(FakeBackend::open(&dir.path().join("fake-vault.json")).unwrap());
    let pk = dir.path().join("protection.key");
    let engine = engine_over(store.clone(), fake.clone(), &pk, 64);
    let cfg = create(&engine, &secret_body(None, "s3cret")).unwrap();
    // Every create that writes the counter meets one conflict first, and is retried.
    let creates = 300;
    for i in 0..creates {
        left.store(1, Ordering::SeqCst);
        engine
            .create_data_key(KeyOwner::Cluster, KeyTag::parse(&format!("v{i}")).unwrap())
            .unwrap();
    }
    engine.shutdown();
    drop(engine);
    let reopened = engine_over(inner, fake, &pk, 64);
    let usage = reopened.kek_usage(cfg.uuid).unwrap();
    let seals = usage.iter().map(|u| u.seals).sum::<u64>();
    assert!(
        seals >= creates,
        "a reopened engine counts {seals} seals after {creates} durable creates"
    );
}

/// Two processes sharing one store (as ekmd processes on etcd do), each the writer for its own
/// node: the generation's count is the sum of both, not whichever process wrote last.
#[test]
fn processes_sharing_a_store_do_not_overwrite_each_others_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = ekm::store::open(StoreKind::Redb, &dir.path().join("store")).unwrap();
    let fake = Arc::new(FakeBackend::open(&dir.path().join("fake-vault.json")).unwrap());
    let pk_file = dir.path().join("protection.key");
    let open_as = |node| {
        let pk = ekm::store::protection_key::load_or_create(&pk_file).unwrap();
        ekm::core::Engine::open(
            ekm::core::EngineOptions::new(store.clone(), fake.clone(), common::topology(), pk)
                .local_node(node)
                .managed_nodes(vec![node]),
        )
        .unwrap()
    };
    let a = open_as(common::NODE1);
    let b = open_as(common::NODE2);
    let cfg = create(&a, &secret_body(None, "s3cret")).unwrap();
    let per_process = 1_000;
    for i in 0..per_process {
        for (name, e) in [("a", &a), ("b", &b)] {
            e.create_data_key(
                KeyOwner::Cluster,
                KeyTag::parse(&format!("{name}{i}")).unwrap(),
            )
            .unwrap();
        }
    }
    for e in [&a, &b] {
        let seals = e.kek_usage(cfg.uuid).unwrap()[0].seals;
        assert!(
            seals >= 2 * per_process,
            "{seals} seals counted after {} creates by two processes",
            2 * per_process
        );
    }
}
