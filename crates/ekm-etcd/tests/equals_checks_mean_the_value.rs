//! An `Equals` check on a long value the store has read or written is sent to etcd as a
//! revision compare (a create's ~1 KB configuration record is not sent with every create); its
//! meaning stays the value's: two processes sharing one etcd cluster, where the other process
//! rewrites, changes and restores the value between this one's read and its commit.

use std::sync::Arc;

use ekm_core::store::{Check, Store, StoreError, Transaction};
use ekm_etcd::testing::EtcdCluster;
use ekm_etcd::{EtcdOptions, EtcdStore};

fn put(s: &dyn Store, k: &[u8], v: &[u8]) {
    let mut t = Transaction::new();
    t.put(k, v);
    s.commit(t).unwrap();
}

/// A commit of `k2 = v` checked by `Equals(k, want)` (after an `Absent` check that holds, so
/// a failed `Equals` is `Conflict(1)`).
fn commit_if_equals(s: &dyn Store, k: &[u8], want: &[u8]) -> Result<(), StoreError> {
    let mut t = Transaction::new();
    t.check(Check::Absent(b"never".to_vec()))
        .check(Check::Equals(k.to_vec(), want.to_vec()))
        .put(b"k2".to_vec(), want[..8].to_vec());
    s.commit(t)
}

#[test]
fn equals_checks_hold_on_the_value_whatever_its_revision() {
    let cluster = EtcdCluster::start(3).expect("etcd cluster starts");
    let open = || -> Arc<EtcdStore> {
        EtcdStore::open(EtcdOptions::new(cluster.endpoints())).expect("etcd store opens")
    };
    let (mine, other) = (open(), open());
    let long = vec![0x11u8; 1000];
    let changed = vec![0x22u8; 1000];

    // Read here, rewritten with the same bytes there: the check holds.
    put(&*other, b"k", &long);
    assert_eq!(mine.get(b"k").unwrap().as_deref(), Some(&long[..]));
    put(&*other, b"k", &long);
    commit_if_equals(&*mine, b"k", &long).expect("the value is unchanged");

    // Written here (remembered with the commit's revision), then changed there: it fails,
    // and names the check.
    put(&*mine, b"k", &long);
    put(&*other, b"k", &changed);
    assert_eq!(
        commit_if_equals(&*mine, b"k", &long),
        Err(StoreError::Conflict(1))
    );

    // Changed there and back: the check holds again.
    put(&*mine, b"k", &long);
    put(&*other, b"k", &changed);
    put(&*other, b"k", &long);
    commit_if_equals(&*mine, b"k", &long).expect("the value is the one checked");

    // Deleted there: it fails.
    assert_eq!(mine.get(b"k").unwrap().as_deref(), Some(&long[..]));
    let mut t = Transaction::new();
    t.delete(b"k".to_vec());
    other.commit(t).unwrap();
    assert_eq!(
        commit_if_equals(&*mine, b"k", &long),
        Err(StoreError::Conflict(1))
    );
    assert_eq!(mine.get(b"k2").unwrap().as_deref(), Some(&long[..8]));
}
