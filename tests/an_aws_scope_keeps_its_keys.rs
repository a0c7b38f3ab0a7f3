//! A scope protected by AWS KMS works as an Azure one does: its configuration is created only
//! once the key wraps and unwraps, its data keys survive a restart, a rekey-internal rewraps
//! them under a new KEK, and the configuration is deleted only once its keys are. AWS and Azure
//! configurations live side by side (vs0 on AWS, the cluster on Azure): each provider's list
//! holds its own, the key-managers list holds both, and a uuid of one kind is 404 on the other
//! kind's paths. On the fake (which serves every provider), then on AWS's SDK against moto.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ekm::core::{
    AwsCreateRequest, Backends, Engine, EngineOptions, ErrorKind, KeyManagerConfig, KeyOwner,
    KeyTag, Provider,
};
use ekm::store::{StoreKind, protection_key};

fn aws_body(svm: &str, key: &str, secret: &str) -> String {
    format!(
        r#"{{"svm":{{"name":"{svm}"}},"region":"us-east-1","key_id":"{key}","access_key_id":"AKIAEKMTESTACCESS001","secret_access_key":"{secret}","encryption_context":"tenant=vs0","timeout":2}}"#
    )
}

#[test]
fn an_aws_scope_on_the_fake_keeps_its_keys_through_restart_and_rekey() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path(), StoreKind::Redb);
    let (aws_uuid, id, material) = {
        let (e, fake, _) = dir.open();
        let cluster = create(&e, &secret_body(None, "s")).unwrap();
        let req = AwsCreateRequest::from_json(
            aws_body("vs0", "alias/ekm-vs0", "canary-AWS-SECRET-1").as_bytes(),
        )
        .unwrap();
        let aws = e.create_aws_config(req).unwrap();
        assert_eq!(aws.svm.as_ref().unwrap().name(), "vs0");
        assert_eq!(aws.key_id, "alias/ekm-vs0");
        // The configuration was proven with its own key (the fake serves AWS keys by their text).
        assert!(fake.counters().checks >= 2);

        // A second configuration for the same scope, of either kind, is refused.
        let again =
            AwsCreateRequest::from_json(aws_body("vs0", "alias/other", "x").as_bytes()).unwrap();
        assert_eq!(
            e.create_aws_config(again).unwrap_err().kind(),
            ErrorKind::AlreadyConfigured
        );
        assert_eq!(
            create(&e, &secret_body(Some("vs0"), "s"))
                .unwrap_err()
                .kind(),
            ErrorKind::AlreadyConfigured
        );

        // Each list holds its own kind; the key-managers list both, the cluster first.
        assert_eq!(e.list_configs().unwrap().len(), 1);
        assert_eq!(e.list_aws_configs().unwrap().len(), 1);
        let all = e.list_key_managers().unwrap();
        assert_eq!(
            all.iter()
                .map(KeyManagerConfig::provider)
                .collect::<Vec<_>>(),
            [Provider::AzureKeyVault, Provider::AwsKms]
        );
        assert_eq!(
            e.get_config(aws.uuid).unwrap_err().kind(),
            ErrorKind::EntryNotFound
        );
        assert_eq!(
            e.get_aws_config(cluster.uuid).unwrap_err().kind(),
            ErrorKind::EntryNotFound
        );

        let id = e
            .create_data_key(KeyOwner::Svm(VS0), KeyTag::parse("vol1").unwrap())
            .unwrap();
        let material = e.read_data_key(&id).unwrap();
        e.shutdown();
        (aws.uuid, id, material)
    };
    let (e, _, store) = dir.open();
    assert_eq!(
        e.read_data_key(&id).unwrap().expose_secret(),
        material.expose_secret(),
        "after a restart"
    );
    // The wrapped KEK records the AWS key it was wrapped by.
    let kek = dump(&*store)
        .into_iter()
        .find(|(k, _)| k.starts_with(&ekm::core::layout::kek_prefix(aws_uuid)))
        .map(|(_, v)| ekm::core::codec::WrappedKek::decode_unauthenticated(&v).unwrap())
        .unwrap();
    assert_eq!(kek.key_id.as_str(), "aws-kms:us-east-1:alias/ekm-vs0");
    assert_eq!(kek.key_id.provider(), Provider::AwsKms);

    let job = e.start_rekey_internal(aws_uuid).unwrap();
    let job = e.wait_job(job.uuid, Duration::from_secs(30)).unwrap();
    assert_eq!(job.state.as_str(), "success", "{job:?}");
    assert_eq!(
        e.read_data_key(&id).unwrap().expose_secret(),
        material.expose_secret()
    );
    assert_eq!(e.get_aws_config(aws_uuid).unwrap().uuid, aws_uuid);

    assert_eq!(
        e.delete_config(aws_uuid).unwrap_err().kind(),
        ErrorKind::KeysExist
    );
    e.delete_data_key(&id).unwrap();
    e.delete_config(aws_uuid).unwrap();
    assert!(e.list_aws_configs().unwrap().is_empty());
    // The secret access key was never written in the clear.
    for f in files_under(tmp.path()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !bytes.windows(19).any(|w| w == b"canary-AWS-SECRET-1"),
            "{}",
            f.display()
        );
    }
    e.shutdown();
}

