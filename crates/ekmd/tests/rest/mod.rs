//! A REST client over ekmd's router for the property tests (no socket): requests as the
//! admin, JSON answers, configurations made as the seed's example, and a dump of the store
//! for "nothing changed" checks. (A module of each test binary that says `mod rest;`, beside
//! `mod common;`, not a test of its own.)
//!
//! Owns: nothing but the plumbing; each test says what it expects.
//! Must never: touch anything outside the fixture's temporary directory.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ekmd::AppState;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{self, BASE, KEY};

/// The vault that holds [`KEY`] (and `KEY2`): the `name` a configuration of them takes.
pub const VAULT: &str = "https://keyvault-test.vault.azure.net/";

/// ekmd's router over a fresh fixture.
pub struct Api {
    _dir: tempfile::TempDir,
    /// The state, with its engine.
    pub state: AppState,
}

/// A fresh fixture.
pub fn api() -> Api {
    let (dir, state) = common::app_state();
    Api { _dir: dir, state }
}

/// The ONTAP error code of an answer, `""` for a success.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// The ONTAP error message of an answer.
pub fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("")
}

impl Api {
    /// One request with `body` as raw bytes (`None`: no body).
    pub async fn raw(&self, method: &str, uri: &str, body: Option<Vec<u8>>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, common::admin_auth())
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let resp = ekmd::router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!("{status}: not JSON: {:?}", String::from_utf8_lossy(&bytes))
        });
        (status, v)
    }

    /// One request with a JSON body.
    pub async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.raw(method, uri, body.map(|b| b.to_string().into_bytes()))
            .await
    }

    /// The seed's create body for [`KEY`] in [`VAULT`], for the cluster or SVM `svm`.
    pub fn create_body(svm: Option<&str>) -> Value {
        let mut b = json!({"client_id": "client1", "tenant_id": "tenant1", "name": VAULT,
                           "key_id": KEY, "client_secret": "s3cret"});
        if let Some(s) = svm {
            b["svm"] = json!({"name": s});
        }
        b
    }

    /// Creates a configuration for the cluster or SVM `svm`; its uuid.
    pub async fn create(&self, svm: Option<&str>) -> String {
        let (st, v) = self
            .call(
                "POST",
                &format!("{BASE}?return_records=true"),
                Some(Self::create_body(svm)),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["records"][0]["uuid"].as_str().unwrap().to_owned()
    }

    /// Creates a data key under configuration `config` with `body`; its id.
    pub async fn create_key(&self, config: &str, body: Value) -> String {
        let (st, v) = self
            .call("POST", &format!("{BASE}/{config}/keys"), Some(body))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["key_id"].as_str().unwrap().to_owned()
    }

    /// Every record of the store.
    pub fn dump(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.state
            .engine
            .store()
            .scan(b"", None, usize::MAX)
            .unwrap()
    }

    /// Polls the job a POST answered with until it ends; its record.
    pub async fn wait_job(&self, link: &Value) -> Value {
        let href = link["job"]["_links"]["self"]["href"]
            .as_str()
            .unwrap_or_else(|| panic!("no job link: {link}"))
            .to_owned();
        for _ in 0..500 {
            let (s, j) = self.call("GET", &href, None).await;
            assert_eq!(s, StatusCode::OK);
            if j["state"] == "success" || j["state"] == "failure" {
                return j;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("job did not end");
    }
}
