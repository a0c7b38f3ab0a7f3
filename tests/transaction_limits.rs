//! A store that limits the size of a transaction (etcd: 128 checks and 128 writes) gets
//! creates that fit: a create of more keys than fit is refused up front with 262197 and a
//! message naming the limit, nothing written; one that fits is one transaction.

mod common;

use std::sync::Arc;

use common::hooked::{Call, Hooked};
use common::{create, engine_over, secret_body};
use ekm::core::{ErrorKind, KeyOwner, KeyTag, Store, StoreError};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;

/// etcd's limit, enforced as etcd does: checks and writes counted apart.
const LIMIT: usize = 128;

/// Refuses, as etcd does, a commit of more than [`LIMIT`] checks or writes.
fn limited(inner: Arc<dyn Store>) -> Hooked {
    Hooked::new("limited", inner, |call| match call {
        Call::Commit(txn) if txn.checks.len() > LIMIT || txn.writes.len() > LIMIT => Err(
            StoreError::Io("too many operations in one transaction".into()),
        ),
        _ => Ok(()),
    })
    .max_ops(LIMIT)
}

#[test]
fn a_create_larger_than_a_transaction_is_refused_and_one_that_fits_commits() {
    let dir = tempfile::tempdir().unwrap();
    let inner = ekm::store::open(StoreKind::Redb, &dir.path().join("store")).unwrap();
    let fake = Arc::new(FakeBackend::open(&dir.path().join("fake-vault.json")).unwrap());
    let engine = engine_over(
        Arc::new(limited(inner.clone())),
        fake,
        &dir.path().join("protection.key"),
        64,
    );
    create(&engine, &secret_body(None, "s3cret")).unwrap();
    let max = engine.max_keys_per_create().expect("a limited store");
    assert!(max >= 60, "at most {max} keys per create on etcd");

    let before = inner.scan(b"", None, usize::MAX).unwrap();
    let e = engine
        .create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); max + 1])
        .expect_err("one key more than fits");
    assert_eq!(e.kind(), ErrorKind::InvalidValue, "{e}");
    assert!(e.message().contains(&format!("At most {max}")), "{e}");
    assert_eq!(
        inner.scan(b"", None, usize::MAX).unwrap(),
        before,
        "nothing written"
    );

    let ids = engine
        .create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); max])
        .expect("as many as fit");
    assert_eq!(ids.len(), max);
    for id in &ids {
        engine.read_data_key(id).unwrap();
    }
}
