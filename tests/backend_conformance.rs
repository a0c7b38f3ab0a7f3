//! One backend conformance suite, run against the fake backend, against ekm-azure talking to
//! the AKV emulator over HTTPS, and against ekm-aws talking to moto's KMS over HTTPS (a test
//! CA, AWS's own host name pinned to moto): wrap/unwrap round trips with the exact key
//! version, a blob of one key refused by another, a blob bound to another KEK generation
//! refused where the provider binds context, garbage, missing and disabled keys, refused
//! credentials, and the reachability check.

mod common;

use std::sync::Arc;

use common::*;
use ekm::aws::testing as aws_testing;
use ekm::core::Node;
use ekm::core::backend::{
    AwsKmsAccess, AzureAccess, Backend, BackendAccess, BackendCall, BackendErrorKind,
    ProviderAccess,
};
use ekm::core::config::Credential;
use ekm::core::ids::VaultUrl;
use ekm::core::provider::{AwsKeyId, ExternalKey};
use ekm::core::secret::{KeyMaterial, SecretString};
use uuid::Uuid;

/// Enables (true) or disables (false) a key version in the backend's vault.
type SetEnabled = Box<dyn Fn(&ExternalKey, bool)>;

/// What the suite needs from each backend under test.
struct Subject {
    name: &'static str,
    backend: Arc<dyn Backend>,
    access: BackendAccess,
    bad_access: BackendAccess,
    key: ExternalKey,
    other_version: ExternalKey,
    missing: ExternalKey,
    disable: SetEnabled,
    /// Whether an unwrap with a disabled key is refused (moto does not refuse Encrypt or
    /// Decrypt with a disabled key; ekm-aws's fault-server tests prove that path).
    refuses_use_of_disabled_keys: bool,
    /// Whether a blob unwraps only as the KEK generation it was wrapped for (AWS KMS binds the
    /// generation in the encryption context; RSA-OAEP has nothing to bind it to).
    binds_the_generation: bool,
    /// The backend `bad_access` is tried on (moto enforcing credentials, for AWS).
    bad_backend: Arc<dyn Backend>,
    /// Arms a refusal of `bad_access`'s credential where the backend cannot see it itself.
    refuse_credentials: Box<dyn Fn()>,
}

fn access(vault: &str, client: &str, secret: &str, revision: u64) -> BackendAccess {
    BackendAccess {
        config_uuid: Uuid::from_u128(revision as u128),
        revision,
        provider: ProviderAccess::Azure(AzureAccess {
            vault: VaultUrl::parse(vault).unwrap(),
            client_id: client.into(),
            tenant_id: AZ_TENANT.into(),
            credential: Credential::ClientSecret(SecretString::from(secret.to_owned())),
            proxy: None,
        }),
    }
}

fn node() -> Node {
    Node {
        name: "node1".into(),
        uuid: NODE1,
    }
}

fn run_suite(s: Subject) {
    let n = node();
    let call = BackendCall {
        node: &n,
        access: &s.access,
    };
    let kek = KeyMaterial::random();

    // Round trip, exact version.
    let wrapped = s.backend.wrap_kek(&call, &s.key, 1, &kek).unwrap();
    assert!(
        !wrapped.windows(32).any(|w| w == kek.expose_secret()),
        "{}: plaintext in blob",
        s.name
    );
    let back = s.backend.unwrap_kek(&call, &s.key, 1, &wrapped).unwrap();
    assert_eq!(back.expose_secret(), kek.expose_secret(), "{}", s.name);
    // Two wraps differ (randomized padding / nonce).
    assert_ne!(
        s.backend.wrap_kek(&call, &s.key, 1, &kek).unwrap(),
        wrapped,
        "{}",
        s.name
    );

    // Bound to its generation where the provider binds context.
    if s.binds_the_generation {
        let e = s
            .backend
            .unwrap_kek(&call, &s.key, 2, &wrapped)
            .unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::Rejected, "{}: {e}", s.name);
    }

    // Another version of the same key does not unwrap it.
    let e = s
        .backend
        .unwrap_kek(&call, &s.other_version, 1, &wrapped)
        .unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::Rejected, "{}: {e}", s.name);

    // Garbage and truncation fail cleanly.
    for junk in [
        vec![],
        vec![0u8; 7],
        wrapped[..wrapped.len() / 2].to_vec(),
        vec![0xff; wrapped.len()],
    ] {
        let e = s.backend.unwrap_kek(&call, &s.key, 1, &junk).unwrap_err();
        assert!(
            matches!(
                e.kind,
                BackendErrorKind::Rejected | BackendErrorKind::InvalidResponse
            ),
            "{}: {e}",
            s.name
        );
    }

    // The check: fine, then missing and disabled keys, then a refused credential.
    s.backend.check(&call, &s.key).unwrap();
    let e = s.backend.check(&call, &s.missing).unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::KeyNotFound, "{}: {e}", s.name);
    (s.disable)(&s.key, false);
    let e = s.backend.check(&call, &s.key).unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::KeyDisabled, "{}: {e}", s.name);
    if s.refuses_use_of_disabled_keys {
        let e = s
            .backend
            .unwrap_kek(&call, &s.key, 1, &wrapped)
            .unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::KeyDisabled, "{}: {e}", s.name);
    }
    (s.disable)(&s.key, true);
    s.backend.check(&call, &s.key).unwrap();

    (s.refuse_credentials)();
    let bad = BackendCall {
        node: &n,
        access: &s.bad_access,
    };
    let e = s.bad_backend.check(&bad, &s.key).unwrap_err();
    assert_eq!(
        e.kind,
        BackendErrorKind::AuthenticationFailed,
        "{}: {e}",
        s.name
    );
    assert!(
        !e.to_string().contains("wrong-secret"),
        "{}: secret in error",
        s.name
    );
}

