//! Every body-taking endpoint (create, patch, rekey-external, migrate, key create) parses its
//! body the same way, and a body that is not one JSON object is refused with 262197 on target
//! `body` saying why: serde's cause with its line and column, that the body is empty, or what
//! the body is instead of an object. A field of the wrong type names the field, what it
//! expects and where, never its value. Nothing is written.

use axum::http::StatusCode;

mod common;
mod rest;

use common::BASE;
use rest::{Api, api, code, message};

/// Every body-taking route, with a configuration `u` to act on, and a field each takes.
fn routes(u: &str) -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("POST", BASE.to_owned(), "client_id"),
        ("PATCH", format!("{BASE}/{u}"), "client_id"),
        ("POST", format!("{BASE}/{u}/rekey-external"), "key_id"),
        (
            "POST",
            format!("/api/security/key-managers/{u}/migrate"),
            "uuid",
        ),
        ("POST", format!("{BASE}/{u}/keys"), "key_tag"),
    ]
}

/// Sends `body(field)` to every route (`field` one it takes) and checks each answers 262197
/// on `body` with the `want` that `body` gives in its message, and that the store is
/// unchanged.
async fn refused_everywhere(
    a: &Api,
    u: &str,
    body: impl Fn(&str) -> (String, String),
    skip_keys: bool,
) {
    let before = a.dump();
    for (m, uri, field) in routes(u) {
        if skip_keys && uri.ends_with("/keys") {
            continue;
        }
        let (body, want) = body(field);
        let (s, v) = a.raw(m, &uri, Some(body.clone().into_bytes())).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "262197"),
            "{m} {uri} {body:?}: {v}"
        );
        assert_eq!(v["error"]["target"], "body", "{m} {uri} {body:?}: {v}");
        assert!(
            message(&v).contains(&want),
            "{m} {uri} {body:?}: want {want:?} in {v}"
        );
    }
    assert_eq!(a.dump(), before, "a refused body wrote to the store");
}

/// The same `body` and `want` for every route.
fn fixed(body: &str, want: &str) -> impl Fn(&str) -> (String, String) {
    let (body, want) = (body.to_owned(), want.to_owned());
    move |_| (body.clone(), want.clone())
}

#[tokio::test]
async fn a_syntax_error_gives_serde_s_cause_with_line_and_column() {
    let a = api();
    let u = a.create(None).await;
    // `{"F": "a",}`: the `}` after the comma is at column 10 + len(F).
    refused_everywhere(
        &a,
        &u,
        |f| {
            let col = 10 + f.len();
            (
                format!(r#"{{"{f}": "a",}}"#),
                format!("trailing comma at line 1 column {col}"),
            )
        },
        false,
    )
    .await;
    refused_everywhere(
        &a,
        &u,
        |f| {
            (
                format!("{{\n  \"{f}\": \"a\",\n}}"),
                "trailing comma at line 3 column 1".to_owned(),
            )
        },
        false,
    )
    .await;
    refused_everywhere(
        &a,
        &u,
        |f| {
            let col = 8 + f.len();
            (
                format!(r#"{{"{f}": "a""#),
                format!("EOF while parsing an object at line 1 column {col}"),
            )
        },
        false,
    )
    .await;
    refused_everywhere(
        &a,
        &u,
        |f| {
            let col = 5 + f.len();
            (
                format!(r#"{{"{f}" "a"}}"#),
                format!("expected `:` at line 1 column {col}"),
            )
        },
        false,
    )
    .await;
    refused_everywhere(
        &a,
        &u,
        fixed("{} x", "trailing characters at line 1 column 4"),
        false,
    )
    .await;
    refused_everywhere(
        &a,
        &u,
        fixed("[1, 2", "EOF while parsing a list at line 1 column 5"),
        false,
    )
    .await;
}

#[tokio::test]
async fn an_empty_body_says_it_is_empty() {
    let a = api();
    let u = a.create(None).await;
    // A key create takes an empty body (a key with an empty tag).
    let want = "the body is empty: expected a JSON object";
    refused_everywhere(&a, &u, fixed("", want), true).await;
    refused_everywhere(&a, &u, fixed(" \n", want), true).await;
}

#[tokio::test]
async fn a_body_that_is_not_an_object_says_what_it_is() {
    let a = api();
    let u = a.create(None).await;
    for (body, found) in [
        ("[]", "an array"),
        (" [1, 2]", "an array"),
        (r#""x""#, "a string"),
        ("12", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ] {
        let want = format!("expected a JSON object, found {found}");
        refused_everywhere(&a, &u, fixed(body, &want), false).await;
    }
}

#[tokio::test]
async fn a_field_of_the_wrong_type_names_the_field_what_it_expects_and_where() {
    let a = api();
    let u = a.create(None).await;
    let before = a.dump();
    let (s, v) = a
        .raw(
            "PATCH",
            &format!("{BASE}/{u}"),
            Some(br#"{"proxy_port": "CANARY"}"#.to_vec()),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "262197"), "{v}");
    assert_eq!(v["error"]["target"], "proxy_port", "{v}");
    let m = message(&v);
    assert!(
        m.contains("expected u16") && m.contains("line 1 column"),
        "{m}"
    );
    assert!(!m.contains("CANARY"), "the value is echoed: {m}");
    let (s, v) = a
        .raw(
            "POST",
            &format!("{BASE}/{u}/keys"),
            Some(br#"{"key_tag": 7}"#.to_vec()),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "262197"), "{v}");
    assert_eq!(v["error"]["target"], "key_tag", "{v}");
    assert_eq!(a.dump(), before);
}
