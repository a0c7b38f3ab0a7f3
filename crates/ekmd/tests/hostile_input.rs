//! Hostile input against a real listener (ekmd's router served on 127.0.0.1:0, as `ekmd serve
//! --plain-http` serves it), from an authenticated client: a 60,000-character filter, a 10 MB
//! body, JSON nested 100,000 deep, 200 half-open connections held open, invalid UTF-8 in path,
//! query and body. Each gets a 4xx with ONTAP's error JSON, and the daemon keeps answering: a
//! normal request succeeds afterwards. Loopback only; every loop is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

use common::{BASE, KEY, admin_auth};

struct Server {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

async fn serve() -> Server {
    let (dir, state) = common::app_state();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = ekmd::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        addr,
        _dir: dir,
        task,
    }
}

/// The head of a request with `target` (raw bytes) and a body of `len` bytes.
fn head(method: &str, target: &[u8], len: usize) -> Vec<u8> {
    let mut h = format!("{method} ").into_bytes();
    h.extend_from_slice(target);
    h.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
            admin_auth()
        )
        .as_bytes(),
    );
    h
}

/// Sends `head` then `body` (while reading the answer, so that an early answer is seen even if
/// the server stops reading), and returns the status and the body parsed as JSON.
async fn exchange(addr: SocketAddr, head: Vec<u8>, body: Vec<u8>) -> (u16, Value) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        if wr.write_all(&head).await.is_err() {
            return;
        }
        for chunk in body.chunks(64 * 1024) {
            if wr.write_all(chunk).await.is_err() {
                return;
            }
        }
        let _ = wr.flush().await;
        // Keep the write half open until the reader is done.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if let Some(done) = complete(&raw) {
                        raw.truncate(done);
                        break;
                    }
                }
            }
        }
    })
    .await;
    writer.abort();
    assert!(read.is_ok(), "no answer within 30 s");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body_at = text.find("\r\n\r\n").map(|i| i + 4).unwrap_or(text.len());
    let v = serde_json::from_str(&text[body_at..]).unwrap_or(Value::Null);
    (status, v)
}

/// The length of a complete response (head + Content-Length body) in `raw`, if complete.
fn complete(raw: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(raw);
    let end = text.find("\r\n\r\n")? + 4;
    let len = text[..end]
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    (raw.len() >= end + len).then_some(end + len)
}

fn assert_ontap_4xx(what: &str, status: u16, v: &Value) {
    assert!((400..500).contains(&status), "{what}: status {status}, {v}");
    let code = v["error"]["code"].as_str().unwrap_or_default();
    assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()),
        "{what}: not ONTAP's error JSON: {v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
}

