//! A data-key create commits on the configuration that protects its owner *now*: the engine
//! remembers the configuration its last create used (to spare a cluster store two reads per
//! create), and the commit's checks must catch everything that changed it since — another
//! process's rekey, a configuration created for the owner's SVM.

mod common;

use std::time::Duration;

use common::*;
use ekm::core::{JobState, KeyOwner, KeyTag};
use ekm::store::StoreKind;

#[test]
fn an_svm_key_goes_to_the_svm_configuration_created_after_earlier_creates() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _f, _s) = DataDir::new(dir.path(), StoreKind::Redb).open();
    let cluster = create(&e, &secret_body(None, "s")).unwrap();
    let before = e
        .create_data_key(KeyOwner::Svm(VS1), KeyTag::default())
        .unwrap();
    assert_eq!(e.data_key_info(&before).unwrap().config_uuid, cluster.uuid);
    let own = create(&e, &secret_body(Some("vs1"), "s")).unwrap();
    let after = e
        .create_data_key(KeyOwner::Svm(VS1), KeyTag::default())
        .unwrap();
    assert_eq!(
        e.data_key_info(&after).unwrap().config_uuid,
        own.uuid,
        "a create after the SVM got its own configuration must use it"
    );
}

#[test]
fn a_create_after_another_process_rekeyed_seals_under_the_new_generation() {
    let dir = tempfile::tempdir().unwrap();
    let (a, fake, store) = DataDir::new(dir.path(), StoreKind::Redb).open();
    let cfg = create(&a, &secret_body(None, "s")).unwrap();
    let first = a
        .create_data_key(KeyOwner::Cluster, KeyTag::default())
        .unwrap();
    assert_eq!(a.data_key_info(&first).unwrap().kek_generation, 1);
    // Another engine over the same store (as another ekmd on a shared etcd) rekeys.
    let b = engine_over(store, fake, &dir.path().join("protection.key"), 64);
    let job = b.start_rekey_internal(cfg.uuid).unwrap();
    let job = b.wait_job(job.uuid, Duration::from_secs(30)).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    let next = a
        .create_data_key(KeyOwner::Cluster, KeyTag::default())
        .unwrap();
    assert_eq!(
        a.data_key_info(&next).unwrap().kek_generation,
        2,
        "a create must not seal under the generation the rekey retired"
    );
    assert!(a.read_data_key(&next).is_ok());
}
