//! The socket serves a key shorter than 32 bytes (a KMIP AES-128 key, a Secret Data password)
//! from the node's key table, as those bytes, with the store unreachable: the key's length is
//! part of its data key, not something a read looks up in the store (issue 12: with etcd quorum
//! lost, every node keeps serving the keys it holds over its socket).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use ekm_core::store::{Entry, Store, StoreError, Transaction};
use ekm_core::{
    CreateRequest, DataKeyId, DataKeyMaterial, Engine, EngineOptions, KeyOwner, KeyTag,
    ProtectionKey,
};
use ekmd::AppState;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

mod common;

/// A store that fails every operation once `down` is set, as etcd does without quorum.
#[derive(Debug)]
struct Unreachable {
    inner: Arc<dyn Store>,
    down: AtomicBool,
}

impl Unreachable {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Io("the store is unreachable (test)".into()));
        }
        Ok(())
    }
}

impl Store for Unreachable {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        self.inner.get(key)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.check()?;
        self.inner.get_many(keys)
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.check()?;
        self.inner.scan(prefix, start_after, limit)
    }

    fn commit(&self, txn: Transaction) -> Result<(), StoreError> {
        self.check()?;
        self.inner.commit(txn)
    }

    fn engine_name(&self) -> &'static str {
        "unreachable"
    }
}

/// `GET /keys/{id}` on the socket's router: status and the key's bytes when served.
async fn socket_read(state: &AppState, id: &DataKeyId) -> (StatusCode, Option<Vec<u8>>) {
    let resp = ekmd::socket::router(state.clone())
        .oneshot(
            Request::builder()
                .uri(format!("/keys/{id}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let key = v["key"]
        .as_str()
        .map(|k| base64::engine::general_purpose::STANDARD.decode(k).unwrap());
    (status, key)
}

#[tokio::test]
async fn a_short_key_is_served_as_its_bytes_from_the_key_table_with_the_store_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Unreachable {
        inner: ekm_store::open(ekm_store::StoreKind::Redb, dir.path()).unwrap(),
        down: AtomicBool::new(false),
    });
    let engine = Engine::open(EngineOptions::new(
        store.clone(),
        Arc::new(ekm_fake::FakeBackend::in_memory()),
        common::topology(),
        ProtectionKey::generate(),
    ))
    .unwrap();
    let body = format!(
        r#"{{"client_id":"client1","tenant_id":"tenant1","name":"https://keyvault-test.vault.azure.net/","key_id":"{}","client_secret":"s3cret"}}"#,
        common::KEY
    );
    engine
        .create_config(CreateRequest::from_json(body.as_bytes()).unwrap())
        .unwrap();
    let mut keys = Vec::new();
    for bytes in [vec![0xA1; 16], vec![0xB2; 24], b"pass".to_vec()] {
        let id = engine
            .import_data_key_with_attributes(
                KeyOwner::Cluster,
                KeyTag::default(),
                DataKeyMaterial::from_bytes(&bytes).unwrap(),
                None,
            )
            .unwrap();
        keys.push((id, bytes));
    }
    let full = engine
        .create_data_key(KeyOwner::Cluster, KeyTag::default())
        .unwrap();
    let full_bytes = engine
        .read_data_key(&full)
        .unwrap()
        .expose_secret()
        .to_vec();
    keys.push((full, full_bytes));
    let state = AppState::new(
        engine.clone(),
        common::ADMIN_USER.into(),
        common::ADMIN_PASSWORD.to_owned().into(),
    );
    // Read once with the store up (the key table holds each key after this at the latest).
    for (id, bytes) in &keys {
        assert_eq!(
            socket_read(&state, id).await,
            (StatusCode::OK, Some(bytes.clone()))
        );
    }

    store.down.store(true, Ordering::SeqCst);
    assert!(
        engine.data_key_info(&keys[0].0).is_err(),
        "the store is really down"
    );
    for (id, bytes) in &keys {
        assert_eq!(
            socket_read(&state, id).await,
            (StatusCode::OK, Some(bytes.clone())),
            "a {}-byte key is served from memory, exactly",
            bytes.len()
        );
    }
    engine.shutdown();
}
