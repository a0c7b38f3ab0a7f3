//! A scope's KEK under several roots of trust (ekm's `mirror_of`), on the fake backend with
//! its per-key fault injection: an attached root wraps every generation in use before the
//! create answers (one wrap per generation, never per data key); with the primary's key
//! unusable, a restarted engine serves every key through the mirror, and so does restore; a
//! rekey-internal while the mirror is away succeeds, names it, and the mirror catches up by
//! itself at the next probe; a retired generation leaves no copy behind; the attach rules and
//! the delete rules refuse what they must and change nothing when they do.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use ekm::core::{
    AwsCreateRequest, AwsKeyId, DataKeyId, Engine, ExternalKey, JobState, KeyOwner, KeyTag,
};
use ekm::store::StoreKind;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const MIRROR_KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/mirror-of-vs0";

fn aws_mirror_body(primary: Uuid, key: &str) -> String {
    format!(
        r#"{{"region":"us-east-1","key_id":"{key}","access_key_id":"AKIAMIRROR","secret_access_key":"mirror-secret","mirror_of":{{"uuid":"{primary}"}}}}"#
    )
}

fn attach(e: &Engine, primary: Uuid, key: &str) -> ekm::core::Result<Uuid> {
    let req = AwsCreateRequest::from_json(aws_mirror_body(primary, key).as_bytes())?;
    Ok(e.create_aws_config(req)?.uuid)
}

fn mirror_key(key: &str) -> ExternalKey {
    ExternalKey::Aws(AwsKeyId::new("us-east-1", key).unwrap())
}

/// vs0 on the fake Azure key with `n` data keys: its uuid and every key's material.
fn vs0_with_keys(e: &Engine, n: usize) -> (Uuid, HashMap<DataKeyId, Vec<u8>>) {
    let vs0 = create(e, &secret_body(Some("vs0"), "s")).unwrap().uuid;
    let ids = e
        .create_data_keys(KeyOwner::Svm(VS0), vec![KeyTag::parse("v").unwrap(); n])
        .unwrap();
    let keys = ids
        .into_iter()
        .map(|id| {
            let m = e.read_data_key(&id).unwrap().expose_secret().to_vec();
            (id, m)
        })
        .collect();
    (vs0, keys)
}

fn all_read(e: &Engine, keys: &HashMap<DataKeyId, Vec<u8>>) {
    for (id, m) in keys {
        assert_eq!(
            e.read_data_key(id).unwrap().expose_secret().as_slice(),
            m.as_slice()
        );
    }
}

