//! In a cluster store a delete first marks the configuration "being deleted" (so that creates
//! in other processes see it). A delete that then does not happen — its last commit fails —
//! must not leave the mark behind: every create of that scope would be refused for good.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::hooked::{Call, Hooked};
use common::{create, engine_over, secret_body};
use ekm::core::{ErrorKind, KeyOwner, KeyTag, Store, StoreError, Write};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;

/// A store that says it is shared (as etcd does) and fails, while `fail_deletes` is set, every
/// commit that deletes a configuration record.
fn shared_failing_deletes(inner: Arc<dyn Store>, fail_deletes: Arc<AtomicBool>) -> Hooked {
    Hooked::new("shared-failing-deletes", inner, move |call| match call {
        Call::Commit(txn)
            if fail_deletes.load(Ordering::SeqCst)
                && txn
                    .writes
                    .iter()
                    .any(|w| matches!(w, Write::Delete(k) if k.starts_with(b"c/"))) =>
        {
            Err(StoreError::Io(
                "injected: the delete's commit failed".into(),
            ))
        }
        _ => Ok(()),
    })
    .shared()
}

#[test]
fn a_delete_whose_last_commit_fails_leaves_creates_working() {
    let dir = tempfile::tempdir().unwrap();
    let inner = ekm::store::open(StoreKind::Redb, &dir.path().join("store")).unwrap();
    let fail_deletes = Arc::new(AtomicBool::new(true));
    let store = Arc::new(shared_failing_deletes(inner, fail_deletes.clone()));
    let fake = Arc::new(FakeBackend::open(&dir.path().join("fake-vault.json")).unwrap());
    let engine = engine_over(store, fake, &dir.path().join("protection.key"), 64);
    let cfg = create(&engine, &secret_body(None, "s3cret")).unwrap();

    let e = engine
        .delete_config(cfg.uuid)
        .expect_err("the commit fails");
    assert_eq!(e.kind(), ErrorKind::StoreFailed, "{e}");
    engine
        .create_data_key(KeyOwner::Cluster, KeyTag::parse("after").unwrap())
        .expect("a delete that did not happen leaves no mark refusing creates");

    // And a delete that does happen still works (keys first).
    fail_deletes.store(false, Ordering::SeqCst);
    let e = engine.delete_config(cfg.uuid).expect_err("a key exists");
    assert_eq!(e.kind(), ErrorKind::KeysExist, "{e}");
    engine
        .create_data_key(KeyOwner::Cluster, KeyTag::parse("after2").unwrap())
        .expect("refused for keys: creates work");
}