#[test]
fn an_aws_scope_through_the_sdk_against_moto_keeps_its_keys() {
    let Some(moto) = ekm::aws::testing::Moto::start_or_skip("an aws scope") else {
        return;
    };
    let (key, arn) = moto.create_key().unwrap();
    moto.create_alias("alias/ekm-vs0", &key).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let open = || {
        let store = ekm::store::open(StoreKind::Redb, &tmp.path().join("store")).unwrap();
        let pk = protection_key::load_or_create(&tmp.path().join("protection.key")).unwrap();
        let aws = Arc::new(ekm::aws::AwsKms::new(moto.options()).unwrap());
        let backend = Arc::new(Backends::new(vec![aws]));
        Engine::open(EngineOptions::new(store, backend, topology(), pk)).unwrap()
    };
    let (uuid, id, material) = {
        let e = open();
        // Azure is not served by this process: refused, naming the flag.
        let err = create(&e, &secret_body(None, "s")).unwrap_err();
        assert_eq!(err.code(), 65_537_604, "{err}");
        // Configured by its alias; recorded as the exact key, so re-pointing the alias never
        // strands a KEK.
        let req = AwsCreateRequest::from_json(
            aws_body("vs0", "alias/ekm-vs0", ekm::aws::testing::CANARY_SECRET).as_bytes(),
        )
        .unwrap();
        let cfg = e.create_aws_config(req).unwrap();
        assert_eq!(cfg.key_id, arn);
        let id = e
            .create_data_key(KeyOwner::Svm(VS0), KeyTag::parse("vol1").unwrap())
            .unwrap();
        let m = e.read_data_key(&id).unwrap();
        e.shutdown();
        (cfg.uuid, id, m)
    };
    let before = moto.kms_calls().len();
    let e = open();
    assert_eq!(
        e.read_data_key(&id).unwrap().expose_secret(),
        material.expose_secret()
    );
    // One Decrypt unlocks the KEK after the restart; the data key itself never goes to KMS.
    assert_eq!(&moto.kms_calls()[before..], ["Decrypt"]);

    // A new encryption context rewraps the KEK in the patch's commit: after a restart it
    // unwraps with the new context (KMS refuses a Decrypt whose context differs). A node copy
    // under the old context (as a node that unwrapped it while the patch committed would have
    // written it back) is not preferred over the cluster's record.
    let node_copy = {
        let key = ekm::core::layout::node(topology().nodes[0].uuid, uuid);
        let raw = e.store().get(&key).unwrap().expect("node1 holds a copy");
        (key, raw)
    };
    let patch =
        ekm::core::AwsPatchRequest::from_json(br#"{"encryption_context":"tenant=vs0;v=2"}"#)
            .unwrap();
    let patched = e.patch_aws_config(uuid, patch).unwrap();
    assert_eq!(
        patched.settings.encryption_context.as_deref(),
        Some("tenant=vs0;v=2")
    );
    e.shutdown();
    drop(e);
    let store = ekm::store::open(StoreKind::Redb, &tmp.path().join("store")).unwrap();
    let mut txn = ekm::core::Transaction::new();
    txn.put(node_copy.0.clone(), node_copy.1.clone());
    store.commit(txn).unwrap();
    drop(store);
    let e = open();
    assert_eq!(
        e.read_data_key(&id).unwrap().expose_secret(),
        material.expose_secret(),
        "the KEK unwraps under the patched context"
    );
    let job = e.start_rekey_internal(uuid).unwrap();
    let job = e.wait_job(job.uuid, Duration::from_secs(60)).unwrap();
    assert_eq!(job.state.as_str(), "success", "{job:?}");
    assert_eq!(
        e.read_data_key(&id).unwrap().expose_secret(),
        material.expose_secret()
    );
    e.shutdown();
}
