//! Every field of a stored configuration record is authenticated under the protection key:
//! whoever can write the database, but does not hold the protection key, cannot redirect the
//! KEK's wrapping to a vault key of theirs or the sealed proxy password to a host of theirs. A
//! changed record is refused with 65537601 and never used: the backend is not called with it.

mod common;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{DataDir, KEY_ID, create, secret_body};
use ekm::core::codec::KekState;
use ekm::core::crypto::Kek;
use ekm::core::layout;
use ekm::core::{Engine, ErrorKind, KeyOwner, KeyTag, PatchRequest, StatusFields, Store};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;
use serde_json::Value;
use uuid::Uuid;

const ATTACKER_KEY: &str =
    "https://attacker.vault.azure.net/keys/theirs/ffffffffffffffffffffffffffffffff";

fn record(store: &dyn Store, uuid: Uuid) -> Value {
    serde_json::from_slice(&store.get(&layout::config(uuid)).unwrap().unwrap()).unwrap()
}

fn put_record(store: &dyn Store, uuid: Uuid, v: &Value) {
    let mut txn = ekm::core::Transaction::new();
    txn.put(layout::config(uuid), serde_json::to_vec(v).unwrap());
    store.commit(txn).unwrap();
}

fn setup() -> (
    tempfile::TempDir,
    Arc<Engine>,
    Arc<FakeBackend>,
    Arc<dyn Store>,
    Uuid,
) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, fake, store) = DataDir::new(dir.path(), StoreKind::Redb).open();
    let cfg = create(&engine, &secret_body(None, "s3cret")).unwrap();
    (dir, engine, fake, store, cfg.uuid)
}

/// Every way a caller can reach the configuration is refused as damaged, and the backend is
/// not called.
fn assert_refused_everywhere(engine: &Engine, fake: &FakeBackend, uuid: Uuid) {
    let before = fake.counters();
    let corrupt = |r: Result<(), ekm::core::Error>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::CorruptRecord, "{what}: {e}");
        assert!(
            e.message().contains("does not authenticate") || e.message().contains("format version"),
            "{what}: {e}"
        );
    };
    corrupt(engine.get_config(uuid).map(drop), "get");
    corrupt(engine.list_configs().map(drop), "list");
    corrupt(
        engine
            .create_data_key(KeyOwner::Cluster, KeyTag::parse("vol9").unwrap())
            .map(drop),
        "create a data key",
    );
    corrupt(
        engine
            .get_config_with_status(uuid, StatusFields::all())
            .map(drop),
        "status",
    );
    corrupt(
        engine
            .patch_config(
                uuid,
                PatchRequest::from_json(br#"{"client_secret":"other"}"#).unwrap(),
            )
            .map(drop),
        "patch",
    );
    assert_eq!(
        fake.counters(),
        before,
        "the backend was called with a tampered record"
    );
}

#[test]
fn a_changed_key_id_is_refused_and_never_used_to_wrap() {
    let (_dir, engine, fake, store, uuid) = setup();
    let mut v = record(&*store, uuid);
    v["key_id"] = Value::String(ATTACKER_KEY.into());
    put_record(&*store, uuid, &v);
    assert_refused_everywhere(&engine, &fake, uuid);
}

#[test]
fn a_changed_proxy_host_is_refused_and_the_password_never_leaves() {
    let (_dir, engine, fake, store, uuid) = setup();
    engine
        .patch_config(
            uuid,
            PatchRequest::from_json(
                br#"{"proxy_type":"http","proxy_host":"proxy.example","proxy_port":3128,"proxy_username":"u","proxy_password":"proxy-pw"}"#,
            )
            .unwrap(),
        )
        .unwrap();
    let mut v = record(&*store, uuid);
    assert_eq!(v["proxy"]["host"], "proxy.example");
    v["proxy"]["host"] = Value::String("attacker.example".into());
    put_record(&*store, uuid, &v);
    assert_refused_everywhere(&engine, &fake, uuid);
}

#[test]
fn every_plain_field_is_bound() {
    for (field, value) in [
        ("client_id", Value::String("other-client".into())),
        ("tenant_id", Value::String("other-tenant".into())),
        (
            "name",
            Value::String("https://attacker.vault.azure.net/".into()),
        ),
        ("revision", Value::from(99)),
        ("active_generation", Value::from(7)),
        ("authentication_method", Value::String("certificate".into())),
        (
            "svm",
            serde_json::json!({"uuid": common::VS0, "name": "vs0"}),
        ),
    ] {
        let (_dir, engine, fake, store, uuid) = setup();
        let mut v = record(&*store, uuid);
        assert_ne!(v[field], value, "{field}");
        v[field] = value;
        put_record(&*store, uuid, &v);
        let e = engine.get_config(uuid).expect_err(field);
        assert_eq!(e.kind(), ErrorKind::CorruptRecord, "{field}: {e}");
        assert_refused_everywhere(&engine, &fake, uuid);
    }
}

