//! Every validation rule of the seed, through the public API, with its ONTAP code; and on every
//! failure, not one byte changes in the store.

mod common;

use common::*;
use ekm::core::{ErrorKind, KeyOwner, KeyTag, PatchRequest};
use ekm::fake::Fault;
use ekm::store::StoreKind;
use uuid::Uuid;

fn setup() -> (
    tempfile::TempDir,
    std::sync::Arc<ekm::core::Engine>,
    std::sync::Arc<ekm::fake::FakeBackend>,
    std::sync::Arc<dyn ekm::core::Store>,
) {
    let dir = tempfile::tempdir().unwrap();
    let (e, f, s) = DataDir::new(dir.path(), StoreKind::Redb).open();
    (dir, e, f, s)
}

/// Runs `op`, expects `code`, and checks the store is unchanged.
fn refused<T: std::fmt::Debug>(
    store: &dyn ekm::core::Store,
    code: u32,
    op: impl FnOnce() -> ekm::core::Result<T>,
) -> ekm::core::Error {
    let before = dump(store);
    let err = op().expect_err("the operation must be refused");
    assert_eq!(err.code(), code, "{err}");
    assert_eq!(
        dump(store),
        before,
        "the store changed on a refused operation: {err}"
    );
    err
}

#[test]
fn invalid_key_id_is_65537523() {
    let (_d, e, _f, s) = setup();
    for bad in [
        "https://keyvault1.vault.azure.net/keys/key1",
        "http://v.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74",
        "https://v.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a7",
        "https://v.vault.azure.net/secrets/key1/a8e619fd8f234db3b0b95c59540e2a74",
    ] {
        let body = secret_body(None, "s3cret").replace(KEY_ID, bad);
        let err = refused(&*s, 65_537_523, || create(&e, &body));
        assert_eq!(err.target(), Some("key_id"));
        assert!(err.message().starts_with("Invalid key ID format."));
    }
}

