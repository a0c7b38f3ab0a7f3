//! `GET /api/security/azure-key-vaults/{uuid}/keys` takes the query conventions of the
//! configuration list: filters on every field of a key record, `fields`, `order_by`,
//! `max_records` paging whose `_links.next` carries the query, `num_records`,
//! `return_records`; an unknown parameter is 262179 and a bad value 262197, as on the
//! configuration list. The other key routes refuse unknown parameters the same way.

use axum::http::StatusCode;
use serde_json::{Value, json};

mod common;
mod rest;

use common::BASE;
use rest::{Api, api, code};

/// A cluster configuration with keys `vol1`, `vol2`, `db1` of the cluster and `vs1a` of SVM
/// vs1 (which has no key manager of its own); the configuration's uuid and the ids by tag.
async fn fixture(a: &Api) -> (String, Vec<(String, String)>) {
    let u = a.create(None).await;
    let mut ids = Vec::new();
    for (tag, svm) in [
        ("vol1", None),
        ("vol2", None),
        ("db1", None),
        ("vs1a", Some("vs1")),
    ] {
        let mut body = json!({"key_tag": tag});
        if let Some(s) = svm {
            body["svm"] = json!({"name": s});
        }
        ids.push((tag.to_owned(), a.create_key(&u, body).await));
    }
    (u, ids)
}

fn tags(v: &Value) -> Vec<String> {
    let mut t: Vec<String> = v["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records: {v}"))
        .iter()
        .map(|r| r["key_tag"].as_str().unwrap_or("?").to_owned())
        .collect();
    t.sort();
    t
}

#[tokio::test]
async fn filters_select_keys_by_each_field_of_the_record() {
    let a = api();
    let (u, ids) = fixture(&a).await;
    let vol2 = &ids[1].1;
    for (q, want) in [
        ("key_tag=vol1", vec!["vol1"]),
        ("key_tag=vol*", vec!["vol1", "vol2"]),
        ("key_tag=!vol*", vec!["db1", "vs1a"]),
        ("key_tag=db1%7Cvs1a", vec!["db1", "vs1a"]),
        (&format!("key_id={vol2}"), vec!["vol2"]),
        ("svm.name=vs1", vec!["vs1a"]),
        ("scope=cluster", vec!["db1", "vol1", "vol2"]),
        ("owner=svm", vec!["vs1a"]),
        (
            "state=active&kek_generation=%3E0",
            vec!["db1", "vol1", "vol2", "vs1a"],
        ),
        ("kek_generation=%3E1", vec![]),
    ] {
        let (s, v) = a.call("GET", &format!("{BASE}/{u}/keys?{q}"), None).await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        assert_eq!(tags(&v), want, "{q}: {v}");
        assert_eq!(v["num_records"], want.len(), "{q}: {v}");
    }
}

#[tokio::test]
async fn fields_project_records_and_without_fields_records_are_whole() {
    let a = api();
    let (u, _) = fixture(&a).await;
    let (_, v) = a.call("GET", &format!("{BASE}/{u}/keys"), None).await;
    let r = &v["records"][0];
    for f in [
        "key_id",
        "key_tag",
        "kek_generation",
        "scope",
        "owner",
        "state",
        "_links",
    ] {
        assert!(r.get(f).is_some(), "{f} missing from the whole record: {r}");
    }
    let (_, v) = a
        .call("GET", &format!("{BASE}/{u}/keys?fields=key_tag"), None)
        .await;
    for r in v["records"].as_array().unwrap() {
        let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["_links", "key_id", "key_tag"], "{r}");
    }
    let (_, v) = a
        .call(
            "GET",
            &format!("{BASE}/{u}/keys?key_tag=vs1a&fields=svm.name"),
            None,
        )
        .await;
    assert_eq!(v["records"][0]["svm"], json!({"name": "vs1"}), "{v}");
    // One key: the same `fields`.
    let id = v["records"][0]["key_id"].as_str().unwrap().to_owned();
    let (s, r) = a
        .call("GET", &format!("{BASE}/{u}/keys/{id}?fields=key_tag"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["key_tag"], "vs1a");
    assert!(r.get("kek_generation").is_none(), "{r}");
}

