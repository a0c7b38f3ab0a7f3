//! One conformance suite for every `Store` engine: the same tests run against redb, sled and a
//! real 3-member etcd cluster (Debian's `etcd`, started on loopback ports by the harness).

use std::path::Path;
use std::sync::Arc;

use ekm_core::store::{Check, RangeRewrite, Store, StoreError, Transaction};
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

fn count_counts_a_prefix(s: &dyn Store, _dir: &Path) {
    // More than one page of the default count (1024), in transactions etcd accepts.
    for chunk in (0..1100u32).collect::<Vec<_>>().chunks(100) {
        let mut t = Transaction::new();
        for i in chunk {
            t.put([&b"c/"[..], &i.to_be_bytes()].concat(), b"v");
        }
        s.commit(t).unwrap();
    }
    put(s, b"c", b"not under c/");
    put(s, b"d/0", b"v");
    assert_eq!(s.count(b"c/").unwrap(), 1100);
    assert_eq!(s.count(b"d/").unwrap(), 1);
    assert_eq!(s.count(b"e/").unwrap(), 0);
}

/// One `rewrite_range` call over `p/` appending `!` to every value, committing `cursor` with
/// the last key visited.
fn rewrite_page(
    s: &dyn Store,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<RangeRewrite, StoreError> {
    rewrite_page_marked(s, after, limit, None)
}

/// As [`rewrite_page`], telling the store that every deletion under `p/` writes `mark`.
fn rewrite_page_marked(
    s: &dyn Store,
    after: Option<&[u8]>,
    limit: usize,
    mark: Option<&[u8]>,
) -> Result<RangeRewrite, StoreError> {
    s.rewrite_range(
        b"p/",
        after,
        limit,
        mark,
        &mut |_k, v| Ok(Some([v, b"!"].concat())),
        &mut |out| {
            let mut t = Transaction::new();
            t.put(b"cursor", out.last_key.clone().unwrap_or_default());
            t
        },
    )
}

fn rewrite_range_pages_through_a_prefix(s: &dyn Store, _dir: &Path) {
    for i in 0..10u8 {
        put(s, &[b'p', b'/', b'0' + i], &[b'0' + i]);
    }
    put(s, b"q/0", b"x");
    let mut after: Option<Vec<u8>> = None;
    let mut pages = 0;
    loop {
        let out = rewrite_page(s, after.as_deref(), 3).unwrap();
        assert_eq!(out.rewritten, out.seen);
        if out.seen == 0 {
            break;
        }
        assert_eq!(s.get(b"cursor").unwrap(), out.last_key);
        after = out.last_key;
        pages += 1;
    }
    assert_eq!(pages, 4, "10 records in pages of 3");
    for i in 0..10u8 {
        assert_eq!(
            s.get(&[b'p', b'/', b'0' + i]).unwrap(),
            Some(vec![b'0' + i, b'!'])
        );
    }
    assert_eq!(s.get(b"q/0").unwrap().as_deref(), Some(&b"x"[..]));
}

/// Keys spread unevenly (as random ids are, with a dense cluster and a long gap), paged in
/// small pages: every record is rewritten exactly once and the pass ends only at the end.
fn rewrite_range_visits_every_record_once(s: &dyn Store, _dir: &Path) {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..300u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // A third of the keys packed next to each other, the rest spread over the space.
        let id = if i % 3 == 0 {
            (1u64 << 40) + u64::from(i)
        } else {
            x
        };
        keys.push([&b"p/"[..], &id.to_be_bytes(), &i.to_be_bytes()].concat());
    }
    for chunk in keys.chunks(100) {
        let mut t = Transaction::new();
        for k in chunk {
            t.put(k.clone(), b"v".to_vec());
        }
        s.commit(t).unwrap();
    }
    let mut after: Option<Vec<u8>> = None;
    let mut total = 0;
    loop {
        let out = rewrite_page(s, after.as_deref(), 7).unwrap();
        if out.seen == 0 {
            break;
        }
        total += out.rewritten;
        after = out.last_key;
    }
    assert_eq!(total, keys.len());
    for k in &keys {
        assert_eq!(s.get(k).unwrap().as_deref(), Some(&b"v!"[..]));
    }
}

