//! ONTAP's `/api/security/aws-kms` over ekmd's router on the fake (which serves every
//! provider): create (201, `Location`, the record only with `return_records`), list with
//! filters and `fields`, get, delete (refused while keys exist); the secret access key and the
//! proxy password never answered; a body ONTAP would refuse is refused with nothing written; a
//! uuid of one kind is 404 on the other kind's paths; and `/api/security/key-managers` lists
//! every configuration of every kind.

use axum::http::StatusCode;
use serde_json::{Value, json};

mod common;
mod rest;

use common::BASE;
use rest::{api, code};

const AWS: &str = "/api/security/aws-kms";

fn aws_body(svm: &str) -> Value {
    json!({
        "svm": {"name": svm},
        "region": "us-east-1",
        "key_id": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "access_key_id": "AKIAEKMTESTACCESS001",
        "secret_access_key": "canary-SECRET-ACCESS-KEY-77",
        "encryption_context": "tenant=vs1",
        "proxy_type": "http",
        "proxy_host": "proxy.example.com",
        "proxy_port": 3128,
        "proxy_username": "u",
        "proxy_password": "canary-PROXY-PASSWORD-78",
    })
}

fn assert_no_secret(v: &Value) {
    let t = v.to_string();
    assert!(!t.contains("canary-SECRET-ACCESS-KEY-77"), "{t}");
    assert!(!t.contains("canary-PROXY-PASSWORD-78"), "{t}");
}

