//! A request that names an SVM the cluster does not have (by name or uuid) is answered
//! 2621462 "The specified SVM does not exist." naming that SVM, never 65537120 "not
//! configured": creating a configuration or a data key, and rekey-external. Nothing is
//! written.

use axum::http::StatusCode;
use serde_json::{Value, json};

mod common;
mod rest;

use common::{BASE, KEY2};
use rest::{Api, api, code, message};

fn assert_missing(v: &Value, what: &str) {
    assert_eq!(code(v), "2621462", "{v}");
    let m = message(v);
    assert!(m.starts_with("The specified SVM does not exist."), "{m}");
    assert!(
        m.contains(&format!("SVM {what} does not exist")),
        "names the SVM: {m}"
    );
    assert!(!m.contains("not configured"), "{m}");
    assert_eq!(v["error"]["target"], "svm", "{v}");
}

#[tokio::test]
async fn every_request_naming_an_unknown_svm_says_it_does_not_exist() {
    let a = api();
    let cluster = a.create(None).await;
    let vs0 = a.create(Some("vs0")).await;
    let before = a.dump();
    let unknown_uuid = "00000000-0000-0000-0000-000000000099";
    for (svm, what) in [
        (json!({"name": "nosuch"}), "\"nosuch\"".to_owned()),
        (
            json!({"uuid": unknown_uuid}),
            format!("with uuid \"{unknown_uuid}\""),
        ),
    ] {
        let mut body = Api::create_body(None);
        body["svm"] = svm.clone();
        let (s, v) = a.call("POST", BASE, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_missing(&v, &what);
        for config in [&cluster, &vs0] {
            let (s, v) = a
                .call(
                    "POST",
                    &format!("{BASE}/{config}/keys"),
                    Some(json!({"key_tag": "t", "svm": svm})),
                )
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
            assert_missing(&v, &what);
            let (s, v) = a
                .call(
                    "POST",
                    &format!("{BASE}/{config}/rekey-external"),
                    Some(json!({"key_id": KEY2, "svm": svm})),
                )
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
            assert_missing(&v, &what);
        }
    }
    assert_eq!(a.dump(), before, "a refused request wrote to the store");
}

/// ONTAP's `GET /api/svm/svms` lists the topology's SVMs, so a client (the `ekm` CLI) tells an
/// SVM that does not exist from one without a key manager; an unknown uuid is 404, code 4.
#[tokio::test]
async fn the_svm_list_is_the_topology_and_an_unknown_svm_is_404() {
    let a = api();
    let (s, v) = a.call("GET", "/api/svm/svms", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let names: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vs0", "vs1"], "{v}");
    assert_eq!(v["num_records"], 2, "{v}");
    let (s, v) = a
        .call("GET", "/api/svm/svms?name=vs1&fields=uuid", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["num_records"], 1, "{v}");
    let vs1 = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let (s, v) = a.call("GET", "/api/svm/svms?name=nosuch", None).await;
    assert_eq!(
        (s, v["num_records"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{v}"
    );
    let (s, v) = a.call("GET", &format!("/api/svm/svms/{vs1}"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "vs1", "{v}");
    let (s, v) = a
        .call(
            "GET",
            "/api/svm/svms/00000000-0000-0000-0000-000000000099",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(code(&v), "4", "{v}");
    let (s, v) = a.call("GET", "/api/svm/svms?bogus=1", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(code(&v), "262179", "{v}");
}
