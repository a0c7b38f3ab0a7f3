//! Updating a configuration behaves as ONTAP does: a new client or tenant id alone is accepted
//! and proven with the stored credential before it is stored; a proxy moved to another host
//! never receives the old proxy password unless the request repeats it; a refused update
//! changes nothing.

mod common;

use std::sync::Arc;

use common::{create, secret_body, topology};
use ekm::core::{
    Backend, BackendCall, BackendError, BackendErrorKind, Engine, EngineOptions, ErrorKind,
    ExternalKey, KeyMaterial, PatchRequest, ProtectionKey, Provider, SecretBytes,
};
use ekm::fake::FakeBackend;
use parking_lot::Mutex;
use secrecy::ExposeSecret;

/// What the backend was asked with: identity and proxy (host, password).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    client_id: String,
    tenant_id: String,
    proxy: Option<(String, Option<String>)>,
}

/// The fake backend, recording what each check was called with, refusing client ids that
/// start with "bad-" as the identity provider would.
#[derive(Debug)]
struct Recording {
    inner: FakeBackend,
    seen: Mutex<Vec<Seen>>,
}

impl Backend for Recording {
    fn serves(&self, provider: Provider) -> bool {
        self.inner.serves(provider)
    }

    fn kind(&self, provider: Provider) -> &'static str {
        self.inner.kind(provider)
    }

    fn algorithm(&self, provider: Provider) -> &'static str {
        self.inner.algorithm(provider)
    }

    fn wrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        kek: &KeyMaterial,
    ) -> Result<Vec<u8>, BackendError> {
        self.inner.wrap_kek(call, key, generation, kek)
    }

    fn unwrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        wrapped: &[u8],
    ) -> Result<SecretBytes, BackendError> {
        self.inner.unwrap_kek(call, key, generation, wrapped)
    }

    fn check(&self, call: &BackendCall<'_>, key: &ExternalKey) -> Result<(), BackendError> {
        let a = call.access.azure().expect("an Azure configuration");
        self.seen.lock().push(Seen {
            client_id: a.client_id.clone(),
            tenant_id: a.tenant_id.clone(),
            proxy: a.proxy.as_ref().map(|p| {
                (
                    p.host.clone(),
                    p.password.as_ref().map(|s| s.expose_secret().to_owned()),
                )
            }),
        });
        if a.client_id.starts_with("bad-") {
            return Err(BackendError::new(
                BackendErrorKind::AuthenticationFailed,
                "AADSTS700016: application not found in the directory",
            ));
        }
        self.inner.check(call, key)
    }

    fn resolve(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
    ) -> Result<ExternalKey, BackendError> {
        self.inner.resolve(call, key)
    }
}

fn setup() -> (Arc<Engine>, Arc<Recording>, uuid::Uuid) {
    let backend = Arc::new(Recording {
        inner: FakeBackend::in_memory(),
        seen: Mutex::new(Vec::new()),
    });
    let store = ekm::store::open(
        ekm::store::StoreKind::Redb,
        &tempfile::tempdir().unwrap().keep().join("store"),
    )
    .unwrap();
    let engine = Engine::open(EngineOptions::new(
        store,
        backend.clone(),
        topology(),
        ProtectionKey::generate(),
    ))
    .unwrap();
    let cfg = create(&engine, &secret_body(None, "s3cret")).unwrap();
    (engine, backend, cfg.uuid)
}

fn patch(
    engine: &Engine,
    uuid: uuid::Uuid,
    body: &str,
) -> ekm::core::Result<ekm::core::AzureKeyVault> {
    engine.patch_config(uuid, PatchRequest::from_json(body.as_bytes())?)
}

#[test]
fn a_new_client_id_alone_is_proven_with_the_stored_secret_then_stored() {
    let (engine, backend, uuid) = setup();
    let cfg = patch(&engine, uuid, r#"{"client_id":"client2"}"#).unwrap();
    assert_eq!(cfg.client_id, "client2");
    assert_eq!(engine.get_config(uuid).unwrap().client_id, "client2");
    let last = backend.seen.lock().last().cloned().unwrap();
    assert_eq!(last.client_id, "client2", "proven with the new identity");
    let cfg = patch(&engine, uuid, r#"{"tenant_id":"tenant2"}"#).unwrap();
    assert_eq!(
        (cfg.client_id.as_str(), cfg.tenant_id.as_str()),
        ("client2", "tenant2")
    );
}

#[test]
fn a_new_identity_the_vault_refuses_is_not_stored() {
    let (engine, _backend, uuid) = setup();
    let before = engine.get_config(uuid).unwrap();
    let e = patch(&engine, uuid, r#"{"client_id":"bad-client"}"#).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidClientSecret, "{e}");
    assert!(e.message().contains("bad-client"), "{e}");
    assert!(!e.message().contains("s3cret"), "{e}");
    let after = engine.get_config(uuid).unwrap();
    assert_eq!(
        serde_json::to_value(&after).unwrap(),
        serde_json::to_value(&before).unwrap()
    );
}

#[test]
fn a_new_proxy_host_never_receives_the_old_password() {
    let (engine, backend, uuid) = setup();
    patch(
        &engine,
        uuid,
        r#"{"proxy_type":"http","proxy_host":"proxy-a.example","proxy_port":3128,"proxy_username":"u","proxy_password":"pw-for-a"}"#,
    )
    .unwrap();
    // The same host keeps its password (only the port changes).
    patch(&engine, uuid, r#"{"proxy_port":3129}"#).unwrap();
    assert_eq!(
        backend.seen.lock().last().unwrap().proxy,
        Some(("proxy-a.example".into(), Some("pw-for-a".into())))
    );
    // Another host without a password in the request: no password goes to it.
    patch(&engine, uuid, r#"{"proxy_host":"proxy-b.example"}"#).unwrap();
    let seen = backend.seen.lock().clone();
    for s in &seen {
        if let Some((host, pw)) = &s.proxy {
            assert!(
                !(host == "proxy-b.example" && pw.as_deref() == Some("pw-for-a")),
                "the old password was offered to the new host"
            );
        }
    }
    assert_eq!(
        seen.last().unwrap().proxy,
        Some(("proxy-b.example".into(), None))
    );
    // Repeating it in the request is how it goes there.
    patch(
        &engine,
        uuid,
        r#"{"proxy_host":"proxy-c.example","proxy_password":"pw-for-c"}"#,
    )
    .unwrap();
    assert_eq!(
        backend.seen.lock().last().unwrap().proxy,
        Some(("proxy-c.example".into(), Some("pw-for-c".into())))
    );
}

#[test]
fn the_cluster_already_configured_message_names_the_cluster() {
    let (engine, _backend, _uuid) = setup();
    let e = create(&engine, &secret_body(None, "s3cret")).unwrap_err();
    assert_eq!(e.code(), 65_537_500);
    assert!(e.message().contains("for the cluster"), "{e}");
    assert!(!e.message().contains("SVM"), "{e}");
    create(&engine, &secret_body(Some("vs0"), "s3cret")).unwrap();
    let e = create(&engine, &secret_body(Some("vs0"), "s3cret")).unwrap_err();
    assert_eq!(e.code(), 65_537_500);
    assert!(e.message().contains("for this SVM"), "{e}");
}
