//! Data keys created and deleted while rekey-internal runs: none lost, none left behind on the
//! old generation, and deleted keys stay deleted — on redb, and on a real 3-member etcd
//! cluster (where a rekey page is fenced by its key span and the configuration's deletion
//! mark, not record by record).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::hooked::{Call, Hooked};
use common::*;
use ekm::core::Store;
use ekm::core::store::Transaction;
use ekm::core::{DataKeyId, JobState, KeyOwner, KeyTag};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;

#[test]
fn creates_and_deletes_during_rekey_internal() {
    let dir = tempfile::tempdir().unwrap();
    let store = ekm::store::open(StoreKind::Redb, &dir.path().join("store")).unwrap();
    creates_and_deletes(store, dir.path());
}

/// The etcd tests of this file take turns: each starts three members, and clusters starting
/// at once on a 2-core machine can miss their health deadline.
static ETCD_TURN: Mutex<()> = Mutex::new(());

/// Counts the rewrite transactions etcd refused (a fence did not hold).
#[derive(Debug, Default)]
struct Conflicts(std::sync::atomic::AtomicU64);

impl ekm_etcd::EtcdObserver for Conflicts {
    fn request(&self, kind: &'static str, _took: Duration, outcome: &'static str) {
        if kind == "txn" && outcome == "conflict" {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn failover(&self) {}
    fn watch_restart(&self, _reason: &'static str) {}
    fn watch_revisions_behind(&self, _behind: u64) {}
}

/// A 3-member etcd cluster (taking this file's turn) and a store on it counting conflicts.
fn etcd() -> (
    std::sync::MutexGuard<'static, ()>,
    ekm_etcd::testing::EtcdCluster,
    Arc<dyn Store>,
    Arc<Conflicts>,
) {
    let turn = ETCD_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = ekm_etcd::testing::EtcdCluster::start(3).expect("etcd cluster starts");
    let conflicts = Arc::new(Conflicts::default());
    let mut opts = ekm_etcd::EtcdOptions::new(cluster.endpoints());
    opts.observer = Some(conflicts.clone());
    let store: Arc<dyn Store> = ekm_etcd::EtcdStore::open(opts).expect("etcd store opens");
    (turn, cluster, store, conflicts)
}

#[test]
fn creates_and_deletes_during_rekey_internal_on_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let (_turn, _cluster, store, _) = etcd();
    creates_and_deletes(store, dir.path());
}

fn creates_and_deletes(store: Arc<dyn Store>, dir: &std::path::Path) {
    let fake = Arc::new(FakeBackend::in_memory());
    // Small batches make the rekey long enough to overlap with the writers.
    let e = engine_over(store.clone(), fake.clone(), &dir.join("pk"), 50);
    let config = create(&e, &secret_body(None, "s")).unwrap().uuid;
    let live: Arc<Mutex<HashMap<DataKeyId, Vec<u8>>>> = Arc::default();
    for owner in [KeyOwner::Cluster, KeyOwner::Svm(VS0)] {
        // In creates that fit etcd's transactions.
        for _ in 0..25 {
            for id in e
                .create_data_keys(owner, vec![KeyTag::default(); 60])
                .unwrap()
            {
                let m = e.read_data_key(&id).unwrap().expose_secret().to_vec();
                live.lock().unwrap().insert(id, m);
            }
        }
    }
    let deleted: Arc<Mutex<Vec<DataKeyId>>> = Arc::default();
    let job = e.start_rekey_internal(config).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (e, live, deleted, stop) = (e.clone(), live.clone(), deleted.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let owner = if n % 2 == 0 {
                        KeyOwner::Cluster
                    } else {
                        KeyOwner::Svm(VS0)
                    };
                    let id = e.create_data_key(owner, KeyTag::default()).unwrap();
                    let m = e.read_data_key(&id).unwrap().expose_secret().to_vec();
                    live.lock().unwrap().insert(id, m);
                    // Delete an old key now and then (both ones already rewrapped and not).
                    if n % 3 == w {
                        let victim = live.lock().unwrap().keys().nth(n * 7 % 1000).copied();
                        if let Some(v) = victim {
                            e.delete_data_key(&v).unwrap();
                            live.lock().unwrap().remove(&v);
                            deleted.lock().unwrap().push(v);
                        }
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let done = e.wait_job(job.uuid, Duration::from_secs(60)).unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let created: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(done.state, JobState::Success, "{}", done.message);
    assert!(created > 10, "the writers barely ran ({created})");
    assert!(!deleted.lock().unwrap().is_empty());

    let listed = e.list_data_keys(config).unwrap();
    assert!(
        listed.iter().all(|k| k.kek_generation == 2),
        "a key was left on generation 1"
    );
    let live = live.lock().unwrap();
    assert_eq!(
        listed.len(),
        live.len(),
        "listed keys differ from the live set"
    );
    assert_eq!(kek_generations(&*store, config), vec![(2, true)]);
    e.shutdown();
    drop(e);
    // A fresh process reads everything from the store alone.
    let e = engine_over(store, fake, &dir.join("pk"), 50);
    for (id, m) in live.iter() {
        assert_eq!(
            e.read_data_key(id).unwrap().expose_secret().as_slice(),
            m.as_slice()
        );
    }
    for d in deleted.lock().unwrap().iter() {
        assert_eq!(e.read_data_key(d).unwrap_err().code(), 4);
    }
    eprintln!(
        "{created} keys created and {} deleted during the rekey",
        deleted.lock().unwrap().len()
    );
}

/// What runs once, right after the first `rewrite_range` call returns (the first rekey page is
/// committed and, on etcd, the second page already read with it), given the page's last key.
type AfterFirstPage = Arc<Mutex<Option<Box<dyn FnOnce(Option<Vec<u8>>) + Send>>>>;

/// `inner`, running `after` once after the first rewritten page.
fn after_first_page(inner: Arc<dyn Store>, after: AfterFirstPage) -> Hooked {
    Hooked::new("after-first-page", inner, move |call| {
        if let Call::Rewrote(out) = call {
            let hook = after.lock().unwrap().take();
            if let Some(hook) = hook {
                hook(out.last_key.clone());
            }
        }
        Ok(())
    })
}

/// How the hook deletes the victim.
enum DeletedBy {
    /// `Engine::delete_data_key`, as a client's DELETE or KMIP Destroy is.
    ThisBuild,
    /// A process of the earlier build (format 5), alive meanwhile: its delete writes no
    /// deletion mark.
    EarlierBuild,
}

/// Rekeys 200 keys in pages of 50; after the first page committed (on etcd the second page
/// was read with it), the first key of the second page is deleted. Returns whether it stayed
/// deleted, and how many rewrite transactions etcd refused.
fn delete_between_two_rekey_pages(by: DeletedBy) -> (bool, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (_turn, _cluster, etcd, conflicts) = etcd();
    let after: AfterFirstPage = Arc::default();
    let store = Arc::new(after_first_page(etcd.clone(), after.clone()));
    let fake = Arc::new(FakeBackend::in_memory());
    let e = engine_over(store, fake.clone(), &dir.path().join("pk"), 50);
    let config = create(&e, &secret_body(None, "s")).unwrap().uuid;
    for _ in 0..4 {
        e.create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); 50])
            .unwrap();
    }
    if let DeletedBy::EarlierBuild = by {
        // Its liveness record, as that build writes it (no "marks_deletions").
        let old = serde_json::json!({"v": 1, "node": uuid::Uuid::from_u128(77), "keks": []});
        etcd.put_ephemeral(
            &ekm::core::layout::liveness(uuid::Uuid::from_u128(77)),
            old.to_string().as_bytes(),
        )
        .unwrap();
    }
    let victim: Arc<Mutex<Option<DataKeyId>>> = Arc::default();
    {
        let (e, victim, etcd) = (e.clone(), victim.clone(), etcd.clone());
        *after.lock().unwrap() = Some(Box::new(move |last: Option<Vec<u8>>| {
            let records = ekm::core::layout::records(config);
            let (key, value) = etcd
                .scan(&records, last.as_deref(), 1)
                .unwrap()
                .pop()
                .expect("a second page");
            let id = ekm::core::layout::id_of_record(&key).unwrap();
            match by {
                DeletedBy::ThisBuild => e.delete_data_key(&id).unwrap(),
                DeletedBy::EarlierBuild => {
                    let mut txn = Transaction::new();
                    txn.check(ekm::core::Check::Equals(key.clone(), value))
                        .delete(key)
                        .delete(ekm::core::layout::data_key(&id))
                        .delete(ekm::core::layout::kmip_attributes(&id));
                    etcd.commit(txn).unwrap();
                }
            }
            *victim.lock().unwrap() = Some(id);
        }));
    }
    let job = e.start_rekey_internal(config).unwrap();
    let done = e.wait_job(job.uuid, Duration::from_secs(60)).unwrap();
    assert_eq!(done.state, JobState::Success, "{}", done.message);
    let victim = victim.lock().unwrap().expect("the hook ran");
    assert_eq!(e.read_data_key(&victim).unwrap_err().code(), 4);
    let listed = e.list_data_keys(config).unwrap();
    assert!(listed.iter().all(|k| k.kek_generation == 2));
    let stayed = listed.len() == 199 && listed.iter().all(|k| k.key_id != victim);
    e.shutdown();
    let conflicts = conflicts.0.load(std::sync::atomic::Ordering::SeqCst);
    (stayed, conflicts)
}

/// The first key of the second rekey page is deleted (through the engine, as a client's
/// DELETE is) after the first page committed: on etcd that page was read with the first
/// one's commit, so the rewrite of the second must see the deletion — by the configuration's
/// deletion mark, the delete's only trace inside the page's span — and not bring it back.
#[test]
fn a_key_deleted_between_two_rekey_pages_stays_deleted_on_etcd() {
    let (stayed, conflicts) = delete_between_two_rekey_pages(DeletedBy::ThisBuild);
    assert!(stayed, "the deleted key came back");
    assert!(
        conflicts >= 1,
        "the page read before the delete was refused"
    );
}

/// As above, the delete done by a live process of the earlier build, which writes no
/// deletion mark: while its liveness record is there, rekey pages are fenced record by record.
#[test]
fn a_key_deleted_by_an_earlier_build_during_a_rekey_stays_deleted_on_etcd() {
    let (stayed, conflicts) = delete_between_two_rekey_pages(DeletedBy::EarlierBuild);
    assert!(stayed, "the deleted key came back");
    assert!(
        conflicts >= 1,
        "the page read before the delete was refused"
    );
}