#[tokio::test]
async fn order_by_and_paging_carry_the_query_to_the_next_page() {
    let a = api();
    let (u, _) = fixture(&a).await;
    let (_, v) = a
        .call(
            "GET",
            &format!(
                "{BASE}/{u}/keys?key_tag=!db1&order_by=key_tag%20desc&max_records=2&fields=key_tag"
            ),
            None,
        )
        .await;
    let page: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key_tag"].as_str().unwrap())
        .collect();
    assert_eq!(page, ["vs1a", "vol2"], "{v}");
    assert_eq!(v["num_records"], 2);
    let next = v["_links"]["next"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no next link: {v}"))
        .to_owned();
    for part in [
        "key_tag=%21db1",
        "order_by=",
        "max_records=2",
        "fields=key_tag",
        "start.key_id=",
    ] {
        assert!(next.contains(part), "{part} not in {next}");
    }
    assert!(next.starts_with(&format!("{BASE}/{u}/keys?")), "{next}");
    let (_, v) = a.call("GET", &next, None).await;
    assert_eq!(tags(&v), ["vol1"], "{v}");
    assert!(v["_links"].get("next").is_none(), "{v}");
    let (_, v) = a
        .call(
            "GET",
            &format!("{BASE}/{u}/keys?return_records=false"),
            None,
        )
        .await;
    assert_eq!(v["num_records"], 4);
    assert!(v.get("records").is_none(), "{v}");
}

#[tokio::test]
async fn unknown_parameters_are_262179_and_bad_values_262197_as_on_the_configuration_list() {
    let a = api();
    let (u, ids) = fixture(&a).await;
    let id = &ids[0].1;
    for (q, want) in [
        ("colour=blue", "262179"),
        ("start.uuid=x", "262179"),
        ("fields=colour", "262197"),
        ("max_records=x", "262197"),
        ("order_by=colour", "262197"),
        ("return_records=maybe", "262197"),
    ] {
        let (s, v) = a.call("GET", &format!("{BASE}/{u}/keys?{q}"), None).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, want), "{q}: {v}");
        // The configuration list answers the same.
        let (_, c) = a.call("GET", &format!("{BASE}?{q}"), None).await;
        if q != "start.uuid=x" && q != "fields=colour" && q != "order_by=colour" {
            assert_eq!(code(&c), want, "configs {q}: {c}");
        }
    }
    let (_, v) = a
        .call("GET", &format!("{BASE}/{u}/keys?colour=blue"), None)
        .await;
    assert_eq!(
        rest::message(&v),
        "Unexpected argument. Query parameter \"colour\" is not accepted here.",
        "says what is unexpected once: {v}"
    );
    for (m, uri) in [
        ("GET", format!("{BASE}/{u}/keys/{id}?colour=blue")),
        ("POST", format!("{BASE}/{u}/keys?colour=blue")),
        ("DELETE", format!("{BASE}/{u}/keys/{id}?colour=blue")),
    ] {
        let (s, v) = a.call(m, &uri, None).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "262179"),
            "{m} {uri}: {v}"
        );
    }
    // Nothing was deleted or created by the refused requests.
    let (_, v) = a.call("GET", &format!("{BASE}/{u}/keys"), None).await;
    assert_eq!(v["num_records"], 4, "{v}");
}

#[tokio::test]
async fn a_key_create_returns_the_record_only_with_return_records() {
    let a = api();
    let u = a.create(None).await;
    let (s, v) = a
        .call(
            "POST",
            &format!("{BASE}/{u}/keys"),
            Some(json!({"key_tag": "vol1"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(v.get("records").is_none(), "{v}");
    let (s, v) = a
        .call(
            "POST",
            &format!("{BASE}/{u}/keys?return_records=true"),
            Some(json!({"key_tag": "vol2"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["num_records"], 1, "{v}");
    let r = &v["records"][0];
    assert_eq!(
        (&r["key_tag"], &r["key_id"]),
        (&json!("vol2"), &v["key_id"]),
        "{v}"
    );
    assert_eq!(r["scope"], "cluster", "{v}");
}

#[tokio::test]
async fn every_parameter_the_openapi_document_lists_is_accepted() {
    let a = api();
    let (u, _) = fixture(&a).await;
    let (_, doc) = a.call("GET", "/api/openapi.json", None).await;
    let params = doc["paths"]["/api/security/azure-key-vaults/{uuid}/keys"]["get"]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("the keys GET lists no parameters"))
        .clone();
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    for want in [
        "fields",
        "max_records",
        "order_by",
        "start.key_id",
        "key_id",
        "key_tag",
        "svm.name",
        "scope",
        "state",
    ] {
        assert!(names.contains(&want), "{want} is not documented: {names:?}");
    }
    for name in names {
        let value = match name {
            "max_records" | "return_timeout" => "1",
            "return_records" => "true",
            "fields" => "key_tag",
            "order_by" => "key_tag",
            _ => "*",
        };
        let (s, v) = a
            .call("GET", &format!("{BASE}/{u}/keys?{name}={value}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{name}: {v}");
    }
}
