//! One backend conformance suite, run against the fake backend and against ekm-azure talking
//! to the AKV emulator over HTTPS: wrap/unwrap round trips with the exact key version, wrong
//! keys, garbage, missing and disabled keys, refused credentials, and the reachability check.

mod common;

use std::sync::Arc;

use common::*;
use ekm::core::Node;
use ekm::core::backend::{Backend, BackendAccess, BackendCall, BackendErrorKind};
use ekm::core::config::Credential;
use ekm::core::ids::{KeyId, VaultUrl};
use ekm::core::secret::{KeyMaterial, SecretString};
use uuid::Uuid;

/// Enables (true) or disables (false) a key version in the backend's vault.
type SetEnabled = Box<dyn Fn(&KeyId, bool)>;

/// What the suite needs from each backend under test.
struct Subject {
    name: &'static str,
    backend: Arc<dyn Backend>,
    access: BackendAccess,
    bad_access: BackendAccess,
    key: KeyId,
    other_version: KeyId,
    missing: KeyId,
    disable: SetEnabled,
    /// Arms a refusal of `bad_access`'s credential where the backend cannot see it itself.
    refuse_credentials: Box<dyn Fn()>,
}

fn access(vault: &str, client: &str, secret: &str, revision: u64) -> BackendAccess {
    BackendAccess {
        config_uuid: Uuid::from_u128(revision as u128),
        revision,
        vault: VaultUrl::parse(vault).unwrap(),
        client_id: client.into(),
        tenant_id: AZ_TENANT.into(),
        credential: Credential::ClientSecret(SecretString::from(secret.to_owned())),
        proxy: None,
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
    let wrapped = s.backend.wrap_kek(&call, &s.key, &kek).unwrap();
    assert!(
        !wrapped.windows(32).any(|w| w == kek.expose_secret()),
        "{}: plaintext in blob",
        s.name
    );
    let back = s.backend.unwrap_kek(&call, &s.key, &wrapped).unwrap();
    assert_eq!(back.expose_secret(), kek.expose_secret(), "{}", s.name);
    // Two wraps differ (randomized padding / nonce).
    assert_ne!(
        s.backend.wrap_kek(&call, &s.key, &kek).unwrap(),
        wrapped,
        "{}",
        s.name
    );

    // Another version of the same key does not unwrap it.
    let e = s
        .backend
        .unwrap_kek(&call, &s.other_version, &wrapped)
        .unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::Rejected, "{}: {e}", s.name);

    // Garbage and truncation fail cleanly.
    for junk in [
        vec![],
        vec![0u8; 7],
        wrapped[..wrapped.len() / 2].to_vec(),
        vec![0xff; wrapped.len()],
    ] {
        let e = s.backend.unwrap_kek(&call, &s.key, &junk).unwrap_err();
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
    let e = s.backend.unwrap_kek(&call, &s.key, &wrapped).unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::KeyDisabled, "{}: {e}", s.name);
    (s.disable)(&s.key, true);
    s.backend.check(&call, &s.key).unwrap();

    (s.refuse_credentials)();
    let bad = BackendCall {
        node: &n,
        access: &s.bad_access,
    };
    let e = s.backend.check(&bad, &s.key).unwrap_err();
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
    let key = KeyId::parse(KEY_ID).unwrap();
    let other = KeyId::parse(&KEY_ID.replace("a8e619fd", "b8e619fd")).unwrap();
    fake.add_key(&key).unwrap();
    fake.add_key(&other).unwrap();
    let (f1, f2) = (fake.clone(), fake.clone());
    run_suite(Subject {
        name: "fake",
        backend: fake,
        access: access(VAULT, "c", "s", 1),
        bad_access: access(VAULT, "c", "wrong-secret", 2),
        key,
        other_version: other,
        missing: KeyId::parse(&KEY_ID.replace("/key1/", "/missing/")).unwrap(),
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
    let key = KeyId::parse(&lab.key1_v1).unwrap();
    let other = KeyId::parse(&lab.key1_v2).unwrap();
    let emu = Arc::new(lab.emu);
    let e2 = emu.clone();
    let subject = Subject {
        name: "azure",
        backend: Arc::new(ekm::azure::AzureBackend::new(lab.options.clone()).unwrap()),
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
        missing: KeyId::parse(&emu.key_id("myvault", "nokey", &"0".repeat(32))).unwrap(),
        key,
        other_version: other,
        disable: Box::new(move |k, enabled| e2.set_enabled(k.name(), k.version(), enabled)),
        refuse_credentials: Box::new(|| {}),
    };
    run_suite(subject);
}