/// A pass rewrites page by page; a record changed or deleted between two pages must be
/// rewritten from what it is now (or the page refused), never from what it was.
fn a_record_changed_between_pages_is_not_rewritten_from_its_old_value(s: &dyn Store, _dir: &Path) {
    for i in 0..6u8 {
        put(s, &[b'p', b'/', b'0' + i], &[b'0' + i]);
    }
    let first = rewrite_page(s, None, 3).unwrap();
    assert_eq!(first.last_key.as_deref(), Some(&b"p/2"[..]));
    put(s, b"p/3", b"changed");
    let mut t = Transaction::new();
    t.delete(b"p/4".to_vec());
    s.commit(t).unwrap();
    put(s, b"p/45", b"new");
    let mut done = false;
    for _ in 0..3 {
        match rewrite_page(s, first.last_key.as_deref(), 3) {
            Ok(_) => {
                done = true;
                break;
            }
            // Refused because a record of the page changed: nothing was written; again.
            Err(StoreError::Conflict(_)) => {
                assert_eq!(s.get(b"p/3").unwrap().as_deref(), Some(&b"changed"[..]));
                assert_eq!(s.get(b"p/4").unwrap(), None);
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(done, "the page is rewritten once read afresh");
    assert_eq!(s.get(b"p/3").unwrap().as_deref(), Some(&b"changed!"[..]));
    assert_eq!(
        s.get(b"p/4").unwrap(),
        None,
        "a deleted record stays deleted"
    );
    let created = s.get(b"p/45").unwrap();
    assert!(
        matches!(created.as_deref(), Some(b"new" | b"new!")),
        "a record created meanwhile: {created:?}"
    );
    // Whatever the page held, the pass goes on to the end.
    let mut after = s.get(b"cursor").unwrap();
    while rewrite_page(s, after.as_deref(), 3).unwrap().seen > 0 {
        after = s.get(b"cursor").unwrap();
    }
    assert_eq!(s.get(b"p/5").unwrap().as_deref(), Some(&b"5!"[..]));
    assert_eq!(s.get(b"p/4").unwrap(), None, "still deleted after the pass");
}

/// As above, with a deletion mark that the delete writes, as the contract asks, and nothing
/// else of the page changed: a store that fences a page by its key span and the mark (etcd)
/// must see the deletion through the mark alone.
fn a_record_deleted_between_pages_stays_deleted_with_a_deletion_mark(s: &dyn Store, _dir: &Path) {
    let mark: &[u8] = b"gone/p";
    for i in 0..6u8 {
        put(s, &[b'p', b'/', b'0' + i], &[b'0' + i]);
    }
    let first = rewrite_page_marked(s, None, 3, Some(mark)).unwrap();
    assert_eq!(first.last_key.as_deref(), Some(&b"p/2"[..]));
    let mut t = Transaction::new();
    t.delete(b"p/4".to_vec()).put(mark, b"".to_vec());
    s.commit(t).unwrap();
    let mut after = first.last_key;
    let mut conflicts = 0;
    loop {
        match rewrite_page_marked(s, after.as_deref(), 3, Some(mark)) {
            Ok(out) if out.seen == 0 => break,
            Ok(out) => after = out.last_key,
            // Refused because the page changed: nothing was written; again.
            Err(StoreError::Conflict(_)) => {
                conflicts += 1;
                assert!(conflicts < 3, "the page is rewritten once read afresh");
                assert_eq!(s.get(b"p/4").unwrap(), None);
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        s.get(b"p/4").unwrap(),
        None,
        "a deleted record stays deleted"
    );
    for k in [&b"p/3"[..], b"p/5"] {
        let v = s.get(k).unwrap().unwrap();
        assert_eq!(v.last(), Some(&b'!'), "{k:?} rewritten");
    }
}

/// A deletion elsewhere under the same mark (another record of the configuration, outside the
/// page) does not refuse the page: a store that fences by span and mark falls back to the
/// page's own records, so a rekey keeps going while a busy volume deletes keys.
fn a_deletion_elsewhere_does_not_refuse_a_page(s: &dyn Store, _dir: &Path) {
    let mark: &[u8] = b"gone/p";
    for i in 0..9u8 {
        put(s, &[b'p', b'/', b'0' + i], &[b'0' + i]);
    }
    let first = rewrite_page_marked(s, None, 3, Some(mark)).unwrap();
    let mut t = Transaction::new();
    t.delete(b"p/8".to_vec()).put(mark, b"".to_vec());
    s.commit(t).unwrap();
    let second = rewrite_page_marked(s, first.last_key.as_deref(), 3, Some(mark))
        .expect("the page's own records did not change");
    assert_eq!(second.rewritten, 3);
    assert_eq!(s.get(b"p/4").unwrap().as_deref(), Some(&b"4!"[..]));
    assert_eq!(s.get(b"p/8").unwrap(), None);
}

/// A test's etcd cluster, and its turn: the etcd tests run one at a time (each starts three
/// members; ten clusters starting at once on a 2-core machine missed their health deadline).
/// Fields drop in order: the members are killed before the next test's turn comes.
struct TestCluster {
    cluster: ekm_etcd::testing::EtcdCluster,
    _turn: std::sync::MutexGuard<'static, ()>,
}

static ETCD_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

thread_local! {
    /// One 3-member etcd cluster per test (each test runs on its own thread): dropped, so its
    /// members are killed and the next etcd test may start, when the test's thread ends.
    static CLUSTER: std::cell::RefCell<Option<TestCluster>> =
        const { std::cell::RefCell::new(None) };
}

/// An etcd store on this test's cluster, whose prefix is named after `dir` (so a reopen over
/// the same `dir` finds it).
fn open_etcd(dir: &Path) -> Arc<dyn Store> {
    let endpoints = CLUSTER.with(|c| {
        c.borrow_mut()
            .get_or_insert_with(|| {
                // A test that failed poisons the lock; the next one runs all the same.
                let turn = ETCD_TURN.lock().unwrap_or_else(|e| e.into_inner());
                TestCluster {
                    cluster: ekm_etcd::testing::EtcdCluster::start(3).expect("etcd cluster starts"),
                    _turn: turn,
                }
            })
            .cluster
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
            fn count_counts_a_prefix() {
                with_store(super::count_counts_a_prefix);
            }

            #[test]
            fn rewrite_range_visits_every_record_once() {
                with_store(super::rewrite_range_visits_every_record_once);
            }

            #[test]
            fn rewrite_range_pages_through_a_prefix() {
                with_store(super::rewrite_range_pages_through_a_prefix);
            }

            #[test]
            fn a_record_changed_between_pages_is_not_rewritten_from_its_old_value() {
                with_store(
                    super::a_record_changed_between_pages_is_not_rewritten_from_its_old_value,
                );
            }

            #[test]
            fn a_deletion_elsewhere_does_not_refuse_a_page() {
                with_store(super::a_deletion_elsewhere_does_not_refuse_a_page);
            }

            #[test]
            fn a_record_deleted_between_pages_stays_deleted_with_a_deletion_mark() {
                with_store(
                    super::a_record_deleted_between_pages_stays_deleted_with_a_deletion_mark,
                );
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