#[test]
fn any_https_host_with_port_is_a_valid_key_id() {
    let (_d, e, _f, _s) = setup();
    // The key and the vault that holds it (`name` must name the key's vault).
    let body = secret_body(None, "s3cret")
        .replace(
            KEY_ID,
            "https://myvault.vault.localhost:8443/keys/key-1/A8E619FD8F234DB3B0B95C59540E2A74",
        )
        .replace(
            &format!(r#""name":"{VAULT}""#),
            r#""name":"https://myvault.vault.localhost:8443/""#,
        );
    let cfg = create(&e, &body).unwrap();
    assert_eq!(
        cfg.key_id.as_str(),
        "https://myvault.vault.localhost:8443/keys/key-1/a8e619fd8f234db3b0b95c59540e2a74"
    );
}

#[test]
fn no_authentication_method_is_65537567() {
    let (_d, e, _f, s) = setup();
    let body =
        format!(r#"{{"client_id":"c","tenant_id":"t","name":"{VAULT}","key_id":"{KEY_ID}"}}"#);
    refused(&*s, 65_537_567, || create(&e, &body));
}

#[test]
fn client_certificates_in_every_pkcs12_format_are_accepted() {
    for (file, pw) in [
        ("client-aes256.p12", Some(PFX_PASSWORD)),
        ("client-legacy-rc2.p12", Some(PFX_PASSWORD)),
        ("client-3des.p12", Some(PFX_PASSWORD)),
        ("client-nopass.p12", None),
    ] {
        let (_d, e, _f, _s) = setup();
        let pw = pw
            .map(|p| format!(r#","client_certificate_password":"{p}""#))
            .unwrap_or_default();
        let body = format!(
            r#"{{"client_id":"c","tenant_id":"t","name":"{VAULT}","key_id":"{KEY_ID}","client_certificate":"{}"{pw}}}"#,
            pfx_b64(file)
        );
        let cfg = create(&e, &body).unwrap_or_else(|err| panic!("{file}: {err}"));
        assert_eq!(cfg.authentication_method.as_str(), "certificate");
    }
}

#[test]
fn invalid_client_certificate_is_65537573() {
    let (_d, e, _f, s) = setup();
    let cases = [
        ("bm90IGEgcGZ4IGZpbGU=".to_owned(), Some(PFX_PASSWORD)),
        ("%%% not base64 %%%".to_owned(), None),
        (pfx_b64("client-aes256.p12"), Some("wrong-password")),
        (pfx_b64("client-legacy-rc2.p12"), Some("wrong-password")),
        (pfx_b64("client-aes256.p12"), None),
    ];
    for (cert, pw) in cases {
        let pw = pw
            .map(|p| format!(r#","client_certificate_password":"{p}""#))
            .unwrap_or_default();
        let body = format!(
            r#"{{"client_id":"c","tenant_id":"t","name":"{VAULT}","key_id":"{KEY_ID}","client_certificate":"{cert}"{pw}}}"#
        );
        let err = refused(&*s, 65_537_573, || create(&e, &body));
        assert_eq!(err.target(), Some("client_certificate"));
    }
}

#[test]
fn second_config_for_a_scope_is_65537500() {
    let (_d, e, _f, s) = setup();
    create(&e, &secret_body(None, "s")).unwrap();
    refused(&*s, 65_537_500, || create(&e, &secret_body(None, "s")));
    create(&e, &secret_body(Some("vs0"), "s")).unwrap();
    refused(&*s, 65_537_500, || {
        create(&e, &secret_body(Some("vs0"), "s"))
    });
    let by_uuid =
        secret_body(None, "s").replacen('{', &format!(r#"{{"svm":{{"uuid":"{VS0}"}},"#), 1);
    refused(&*s, 65_537_500, || create(&e, &by_uuid));
    create(&e, &secret_body(Some("vs1"), "s")).unwrap();
    assert_eq!(e.list_configs().unwrap().len(), 3);
}

#[test]
fn unknown_svm_is_refused_by_name() {
    let (_d, e, _f, s) = setup();
    let err = refused(&*s, ErrorKind::SvmNotFound.code(), || {
        create(&e, &secret_body(Some("vs-nope"), "s"))
    });
    assert!(err.message().contains("\"vs-nope\""), "{err}");
    let unknown = Uuid::from_u128(0xdead);
    let body =
        secret_body(None, "s").replacen('{', &format!(r#"{{"svm":{{"uuid":"{unknown}"}},"#), 1);
    let err = refused(&*s, ErrorKind::SvmNotFound.code(), || create(&e, &body));
    assert!(err.message().contains(&unknown.to_string()), "{err}");
}

#[test]
fn client_secret_rules_are_65537540_and_65537517() {
    let (_d, e, _f, s) = setup();
    for bad in ["", "   ", "tab\\there"] {
        refused(&*s, 65_537_540, || create(&e, &secret_body(None, bad)));
    }
    let long = "x".repeat(1025);
    refused(&*s, 65_537_540, || create(&e, &secret_body(None, &long)));
    let body = format!(
        r#"{{"client_id":"c","tenant_id":"t","name":"{VAULT}","key_id":"{KEY_ID}","authentication_method":"client_secret"}}"#
    );
    refused(&*s, 65_537_517, || create(&e, &body));

    let cfg = create(&e, &secret_body(None, "s")).unwrap();
    // A new client id alone is accepted as ONTAP does: proven with the stored secret.
    let moved = e
        .patch_config(
            cfg.uuid,
            PatchRequest::from_json(br#"{"client_id":"client1b"}"#).unwrap(),
        )
        .unwrap();
    assert_eq!(moved.client_id, "client1b");
    refused(&*s, 65_537_540, || {
        e.patch_config(
            cfg.uuid,
            PatchRequest::from_json(br#"{"client_secret":""}"#)?,
        )
    });
    let ok = e
        .patch_config(
            cfg.uuid,
            PatchRequest::from_json(br#"{"client_id":"client2","client_secret":"new"}"#).unwrap(),
        )
        .unwrap();
    assert_eq!(ok.client_id, "client2");
}

#[test]
fn empty_patch_is_65537541_and_fixed_fields_are_refused() {
    let (_d, e, _f, s) = setup();
    let cfg = create(&e, &secret_body(None, "s")).unwrap();
    refused(&*s, 65_537_541, || {
        e.patch_config(cfg.uuid, PatchRequest::from_json(b"{}")?)
    });
    refused(&*s, 262_179, || {
        e.patch_config(
            cfg.uuid,
            PatchRequest::from_json(format!(r#"{{"key_id":"{KEY_ID_2}"}}"#).as_bytes())?,
        )
    });
}

#[test]
fn unknown_uuid_is_code_4() {
    let (_d, e, _f, s) = setup();
    let u = Uuid::new_v4();
    let err = refused(&*s, 4, || e.get_config(u));
    assert_eq!(err.message(), "entry doesn't exist");
    assert_eq!(err.kind().http_status(), 404);
    refused(&*s, 4, || e.delete_config(u));
    refused(&*s, 4, || {
        e.patch_config(u, PatchRequest::from_json(br#"{"client_secret":"x"}"#)?)
    });
    refused(&*s, 4, || e.list_data_keys(u));
}

#[test]
fn delete_with_data_keys_is_65536867_and_works_without() {
    let (_d, e, _f, s) = setup();
    let cfg = create(&e, &secret_body(None, "s")).unwrap();
    let id = e
        .create_data_key(KeyOwner::Cluster, KeyTag::parse("vol1").unwrap())
        .unwrap();
    refused(&*s, 65_536_867, || e.delete_config(cfg.uuid));
    e.delete_data_key(&id).unwrap();
    e.delete_config(cfg.uuid).unwrap();
    assert_eq!(e.get_config(cfg.uuid).unwrap_err().code(), 4);
    // The scope is free again.
    create(&e, &secret_body(None, "s")).unwrap();
}

#[test]
fn unexpected_and_malformed_fields() {
    let (_d, e, _f, s) = setup();
    let body = secret_body(None, "s").replacen('{', r#"{"colour":"blue","#, 1);
    let err = refused(&*s, 262_179, || create(&e, &body));
    assert_eq!(err.target(), Some("colour"));
    let body = secret_body(None, "s").replacen('{', r#"{"svm":{"name":"vs0","colour":1},"#, 1);
    let err = refused(&*s, 262_179, || create(&e, &body));
    assert_eq!(err.target(), Some("svm.colour"));
    refused(&*s, 262_197, || create(&e, "not json"));
    refused(&*s, 262_197, || {
        let body =
            secret_body(None, "s").replace(&format!(r#""name":"{VAULT}""#), r#""name":"ftp://v/""#);
        create(&e, &body)
    });
    let no_tenant = secret_body(None, "s").replace(r#""tenant_id":"tenant1","#, "");
    let err = refused(&*s, 262_197, || create(&e, &no_tenant));
    assert_eq!(err.target(), Some("tenant_id"));
}

#[test]
fn backend_refusal_on_create_and_patch_changes_nothing() {
    let (_d, e, f, s) = setup();
    for fault in [
        Fault::Unreachable,
        Fault::AuthenticationFailed,
        Fault::KeyDisabled,
        Fault::Throttled {
            retry_after: std::time::Duration::from_secs(7),
        },
    ] {
        f.set_fault(Some(fault));
        let err = refused(&*s, ErrorKind::AkvUnavailable.code(), || {
            create(&e, &secret_body(None, "s"))
        });
        assert!(err.kind().is_retryable());
        if let Fault::Throttled { .. } = fault {
            assert!(err.message().contains("Retry after 7 seconds"), "{err}");
        }
    }
    f.set_fault(None);
    let cfg = create(&e, &secret_body(None, "s")).unwrap();
    f.set_fault(Some(Fault::AuthenticationFailed));
    // The identity provider refusing the new secret is the seed's PATCH code 65537540.
    let err = refused(&*s, ErrorKind::InvalidClientSecret.code(), || {
        e.patch_config(
            cfg.uuid,
            PatchRequest::from_json(br#"{"client_secret":"bad"}"#)?,
        )
    });
    assert!(err.message().contains("authentication failed"), "{err}");
}

#[test]
fn data_keys_need_a_configuration() {
    let (_d, e, _f, s) = setup();
    refused(&*s, 65_537_120, || {
        e.create_data_key(KeyOwner::Cluster, KeyTag::default())
    });
    refused(&*s, 65_537_120, || {
        e.create_data_key(KeyOwner::Svm(VS0), KeyTag::default())
    });
    refused(&*s, ErrorKind::SvmNotFound.code(), || {
        e.create_data_key(KeyOwner::Svm(Uuid::from_u128(7)), KeyTag::default())
    });
}

#[test]
fn a_data_key_without_a_configuration_names_the_cluster_or_the_svm() {
    let (_d, e, _f, s) = setup();
    let err = refused(&*s, 65_537_120, || {
        e.create_data_key(KeyOwner::Cluster, KeyTag::default())
    });
    assert_eq!(
        err.message(),
        "Azure Key Vault is not configured for the cluster."
    );
    let err = refused(&*s, 65_537_120, || {
        e.create_data_key(KeyOwner::Svm(VS0), KeyTag::default())
    });
    let m = err.message();
    assert!(
        m.starts_with("Azure Key Vault is not configured for the given SVM.")
            && m.contains(&VS0.to_string())
            && m.contains("neither has the cluster"),
        "{m}"
    );
}

#[test]
fn proxy_settings_round_trip_without_password() {
    let (_d, e, _f, _s) = setup();
    let body = secret_body(None, "s").replacen(
        '{',
        r#"{"proxy_type":"http","proxy_host":"proxy.eng.com","proxy_port":1234,"proxy_username":"proxyuser","proxy_password":"proxypassword","#,
        1,
    );
    let cfg = create(&e, &body).unwrap();
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(json.contains(r#""proxy_host":"proxy.eng.com""#));
    assert!(json.contains(r#""proxy_port":1234"#));
    assert!(!json.contains("proxypassword"));
    let patched = e
        .patch_config(
            cfg.uuid,
            PatchRequest::from_json(br#"{"proxy_host":""}"#).unwrap(),
        )
        .unwrap();
    assert!(patched.proxy_host.is_none());
}