/// The mirror copies in the store: (generation, mirror uuid).
fn copies(store: &dyn ekm::core::Store, primary: Uuid) -> Vec<(u32, Uuid)> {
    store
        .scan(&ekm::core::layout::protector_copies(primary), None, 100)
        .unwrap()
        .iter()
        .map(|(k, _)| {
            let rest = &k[2 + 16..];
            (
                u32::from_be_bytes(rest[..4].try_into().unwrap()),
                Uuid::from_slice(&rest[4..20]).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_mirror_unlocks_every_key_when_the_primary_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), StoreKind::Redb);
    let (e, fake, store) = dd.open();
    let (vs0, keys) = vs0_with_keys(&e, 40);
    let before = fake.counters();
    let mirror = attach(&e, vs0, MIRROR_KEY).unwrap();
    let after = fake.counters();
    assert_eq!(
        after.wraps - before.wraps,
        1,
        "one wrap for the one generation in use, none per data key"
    );
    assert_eq!(copies(&*store, vs0), vec![(1, mirror)]);
    let p = e.protectors(vs0).unwrap();
    assert_eq!(
        p.iter()
            .map(|p| (p.uuid, p.kind, p.fully_wrapped, p.reachable))
            .collect::<Vec<_>>(),
        vec![
            (vs0, "azure_key_vault", true, true),
            (mirror, "aws_kms", true, true)
        ],
        "{p:?}"
    );
    e.shutdown();
    drop((e, store));

    // The primary's key is unusable: a restarted engine unlocks through the mirror.
    fake.disable_key(KEY_ID).unwrap();
    let (e, _f, store) = dd.open();
    // restore first, while no node holds the KEK: each node unlocks through the mirror.
    let job = e.start_restore(vs0).unwrap();
    let job = e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    assert_eq!(
        job.processed, 2,
        "both managed nodes restored: {}",
        job.message
    );
    e.shutdown();
    drop((e, store));
    let (e, fake, store) = dd.open();
    let c0 = fake.counters();
    all_read(&e, &keys);
    let mut c = fake.counters();
    c.unwraps -= c0.unwraps;
    assert!(
        c.unwraps <= 2,
        "one failed unwrap by the primary and one by the mirror, not one per key: {c:?}"
    );
    // As ekmd does at start: every managed node unlocks, each through the mirror; the state
    // says which root each node used.
    assert!(e.unlock_all().is_empty());
    let st = e
        .get_config_with_status(
            vs0,
            ekm::core::StatusFields {
                state: true,
                ..Default::default()
            },
        )
        .unwrap()
        .state
        .unwrap();
    assert!(st.available, "{st:?}");
    assert!(
        st.message
            .contains(&format!("Unlocked through mirror {mirror}")),
        "{}",
        st.message
    );
    // Both roots unusable: nothing unlocks (the mirror is no way around a lost primary's
    // check value, it is a second lock on the same KEK).
    e.shutdown();
    drop((e, store));
    fake.disable_key(&mirror_key(MIRROR_KEY)).unwrap();
    let (e, _f, _s) = dd.open();
    let any = keys.keys().next().unwrap();
    assert!(e.read_data_key(any).is_err());
}

#[test]
fn a_root_away_during_rekey_catches_up_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), StoreKind::Redb);
    let (e, fake, store) = dd.open();
    let (vs0, keys) = vs0_with_keys(&e, 30);
    let mirror = attach(&e, vs0, MIRROR_KEY).unwrap();
    fake.disable_key(&mirror_key(MIRROR_KEY)).unwrap();
    let job = e.start_rekey_internal(vs0).unwrap();
    let job = e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    assert!(
        job.message.contains(&mirror.to_string()),
        "the job names the root that could not wrap: {}",
        job.message
    );
    // Generation 1 is retired with its copy; the mirror lacks generation 2.
    assert!(
        copies(&*store, vs0).is_empty(),
        "{:?}",
        copies(&*store, vs0)
    );
    let p = e.protectors(vs0).unwrap();
    assert!(!p[1].fully_wrapped && !p[1].reachable, "{p:?}");
    assert!(p[1].message.contains('2'), "{}", p[1].message);
    // Back: the next probe makes the copy, without a restart.
    fake.add_key(&mirror_key(MIRROR_KEY)).unwrap();
    e.probe_backend();
    assert_eq!(copies(&*store, vs0), vec![(2, mirror)]);
    let p = e.protectors(vs0).unwrap();
    assert!(p.iter().all(|p| p.fully_wrapped && p.reachable), "{p:?}");
    e.shutdown();
    drop((e, store));
    // And it unlocks generation 2 alone.
    fake.disable_key(KEY_ID).unwrap();
    let (e, _f, _s) = dd.open();
    all_read(&e, &keys);
}

