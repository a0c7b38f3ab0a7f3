//! A configuration's `key_id` is a key of the vault its `name` names: create refuses a
//! `key_id` of another vault, and rekey-external a key of another vault than the
//! configuration's, with 65537523 (the seed's code for an unacceptable `key_id`) on target
//! `key_id`, a message naming both vaults, and nothing written.

use axum::http::StatusCode;
use serde_json::json;

mod common;
mod rest;

use common::{BASE, KEY, KEY2};
use rest::{Api, VAULT, api, code, message};

const OTHER_VAULT: &str = "https://othervault.vault.azure.net/";
const OTHER_KEY: &str =
    "https://othervault.vault.azure.net/keys/key2/0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn create_refuses_a_key_id_of_another_vault_than_name_and_writes_nothing() {
    let a = api();
    let before = a.dump();
    for svm in [None, Some("vs0")] {
        for (name, key) in [(OTHER_VAULT, KEY), (VAULT, OTHER_KEY)] {
            let mut body = Api::create_body(svm);
            body["name"] = json!(name);
            body["key_id"] = json!(key);
            let (s, v) = a.call("POST", BASE, Some(body)).await;
            assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "65537523"), "{v}");
            assert_eq!(v["error"]["target"], "key_id", "{v}");
            let m = message(&v);
            assert!(m.starts_with("Invalid key ID"), "{m}");
            assert!(
                m.contains(key) && m.contains(name),
                "names the key and the vault: {m}"
            );
        }
    }
    assert_eq!(a.dump(), before, "a refused create wrote to the store");
    let (_, v) = a.call("GET", BASE, None).await;
    assert_eq!(v["num_records"], 0, "{v}");
}

#[tokio::test]
async fn create_takes_the_key_vault_spelled_with_another_case_or_the_default_port() {
    let a = api();
    for (svm, name) in [
        (None, "https://KeyVault-Test.vault.azure.net/"),
        (Some("vs0"), "https://keyvault-test.vault.azure.net:443"),
    ] {
        let mut body = Api::create_body(svm);
        body["name"] = json!(name);
        let (s, v) = a.call("POST", BASE, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{name}: {v}");
    }
}

#[tokio::test]
async fn rekey_external_refuses_a_key_of_another_vault_and_writes_nothing() {
    let a = api();
    for svm in [None, Some("vs0")] {
        let u = a.create(svm).await;
        let (_, jobs) = a.call("GET", "/api/cluster/jobs", None).await;
        let jobs_before = jobs["num_records"].clone();
        let before = a.dump();
        let (s, v) = a
            .call(
                "POST",
                &format!("{BASE}/{u}/rekey-external?return_timeout=10"),
                Some(json!({"key_id": OTHER_KEY})),
            )
            .await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "65537523"), "{v}");
        assert_eq!(v["error"]["target"], "key_id", "{v}");
        let m = message(&v);
        assert!(m.contains(OTHER_KEY) && m.contains(VAULT), "{m}");
        assert!(m.contains("this key manager's vault"), "{m}");
        assert_eq!(
            a.dump(),
            before,
            "a refused rekey-external wrote to the store"
        );
        let (_, c) = a
            .call("GET", &format!("{BASE}/{u}?fields=key_id"), None)
            .await;
        assert_eq!(c["key_id"], KEY, "{c}");
        let (_, jobs) = a.call("GET", "/api/cluster/jobs", None).await;
        assert_eq!(
            jobs["num_records"], jobs_before,
            "no job was started: {jobs}"
        );
        // A key of the same vault is taken.
        let (s, v) = a
            .call(
                "POST",
                &format!("{BASE}/{u}/rekey-external?return_timeout=10"),
                Some(json!({"key_id": KEY2})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (_, c) = a
            .call("GET", &format!("{BASE}/{u}?fields=key_id"), None)
            .await;
        assert_eq!(c["key_id"], KEY2, "{c}");
    }
}
