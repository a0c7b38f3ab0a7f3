//! A crash after every durable write of rekey-external, rekey-internal, restore and migrate: the store
//! stops accepting writes after its N-th commit (N = 0, 1, 2, ... until the job completes
//! untouched). After each simulated crash the engine reopens over what was durable, the job
//! resumes (or is re-run) and converges, every data key reads back bit-identical, and exactly
//! one KEK generation is active.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ekm::core::{DataKeyId, Engine, JobState, KeyId, KeyOwner, KeyTag, Store};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;
use uuid::Uuid;

const KEYS: usize = 40;
const BATCH: usize = 7;

struct World {
    _dir: tempfile::TempDir,
    pk: std::path::PathBuf,
    store: Arc<dyn Store>,
    fake: Arc<FakeBackend>,
    config: Uuid,
    keys: HashMap<DataKeyId, Vec<u8>>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = ekm::store::open(StoreKind::Redb, &dir.path().join("store")).unwrap();
    let fake = Arc::new(FakeBackend::in_memory());
    let pk = dir.path().join("protection.key");
    let e = engine_over(store.clone(), fake.clone(), &pk, BATCH);
    let config = create(&e, &secret_body(None, "s")).unwrap().uuid;
    let mut keys = HashMap::new();
    for owner in [KeyOwner::Cluster, KeyOwner::Svm(VS1)] {
        let tags = vec![KeyTag::parse("vol").unwrap(); KEYS / 2];
        for id in e.create_data_keys(owner, tags).unwrap() {
            keys.insert(id, e.read_data_key(&id).unwrap().expose_secret().to_vec());
        }
    }
    World {
        _dir: dir,
        pk,
        store,
        fake,
        config,
        keys,
    }
}

