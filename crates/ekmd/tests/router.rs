//! Router tests (no socket): every endpoint, error code and query parameter of ekmd's REST API,
//! driven with `oneshot`; then one real listener on 127.0.0.1.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use ekmd::AppState;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

mod common;

use common::{BASE, KEY, KEY2, basic};

struct Api {
    _dir: tempfile::TempDir,
    state: AppState,
}

fn api() -> Api {
    let (dir, state) = common::app_state();
    Api { _dir: dir, state }
}

impl Api {
    async fn call_as(
        &self,
        auth: Option<&str>,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let body = match body {
            Some(b) => Body::from(b.to_string()),
            None => Body::empty(),
        };
        let resp = ekmd::router(self.state.clone())
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, v)
    }

    /// One request to `router` (kept across calls, with its throttle) from client `ip`.
    async fn call_from(
        router: &axum::Router,
        ip: [u8; 4],
        auth: Option<&str>,
        method: &str,
        uri: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let mut req = req.body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                ip, 40000,
            ))));
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A raw request (any bytes of URI and body), answered as status, headers and body bytes.
    async fn raw(&self, method: &str, uri: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, basic("admin", "pw"))
            .body(Body::from(body))
            .unwrap();
        let resp = ekmd::router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!("{status}: not JSON: {:?}", String::from_utf8_lossy(&bytes))
        });
        if !status.is_success() {
            assert_eq!(ct.as_deref(), Some("application/json"), "{status} {v}");
        }
        (status, v)
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call_as(Some(&basic("admin", "pw")), method, uri, body)
            .await;
        (s, v)
    }

    async fn create(&self, svm: Option<&str>) -> String {
        let mut b = json!({"client_id": "client1", "tenant_id": "tenant1", "name": "https://keyvault-test.vault.azure.net/", "key_id": KEY, "client_secret": "s3cret"});
        if let Some(s) = svm {
            b["svm"] = json!({"name": s});
        }
        let (st, v) = self
            .call("POST", &format!("{BASE}?return_records=true"), Some(b))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["records"][0]["uuid"].as_str().unwrap().to_owned()
    }

    async fn wait_job(&self, link: &Value) -> Value {
        let href = link["job"]["_links"]["self"]["href"]
            .as_str()
            .unwrap()
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

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn every_path_needs_basic_auth() {
    let a = api();
    let u = Uuid::new_v4();
    for (m, p) in [
        ("GET", BASE.to_owned()),
        ("POST", BASE.to_owned()),
        ("GET", format!("{BASE}/{u}")),
        ("PATCH", format!("{BASE}/{u}")),
        ("DELETE", format!("{BASE}/{u}")),
        ("POST", format!("{BASE}/{u}/rekey-external")),
        ("POST", format!("{BASE}/{u}/rekey-internal")),
        ("POST", format!("{BASE}/{u}/restore")),
        ("GET", format!("{BASE}/{u}/keys")),
        ("POST", format!("{BASE}/{u}/keys")),
        ("DELETE", format!("{BASE}/{u}/keys/{}", "ab".repeat(32))),
        ("POST", format!("/api/security/key-managers/{u}/migrate")),
        ("GET", format!("/api/cluster/jobs/{u}")),
        ("GET", "/api/openapi.json".to_owned()),
    ] {
        for auth in [
            None,
            Some(basic("admin", "wrong")),
            Some(basic("root", "pw")),
            Some("Bearer x".to_owned()),
        ] {
            let (s, h, _) = a.call_as(auth.as_deref(), m, &p, None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {p}");
            assert!(h.contains_key(header::WWW_AUTHENTICATE));
        }
    }
}

#[tokio::test]
async fn create_answers_201_with_location_and_the_seed_codes() {
    let a = api();
    let b = json!({"client_id": "client1", "tenant_id": "tenant1", "name": "https://keyvault-test.vault.azure.net/", "key_id": KEY, "client_secret": "s3cret"});
    let (s, h, v) = a
        .call_as(Some(&basic("admin", "pw")), "POST", BASE, Some(b.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let location = h[header::LOCATION].to_str().unwrap();
    assert!(location.starts_with(&format!("{BASE}/")), "{location}");
    // The seed: return_records "The default is false. If set to true, the records are
    // returned." The uuid is in the Location header.
    assert!(
        v.get("records").is_none(),
        "no records without return_records: {v}"
    );
    assert!(!v.to_string().contains("s3cret"));
    let (s, v) = a.call("POST", BASE, Some(b.clone())).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "65537500"));
    let cases = [
        (
            json!({"key_id": "https://keyvault1.vault.azure.net/keys/key1"}),
            "65537523",
        ),
        (json!({"client_secret": null}), "65537567"),
        (
            json!({"client_secret": null, "client_certificate": "bm90IGEgcGZ4"}),
            "65537573",
        ),
        (json!({"client_secret": ""}), "65537540"),
        (json!({"svm": {"name": "vs9"}}), "2621462"),
        (json!({"colour": "blue"}), "262179"),
        (json!({"proxy_port": "x"}), "262197"),
    ];
    for (patch, want) in cases {
        let mut body = b.clone();
        body["svm"] = json!({"name": "vs0"});
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let (s, v) = a.call("POST", BASE, Some(body)).await;
        assert_eq!(code(&v), want, "{v}");
        assert!(s.is_client_error());
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (s, v) = a.call("POST", BASE, None).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "262197"));
    // Bodies over the limit are refused before parsing.
    let big = json!({"client_id": "x".repeat(300 * 1024)});
    let (s, _) = a.call("POST", BASE, Some(big)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn collection_get_fields_filters_order_and_paging() {
    let a = api();
    let cluster = a.create(None).await;
    let vs0 = a.create(Some("vs0")).await;
    let vs1 = a.create(Some("vs1")).await;
    // Default collection: identity fields only; fields=* every plain field; advanced only when named.
    let (_, v) = a.call("GET", BASE, None).await;
    assert_eq!(v["num_records"], 3);
    assert!(v["records"][0].get("client_id").is_none());
    let (_, v) = a.call("GET", &format!("{BASE}?fields=*"), None).await;
    assert_eq!(v["records"][0]["client_id"], "client1");
    assert!(v["records"][0].get("state").is_none());
    let (_, v) = a
        .call(
            "GET",
            &format!("{BASE}?fields=state,ekmip_reachability.node.name"),
            None,
        )
        .await;
    assert!(v["records"][0]["state"]["available"].is_boolean());
    assert!(v["records"][0]["ekmip_reachability"][0]["node"]["name"].is_string());
    assert!(v["records"][0].get("client_id").is_none());
    // Filters.
    for (q, want) in [
        ("svm.name=vs0", vec![vs0.as_str()]),
        ("scope=cluster", vec![cluster.as_str()]),
        ("svm.name=vs*", vec![vs0.as_str(), vs1.as_str()]),
        ("svm.name=!vs0&scope=svm", vec![vs1.as_str()]),
        (
            "client_id=client1&svm.uuid=00000000-0000-0000-0000-000000000016",
            vec![vs1.as_str()],
        ),
        ("authentication_method=certificate", vec![]),
        (
            "state.available=false",
            vec![cluster.as_str(), vs0.as_str(), vs1.as_str()],
        ),
        (
            &format!("uuid={cluster}|{vs1}"),
            vec![cluster.as_str(), vs1.as_str()],
        ),
    ] {
        let (s, v) = a.call("GET", &format!("{BASE}?{q}"), None).await;
        assert_eq!(s, StatusCode::OK, "{q}");
        let mut got: Vec<&str> = v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["uuid"].as_str().unwrap())
            .collect();
        let mut want = want.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{q}");
    }
    // order_by and paging: the next link carries the whole query.
    let (_, v) = a
        .call(
            "GET",
            &format!("{BASE}?fields=svm.name&order_by=svm.name%20desc&max_records=2"),
            None,
        )
        .await;
    let names: Vec<Value> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["svm"]["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("vs1"), json!("vs0")]);
    let next = v["_links"]["next"]["href"].as_str().unwrap().to_owned();
    assert!(
        next.contains("order_by=")
            && next.contains("max_records=2")
            && next.contains("start.uuid=")
    );
    let (_, v2) = a.call("GET", &next, None).await;
    assert_eq!(v2["num_records"], 1);
    assert_eq!(v2["records"][0]["uuid"], cluster.as_str());
    assert!(v2["_links"].get("next").is_none());
    // return_records=false counts only.
    let (_, v) = a
        .call("GET", &format!("{BASE}?return_records=false"), None)
        .await;
    assert_eq!(v["num_records"], 3);
    assert!(v.get("records").is_none());
    // Bad parameters.
    for (q, want) in [
        ("colour=blue", "262179"),
        ("fields=colour", "262197"),
        ("max_records=x", "262197"),
        ("return_timeout=500", "262197"),
        ("order_by=colour", "262197"),
        ("return_records=maybe", "262197"),
    ] {
        let (s, v) = a.call("GET", &format!("{BASE}?{q}"), None).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, want), "{q}");
    }
}

#[tokio::test]
async fn instance_get_patch_delete() {
    let a = api();
    let u = a.create(None).await;
    let (s, v) = a.call("GET", &format!("{BASE}/{u}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["key_id"], KEY);
    assert_eq!(v["_links"]["self"]["href"], format!("{BASE}/{u}").as_str());
    assert!(v.get("state").is_none() && v.get("client_secret").is_none());
    let (_, v) = a
        .call(
            "GET",
            &format!("{BASE}/{u}?fields=state,azure_reachability,ekmip_reachability"),
            None,
        )
        .await;
    assert_eq!(v["azure_reachability"]["reachable"], true);
    assert_eq!(v["ekmip_reachability"].as_array().unwrap().len(), 2);
    assert_eq!(v["state"]["code"], "346758");
    for p in [
        format!("{BASE}/{}", Uuid::new_v4()),
        format!("{BASE}/not-a-uuid"),
    ] {
        let (s, v) = a.call("GET", &p, None).await;
        assert_eq!(
            (s, code(&v), v["error"]["message"].as_str()),
            (StatusCode::NOT_FOUND, "4", Some("entry doesn't exist"))
        );
    }
    let (s, _) = a
        .call(
            "PATCH",
            &format!("{BASE}/{u}"),
            Some(json!({"proxy_type": "http", "proxy_host": "p.example", "proxy_port": 3128})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = a.call("GET", &format!("{BASE}/{u}"), None).await;
    assert_eq!(v["proxy_port"], 3128);
    for (body, want) in [
        (json!({}), "65537541"),
        (json!({"client_secret": ""}), "65537540"),
        (json!({"key_id": KEY2}), "262179"),
    ] {
        let (s, v) = a.call("PATCH", &format!("{BASE}/{u}"), Some(body)).await;
        assert_eq!(code(&v), want);
        assert!(s.is_client_error());
    }
    let (s, v) = a
        .call(
            "PATCH",
            &format!("{BASE}/{}", Uuid::new_v4()),
            Some(json!({"client_secret": "x"})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "4"));
    let (s, k) = a
        .call(
            "POST",
            &format!("{BASE}/{u}/keys"),
            Some(json!({"key_tag": "vol1"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = a.call("DELETE", &format!("{BASE}/{u}"), None).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "65536867"));
    let (s, _) = a
        .call(
            "DELETE",
            &format!("{BASE}/{u}/keys/{}", k["key_id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = a.call("DELETE", &format!("{BASE}/{u}"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = a.call("DELETE", &format!("{BASE}/{u}"), None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "4"));
}

#[tokio::test]
async fn actions_answer_202_with_a_job_link_and_jobs_report() {
    let a = api();
    let u = a.create(None).await;
    let (s, v) = a
        .call("POST", &format!("{BASE}/{u}/rekey-internal"), None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "65537559"));
    for _ in 0..3 {
        a.call(
            "POST",
            &format!("{BASE}/{u}/keys"),
            Some(json!({"key_tag": "v"})),
        )
        .await;
    }
    let (s, v) = a
        .call(
            "POST",
            &format!("{BASE}/{u}/rekey-external"),
            Some(json!({"key_id": "https://keyvault1.vault.azure.net/keys/key1"})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "65537523"));
    let (s, v) = a
        .call(
            "POST",
            &format!("{BASE}/{u}/rekey-external"),
            Some(json!({"key_id": KEY2, "svm": {"name": "vs0"}})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "65537120"));
    for (path, body) in [
        ("rekey-external", Some(json!({"key_id": KEY2}))),
        ("rekey-internal", None),
        ("restore", None),
    ] {
        let (s, link) = a.call("POST", &format!("{BASE}/{u}/{path}"), body).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{path}: {link}");
        let href = link["job"]["_links"]["self"]["href"].as_str().unwrap();
        assert_eq!(
            href,
            format!(
                "/api/cluster/jobs/{}",
                link["job"]["uuid"].as_str().unwrap()
            )
        );
        let j = a.wait_job(&link).await;
        assert_eq!(j["state"], "success", "{path}: {j}");
        assert!(!j["message"].as_str().unwrap().is_empty());
        assert_eq!(j["code"], 0);
        assert!(j["progress"]["processed"].is_u64());
    }
    // return_timeout waits for the job and answers 200.
    let (s, _) = a
        .call(
            "POST",
            &format!("{BASE}/{u}/rekey-internal?return_timeout=30"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = a
        .call(
            "GET",
            &format!("/api/cluster/jobs/{}", Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "4"));
    let (_, v) = a.call("GET", &format!("{BASE}/{u}/keys"), None).await;
    assert!(
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["kek_generation"] == 3)
    );
}

#[tokio::test]
async fn data_path_keys_and_migrate() {
    let a = api();
    let cluster = a.create(None).await;
    let (s, k) = a
        .call(
            "POST",
            &format!("{BASE}/{cluster}/keys"),
            Some(json!({"key_tag": "vs0-vol", "svm": {"name": "vs0"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = k["key_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 64);
    let (_, v) = a.call("GET", &format!("{BASE}/{cluster}/keys"), None).await;
    assert_eq!(v["records"][0]["svm"]["name"], "vs0");
    assert!(v["records"][0].get("key").is_none());
    let vs0 = a.create(Some("vs0")).await;
    let (s, v) = a
        .call("POST", &format!("{BASE}/{vs0}/rekey-internal"), None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "65537547"));
    let (s, v) = a
        .call(
            "POST",
            &format!("{BASE}/{cluster}/keys"),
            Some(json!({"svm": {"name": "vs0"}})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "262197"));
    let (s, link) = a
        .call(
            "POST",
            &format!("/api/security/key-managers/{cluster}/migrate"),
            Some(json!({"uuid": vs0})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(a.wait_job(&link).await["state"], "success");
    let (_, v) = a.call("GET", &format!("{BASE}/{vs0}/keys"), None).await;
    assert_eq!(v["records"][0]["key_id"], id.as_str());
    let (s, _) = a
        .call(
            "POST",
            &format!("{BASE}/{vs0}/rekey-internal?return_timeout=30"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = a
        .call("DELETE", &format!("{BASE}/{cluster}/keys/{id}"), None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, "4"),
        "the key now belongs to vs0's key manager"
    );
    let (s, v) = a
        .call(
            "POST",
            &format!("/api/security/key-managers/{cluster}/migrate"),
            Some(json!({})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "262197"));
    // The socket router serves the material, base64.
    let resp = ekmd::socket::router(a.state.clone())
        .oneshot(
            Request::builder()
                .uri(format!("/keys/{id}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let material = a
        .state
        .engine
        .read_data_key(&ekm_core::DataKeyId::parse(&id).unwrap())
        .unwrap();
    assert_eq!(
        v["key"],
        base64::engine::general_purpose::STANDARD.encode(material.expose_secret())
    );
    let resp = ekmd::socket::router(a.state.clone())
        .oneshot(
            Request::builder()
                .uri(format!("/keys/{}", "0".repeat(64)))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn openapi_document_lists_every_path() {
    let a = api();
    let (s, v) = a.call("GET", "/api/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = v["paths"].as_object().unwrap();
    for p in [
        BASE,
        "/api/security/azure-key-vaults/{uuid}",
        "/api/security/azure-key-vaults/{uuid}/rekey-external",
        "/api/security/azure-key-vaults/{uuid}/rekey-internal",
        "/api/security/azure-key-vaults/{uuid}/restore",
        "/api/security/azure-key-vaults/{uuid}/keys",
        "/api/security/key-managers/{uuid}/migrate",
        "/api/cluster/jobs/{uuid}",
        "/api/cluster/jobs",
        "/api/svm/svms",
        "/api/svm/svms/{uuid}",
        "/api/security/aws-kms",
        "/api/security/aws-kms/{uuid}",
        "/api/security/aws-kms/{uuid}/keys",
        "/api/security/key-managers",
    ] {
        assert!(paths.contains_key(p), "{p}");
    }
}

#[tokio::test]
async fn a_real_listener_on_loopback() {
    let a = api();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = ekmd::router(a.state.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .get(format!("http://{addr}{BASE}"))
        .basic_auth("admin", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["num_records"], 0);
    let r = client
        .get(format!("http://{addr}{BASE}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    server.abort();
}

/// An ONTAP error body: `{"error":{"code":"<digits>","message":"<non-empty>"}}`.
fn assert_ontap_error(v: &Value) {
    let code = v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {v}"));
    assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

#[tokio::test]
async fn post_returns_records_only_when_asked_and_booleans_take_every_spelling() {
    let a = api();
    let body = |svm: &str| json!({"svm": {"name": svm}, "client_id": "c", "tenant_id": "t", "name": "https://keyvault-test.vault.azure.net/", "key_id": KEY, "client_secret": "s3cret"});
    // No return_records: the seed's default is false.
    let (s, v) = a.call("POST", BASE, Some(body("vs0"))).await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(v.get("records").is_none(), "{v}");
    // True, true and 1 return the record; False, false and 0 do not.
    let (s, v) = a
        .call(
            "POST",
            &format!("{BASE}?return_records=True"),
            Some(body("vs1")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["records"][0]["svm"]["name"], "vs1");
    for (q, with) in [
        ("true", true),
        ("True", true),
        ("1", true),
        ("false", false),
        ("False", false),
        ("0", false),
    ] {
        let (s, v) = a
            .call("GET", &format!("{BASE}?return_records={q}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        assert_eq!(v.get("records").is_some(), with, "{q}: {v}");
        assert_eq!(v["num_records"], 2);
    }
    for bad in ["TRUE", "yes", "2", ""] {
        let (s, v) = a
            .call("GET", &format!("{BASE}?return_records={bad}"), None)
            .await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "262197"), "{bad}");
    }
}

#[tokio::test]
async fn jobs_collection_finds_a_lost_job() {
    let a = api();
    let u = a.create(None).await;
    a.call(
        "POST",
        &format!("{BASE}/{u}/keys"),
        Some(json!({"key_tag": "v"})),
    )
    .await;
    let (s, v) = a.call("GET", "/api/cluster/jobs", None).await;
    assert_eq!((s, v["num_records"].clone()), (StatusCode::OK, json!(0)));
    let mut started = Vec::new();
    for _ in 0..3 {
        let (s, link) = a
            .call("POST", &format!("{BASE}/{u}/rekey-internal"), None)
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let id = link["job"]["uuid"].as_str().unwrap().to_owned();
        // return_timeout on the job itself waits for it to end.
        let (s, j) = a
            .call(
                "GET",
                &format!("/api/cluster/jobs/{id}?return_timeout=30"),
                None,
            )
            .await;
        assert_eq!(
            (s, j["state"].clone()),
            (StatusCode::OK, json!("success")),
            "{j}"
        );
        started.push(id);
    }
    // Collection: default records are uuid + _links; fields, filters, order_by, max_records.
    let (_, v) = a.call("GET", "/api/cluster/jobs", None).await;
    assert_eq!(v["num_records"], 3);
    let mut listed: Vec<String> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uuid"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    started.sort();
    assert_eq!(listed, started);
    assert!(v["records"][0].get("state").is_none());
    assert!(v["records"][0]["_links"]["self"]["href"].is_string());
    let (_, v) = a
        .call(
            "GET",
            "/api/cluster/jobs?state=success&fields=state,description,progress.total&order_by=start_time%20desc&max_records=2",
            None,
        )
        .await;
    assert_eq!(v["num_records"], 2, "{v}");
    assert_eq!(v["records"][0]["state"], "success");
    assert!(
        v["records"][0]["description"]
            .as_str()
            .unwrap()
            .ends_with("/rekey-internal")
    );
    assert!(v["records"][0]["progress"]["total"].is_u64());
    assert!(v["records"][0]["progress"].get("processed").is_none());
    let next = v["_links"]["next"]["href"].as_str().unwrap().to_owned();
    assert!(next.starts_with("/api/cluster/jobs?"), "{next}");
    let (_, v) = a.call("GET", &next, None).await;
    assert_eq!(v["num_records"], 1);
    let (_, v) = a
        .call("GET", "/api/cluster/jobs?state=running|queued", None)
        .await;
    assert_eq!(v["num_records"], 0);
    let (_, v) = a.call("GET", "/api/cluster/jobs?fields=*", None).await;
    assert_eq!(v["records"][0]["code"], 0);
    for (q, want) in [
        ("colour=blue", "262179"),
        ("fields=colour", "262197"),
        ("order_by=colour", "262197"),
        ("scope=cluster", "262179"),
    ] {
        let (s, v) = a.call("GET", &format!("/api/cluster/jobs?{q}"), None).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, want), "{q}");
    }
}

#[tokio::test]
async fn framework_rejections_answer_with_ontap_error_json() {
    let a = api();
    // Unknown route.
    let (s, v) = a.raw("GET", "/api/no/such/thing", vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_ontap_error(&v);
    // Method not allowed.
    for (m, p) in [
        ("PUT", BASE),
        ("DELETE", "/api/cluster/jobs"),
        ("POST", "/api/openapi.json"),
    ] {
        let (s, v) = a.raw(m, p, vec![]).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{m} {p}");
        assert_ontap_error(&v);
    }
    // Payload too large.
    let (s, v) = a.raw("POST", BASE, vec![b' '; ekmd::BODY_LIMIT + 1]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_ontap_error(&v);
    // URI too long.
    let (s, v) = a
        .raw(
            "GET",
            &format!("{BASE}?uuid={}", "a".repeat(ekmd::MAX_URI)),
            vec![],
        )
        .await;
    assert_eq!(s, StatusCode::URI_TOO_LONG);
    assert_ontap_error(&v);
    // Invalid UTF-8 in the path (percent-encoded), and in a body.
    let (s, v) = a.raw("GET", &format!("{BASE}/%FF%FE"), vec![]).await;
    assert!(s.is_client_error(), "{s}");
    assert_ontap_error(&v);
    let (s, v) = a
        .raw("POST", BASE, b"{\"client_id\": \"\xff\xfe\"}".to_vec())
        .await;
    assert!(s.is_client_error(), "{s}");
    assert_ontap_error(&v);
}

#[tokio::test]
async fn hostile_filters_are_refused_or_matched_without_recursion() {
    let a = api();
    a.create(None).await;
    // 20,000 `!` used to recurse once each and overflow the stack: now refused by the URI cap.
    let (s, v) = a
        .raw(
            "GET",
            &format!("{BASE}?uuid={}", "!".repeat(20_000)),
            vec![],
        )
        .await;
    assert_eq!(s, StatusCode::URI_TOO_LONG);
    assert_ontap_error(&v);
    // Under the URI cap but over the pattern cap: 262197.
    let (s, v) = a
        .raw(
            "GET",
            &format!("{BASE}?uuid={}", "!".repeat(ekmd::query::MAX_PATTERN + 1)),
            vec![],
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "262197"));
    // At the cap it is matched (an even number of `!` is no negation).
    let (s, v) = a
        .raw(
            "GET",
            &format!("{BASE}?scope={}cluster", "!".repeat(1000)),
            vec![],
        )
        .await;
    assert_eq!((s, v["num_records"].clone()), (StatusCode::OK, json!(1)));
    let (_, v) = a
        .raw(
            "GET",
            &format!("{BASE}?scope={}cluster", "!".repeat(999)),
            vec![],
        )
        .await;
    assert_eq!(v["num_records"], 0);
    // Many wildcards against a long value stay fast.
    let started = std::time::Instant::now();
    let (s, _) = a
        .raw(
            "GET",
            &format!("{BASE}?key_id={}x", "*a".repeat(500)),
            vec![],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn repeated_failed_logins_from_one_address_are_throttled() {
    let a = api();
    let router = ekmd::router(a.state.clone());
    let (bad, good) = (basic("admin", "guess"), basic("admin", "pw"));
    let attacker = [192, 0, 2, 1];
    for _ in 0..ekmd::auth::FREE_FAILURES + 1 {
        let (s, _, v) = Api::call_from(&router, attacker, Some(&bad), "GET", BASE).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_ontap_error(&v);
    }
    // Locked out now: even the right password is not checked.
    let (s, h, v) = Api::call_from(&router, attacker, Some(&good), "GET", BASE).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(h.contains_key(header::RETRY_AFTER));
    assert_ontap_error(&v);
    // Another address is not affected; no credentials at all is a plain 401.
    let (s, _, _) = Api::call_from(&router, [192, 0, 2, 2], Some(&good), "GET", BASE).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = Api::call_from(&router, attacker, None, "GET", BASE).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // After the lock-out the right password works and resets the count.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (s, _, _) = Api::call_from(&router, attacker, Some(&good), "GET", BASE).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = Api::call_from(&router, attacker, Some(&bad), "GET", BASE).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
