//! In a cluster store a delete first marks the configuration "being deleted" (so that creates
//! in other processes see it). A delete that then does not happen — its last commit fails —
//! must not leave the mark behind: every create of that scope would be refused for good.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{create, engine_over, secret_body};
use ekm::core::store::Entry;
use ekm::core::{ErrorKind, KeyOwner, KeyTag, Store, StoreError, Transaction, Write};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;

/// A store that says it is shared (as etcd does) and fails, while `fail_deletes` is set, every
/// commit that deletes a configuration record.
#[derive(Debug)]
struct SharedFailingDeletes {
    inner: Arc<dyn Store>,
    fail_deletes: AtomicBool,
}

impl Store for SharedFailingDeletes {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn scan(&self, p: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.inner.scan(p, after, limit)
    }

    fn commit(&self, txn: Transaction) -> Result<(), StoreError> {
        let deletes_config = txn
            .writes
            .iter()
            .any(|w| matches!(w, Write::Delete(k) if k.starts_with(b"c/")));
        if deletes_config && self.fail_deletes.load(Ordering::SeqCst) {
            return Err(StoreError::Io(
                "injected: the delete's commit failed".into(),
            ));
        }
        self.inner.commit(txn)
    }

    fn engine_name(&self) -> &'static str {
        "shared-failing-deletes"
    }

    fn is_shared(&self) -> bool {
        true
    }
}

#[test]
fn a_delete_whose_last_commit_fails_leaves_creates_working() {
    let dir = tempfile::tempdir().unwrap();
    let inner = ekm::store::open(StoreKind::Redb, &dir.path().join("store")).unwrap();
    let store = Arc::new(SharedFailingDeletes {
        inner,
        fail_deletes: AtomicBool::new(true),
    });
    let fake = Arc::new(FakeBackend::open(&dir.path().join("fake-vault.json")).unwrap());
    let engine = engine_over(store.clone(), fake, &dir.path().join("protection.key"), 64);
    let cfg = create(&engine, &secret_body(None, "s3cret")).unwrap();

    let e = engine
        .delete_config(cfg.uuid)
        .expect_err("the commit fails");
    assert_eq!(e.kind(), ErrorKind::StoreFailed, "{e}");
    engine
        .create_data_key(KeyOwner::Cluster, KeyTag::parse("after").unwrap())
        .expect("a delete that did not happen leaves no mark refusing creates");

    // And a delete that does happen still works (keys first).
    store.fail_deletes.store(false, Ordering::SeqCst);
    let e = engine.delete_config(cfg.uuid).expect_err("a key exists");
    assert_eq!(e.kind(), ErrorKind::KeysExist, "{e}");
    engine
        .create_data_key(KeyOwner::Cluster, KeyTag::parse("after2").unwrap())
        .expect("refused for keys: creates work");
}
