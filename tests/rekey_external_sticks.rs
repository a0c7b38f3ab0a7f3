//! A rekey-external, once committed, is never undone on any node: a node that was unwrapping
//! its old copy of the KEK over the network while the rekey committed does not write that old
//! wrapping back, and a node copy wrapped by another external key than the configuration's is
//! never used. Otherwise the node could not unlock once the old vault key is disabled.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{DataDir, KEY_ID, KEY_ID_2, NODE2, create, secret_body};
use ekm::core::codec::WrappedKek;
use ekm::core::layout;
use ekm::core::{KeyId, KeyOwner, KeyTag};
use ekm::store::StoreKind;

/// The external key that wraps `node`'s own copy of the KEK of `config`.
fn node_copy_key(store: &dyn ekm::core::Store, node: uuid::Uuid, config: uuid::Uuid) -> String {
    let raw = store
        .get(&layout::node(node, config))
        .unwrap()
        .expect("node record");
    let rec: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let b64 = rec["wrapped_kek"].as_str().unwrap();
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    WrappedKek::decode_unauthenticated(&wrapped)
        .unwrap()
        .key_id
        .as_str()
        .to_owned()
}

/// A store with the cluster configuration and one data key (its KEK on both nodes).
fn one_key() -> (
    tempfile::TempDir,
    std::sync::Arc<ekm::core::Engine>,
    std::sync::Arc<ekm::fake::FakeBackend>,
    std::sync::Arc<dyn ekm::core::Store>,
    ekm::core::AzureKeyVault,
    ekm::core::DataKeyId,
) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, fake, store) = DataDir::new(dir.path(), StoreKind::Redb).open();
    let cfg = create(&engine, &secret_body(None, "s3cret")).unwrap();
    let id = engine
        .create_data_key(KeyOwner::Cluster, KeyTag::parse("vol1").unwrap())
        .unwrap();
    (dir, engine, fake, store, cfg, id)
}

#[test]
fn a_slow_unlock_during_rekey_external_does_not_write_the_old_wrapping_back() {
    let (_dir, engine, fake, store, cfg, id) = one_key();
    assert_eq!(node_copy_key(&*store, NODE2, cfg.uuid), KEY_ID);

    // Node 2 reboots and unlocks on its next read, slowly: it has read its copy (old key) and
    // waits on the vault while the rekey commits.
    engine.reset_node(NODE2).unwrap();
    fake.set_node_latency(NODE2, Duration::from_millis(600));
    let reader = {
        let engine = engine.clone();
        std::thread::spawn(move || engine.read_data_key_on(NODE2, &id))
    };
    std::thread::sleep(Duration::from_millis(150));
    let job = engine
        .start_rekey_external(cfg.uuid, KeyId::parse(KEY_ID_2).unwrap(), None)
        .unwrap();
    let job = engine.wait_job(job.uuid, Duration::from_secs(30)).unwrap();
    assert_eq!(job.state.as_str(), "success", "{}", job.message);
    reader.join().unwrap().expect("the slow read succeeds");
    fake.set_node_latency(NODE2, Duration::ZERO);

    assert_eq!(
        node_copy_key(&*store, NODE2, cfg.uuid),
        KEY_ID_2,
        "node 2's copy of the KEK went back to the old external key"
    );
    // The old vault key is disabled: node 2 still unlocks after another reboot.
    fake.disable_key(&KeyId::parse(KEY_ID).unwrap()).unwrap();
    engine.reset_node(NODE2).unwrap();
    engine
        .read_data_key_on(NODE2, &id)
        .expect("node 2 unlocks with the new external key");
}

#[test]
fn a_node_copy_wrapped_by_another_external_key_is_not_used() {
    let (_dir, engine, fake, store, cfg, id) = one_key();
    let old_copy = store.get(&layout::node(NODE2, cfg.uuid)).unwrap().unwrap();
    let job = engine
        .start_rekey_external(cfg.uuid, KeyId::parse(KEY_ID_2).unwrap(), None)
        .unwrap();
    let job = engine.wait_job(job.uuid, Duration::from_secs(30)).unwrap();
    assert_eq!(job.state.as_str(), "success", "{}", job.message);
    // Put the pre-rekey copy back, as a stale writer (or an old backup) would.
    let mut txn = ekm::core::Transaction::new();
    txn.put(layout::node(NODE2, cfg.uuid), old_copy);
    store.commit(txn).unwrap();
    fake.disable_key(&KeyId::parse(KEY_ID).unwrap()).unwrap();
    engine.reset_node(NODE2).unwrap();
    engine
        .read_data_key_on(NODE2, &id)
        .expect("the configuration's external key is used, not the stale copy's");
}