/// Waits until the job ends or the crashing engine has stopped all its runners.
fn settle(e: &Engine, crashing: &CrashingStore, job: Uuid) -> Option<JobState> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(j) = e.job(job) {
            if j.state.is_terminal() {
                return Some(j.state);
            }
        }
        if crashing.has_crashed() && e.running_jobs() == 0 {
            return None;
        }
        assert!(
            Instant::now() < deadline,
            "job neither finished nor stopped"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn verify(w: &World, e: &Engine) {
    for (id, material) in &w.keys {
        let got = e
            .read_data_key(id)
            .unwrap_or_else(|err| panic!("key {id}: {err}"));
        assert_eq!(
            got.expose_secret().as_slice(),
            material.as_slice(),
            "key {id} changed"
        );
    }
    let gens = kek_generations(&*w.store, w.config);
    assert_eq!(
        gens.iter().filter(|(_, active)| *active).count(),
        1,
        "generations: {gens:?}"
    );
    // Every key is under exactly one configuration (migrate moves some to the SVM's own).
    let listed: usize = e
        .list_configs()
        .unwrap()
        .iter()
        .map(|c| e.list_data_keys(c.uuid).unwrap().len())
        .sum();
    assert_eq!(listed, w.keys.len());
}

/// Drives `start` against a store that crashes after `n` commits, for n = 0.. until the job
/// completes without reaching its crash point; checks recovery after each crash. Returns the
/// number of crash points exercised.
fn every_crash_point(
    name: &str,
    prepare: impl Fn(&World),
    start: impl Fn(&Arc<Engine>, &World) -> ekm::core::Result<ekm::core::Job>,
    check: impl Fn(&World, &Engine),
) -> usize {
    for n in 0.. {
        let w = world();
        prepare(&w);
        let crashing = CrashingStore::new(w.store.clone(), n);
        let e = engine_over(crashing.store.clone(), w.fake.clone(), &w.pk, BATCH);
        let started = start(&e, &w);
        let finished = match &started {
            Ok(job) => settle(&e, &crashing, job.uuid),
            Err(err) => {
                assert!(
                    crashing.has_crashed(),
                    "{name}: start failed without a crash: {err}"
                );
                None
            }
        };
        if let Some(state) = finished {
            assert_eq!(state, JobState::Success, "{name} with {n} writes allowed");
            if !crashing.has_crashed() {
                check(&w, &e);
                verify(&w, &e);
                return n;
            }
        }
        drop(e);
        // The "restarted process": a fresh engine over what was durable; it resumes the job.
        let e = engine_over(w.store.clone(), w.fake.clone(), &w.pk, BATCH);
        let job = match &started {
            Ok(job) => e.wait_job(job.uuid, Duration::from_secs(30)).unwrap(),
            Err(_) => {
                let job = start(&e, &w).unwrap();
                e.wait_job(job.uuid, Duration::from_secs(30)).unwrap()
            }
        };
        assert_eq!(
            job.state,
            JobState::Success,
            "{name}, crash after write {n}: {job:?}"
        );
        assert!(!job.message.is_empty());
        check(&w, &e);
        verify(&w, &e);
        // A re-run converges too.
        let again = start(&e, &w).unwrap();
        let again = e.wait_job(again.uuid, Duration::from_secs(30)).unwrap();
        assert_eq!(
            again.state,
            JobState::Success,
            "{name} re-run after crash {n}"
        );
        verify(&w, &e);
    }
    unreachable!()
}

#[test]
fn rekey_internal_survives_a_crash_after_every_write() {
    let points = every_crash_point(
        "rekey-internal",
        |_| {},
        |e, w| e.start_rekey_internal(w.config),
        |w, e| {
            for k in e.list_data_keys(w.config).unwrap() {
                assert!(
                    k.kek_generation >= 2,
                    "key {} left on generation 1",
                    k.key_id
                );
            }
            assert!(
                kek_generations(&*w.store, w.config)
                    .iter()
                    .all(|(g, _)| *g >= 2)
            );
        },
    );
    eprintln!("rekey-internal: {points} crash points");
    // begin, running, switch, one commit per batch, retire.
    assert!(points >= 3 + KEYS / BATCH, "only {points} crash points");
}

#[test]
fn rekey_external_survives_a_crash_after_every_write() {
    let points = every_crash_point(
        "rekey-external",
        |_| {},
        |e, w| e.start_rekey_external(w.config, KeyId::parse(KEY_ID_2).unwrap(), None),
        |w, e| {
            assert_eq!(e.get_config(w.config).unwrap().key_id.as_str(), KEY_ID_2);
            let k = w
                .store
                .scan(&ekm::core::layout::kek_prefix(w.config), None, 10)
                .unwrap();
            let k = ekm::core::codec::WrappedKek::decode_unauthenticated(&k[0].1).unwrap();
            assert_eq!(
                k.key_id.as_str(),
                KEY_ID_2,
                "the wrapped KEK follows the config"
            );
        },
    );
    assert!(points >= 3, "only {points} crash points");
}

#[test]
fn restore_survives_a_crash_after_every_write() {
    let points = every_crash_point(
        "restore",
        |_| {},
        |e, w| e.start_restore(w.config),
        |w, e| {
            // Both nodes hold the KEK and every key afterwards.
            for id in w.keys.keys() {
                e.read_data_key_on(NODE2, id).unwrap();
            }
            let st = e
                .get_config_with_status(w.config, ekm::core::StatusFields::all())
                .unwrap();
            assert!(st.state.unwrap().available);
        },
    );
    assert!(points >= 3, "only {points} crash points");
}

/// The uuid of vs1's own configuration.
fn vs1_config(e: &Engine) -> Uuid {
    e.list_configs()
        .unwrap()
        .into_iter()
        .find(|c| c.svm.as_ref().is_some_and(|s| s.uuid() == VS1))
        .expect("vs1 has a configuration")
        .uuid
}

#[test]
fn migrate_survives_a_crash_after_every_write() {
    let points = every_crash_point(
        "migrate",
        |w| {
            // vs1 gets a key manager of its own; its keys still sit under the cluster's.
            let e = engine_over(w.store.clone(), w.fake.clone(), &w.pk, BATCH);
            create(&e, &secret_body(Some("vs1"), "s")).unwrap();
            e.shutdown();
        },
        |e, w| e.start_migrate(w.config, vs1_config(e)),
        |w, e| {
            let dest = vs1_config(e);
            let moved = e.list_data_keys(dest).unwrap();
            assert_eq!(moved.len(), KEYS / 2, "every vs1 key moved");
            assert!(moved.iter().all(|k| k.svm_uuid == Some(VS1)));
            let stayed = e.list_data_keys(w.config).unwrap();
            assert_eq!(stayed.len(), KEYS / 2);
            assert!(stayed.iter().all(|k| k.svm_uuid.is_none()));
        },
    );
    eprintln!("migrate: {points} crash points");
    // begin, running, one commit per page, finish.
    assert!(
        points >= 3 + (KEYS / 2) / BATCH,
        "only {points} crash points"
    );
}
