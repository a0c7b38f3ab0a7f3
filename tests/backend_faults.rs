//! Backend faults during each operation, with the fake backend: unreachable, throttled, or
//! rejecting the key, and one node unreachable during restore. Each gives the seed's code and
//! a clear message, nothing is lost, and status says what is wrong.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use ekm::core::{
    DataKeyId, ErrorKind, JobState, KeyId, KeyOwner, KeyTag, StatusFields, Transaction,
};
use ekm::fake::{Fault, Op};
use ekm::store::StoreKind;

const WAIT: Duration = Duration::from_secs(30);

struct Setup {
    dir: tempfile::TempDir,
    e: std::sync::Arc<ekm::core::Engine>,
    fake: std::sync::Arc<ekm::fake::FakeBackend>,
    store: std::sync::Arc<dyn ekm::core::Store>,
    config: uuid::Uuid,
    keys: HashMap<DataKeyId, Vec<u8>>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (e, fake, store) = DataDir::new(dir.path(), StoreKind::Redb).open();
    let config = create(&e, &secret_body(None, "s")).unwrap().uuid;
    let mut keys = HashMap::new();
    for id in e
        .create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); 30])
        .unwrap()
    {
        keys.insert(id, e.read_data_key(&id).unwrap().expose_secret().to_vec());
    }
    Setup {
        dir,
        e,
        fake,
        store,
        config,
        keys,
    }
}

/// Every key reads back bit-identical through the engine in use (its key tables) *and* through
/// a freshly opened engine over the same store, whose key tables start empty: the second one
/// reads the stored records and unlocks their KEK through the backend, so damage to what is
/// stored cannot hide behind a cache.
fn all_keys_intact(s: &Setup) {
    let pk = ekm::store::protection_key::load_or_create(&s.dir.path().join("protection.key"))
        .expect("pk");
    let fresh = ekm::core::Engine::open(
        ekm::core::EngineOptions::new(s.store.clone(), s.fake.clone(), topology(), pk)
            .resume_jobs(false),
    )
    .expect("a fresh engine opens over the same store");
    assert_eq!(s.keys.len(), 30);
    for (id, m) in &s.keys {
        assert_eq!(
            s.e.read_data_key(id).unwrap().expose_secret().as_slice(),
            m.as_slice(),
            "key {id} through the engine in use"
        );
        let stored = fresh
            .read_data_key(id)
            .unwrap_or_else(|e| panic!("key {id} through a fresh engine: {e}"));
        assert_eq!(
            stored.expose_secret().as_slice(),
            m.as_slice(),
            "key {id} through a fresh engine"
        );
    }
    fresh.shutdown();
}

#[test]
fn rekey_external_with_the_vault_down_fails_clearly_and_changes_nothing() {
    let s = setup();
    for (fault, words) in [
        (Fault::Unreachable, "unreachable"),
        (
            Fault::Throttled {
                retry_after: Duration::from_secs(9),
            },
            "Retry after 9 seconds",
        ),
        (Fault::KeyNotFound, "does not exist"),
        (Fault::Forbidden, "not permitted"),
    ] {
        s.fake.fail_next(Some(Op::Check), fault, 1);
        let job =
            s.e.start_rekey_external(s.config, KeyId::parse(KEY_ID_2).unwrap(), None)
                .unwrap();
        let job = s.e.wait_job(job.uuid, WAIT).unwrap();
        assert_eq!(job.state, JobState::Failure);
        assert_eq!(job.code, ErrorKind::AkvUnavailable.code());
        assert!(job.message.contains(words), "{fault:?}: {}", job.message);
        assert_eq!(s.e.get_config(s.config).unwrap().key_id.as_str(), KEY_ID);
        all_keys_intact(&s);
    }
    // With the vault back, the same request succeeds.
    let job =
        s.e.start_rekey_external(s.config, KeyId::parse(KEY_ID_2).unwrap(), None)
            .unwrap();
    assert_eq!(
        s.e.wait_job(job.uuid, WAIT).unwrap().state,
        JobState::Success
    );
    assert_eq!(s.e.get_config(s.config).unwrap().key_id.as_str(), KEY_ID_2);
    all_keys_intact(&s);
}

