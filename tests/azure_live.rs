//! Against a real Azure Key Vault. Ignored by default, so a plain `cargo test` reports it as
//! ignored rather than passed; `scripts/test` runs it with `--ignored` when these are set, and
//! run by hand (`cargo test --test azure_live -- --ignored`) it fails without them:
//!
//! - `EKM_AZURE_TENANT_ID`, `EKM_AZURE_CLIENT_ID`, `EKM_AZURE_CLIENT_SECRET`: an app registration
//!   with the key permissions get, wrapKey and unwrapKey;
//! - `EKM_AZURE_KEY_ID`: a versioned RSA key id, `https://VAULT.vault.azure.net/keys/NAME/VERSION`.
//!
//! It creates a cluster configuration, data keys, runs rekey-internal and restore, reads every
//! key back, then deletes what it created.

mod common;

use std::time::Duration;

use common::*;
use ekm::core::{CreateRequest, Engine, EngineOptions, JobState, KeyId, KeyOwner, KeyTag};

#[test]
#[ignore = "needs a real vault: set EKM_AZURE_* and run with --ignored"]
fn the_lifecycle_against_a_real_vault() {
    let vars = [
        "EKM_AZURE_TENANT_ID",
        "EKM_AZURE_CLIENT_ID",
        "EKM_AZURE_CLIENT_SECRET",
        "EKM_AZURE_KEY_ID",
    ];
    let values: Vec<String> = vars.iter().filter_map(|v| std::env::var(v).ok()).collect();
    assert_eq!(
        values.len(),
        vars.len(),
        "set {} to run against a real vault",
        vars.join(", ")
    );
    let (tenant, client, secret, key_id) = (&values[0], &values[1], &values[2], &values[3]);
    let key = KeyId::parse(key_id).expect("EKM_AZURE_KEY_ID is a versioned key id");
    let dir = tempfile::tempdir().unwrap();
    let store = ekm::store::open(ekm::store::StoreKind::Redb, dir.path()).unwrap();
    let backend = std::sync::Arc::new(ekm::azure::AzureBackend::new(Default::default()).unwrap());
    let pk = ekm::store::protection_key::load_or_create(&dir.path().join("pk")).unwrap();
    let e = Engine::open(EngineOptions::new(store, backend, topology(), pk)).unwrap();
    let body = serde_json::json!({
        "client_id": client, "tenant_id": tenant, "name": format!("{}/", key.vault()),
        "key_id": key_id, "client_secret": secret,
    });
    let cfg = e
        .create_config(CreateRequest::from_json(body.to_string().as_bytes()).unwrap())
        .unwrap();
    let ids = e
        .create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); 10])
        .unwrap();
    let before: Vec<_> = ids.iter().map(|id| e.read_data_key(id).unwrap()).collect();
    let job = e.start_rekey_internal(cfg.uuid).unwrap();
    assert_eq!(
        e.wait_job(job.uuid, Duration::from_secs(120))
            .unwrap()
            .state,
        JobState::Success
    );
    e.reset_node(NODE1).unwrap();
    e.reset_node(NODE2).unwrap();
    let job = e.start_restore(cfg.uuid).unwrap();
    assert_eq!(
        e.wait_job(job.uuid, Duration::from_secs(120))
            .unwrap()
            .state,
        JobState::Success
    );
    for (id, m) in ids.iter().zip(&before) {
        assert_eq!(&e.read_data_key(id).unwrap(), m);
        e.delete_data_key(id).unwrap();
    }
    e.delete_config(cfg.uuid).unwrap();
}