/// A normal request still succeeds, promptly.
async fn still_up(addr: SocketAddr) {
    let (s, v) = tokio::time::timeout(
        Duration::from_secs(10),
        exchange(addr, head("GET", BASE.as_bytes(), 0), Vec::new()),
    )
    .await
    .expect("ekmd stopped answering");
    assert_eq!(s, 200, "{v}");
    assert!(v["num_records"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_get_ontap_errors_and_the_daemon_stays_up() {
    let srv = serve().await;
    let addr = srv.addr;
    // A configuration to aim at.
    let body = format!(
        r#"{{"client_id":"c","tenant_id":"t","name":"https://keyvault-test.vault.azure.net/","key_id":"{KEY}","client_secret":"s"}}"#
    );
    let (s, v) = exchange(
        addr,
        head("POST", BASE.as_bytes(), body.len()),
        body.into_bytes(),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (_, v) = exchange(addr, head("GET", BASE.as_bytes(), 0), Vec::new()).await;
    let uuid = v["records"][0]["uuid"].as_str().unwrap().to_owned();

    // A filter of 60,000 characters (negations, wildcards, alternatives).
    for filler in ["!", "*", "|", "a"] {
        let target = format!("{BASE}?uuid={}", filler.repeat(60_000));
        let (s, v) = exchange(addr, head("GET", target.as_bytes(), 0), Vec::new()).await;
        assert_ontap_4xx(&format!("60,000 x {filler:?} filter"), s, &v);
    }
    still_up(addr).await;

    // A 10 MB body, with a Content-Length, to every endpoint that takes a body.
    for (method, path) in [
        ("POST", BASE.to_owned()),
        ("PATCH", format!("{BASE}/{uuid}")),
        ("POST", format!("{BASE}/{uuid}/rekey-external")),
        ("POST", format!("{BASE}/{uuid}/keys")),
        ("POST", format!("/api/security/key-managers/{uuid}/migrate")),
    ] {
        let body = vec![b'{'; 10 * 1024 * 1024];
        let (s, v) = exchange(addr, head(method, path.as_bytes(), body.len()), body).await;
        assert_ontap_4xx(&format!("10 MB body to {method} {path}"), s, &v);
        assert_eq!(s, 413, "{v}");
    }
    // ... and chunked, without a length.
    let mut chunked = format!(
        "POST {BASE} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        admin_auth()
    )
    .into_bytes();
    let mut body = Vec::new();
    for _ in 0..160 {
        body.extend_from_slice(b"10000\r\n");
        body.extend_from_slice(&[b'['; 0x10000]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let (s, v) = exchange(addr, std::mem::take(&mut chunked), body).await;
    assert_ontap_4xx("10 MB chunked body", s, &v);
    still_up(addr).await;

    // JSON nested 100,000 deep (200 KB: under the body limit, so the parser sees it).
    for (method, path) in [
        ("POST", BASE.to_owned()),
        ("PATCH", format!("{BASE}/{uuid}")),
        ("POST", format!("{BASE}/{uuid}/rekey-external")),
        ("POST", format!("{BASE}/{uuid}/keys")),
        ("POST", format!("/api/security/key-managers/{uuid}/migrate")),
    ] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let depth = if open == "[" { 100_000 } else { 40_000 };
            let body = format!("{}1{}", open.repeat(depth), close.repeat(depth)).into_bytes();
            let (s, v) = exchange(addr, head(method, path.as_bytes(), body.len()), body).await;
            assert_ontap_4xx(&format!("deep JSON {open} to {method} {path}"), s, &v);
        }
    }
    still_up(addr).await;

    // Invalid UTF-8: percent-encoded in the path and the query, raw in the body.
    for target in [
        format!("{BASE}/%FF%FE%FD"),
        format!("{BASE}/{uuid}/keys/%C3%28"),
        "/api/cluster/jobs/%80".to_owned(),
        format!("{BASE}?%FF=1"),
        format!("{BASE}?fields=%FF%FE"),
        format!("{BASE}?order_by=%C3%28"),
        format!("{BASE}?max_records=%FF"),
    ] {
        let (s, v) = exchange(addr, head("GET", target.as_bytes(), 0), Vec::new()).await;
        assert_ontap_4xx(&format!("GET {target}"), s, &v);
    }
    for (method, path) in [
        ("POST", BASE.to_owned()),
        ("PATCH", format!("{BASE}/{uuid}")),
        ("POST", format!("{BASE}/{uuid}/keys")),
    ] {
        let body = b"{\"client_id\":\"\xff\xfe\",\"key_tag\":\"\xc3\x28\"}".to_vec();
        let (s, v) = exchange(addr, head(method, path.as_bytes(), body.len()), body).await;
        assert_ontap_4xx(&format!("invalid UTF-8 body to {method} {path}"), s, &v);
    }
    still_up(addr).await;

    // 200 half-open connections: each sends part of a request and holds on.
    let mut held = Vec::new();
    for i in 0..200 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let partial = if i % 2 == 0 {
            format!(
                "GET {BASE} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n",
                admin_auth()
            )
        } else {
            format!(
                "POST {BASE} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Length: 1000\r\n\r\n{{\"client_id\":",
                admin_auth()
            )
        };
        c.write_all(partial.as_bytes()).await.unwrap();
        held.push(c);
    }
    // While they are held, normal requests are served.
    for _ in 0..5 {
        still_up(addr).await;
    }
    drop(held);
    still_up(addr).await;
    assert!(!srv.task.is_finished(), "the server task ended");
    srv.task.abort();
}
