//! Crypto-erase holds on a live engine: once `delete_data_key` has returned, no node serves the
//! key again — not from a table fill that read the record before the delete committed, not
//! from restore's table load.
//!
//! The store here delays reads of configuration records, which every table miss makes after it
//! has read the key's record: that widens the window between a reader's store read and its
//! table fill, the window a delete can commit and evict in.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::hooked::{Call, Hooked};
use common::{NODE1, NODE2, create, engine_over, secret_body};
use ekm::core::{DataKeyId, ErrorKind, KeyOwner, KeyTag};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;

/// While `slow` is set, the store delays reads of configuration records (`c/...`) and scans of
/// data key records (`r/...`), counting how many such delays have begun.
#[derive(Default)]
struct Slowness {
    slow: AtomicBool,
    config_reads: AtomicUsize,
    record_scans: AtomicUsize,
}

impl Slowness {
    fn delay(&self, count: &AtomicUsize) {
        if self.slow.load(Ordering::SeqCst) {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits until `count` reaches `n`.
fn wait_for(count: &AtomicUsize, n: usize) {
    while count.load(Ordering::SeqCst) < n {
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn setup(dir: &std::path::Path) -> (Arc<ekm::core::Engine>, Arc<Slowness>) {
    let inner = ekm::store::open(StoreKind::Redb, &dir.join("store")).expect("store");
    let slowness = Arc::new(Slowness::default());
    let s = slowness.clone();
    let store = Hooked::new("slow-config-reads", inner, move |call| {
        match call {
            Call::Read(key) if key.starts_with(b"c/") => s.delay(&s.config_reads),
            Call::Scanned(prefix) if prefix.starts_with(b"r/") => s.delay(&s.record_scans),
            _ => {}
        }
        Ok(())
    });
    let fake = Arc::new(FakeBackend::open(&dir.join("fake-vault.json")).expect("vault"));
    let engine = engine_over(Arc::new(store), fake, &dir.join("protection.key"), 64);
    (engine, slowness)
}

fn is_gone(r: ekm::core::Result<ekm::core::KeyMaterial>) -> bool {
    matches!(r, Err(e) if e.kind() == ErrorKind::EntryNotFound)
}

#[test]
fn a_deleted_key_is_never_served_after_its_delete_returned() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = setup(dir.path());
    create(&engine, &secret_body(None, "s3cret")).unwrap();
    let tags = (0..60).map(|i| KeyTag::parse(&format!("vol{i}")).unwrap());
    let ids: Vec<DataKeyId> = engine
        .create_data_keys(KeyOwner::Cluster, tags.collect())
        .unwrap();
    // Node 2 has none of them in its table yet: every first read there is a table miss.
    engine.read_data_key_on(NODE2, &ids[0]).unwrap();
    store.slow.store(true, Ordering::SeqCst);

    let mut served_after_delete = Vec::new();
    for (i, id) in ids.iter().enumerate().skip(1) {
        let reader = {
            let engine = engine.clone();
            let id = *id;
            std::thread::spawn(move || engine.read_data_key_on(NODE2, &id))
        };
        // The reader has read the key's record and waits in its configuration read: delete
        // now, so the delete commits and evicts before the reader fills its table.
        wait_for(&store.config_reads, i);
        engine.delete_data_key(id).unwrap();
        let _ = reader.join().unwrap();
        for node in [NODE1, NODE2] {
            if !is_gone(engine.read_data_key_on(node, id)) {
                served_after_delete.push((i, node));
            }
        }
    }
    assert!(
        served_after_delete.is_empty(),
        "deleted keys were served afterwards (index, node): {served_after_delete:?}"
    );
}

#[test]
fn many_readers_and_deletes_of_the_same_ids_never_serve_a_deleted_key() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = setup(dir.path());
    create(&engine, &secret_body(None, "s3cret")).unwrap();
    let tags = (0..200).map(|i| KeyTag::parse(&format!("vol{i}")).unwrap());
    let ids: Arc<Vec<DataKeyId>> = Arc::new(
        engine
            .create_data_keys(KeyOwner::Cluster, tags.collect())
            .unwrap(),
    );
    engine.reset_node(NODE1).unwrap();
    engine.reset_node(NODE2).unwrap();
    store.slow.store(true, Ordering::SeqCst);
    // deleted[i] is set only after delete_data_key(ids[i]) returned.
    let deleted: Arc<Vec<AtomicBool>> =
        Arc::new(ids.iter().map(|_| AtomicBool::new(false)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(AtomicUsize::new(0));

    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (engine, ids, deleted, stop, violations) = (
                engine.clone(),
                ids.clone(),
                deleted.clone(),
                stop.clone(),
                violations.clone(),
            );
            std::thread::spawn(move || {
                let node = if r % 2 == 0 { NODE1 } else { NODE2 };
                let mut n = r;
                while !stop.load(Ordering::SeqCst) {
                    n = (n + 7) % ids.len();
                    let was_deleted = deleted[n].load(Ordering::SeqCst);
                    let served = engine.read_data_key_on(node, &ids[n]).is_ok();
                    if was_deleted && served {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        engine.delete_data_key(id).unwrap();
        deleted[i].store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_micros(300));
    }
    // Every id is deleted: nothing may be served from here on, by any node.
    std::thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    for id in ids.iter() {
        for node in [NODE1, NODE2] {
            assert!(
                is_gone(engine.read_data_key_on(node, id)),
                "{id} served by {node}"
            );
        }
    }
    assert_eq!(
        violations.load(Ordering::SeqCst),
        0,
        "reads served a key after its delete returned"
    );
}

#[test]
fn restore_does_not_bring_back_a_key_deleted_during_its_table_load() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = setup(dir.path());
    let cfg = create(&engine, &secret_body(None, "s3cret")).unwrap();
    let tags = (0..50).map(|i| KeyTag::parse(&format!("vol{i}")).unwrap());
    let ids = engine
        .create_data_keys(KeyOwner::Cluster, tags.collect())
        .unwrap();
    for (round, victim) in ids.iter().take(5).enumerate() {
        engine.reset_node(NODE2).unwrap();
        let before = store.record_scans.load(Ordering::SeqCst);
        store.slow.store(true, Ordering::SeqCst);
        let job = engine.start_restore(cfg.uuid).unwrap();
        // The table load has scanned the records and waits before filling: delete one.
        wait_for(&store.record_scans, before + 1);
        engine.delete_data_key(victim).unwrap();
        let done = engine.wait_job(job.uuid, Duration::from_secs(30)).unwrap();
        store.slow.store(false, Ordering::SeqCst);
        assert_eq!(done.state.as_str(), "success", "{}", done.message);
        assert!(
            is_gone(engine.read_data_key_on(NODE2, victim)),
            "round {round}: restore brought back a deleted key"
        );
    }
}