#[test]
fn attach_and_delete_refuse_what_they_must_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), StoreKind::Redb);
    let (e, _fake, store) = dd.open();
    let (vs0, keys) = vs0_with_keys(&e, 3);
    let cluster = create(&e, &secret_body(None, "s")).unwrap().uuid;
    let m1 = attach(&e, vs0, MIRROR_KEY).unwrap();
    let before = dump(&*store);
    let code_and_target = |r: ekm::core::Result<Uuid>| {
        let err = r.unwrap_err();
        (err.code(), err.target().map(str::to_owned))
    };
    // A mirror of a mirror, of nothing, of another scope.
    assert_eq!(
        code_and_target(attach(&e, m1, "alias/two")),
        (262_197, Some("mirror_of.uuid".into()))
    );
    assert_eq!(
        code_and_target(attach(&e, Uuid::new_v4(), "alias/two")),
        (262_197, Some("mirror_of.uuid".into()))
    );
    let other_scope =
        aws_mirror_body(vs0, "alias/two").replacen('{', r#"{"svm":{"name":"vs1"},"#, 1);
    assert_eq!(
        code_and_target(
            AwsCreateRequest::from_json(other_scope.as_bytes())
                .and_then(|r| e.create_aws_config(r))
                .map(|c| c.uuid)
        ),
        (262_197, Some("svm".into()))
    );
    // Deleting a primary with mirrors: 65537605; jobs on a mirror's path: 262197, they run on
    // the primary.
    assert_eq!(e.delete_config(vs0).unwrap_err().code(), 65_537_605);
    assert_eq!(e.start_rekey_internal(m1).unwrap_err().code(), 262_197);
    assert_eq!(e.start_restore(m1).unwrap_err().code(), 262_197);
    assert_eq!(e.start_migrate(cluster, m1).unwrap_err().code(), 262_197);
    assert_eq!(e.start_migrate(m1, cluster).unwrap_err().code(), 262_197);
    assert_eq!(dump(&*store), before, "refusals change nothing");
    // Up to three roots.
    let m2 = attach(&e, vs0, "alias/two").unwrap();
    assert_eq!(
        code_and_target(attach(&e, vs0, "alias/three")),
        (262_197, Some("mirror_of.uuid".into()))
    );
    let p: Vec<Uuid> = e.protectors(vs0).unwrap().iter().map(|p| p.uuid).collect();
    assert_eq!(p, vec![vs0, m1, m2], "primary first, then attach order");
    // A mirror goes while keys exist, with its copies; the keys stay readable.
    e.delete_config(m1).unwrap();
    assert_eq!(copies(&*store, vs0), vec![(1, m2)]);
    let p: Vec<Uuid> = e.protectors(vs0).unwrap().iter().map(|p| p.uuid).collect();
    assert_eq!(p, vec![vs0, m2]);
    all_read(&e, &keys);
    e.delete_config(m2).unwrap();
    assert!(copies(&*store, vs0).is_empty());
    // Then the primary is refused as before: its keys exist.
    assert_eq!(e.delete_config(vs0).unwrap_err().code(), 65_536_867);
    // A cluster-scope mirror takes the cluster's scope.
    let mc = attach(&e, cluster, "alias/cluster-mirror").unwrap();
    assert_eq!(e.get_aws_config(mc).unwrap().svm, None);
}

#[test]
fn a_mirror_rekeyed_or_repatched_on_its_own_path_still_unlocks_alone() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), StoreKind::Redb);
    let (e, fake, store) = dd.open();
    let (vs0, keys) = vs0_with_keys(&e, 10);
    let mirror = attach(&e, vs0, MIRROR_KEY).unwrap();
    const NEW_KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/new-mirror-key";
    // rekey-external on the mirror's path: that root's key only.
    let job = e.start_rekey_external_aws(mirror, NEW_KEY, None).unwrap();
    let job = e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    assert_eq!(e.get_aws_config(mirror).unwrap().key_id, NEW_KEY);
    assert_eq!(
        e.get_config_with_status(vs0, Default::default())
            .unwrap()
            .key_id
            .as_str(),
        KEY_ID,
        "the primary keeps its key"
    );
    // A new encryption context on the mirror: its copies are rewrapped under it.
    e.patch_aws_config(
        mirror,
        ekm::core::AwsPatchRequest::from_json(br#"{"encryption_context":"site=b"}"#).unwrap(),
    )
    .unwrap();
    e.shutdown();
    drop((e, store));
    // Neither the primary's key nor the mirror's old one: the mirror's new key alone unlocks.
    fake.disable_key(KEY_ID).unwrap();
    fake.disable_key(&mirror_key(MIRROR_KEY)).unwrap();
    let (e, _f, _s) = dd.open();
    all_read(&e, &keys);
    let p = e.protectors(vs0).unwrap();
    assert!(p[1].fully_wrapped, "{p:?}");
}
