//! A crash at every write of attaching a mirror, and of a mirror catching up on a generation it
//! missed, leaves a store where every key reads back and each root is whole or absent: after
//! the restart either the mirror (or its copy) is there and unlocks every key alone, or it is
//! not there at all; nothing in between.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ekm::core::{
    AwsCreateRequest, AwsKeyId, DataKeyId, Engine, ExternalKey, JobState, KeyOwner, KeyTag, Store,
};
use ekm::store::StoreKind;
use ekm_fake::FakeBackend;
use uuid::Uuid;

const MIRROR_KEY: &str = "alias/crash-mirror";

struct World {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    fake: Arc<FakeBackend>,
    pk: PathBuf,
    vs0: Uuid,
    keys: HashMap<DataKeyId, Vec<u8>>,
}

/// An engine over `store` without the background catch-up (interval zero), so that this
/// test's own call is the one that meets the crash.
fn engine_over(
    store: Arc<dyn Store>,
    fake: Arc<FakeBackend>,
    pk: &std::path::Path,
    batch: usize,
) -> Arc<Engine> {
    let pk = ekm::store::protection_key::load_or_create(pk).unwrap();
    Engine::open(
        ekm::core::EngineOptions::new(store, fake, topology(), pk)
            .rekey_batch(batch)
            .backend_probe_interval(Duration::ZERO),
    )
    .unwrap()
}

fn mirror_key() -> ExternalKey {
    ExternalKey::Aws(AwsKeyId::new("us-east-1", MIRROR_KEY).unwrap())
}

fn attach(e: &Engine, primary: Uuid) -> ekm::core::Result<Uuid> {
    let body = format!(
        r#"{{"region":"us-east-1","key_id":"{MIRROR_KEY}","access_key_id":"AKIACRASH","secret_access_key":"s","mirror_of":{{"uuid":"{primary}"}}}}"#
    );
    Ok(
        e.create_aws_config(AwsCreateRequest::from_json(body.as_bytes())?)?
            .uuid,
    )
}

/// vs0 with 20 keys on a fresh store.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = ekm::store::open(StoreKind::Redb, &dir.path().join("store")).unwrap();
    let fake = Arc::new(FakeBackend::in_memory());
    let pk = dir.path().join("protection.key");
    let e = engine_over(store.clone(), fake.clone(), &pk, 8);
    let vs0 = create(&e, &secret_body(Some("vs0"), "s")).unwrap().uuid;
    let keys = e
        .create_data_keys(KeyOwner::Svm(VS0), vec![KeyTag::parse("v").unwrap(); 20])
        .unwrap()
        .into_iter()
        .map(|id| {
            let m = e.read_data_key(&id).unwrap().expose_secret().to_vec();
            (id, m)
        })
        .collect();
    e.shutdown();
    World {
        _dir: dir,
        store,
        fake,
        pk,
        vs0,
        keys,
    }
}

fn copies(store: &dyn Store, primary: Uuid) -> usize {
    store
        .scan(&ekm::core::layout::protector_copies(primary), None, 100)
        .unwrap()
        .len()
}

/// Every key reads back through the primary and, when `mirrored`, through the mirror alone.
fn every_key_reads(w: &World, mirrored: bool) {
    let e = engine_over(w.store.clone(), w.fake.clone(), &w.pk, 8);
    for (id, m) in &w.keys {
        assert_eq!(e.read_data_key(id).unwrap().expose_secret().as_slice(), m);
    }
    e.shutdown();
    drop(e);
    if mirrored {
        w.fake.disable_key(KEY_ID).unwrap();
        let e = engine_over(w.store.clone(), w.fake.clone(), &w.pk, 8);
        for (id, m) in &w.keys {
            assert_eq!(
                e.read_data_key(id).unwrap().expose_secret().as_slice(),
                m,
                "through the mirror alone"
            );
        }
        e.shutdown();
        w.fake.add_key(KEY_ID).unwrap();
    }
}

#[test]
fn a_crash_at_any_write_of_an_attach_leaves_the_mirror_whole_or_absent() {
    for n in 0.. {
        let w = world();
        let crashing = CrashingStore::new(w.store.clone(), n);
        let e = engine_over(crashing.store.clone(), w.fake.clone(), &w.pk, 8);
        let attached = attach(&e, w.vs0);
        let crashed = crashing.has_crashed();
        e.shutdown();
        drop(e);
        let e = engine_over(w.store.clone(), w.fake.clone(), &w.pk, 8);
        let mirrors: Vec<Uuid> = e
            .list_aws_configs()
            .unwrap()
            .into_iter()
            .map(|c| c.uuid)
            .collect();
        let listed: Vec<Uuid> = e
            .protectors(w.vs0)
            .unwrap()
            .iter()
            .skip(1)
            .map(|p| p.uuid)
            .collect();
        e.shutdown();
        drop(e);
        assert_eq!(
            mirrors, listed,
            "with {n} writes: the primary lists exactly the mirrors"
        );
        assert_eq!(copies(&*w.store, w.vs0), mirrors.len(), "with {n} writes");
        every_key_reads(&w, !mirrors.is_empty());
        if !crashed {
            assert!(attached.is_ok() && mirrors.len() == 1, "{attached:?}");
            return;
        }
        assert!(n < 20, "never finished");
    }
}

#[test]
fn a_crash_at_any_write_of_a_catch_up_leaves_the_copy_whole_or_absent() {
    for n in 0.. {
        let w = world();
        let e = engine_over(w.store.clone(), w.fake.clone(), &w.pk, 8);
        let mirror = attach(&e, w.vs0).unwrap();
        w.fake.disable_key(&mirror_key()).unwrap();
        let job = e.start_rekey_internal(w.vs0).unwrap();
        let job = e.wait_job(job.uuid, Duration::from_secs(30)).unwrap();
        assert_eq!(job.state, JobState::Success, "{}", job.message);
        assert!(job.message.contains(&mirror.to_string()));
        e.shutdown();
        drop(e);
        assert_eq!(
            copies(&*w.store, w.vs0),
            0,
            "generation 1 went with its copy"
        );
        w.fake.add_key(&mirror_key()).unwrap();

        let crashing = CrashingStore::new(w.store.clone(), n);
        let e = engine_over(crashing.store.clone(), w.fake.clone(), &w.pk, 8);
        let _ = e.catch_up_mirrors();
        let crashed = crashing.has_crashed();
        e.shutdown();
        drop(e);
        let made = copies(&*w.store, w.vs0);
        assert!(made <= 1, "with {n} writes");
        every_key_reads(&w, made == 1);
        if !crashed {
            assert_eq!(made, 1, "caught up");
            return;
        }
        assert!(n < 20, "never finished");
    }
}
