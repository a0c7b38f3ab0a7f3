//! Keys held by the cluster's key manager: an SVM's keys created under the cluster
//! configuration, the SVM then configured, 65537547 on its rekeys, migrate, then the rekeys
//! succeed and every key reads back bit-identical.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use ekm::core::{DataKeyId, ErrorKind, JobState, KeyId, KeyOwner, KeyTag};
use ekm::store::StoreKind;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn svm_keys_move_from_the_cluster_key_manager_to_the_svms_own() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), StoreKind::Redb);
    let (e, fake, _s) = dd.open();
    let cluster = create(&e, &secret_body(None, "s")).unwrap().uuid;
    let mut keys: HashMap<DataKeyId, (KeyOwner, Vec<u8>)> = HashMap::new();
    for owner in [KeyOwner::Cluster, KeyOwner::Svm(VS0), KeyOwner::Svm(VS1)] {
        for id in e
            .create_data_keys(owner, vec![KeyTag::parse("v").unwrap(); 25])
            .unwrap()
        {
            keys.insert(
                id,
                (
                    owner,
                    e.read_data_key(&id).unwrap().expose_secret().to_vec(),
                ),
            );
        }
    }
    let vs0 = create(&e, &secret_body(Some("vs0"), "s")).unwrap().uuid;
    assert_eq!(
        e.start_rekey_internal(vs0).unwrap_err().kind(),
        ErrorKind::KeysOnAdminKeyManager
    );
    let err = e
        .start_rekey_external(vs0, KeyId::parse(KEY_ID_2).unwrap(), None)
        .unwrap_err();
    assert_eq!(err.code(), 65_537_547);
    assert!(err.message().contains("migrate"));
    // New VS0 keys already go to VS0's own key manager.
    let fresh = e
        .create_data_key(KeyOwner::Svm(VS0), KeyTag::default())
        .unwrap();
    keys.insert(
        fresh,
        (
            KeyOwner::Svm(VS0),
            e.read_data_key(&fresh).unwrap().expose_secret().to_vec(),
        ),
    );

    let wraps = fake.counters().wraps;
    let job = e.start_migrate(cluster, vs0).unwrap();
    let job = e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    assert_eq!((job.processed, job.total), (25, 25));
    assert_eq!(
        fake.counters().wraps,
        wraps,
        "VS0's KEK existed already: no new wrap"
    );

    let on_vs0 = e.list_data_keys(vs0).unwrap();
    assert_eq!(on_vs0.len(), 26);
    assert!(
        on_vs0
            .iter()
            .all(|k| k.svm_uuid == Some(VS0) && k.config_uuid == vs0)
    );
    let on_cluster = e.list_data_keys(cluster).unwrap();
    assert_eq!(on_cluster.len(), 50, "cluster and VS1 keys stay");
    assert!(on_cluster.iter().all(|k| k.svm_uuid != Some(VS0)));

    let job = e.start_rekey_internal(vs0).unwrap();
    let job = e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    let job = e
        .start_rekey_external(vs0, KeyId::parse(KEY_ID_2).unwrap(), None)
        .unwrap();
    let job = e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    e.shutdown();
    drop((e, fake, _s));
    let (e, _f, _s) = dd.open();
    for (id, (_, m)) in &keys {
        assert_eq!(
            e.read_data_key(id).unwrap().expose_secret().as_slice(),
            m.as_slice()
        );
    }
}

#[test]
fn migrate_arguments_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _f, _s) = DataDir::new(dir.path(), StoreKind::Redb).open();
    let cluster = create(&e, &secret_body(None, "s")).unwrap().uuid;
    let vs0 = create(&e, &secret_body(Some("vs0"), "s")).unwrap().uuid;
    let vs1 = create(&e, &secret_body(Some("vs1"), "s")).unwrap().uuid;
    // One side is the cluster's key manager, the other an SVM's.
    assert_eq!(e.start_migrate(vs0, vs1).unwrap_err().code(), 262_197);
    assert_eq!(
        e.start_migrate(cluster, cluster).unwrap_err().code(),
        262_197
    );
    assert_eq!(
        e.start_migrate(cluster, uuid::Uuid::new_v4())
            .unwrap_err()
            .code(),
        4
    );
    // Nothing to move is a success.
    let job = e.start_migrate(cluster, vs0).unwrap();
    assert_eq!(e.wait_job(job.uuid, WAIT).unwrap().state, JobState::Success);
}

#[test]
fn svm_keys_move_back_to_the_cluster_key_manager_and_return() {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), StoreKind::Redb);
    let (e, _fake, _s) = dd.open();
    let cluster = create(&e, &secret_body(None, "s")).unwrap().uuid;
    let vs0 = create(&e, &secret_body(Some("vs0"), "s")).unwrap().uuid;
    let mut keys = HashMap::new();
    for id in e
        .create_data_keys(KeyOwner::Svm(VS0), vec![KeyTag::parse("v").unwrap(); 10])
        .unwrap()
    {
        keys.insert(id, e.read_data_key(&id).unwrap().expose_secret().to_vec());
    }
    let job = e.start_migrate(vs0, cluster).unwrap();
    let job = e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    assert_eq!((job.processed, job.total), (10, 10));
    assert!(e.list_data_keys(vs0).unwrap().is_empty());
    let on_cluster = e.list_data_keys(cluster).unwrap();
    assert_eq!(on_cluster.len(), 10);
    assert!(on_cluster.iter().all(|k| k.svm_uuid == Some(VS0)));
    // While they are there, VS0's own rekeys are refused as for keys never migrated.
    assert_eq!(
        e.start_rekey_internal(vs0).unwrap_err().kind(),
        ErrorKind::KeysOnAdminKeyManager
    );
    e.shutdown();
    drop((e, _fake, _s));
    let (e, _f, _s) = dd.open();
    for (id, m) in &keys {
        assert_eq!(e.read_data_key(id).unwrap().expose_secret().as_slice(), m);
    }
    let job = e.start_migrate(cluster, vs0).unwrap();
    assert_eq!(e.wait_job(job.uuid, WAIT).unwrap().state, JobState::Success);
    assert_eq!(e.list_data_keys(vs0).unwrap().len(), 10);
}
