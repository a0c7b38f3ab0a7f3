//! Data keys created and deleted while rekey-internal runs: none lost, none left behind on the
//! old generation, and deleted keys stay deleted.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ekm::core::{DataKeyId, JobState, KeyOwner, KeyTag};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;

#[test]
fn creates_and_deletes_during_rekey_internal() {
    let dir = tempfile::tempdir().unwrap();
    let store = ekm::store::open(StoreKind::Redb, &dir.path().join("store")).unwrap();
    let fake = Arc::new(FakeBackend::in_memory());
    // Small batches make the rekey long enough to overlap with the writers.
    let e = engine_over(store.clone(), fake.clone(), &dir.path().join("pk"), 50);
    let config = create(&e, &secret_body(None, "s")).unwrap().uuid;
    let live: Arc<Mutex<HashMap<DataKeyId, Vec<u8>>>> = Arc::default();
    for owner in [KeyOwner::Cluster, KeyOwner::Svm(VS0)] {
        for id in e
            .create_data_keys(owner, vec![KeyTag::default(); 1500])
            .unwrap()
        {
            let m = e.read_data_key(&id).unwrap().expose_secret().to_vec();
            live.lock().unwrap().insert(id, m);
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
    let e = engine_over(store, fake, &dir.path().join("pk"), 50);
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
