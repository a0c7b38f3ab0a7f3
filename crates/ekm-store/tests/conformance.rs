//! One conformance suite for every `Store` engine: the same tests run against redb, sled and a
//! real 3-member etcd cluster (Debian's `etcd`, started on loopback ports by the harness).

use std::path::Path;
use std::sync::Arc;

use ekm_core::store::{Check, Store, StoreError, Transaction};
use ekm_store::StoreKind;

fn put(store: &dyn Store, k: &[u8], v: &[u8]) {
    let mut t = Transaction::new();
    t.put(k, v);
    store.commit(t).unwrap();
}

fn all(store: &dyn Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    store.scan(b"", None, usize::MAX).unwrap()
}

fn get_put_delete(s: &dyn Store, _dir: &Path) {
    assert_eq!(s.get(b"a").unwrap(), None);
    put(s, b"a", b"1");
    put(s, b"empty", b"");
    assert_eq!(s.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(s.get(b"empty").unwrap().as_deref(), Some(&b""[..]));
    put(s, b"a", b"2");
    assert_eq!(s.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
    let mut t = Transaction::new();
    t.delete(b"a".to_vec()).delete(b"never-existed".to_vec());
    s.commit(t).unwrap();
    assert_eq!(s.get(b"a").unwrap(), None);
    let many = s
        .get_many(&[b"empty".to_vec(), b"a".to_vec(), b"big".to_vec()])
        .unwrap();
    assert_eq!(many, vec![Some(Vec::new()), None, None]);
    let big = vec![0x5a; 1 << 20];
    put(s, b"big", &big);
    assert_eq!(s.get(b"big").unwrap().unwrap(), big);
}

fn scan_is_ordered_prefixed_and_pages(s: &dyn Store, _dir: &Path) {
    for k in [
        &b"p/3"[..],
        b"p/1",
        b"p/2",
        b"q/1",
        b"o/9",
        b"p",
        b"p/\xff\xff",
    ] {
        put(s, k, k);
    }
    let keys: Vec<Vec<u8>> = s
        .scan(b"p/", None, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        keys,
        vec![
            b"p/1".to_vec(),
            b"p/2".to_vec(),
            b"p/3".to_vec(),
            b"p/\xff\xff".to_vec()
        ]
    );
    let page1 = s.scan(b"p/", None, 2).unwrap();
    assert_eq!(page1.len(), 2);
    let page2 = s.scan(b"p/", Some(&page1[1].0), 2).unwrap();
    assert_eq!(
        page2.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
        vec![b"p/3".to_vec(), b"p/\xff\xff".to_vec()]
    );
    assert!(s.scan(b"p/", Some(b"p/\xff\xff"), 2).unwrap().is_empty());
    assert_eq!(s.scan(b"\xff", None, 10).unwrap().len(), 0);
    put(s, b"\xff\xff", b"x");
    assert_eq!(s.scan(b"\xff", None, 10).unwrap().len(), 1);
    assert_eq!(s.scan(b"p/", None, 0).unwrap().len(), 0);
}

fn failed_checks_write_nothing(s: &dyn Store, _dir: &Path) {
    put(s, b"x", b"1");
    let before = all(s);
    for (i, check) in [
        Check::Absent(b"x".to_vec()),
        Check::Present(b"y".to_vec()),
        Check::Equals(b"x".to_vec(), b"2".to_vec()),
        Check::Equals(b"y".to_vec(), b"".to_vec()),
    ]
    .into_iter()
    .enumerate()
    {
        let mut t = Transaction::new();
        t.check(Check::Present(b"x".to_vec()))
            .check(check)
            .put(b"new".to_vec(), b"v".to_vec())
            .delete(b"x".to_vec());
        assert_eq!(s.commit(t), Err(StoreError::Conflict(1)), "case {i}");
        assert_eq!(all(s), before, "case {i}");
    }
    let mut t = Transaction::new();
    t.check(Check::Equals(b"x".to_vec(), b"1".to_vec()))
        .check(Check::Absent(b"new".to_vec()))
        .put(b"new".to_vec(), b"v".to_vec())
        .delete(b"x".to_vec());
    s.commit(t).unwrap();
    assert_eq!(s.get(b"x").unwrap(), None);
    assert_eq!(s.get(b"new").unwrap().as_deref(), Some(&b"v"[..]));
}

fn writes_apply_in_order(s: &dyn Store, _dir: &Path) {
    let mut t = Transaction::new();
    t.put(b"k".to_vec(), b"1".to_vec())
        .delete(b"k".to_vec())
        .put(b"k".to_vec(), b"3".to_vec());
    s.commit(t).unwrap();
    assert_eq!(s.get(b"k").unwrap().as_deref(), Some(&b"3"[..]));
}

fn exactly_one_racer_wins_an_absent_check(s: &dyn Store, _dir: &Path) {
    let wins = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for i in 0..8u8 {
            let wins = &wins;
            scope.spawn(move || {
                let mut t = Transaction::new();
                t.check(Check::Absent(b"lock".to_vec()))
                    .put(b"lock".to_vec(), vec![i]);
                match s.commit(t) {
                    Ok(()) => {
                        wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(StoreError::Conflict(0)) => {}
                    Err(e) => panic!("{e}"),
                }
            });
        }
    });
    assert_eq!(wins.into_inner(), 1);
}

thread_local! {
    /// One 3-member etcd cluster per test (each test runs on its own thread): dropped, so its
    /// members are killed, when the test's thread ends.
    static CLUSTER: std::cell::RefCell<Option<ekm_etcd::testing::EtcdCluster>> =
        const { std::cell::RefCell::new(None) };
}

/// An etcd store on this test's cluster, whose prefix is named after `dir` (so a reopen over
/// the same `dir` finds it).
fn open_etcd(dir: &Path) -> Arc<dyn Store> {
    let endpoints = CLUSTER.with(|c| {
        c.borrow_mut()
            .get_or_insert_with(|| {
                ekm_etcd::testing::EtcdCluster::start(3).expect("etcd cluster starts")
            })
            .endpoints()
    });
    let mut opts = ekm_etcd::EtcdOptions::new(endpoints);
    opts.prefix = format!("/conformance{}/", dir.display()).into_bytes();
    ekm_etcd::EtcdStore::open(opts).expect("etcd store opens")
}

fn open_redb(dir: &Path) -> Arc<dyn Store> {
    ekm_store::open(StoreKind::Redb, dir).unwrap()
}

fn open_sled(dir: &Path) -> Arc<dyn Store> {
    ekm_store::open(StoreKind::Sled, dir).unwrap()
}

macro_rules! suite {
    ($module:ident, $open:expr) => {
        mod $module {
            use super::*;

            fn with_store(test: fn(&dyn Store, &Path)) {
                let dir = tempfile::tempdir().unwrap();
                let store: Arc<dyn Store> = $open(dir.path());
                test(&*store, dir.path());
            }

            #[test]
            fn get_put_delete() {
                with_store(super::get_put_delete);
            }

            #[test]
            fn scan_is_ordered_prefixed_and_pages() {
                with_store(super::scan_is_ordered_prefixed_and_pages);
            }

            #[test]
            fn failed_checks_write_nothing() {
                with_store(super::failed_checks_write_nothing);
            }

            #[test]
            fn writes_apply_in_order() {
                with_store(super::writes_apply_in_order);
            }

            #[test]
            fn exactly_one_racer_wins_an_absent_check() {
                with_store(super::exactly_one_racer_wins_an_absent_check);
            }

            #[test]
            fn reopen_keeps_everything() {
                let dir = tempfile::tempdir().unwrap();
                {
                    let s: Arc<dyn Store> = $open(dir.path());
                    for i in 0..500u32 {
                        put(&*s, &i.to_be_bytes(), &i.to_le_bytes());
                    }
                }
                let s: Arc<dyn Store> = $open(dir.path());
                let got = all(&*s);
                assert_eq!(got.len(), 500);
                for (i, (k, v)) in got.iter().enumerate() {
                    assert_eq!(k, &(i as u32).to_be_bytes());
                    assert_eq!(v, &(i as u32).to_le_bytes());
                }
            }
        }
    };
}

suite!(redb, open_redb);
suite!(sled, open_sled);
suite!(etcd, open_etcd);