#[test]
fn fake_backend_conforms() {
    let fake = Arc::new(ekm::fake::FakeBackend::in_memory().without_auto_create());
    let key = ExternalKey::parse(KEY_ID).unwrap();
    let other = ExternalKey::parse(&KEY_ID.replace("a8e619fd", "b8e619fd")).unwrap();
    fake.add_key(&key).unwrap();
    fake.add_key(&other).unwrap();
    let (f1, f2) = (fake.clone(), fake.clone());
    run_suite(Subject {
        name: "fake",
        bad_backend: fake.clone(),
        refuses_use_of_disabled_keys: true,
        binds_the_generation: false,
        backend: fake,
        access: access(VAULT, "c", "s", 1),
        bad_access: access(VAULT, "c", "wrong-secret", 2),
        key,
        other_version: other,
        missing: ExternalKey::parse(&KEY_ID.replace("/key1/", "/missing/")).unwrap(),
        disable: Box::new(move |k, enabled| {
            if enabled {
                f1.add_key(k).unwrap()
            } else {
                f1.disable_key(k).unwrap()
            }
        }),
        // The fake does not tell credentials apart: the identity provider's refusal is injected.
        refuse_credentials: Box::new(move || {
            f2.fail_next(
                Some(ekm::fake::Op::Check),
                ekm::fake::Fault::AuthenticationFailed,
                1,
            )
        }),
    });
}

#[test]
fn azure_backend_against_the_emulator_conforms() {
    let lab = AzureLab::start();
    let key = ExternalKey::parse(&lab.key1_v1).unwrap();
    let other = ExternalKey::parse(&lab.key1_v2).unwrap();
    let emu = Arc::new(lab.emu);
    let e2 = emu.clone();
    let azure: Arc<dyn Backend> =
        Arc::new(ekm::azure::AzureBackend::new(lab.options.clone()).unwrap());
    let subject = Subject {
        name: "azure",
        bad_backend: azure.clone(),
        refuses_use_of_disabled_keys: true,
        binds_the_generation: false,
        backend: azure,
        access: access(
            &format!("{}/", emu.vault_url("myvault")),
            AZ_SECRET_APP,
            AZ_SECRET,
            1,
        ),
        bad_access: access(
            &format!("{}/", emu.vault_url("myvault")),
            AZ_SECRET_APP,
            "wrong-secret",
            2,
        ),
        missing: ExternalKey::parse(&emu.key_id("myvault", "nokey", &"0".repeat(32))).unwrap(),
        key,
        other_version: other,
        disable: Box::new(move |k, enabled| {
            let k = k.as_azure().unwrap();
            e2.set_enabled(k.name(), k.version(), enabled)
        }),
        refuse_credentials: Box::new(|| {}),
    };
    run_suite(subject);
}

/// The core's access of an AWS KMS configuration with the test credentials and `secret`.
fn aws_access(secret: &str, revision: u64) -> BackendAccess {
    BackendAccess {
        config_uuid: Uuid::from_u128(100 + revision as u128),
        revision,
        provider: ProviderAccess::Aws(AwsKmsAccess {
            region: aws_testing::REGION.into(),
            access_key_id: aws_testing::ACCESS_KEY_ID.into(),
            secret_access_key: SecretString::from(secret.to_owned()),
            service: "kms".into(),
            default_domain: "amazonaws.com".into(),
            host: None,
            port: 443,
            encryption_context: Some("volume=vol1".into()),
            timeout: std::time::Duration::from_secs(2),
            verify: true,
            verify_host: true,
            proxy: None,
        }),
    }
}

#[test]
fn aws_backend_against_moto_conforms() {
    let Some(moto) = aws_testing::Moto::start_or_skip("aws conformance") else {
        return;
    };
    // A second moto that enforces credentials after its first action (the test credentials
    // are then an access key it does not know).
    let strict_settings = aws_testing::MotoSettings {
        authenticate_after: Some(1),
    };
    let Some(strict) = aws_testing::Moto::start_with_or_skip("aws conformance", strict_settings)
    else {
        return;
    };
    strict.create_key().unwrap();
    let (k1, _) = moto.create_key().unwrap();
    let (k2, _) = moto.create_key().unwrap();
    let key = |id: &str| ExternalKey::Aws(AwsKeyId::new(aws_testing::REGION, id).unwrap());
    let backend: Arc<dyn Backend> = Arc::new(ekm::aws::AwsKms::new(moto.options()).unwrap());
    let bad_backend: Arc<dyn Backend> = Arc::new(ekm::aws::AwsKms::new(strict.options()).unwrap());
    let moto = Arc::new(moto);
    let m = moto.clone();
    run_suite(Subject {
        name: "aws",
        backend,
        bad_backend,
        access: aws_access(aws_testing::CANARY_SECRET, 1),
        bad_access: aws_access("wrong-secret", 2),
        key: key(&k1),
        other_version: key(&k2),
        missing: key("0b1f2e3d-0000-4000-8000-000000000000"),
        disable: Box::new(move |k, enabled| {
            let id = k.as_aws().unwrap().key();
            if enabled {
                m.enable_key(id).unwrap()
            } else {
                m.disable_key(id).unwrap()
            }
        }),
        refuses_use_of_disabled_keys: false,
        binds_the_generation: true,
        refuse_credentials: Box::new(|| {}),
    });
    drop(strict);
}