#[test]
fn rekey_internal_with_the_wrap_throttled_keeps_the_old_generation() {
    let s = setup();
    s.fake.fail_next(
        Some(Op::Wrap),
        Fault::Throttled {
            retry_after: Duration::from_secs(4),
        },
        1,
    );
    let job = s.e.start_rekey_internal(s.config).unwrap();
    let job = s.e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(
        (job.state, job.code),
        (JobState::Failure, ErrorKind::AkvUnavailable.code())
    );
    assert!(job.message.contains("throttling"), "{}", job.message);
    assert_eq!(kek_generations(&*s.store, s.config), vec![(1, true)]);
    all_keys_intact(&s);
    let job = s.e.start_rekey_internal(s.config).unwrap();
    let job = s.e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    assert_eq!((job.processed, job.total), (30, 30));
    assert_eq!(kek_generations(&*s.store, s.config), vec![(2, true)]);
    all_keys_intact(&s);
}

#[test]
fn restore_with_one_node_unreachable_is_65537515_and_a_rerun_completes() {
    let s = setup();
    // Both nodes reboot; node2 cannot reach AKV.
    s.e.reset_node(NODE1).unwrap();
    s.e.reset_node(NODE2).unwrap();
    s.fake.set_node_reachable(NODE2, false);
    let before = s.fake.counters().unwraps;
    let job = s.e.start_restore(s.config).unwrap();
    let job = s.e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Failure);
    assert_eq!(job.code, 65_537_515);
    assert!(
        job.message
            .starts_with("Failed to restore keys on some nodes in the cluster.")
    );
    assert!(job.message.contains("Node: node2"), "{}", job.message);
    assert!(!job.message.contains("Node: node1"), "{}", job.message);
    assert_eq!(s.fake.counters().unwraps - before, 2, "one unwrap per node");
    // node1 keeps its keys; status names node2 and why.
    for id in s.keys.keys() {
        s.e.read_data_key_on(NODE1, id).unwrap();
    }
    let st =
        s.e.get_config_with_status(s.config, StatusFields::all())
            .unwrap();
    let state = st.state.unwrap();
    assert!(!state.available);
    assert_eq!(state.code, "346758");
    assert!(
        state.message.contains("Node: node2. Reason:"),
        "{}",
        state.message
    );
    assert!(state.message.contains("unreachable"), "{}", state.message);
    assert!(!state.message.contains("Node: node1"), "{}", state.message);
    let az = st.azure_reachability.unwrap();
    assert!(!az.reachable);
    assert!(az.message.contains("node2"), "{}", az.message);
    let ekmip = st.ekmip_reachability.unwrap();
    assert_eq!(ekmip.len(), 2);
    assert!(
        ekmip
            .iter()
            .any(|n| n.node.name == "node1" && n.reachable && n.code == "0")
    );
    assert!(
        ekmip
            .iter()
            .any(|n| n.node.name == "node2" && !n.reachable && n.code == "346758")
    );

    // node2 comes back; a re-run restores only what is missing, with one unwrap.
    s.fake.set_node_reachable(NODE2, true);
    let before = s.fake.counters().unwraps;
    let job = s.e.start_restore(s.config).unwrap();
    let job = s.e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    assert_eq!(s.fake.counters().unwraps - before, 1);
    for (id, m) in &s.keys {
        assert_eq!(
            s.e.read_data_key_on(NODE2, id)
                .unwrap()
                .expose_secret()
                .as_slice(),
            m.as_slice()
        );
    }
    let st =
        s.e.get_config_with_status(s.config, StatusFields::all())
            .unwrap();
    let state = st.state.unwrap();
    assert!(state.available && state.code == "0" && state.message.is_empty());
    assert!(st.azure_reachability.unwrap().reachable);
}

#[test]
fn restore_when_the_wrapped_kek_is_missing_is_65537544() {
    let s = setup();
    let mut t = Transaction::new();
    t.delete(ekm::core::layout::kek(s.config, 1));
    s.store.commit(t).unwrap();
    let err = s.e.start_restore(s.config).unwrap_err();
    assert_eq!(err.code(), 65_537_544);
}