#[test]
fn a_record_without_its_authentication_or_of_the_old_format_is_refused() {
    let (_dir, engine, fake, store, uuid) = setup();
    let mut v = record(&*store, uuid);
    v.as_object_mut().unwrap().remove("mac");
    put_record(&*store, uuid, &v);
    assert_refused_everywhere(&engine, &fake, uuid);
    // Version 1 (secrets sealed, plain fields not authenticated) is not upgraded either.
    v["v"] = Value::from(1);
    put_record(&*store, uuid, &v);
    assert_refused_everywhere(&engine, &fake, uuid);
}

#[test]
fn another_configurations_authentic_record_under_this_uuid_is_refused() {
    let (_dir, engine, _fake, store, cluster) = setup();
    let svm = create(&engine, &secret_body(Some("vs0"), "s3cret"))
        .unwrap()
        .uuid;
    let svm_record = store.get(&layout::config(svm)).unwrap().unwrap();
    let mut txn = ekm::core::Transaction::new();
    txn.put(layout::config(cluster), svm_record);
    store.commit(txn).unwrap();
    let e = engine.get_config(cluster).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CorruptRecord, "{e}");
}

#[test]
fn a_record_written_under_another_protection_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, fake, store) = DataDir::new(dir.path(), StoreKind::Redb).open();
    let uuid = create(&engine, &secret_body(None, "s3cret")).unwrap().uuid;
    let id = engine
        .create_data_key(KeyOwner::Cluster, KeyTag::parse("vol1").unwrap())
        .unwrap();
    drop(engine);
    // The same store opened with another protection key (a node given the wrong key file).
    let other_pk = ekm::core::ProtectionKey::generate();
    let engine = Engine::open(ekm::core::EngineOptions::new(
        store.clone(),
        fake.clone(),
        common::topology(),
        other_pk,
    ))
    .unwrap();
    let e = engine.get_config(uuid).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CorruptRecord, "{e}");
    assert!(engine.read_data_key(&id).is_err());
    assert_eq!(record(&*store, uuid)["key_id"], KEY_ID);
}

/// What someone who can write the store but lacks the protection key can make: their own KEK,
/// wrapped by the configuration's vault key (RSA-OAEP needs only the key's *public* half; the
/// fake backend's wrap stands for it), with a valid check value, authenticated under a key of
/// theirs.
fn forged_kek_record(fake: &FakeBackend, config: Uuid, generation: u32) -> Vec<u8> {
    let kek = Kek::generate(generation);
    let node = common::topology().nodes[0].clone();
    let access = ekm::core::BackendAccess {
        config_uuid: config,
        revision: 0,
        provider: ekm::core::ProviderAccess::Azure(ekm::core::AzureAccess {
            vault: ekm::core::VaultUrl::parse(common::VAULT).unwrap(),
            client_id: "attacker".into(),
            tenant_id: "attacker".into(),
            credential: ekm::core::Credential::ClientSecret("x".to_owned().into()),
            proxy: None,
        }),
    };
    let call = ekm::core::BackendCall {
        node: &node,
        access: &access,
    };
    let wrapped = ekm::core::hierarchy::wrap_kek(
        fake,
        &call,
        config,
        ekm::core::ExternalKey::parse(KEY_ID).unwrap(),
        &kek,
        KekState::Active,
        0,
    )
    .unwrap();
    wrapped
        .encode(&ekm::core::ProtectionKey::generate())
        .unwrap()
}

/// A KEK record replaced by a forged one is refused after a restart: no data key is ever
/// sealed under the attacker's KEK, and the backend is not asked to unwrap it.
#[test]
fn a_forged_kek_record_is_refused_and_nothing_is_sealed_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path(), StoreKind::Redb);
    let (engine, fake, store) = data.open();
    let uuid = create(&engine, &secret_body(None, "s3cret")).unwrap().uuid;
    let old = engine
        .create_data_key(KeyOwner::Cluster, KeyTag::parse("vol1").unwrap())
        .unwrap();
    drop(engine);
    let forged = forged_kek_record(&fake, uuid, 1);
    let mut txn = ekm::core::Transaction::new();
    txn.put(layout::kek(uuid, 1), forged.clone());
    // The nodes' own copies too (a node prefers its copy to the cluster record).
    for n in common::topology().nodes {
        let key = layout::node(n.uuid, uuid);
        if let Some(raw) = store.get(&key).unwrap() {
            let mut rec: Value = serde_json::from_slice(&raw).unwrap();
            rec["wrapped_kek"] = Value::String(B64.encode(&forged));
            txn.put(key, serde_json::to_vec(&rec).unwrap());
        }
    }
    store.commit(txn).unwrap();

    // The reboot: a new process over the same store.
    drop(store);
    let (engine, fake, store) = data.open();
    let unwraps = fake.counters().unwraps;
    let e = engine
        .create_data_key(KeyOwner::Cluster, KeyTag::parse("vol2").unwrap())
        .expect_err("a create under a forged KEK record");
    assert_eq!(e.kind(), ErrorKind::CorruptRecord, "{e}");
    assert!(e.message().contains("does not authenticate"), "{e}");
    assert!(engine.read_data_key(&old).is_err());
    assert_eq!(
        fake.counters().unwraps,
        unwraps,
        "the backend was asked to unwrap a forged KEK"
    );
    assert_eq!(
        store.scan(&layout::records(uuid), None, 100).unwrap().len(),
        1,
        "no data key was added"
    );
}