#[tokio::test]
async fn an_aws_configuration_is_created_listed_got_and_deleted_as_ontap_does() {
    let a = api();
    let azure = a.create(None).await;
    let (s, v) = a.call("POST", AWS, Some(aws_body("vs1"))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v, json!({"num_records": 1}));
    let (s, v) = a
        .call(
            "POST",
            &format!("{AWS}?return_records=true"),
            Some(aws_body("vs0")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_no_secret(&v);
    let vs0 = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        v["records"][0]["_links"]["self"]["href"],
        format!("{AWS}/{vs0}")
    );

    // The list: both AWS configurations, every readable field, no secret.
    let (s, v) = a.call("GET", AWS, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["num_records"], 2, "{v}");
    assert_no_secret(&v);
    let r = &v["records"][0];
    for f in [
        "region",
        "key_id",
        "access_key_id",
        "service",
        "default_domain",
        "port",
        "timeout",
        "verify",
        "proxy_host",
    ] {
        assert!(r.get(f).is_some(), "{f}: {r}");
    }
    assert_eq!(r["service"], "kms");
    assert_eq!(r["port"], 443);
    // Filters and fields.
    let (_, v) = a
        .call("GET", &format!("{AWS}?svm.name=vs0&fields=region"), None)
        .await;
    assert_eq!(v["num_records"], 1, "{v}");
    assert_eq!(v["records"][0]["uuid"], vs0.as_str());
    assert_eq!(v["records"][0]["region"], "us-east-1");
    assert!(v["records"][0].get("access_key_id").is_none(), "{v}");
    let (s, v) = a.call("GET", &format!("{AWS}?bogus=1"), None).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "262179"));

    // One record; a uuid of the other kind is 404 on each kind's paths.
    let (s, v) = a.call("GET", &format!("{AWS}/{vs0}"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_no_secret(&v);
    assert_eq!(v["svm"]["name"], "vs0");
    let (s, _) = a.call("GET", &format!("{AWS}/{azure}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = a.call("GET", &format!("{BASE}/{vs0}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = a.call("DELETE", &format!("{BASE}/{vs0}"), None).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the Azure path never deletes an AWS configuration"
    );
    let (s, _) = a.call("DELETE", &format!("{AWS}/{azure}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Every kind in the key-managers list, each linked to its own collection.
    let (s, v) = a.call("GET", "/api/security/key-managers", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let kinds: Vec<(&str, &str)> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["_links"]["self"]["href"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds.len(), 3, "{v}");
    assert!(
        kinds.contains(&("azure_key_vault", format!("{BASE}/{azure}").as_str())),
        "{v}"
    );
    assert!(
        kinds.contains(&("aws_kms", format!("{AWS}/{vs0}").as_str())),
        "{v}"
    );
    let (_, v) = a
        .call(
            "GET",
            "/api/security/key-managers?kind=aws_kms&fields=uuid",
            None,
        )
        .await;
    assert_eq!(v["num_records"], 2, "{v}");

    // A key of vs0, under its AWS configuration, keeps the configuration.
    let (s, v) = a
        .call(
            "POST",
            &format!("{AWS}/{vs0}/keys"),
            Some(json!({"key_tag": "vol1"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["key_id"].as_str().unwrap().to_owned();
    let (s, v) = a.call("GET", &format!("{AWS}/{vs0}/keys"), None).await;
    assert_eq!(
        (s, v["num_records"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{v}"
    );
    assert_eq!(
        v["records"][0]["_links"]["self"]["href"],
        format!("{AWS}/{vs0}/keys/{id}")
    );
    let (s, _) = a.call("GET", &format!("{BASE}/{vs0}/keys"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not on the Azure path");
    let (s, v) = a.call("DELETE", &format!("{AWS}/{vs0}"), None).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "65536867"), "{v}");
    let (s, v) = a
        .call("DELETE", &format!("{AWS}/{vs0}/keys/{id}"), None)
        .await;
    assert!(s.is_success(), "{s}: {v}");
    let (s, v) = a.call("DELETE", &format!("{AWS}/{vs0}"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = a.call("GET", AWS, None).await;
    assert_eq!(v["num_records"], 1, "{v}");
    // The store holds no secret in the clear.
    for (_, val) in a.dump() {
        assert!(!val.windows(27).any(|w| w == b"canary-SECRET-ACCESS-KEY-77"));
        assert!(!val.windows(24).any(|w| w == b"canary-PROXY-PASSWORD-78"));
    }
}

#[tokio::test]
async fn bad_aws_bodies_are_refused_with_nothing_written() {
    let a = api();
    let before = a.dump();
    for (change, code_, target) in [
        (json!({"region": null}), "262197", "region"),
        (json!({"region": "US-EAST"}), "262197", "region"),
        (json!({"key_id": ""}), "65537523", "key_id"),
        (
            json!({"secret_access_key": null}),
            "262197",
            "secret_access_key",
        ),
        (json!({"port": 0}), "262197", "port"),
        (json!({"verify": false}), "262197", "verify"),
        (json!({"svm": {"name": "nosuch"}}), "2621462", "svm"),
        (json!({"no_such_field": 1}), "262179", "no_such_field"),
        (json!({"scope": "cluster"}), "262197", "scope"),
        (json!({"verify_ip": true}), "262197", "verify_ip"),
        (json!({"polling_period": 0}), "262197", "polling_period"),
    ] {
        let mut body = aws_body("vs0");
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let (s, v) = a.call("POST", AWS, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{change}: {v}");
        assert_eq!(code(&v), code_, "{change}: {v}");
        assert_eq!(v["error"]["target"], target, "{change}: {v}");
        assert_no_secret(&v);
    }
    assert_eq!(a.dump(), before, "nothing written");
}

#[tokio::test]
async fn the_three_jobs_run_on_the_aws_paths_and_keep_the_keys() {
    let a = api();
    let azure = a.create(None).await;
    let (s, v) = a
        .call(
            "POST",
            &format!("{AWS}?return_records=true"),
            Some(aws_body("vs0")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let vs0 = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let (_, v) = a
        .call(
            "POST",
            &format!("{AWS}/{vs0}/keys"),
            Some(json!({"key_tag": "vol1"})),
        )
        .await;
    let id = ekm_core::DataKeyId::parse(v["key_id"].as_str().unwrap()).unwrap();
    let material = a.state.engine.read_data_key(&id).unwrap();

    for (action, body) in [
        ("rekey-internal", None),
        (
            "rekey-external",
            Some(json!({"key_id": "alias/ekm-vs0-next"})),
        ),
        ("restore", None),
    ] {
        let (s, v) = a
            .call(
                "POST",
                &format!("{AWS}/{vs0}/{action}?return_timeout=30"),
                body.clone(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{action}: {v}");
        let href = v["job"]["_links"]["self"]["href"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, job) = a.call("GET", &href, None).await;
        assert_eq!(
            job["description"],
            format!("POST {AWS}/{vs0}/{action}"),
            "the job names the AWS path"
        );
        // Each kind's job paths refuse the other kind's uuid.
        let azure_body = body.as_ref().map(|_| json!({"key_id": common::KEY2}));
        let (s, _) = a
            .call("POST", &format!("{BASE}/{vs0}/{action}"), azure_body)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{action} on the Azure path");
        let (s, _) = a
            .call("POST", &format!("{AWS}/{azure}/{action}"), body)
            .await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "{action} of an Azure uuid on the AWS path"
        );
    }
    let (_, v) = a
        .call("GET", &format!("{AWS}/{vs0}?fields=key_id"), None)
        .await;
    assert_eq!(v["key_id"], "alias/ekm-vs0-next", "{v}");
    assert_eq!(
        a.state.engine.read_data_key(&id).unwrap().expose_secret(),
        material.expose_secret()
    );
    // A missing key is 65537523.
    let (s, v) = a
        .call(
            "POST",
            &format!("{AWS}/{vs0}/rekey-external"),
            Some(json!({})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "65537523"), "{v}");
}

#[tokio::test]
async fn a_patch_changes_what_it_names_and_refuses_what_cannot_change() {
    let a = api();
    let (_, v) = a
        .call(
            "POST",
            &format!("{AWS}?return_records=true"),
            Some(aws_body("vs0")),
        )
        .await;
    let u = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let path = format!("{AWS}/{u}");
    let (s, v) = a
        .call(
            "PATCH",
            &path,
            Some(json!({"secret_access_key": "canary-SECRET-ACCESS-KEY-77", "proxy_host": "proxy2.example.com", "timeout": 5, "encryption_context": "tenant=vs0;v=2"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = a.call("GET", &path, None).await;
    assert_eq!(v["proxy_host"], "proxy2.example.com", "{v}");
    assert_eq!(
        (v["timeout"].as_u64(), v["encryption_context"].as_str()),
        (Some(5), Some("tenant=vs0;v=2"))
    );
    assert_no_secret(&v);
    let before = a.dump();
    for (body, code_, target) in [
        (json!({"region": "eu-west-1"}), "262179", "region"),
        (json!({"key_id": "alias/x"}), "262179", "key_id"),
        (json!({"svm": {"name": "vs1"}}), "262179", "svm"),
        (
            json!({"access_key_id": "AKIANEW"}),
            "262197",
            "secret_access_key",
        ),
        (json!({"verify": false}), "262197", "verify"),
        (json!({"timeout": 0}), "262197", "timeout"),
    ] {
        let (s, v) = a.call("PATCH", &path, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(
            (code(&v), v["error"]["target"].as_str()),
            (code_, Some(target)),
            "{body}: {v}"
        );
    }
    let (s, v) = a.call("PATCH", &path, Some(json!({}))).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "65537541"), "{v}");
    assert_eq!(a.dump(), before, "a refused patch writes nothing");
    // The Azure path does not patch an AWS configuration.
    let (s, _) = a
        .call(
            "PATCH",
            &format!("{BASE}/{u}"),
            Some(json!({"client_id": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_advanced_fields_come_only_when_named() {
    let a = api();
    let (_, v) = a
        .call(
            "POST",
            &format!("{AWS}?return_records=true"),
            Some(aws_body("vs0")),
        )
        .await;
    let u = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let (_, v) = a.call("GET", &format!("{AWS}/{u}"), None).await;
    for f in ["amazon_reachability", "state", "ekmip_reachability"] {
        assert!(v.get(f).is_none(), "{f} unasked: {v}");
    }
    let (s, v) = a
        .call(
            "GET",
            &format!("{AWS}/{u}?fields=amazon_reachability,state,ekmip_reachability"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["amazon_reachability"]["reachable"], true, "{v}");
    assert_eq!(v["amazon_reachability"]["code"], "0", "{v}");
    assert!(v["state"].is_object(), "{v}");
    assert!(v["ekmip_reachability"].is_array(), "{v}");
    assert!(v.get("azure_reachability").is_none(), "{v}");
    // The collection filters on them too.
    let (_, v) = a
        .call(
            "GET",
            &format!("{AWS}?amazon_reachability.reachable=true&fields=uuid"),
            None,
        )
        .await;
    assert_eq!(v["num_records"], 1, "{v}");
}

/// ONTAP's migrate between kinds: vs0's keys made under the cluster's Azure configuration move
/// to vs0's own AWS KMS configuration, and are then listed, served and rekeyed there.
#[tokio::test]
async fn a_migrate_moves_keys_from_an_azure_configuration_to_an_aws_one() {
    let a = api();
    let azure = a.create(None).await;
    let id = a
        .create_key(
            &azure,
            json!({"key_tag": "vs0-vol1", "svm": {"name": "vs0"}}),
        )
        .await;
    let key = ekm_core::DataKeyId::parse(&id).unwrap();
    let material = a.state.engine.read_data_key(&key).unwrap();
    let (_, v) = a
        .call(
            "POST",
            &format!("{AWS}?return_records=true"),
            Some(aws_body("vs0")),
        )
        .await;
    let vs0 = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let (s, link) = a
        .call(
            "POST",
            &format!("/api/security/key-managers/{azure}/migrate"),
            Some(json!({"uuid": vs0})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{link}");
    let job = a.wait_job(&link).await;
    assert_eq!(job["state"], "success", "{job}");
    let (_, v) = a.call("GET", &format!("{AWS}/{vs0}/keys"), None).await;
    assert_eq!(v["records"][0]["key_id"], id.as_str(), "{v}");
    let (_, v) = a.call("GET", &format!("{BASE}/{azure}/keys"), None).await;
    assert_eq!(v["num_records"], 0, "{v}");
    let (s, _) = a
        .call(
            "POST",
            &format!("{AWS}/{vs0}/rekey-internal?return_timeout=30"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        a.state.engine.read_data_key(&key).unwrap().expose_secret(),
        material.expose_secret()
    );
}