#[test]
fn restore_with_a_rejecting_vault_fails_on_every_node_and_loses_nothing() {
    let s = setup();
    s.e.reset_node(NODE1).unwrap();
    s.e.reset_node(NODE2).unwrap();
    s.fake.set_fault(Some(Fault::WrongKey));
    let job = s.e.start_restore(s.config).unwrap();
    let job = s.e.wait_job(job.uuid, WAIT).unwrap();
    assert_eq!((job.state, job.code), (JobState::Failure, 65_537_515));
    assert!(job.message.contains("refused to unwrap"), "{}", job.message);
    s.fake.set_fault(None);
    all_keys_intact(&s);
}

#[test]
fn status_before_any_key_and_with_the_vault_down() {
    let dir = tempfile::tempdir().unwrap();
    let (e, fake, _store) = DataDir::new(dir.path(), StoreKind::Redb).open();
    let cfg = create(&e, &secret_body(Some("vs0"), "s")).unwrap().uuid;
    let st = e.get_config_with_status(cfg, StatusFields::all()).unwrap();
    let state = st.state.unwrap();
    assert!(!state.available);
    assert!(
        state.message.contains("No data keys created yet"),
        "{}",
        state.message
    );
    fake.set_fault(Some(Fault::Unreachable));
    let st = e
        .get_config_with_status(
            cfg,
            StatusFields {
                azure_reachability: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(st.state.is_none() && st.ekmip_reachability.is_none());
    let az = st.azure_reachability.unwrap();
    assert_eq!((az.reachable, az.code.as_str()), (false, "346758"));
    assert!(
        az.message
            .starts_with("AKV service is not reachable from all nodes - node1:"),
        "{}",
        az.message
    );
    // Advanced fields are computed only when asked for: no backend call without them.
    let checks = fake.counters().checks;
    let plain = e
        .get_config_with_status(cfg, StatusFields::default())
        .unwrap();
    assert!(plain.state.is_none() && plain.azure_reachability.is_none());
    assert_eq!(fake.counters().checks, checks);
}

#[test]
fn a_second_job_on_the_same_configuration_is_refused_while_one_runs() {
    let s = setup();
    s.fake.set_latency(Duration::from_millis(300));
    let first =
        s.e.start_rekey_external(s.config, KeyId::parse(KEY_ID_2).unwrap(), None)
            .unwrap();
    let err = s.e.start_rekey_internal(s.config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::JobInProgress);
    assert_eq!(s.e.delete_config(s.config).unwrap_err().code(), 65_536_867);
    s.fake.set_latency(Duration::ZERO);
    assert_eq!(
        s.e.wait_job(first.uuid, WAIT).unwrap().state,
        JobState::Success
    );
    let job = s.e.start_rekey_internal(s.config).unwrap();
    assert_eq!(
        s.e.wait_job(job.uuid, WAIT).unwrap().state,
        JobState::Success
    );
}

/// A node unlocking one configuration's KEK through a slow vault does not hold up unlocking
/// another configuration's KEK on the same node (one unlock lock per configuration and
/// generation, not per node).
#[test]
fn a_slow_unlock_does_not_hold_up_another_configurations() {
    let s = setup();
    let svm_config = create(&s.e, &secret_body(Some("vs0"), "s")).unwrap().uuid;
    let svm_key =
        s.e.create_data_key(KeyOwner::Svm(VS0), KeyTag::default())
            .unwrap();
    let cluster_key = *s.keys.keys().next().unwrap();
    s.e.reset_node(NODE1).unwrap();

    // The cluster configuration's unlock enters a vault call that takes 5 s.
    s.fake.set_latency(Duration::from_secs(5));
    let slow_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = {
        let (e, done) = (s.e.clone(), slow_done.clone());
        std::thread::spawn(move || {
            let r = e.read_data_key(&cluster_key).map(drop);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    s.fake.set_latency(Duration::ZERO);
    // The SVM configuration's unlock on the same node: a fast vault call.
    s.e.read_data_key(&svm_key)
        .expect("the SVM's key reads while the cluster's unlock is still in the vault");
    assert!(
        !slow_done.load(std::sync::atomic::Ordering::SeqCst),
        "the SVM's unlock (configuration {svm_config}) waited for the cluster's slow one"
    );
    slow.join().unwrap().unwrap();
}
