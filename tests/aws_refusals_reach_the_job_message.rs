//! What AWS KMS answers that moto never does (a disabled key, a key pending deletion, an access
//! denial, throttling) reaches the job that met it: a fault server answering AWS's own error
//! bodies stands in for KMS after a restart, and a rekey-internal (which must wrap its new KEK
//! with Encrypt and unlock the old one with Decrypt) ends as a failure whose message names the
//! cause. A disabled key, a key
//! pending deletion and an access denial fail at once; throttling is waited out (its
//! Retry-After honoured, the wait said in the job's message) until the retry budget is spent.
//! A PATCH whose new secret access key KMS refuses is the seed's 65537540 (worded for AWS), and
//! the configuration stays as it was.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::topology;
use ekm::aws::testing::{Answer, FaultServer, Moto, test_options};
use ekm::core::{
    AwsCreateRequest, AwsPatchRequest, Backends, Engine, EngineOptions, JobState, KeyOwner, KeyTag,
};
use ekm::store::{StoreKind, protection_key};

/// An engine on `dir`'s store whose one backend is AWS KMS as `options` reach it.
fn open(dir: &std::path::Path, options: ekm::aws::AwsOptions) -> Arc<Engine> {
    let store = ekm::store::open(StoreKind::Redb, &dir.join("store")).unwrap();
    let pk = protection_key::load_or_create(&dir.join("protection.key")).unwrap();
    let aws = Arc::new(ekm::aws::AwsKms::new(options).unwrap());
    Engine::open(
        EngineOptions::new(store, Arc::new(Backends::new(vec![aws])), topology(), pk)
            .job_retry_budget(Duration::from_secs(3)),
    )
    .unwrap()
}

/// vs0 configured on KMS key `key` through `e`, with one data key; `e` shut down. Its uuid.
fn configured(e: Arc<Engine>, key: &str) -> uuid::Uuid {
    let body = format!(
        r#"{{"svm":{{"name":"vs0"}},"region":"us-east-1","key_id":"{key}","access_key_id":"{}","secret_access_key":"{}","timeout":2}}"#,
        ekm::aws::testing::ACCESS_KEY_ID,
        ekm::aws::testing::CANARY_SECRET
    );
    let cfg = e
        .create_aws_config(AwsCreateRequest::from_json(body.as_bytes()).unwrap())
        .unwrap();
    e.create_data_key(KeyOwner::Svm(common::VS0), KeyTag::parse("vol1").unwrap())
        .unwrap();
    e.shutdown();
    cfg.uuid
}

#[test]
fn kms_refusals_reach_the_job_message() {
    let Some(moto) = Moto::start_or_skip("aws refusals") else {
        return;
    };
    let (key, _) = moto.create_key().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let open = |options| open(tmp.path(), options);
    let uuid = configured(open(moto.options()), &key);
    for (answer, says) in [
        (
            Answer::aws_error(
                400,
                "DisabledException",
                "arn:aws:kms:us-east-1:1:key/x is disabled.",
            ),
            "disabled",
        ),
        (
            Answer::aws_error(
                400,
                "KMSInvalidStateException",
                "arn:aws:kms:us-east-1:1:key/x is pending deletion.",
            ),
            "pending deletion",
        ),
        (
            Answer::aws_error(
                400,
                "AccessDeniedException",
                "User: arn:aws:iam::1:user/ekm is not authorized to perform: kms:Decrypt",
            ),
            "not permitted",
        ),
        (Answer::throttling(), "throttl"),
    ] {
        let fault = FaultServer::start(moto.pki(), answer.clone()).unwrap();
        let e = open(test_options(moto.pki(), fault.addr()));
        let job = e.start_rekey_internal(uuid).unwrap();
        let job = e.wait_job(job.uuid, Duration::from_secs(60)).unwrap();
        assert_eq!(job.state, JobState::Failure, "{answer:?}: {job:?}");
        let message = job.message.to_lowercase();
        assert!(message.contains(says), "{says}: {}", job.message);
        assert!(
            !job.message.contains("AKV"),
            "worded for AWS: {}",
            job.message
        );
        assert!(
            !job.message.contains(ekm::aws::testing::CANARY_SECRET),
            "no secret in a job message"
        );
        let asked: Vec<String> = fault.received().into_iter().map(|r| r.target).collect();
        assert!(
            asked
                .iter()
                .any(|t| t.ends_with(".Encrypt") || t.ends_with(".Decrypt")),
            "the job asked KMS: {asked:?}"
        );
        e.shutdown();
        drop(e);
    }
}

#[test]
fn a_secret_kms_refuses_is_an_invalid_secret_and_changes_nothing() {
    let Some(moto) = Moto::start_or_skip("aws credential refusal") else {
        return;
    };
    let (key, _) = moto.create_key().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let uuid = configured(open(tmp.path(), moto.options()), &key);
    let before = {
        let e = open(tmp.path(), moto.options());
        let c = serde_json::to_value(e.get_aws_config(uuid).unwrap()).unwrap();
        e.shutdown();
        c
    };
    const NEW_SECRET: &str = "canary-refused-new-secret-access-key";
    let patch = format!(r#"{{"secret_access_key":"{NEW_SECRET}","timeout":9}}"#);
    let fault = FaultServer::start(
        moto.pki(),
        Answer::aws_error(
            400,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
    )
    .unwrap();
    let e = open(tmp.path(), test_options(moto.pki(), fault.addr()));
    let err = e
        .patch_aws_config(uuid, AwsPatchRequest::from_json(patch.as_bytes()).unwrap())
        .unwrap_err();
    assert_eq!(
        (err.code(), err.kind().http_status()),
        (65_537_540, 400),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("Invalid secret access key."), "{text}");
    assert!(text.contains(ekm::aws::testing::ACCESS_KEY_ID), "{text}");
    assert!(
        !text.contains(NEW_SECRET) && !text.contains("AKV"),
        "{text}"
    );
    e.shutdown();
    drop(e);
    // Unchanged (the timeout patched with the secret too), and still serving through moto.
    let e = open(tmp.path(), moto.options());
    assert_eq!(
        serde_json::to_value(e.get_aws_config(uuid).unwrap()).unwrap(),
        before
    );
    let job = e.start_rekey_internal(uuid).unwrap();
    let job = e.wait_job(job.uuid, Duration::from_secs(60)).unwrap();
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    e.shutdown();
}
