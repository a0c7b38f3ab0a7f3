//! The KMIP server's Get, in three measures:
//!
//! (a) server-side cost of one Get, against the socket read path in the same run, each
//!     without its transport:
//!     - `kmip_server_handle`: `Server::handle` on an encoded KMIP 1.4 Get (decode, owner
//!       check, key lookup and unwrap, encode of the answer);
//!     - `kmip_listener_answer`: what ekmd's KMIP listener does per message after TLS:
//!       `ekmd::kmip::answer` (the above plus metrics) on a blocking thread of the runtime;
//!     - `socket_router`: the data-path socket's real router serving `GET /keys/{id}` (routing,
//!       id parsing, the read on a blocking thread, base64, JSON), driven in-process;
//!     the like-for-like ratio is `kmip_listener_answer / socket_router` (goal: at most 2x);
//! (c) Gets per second over 1, 4 and 16 concurrent mutual-TLS sessions against ekmd's KMIP
//!     listener (`ekmd::kmip::serve`, the function `ekmd serve --kmip-listen` runs, on a
//!     2-worker runtime in this process), each session a rustls client doing one Get per
//!     round trip.
//!
//! (b), PyKMIP's client against ekmd and against PyKMIP's own server, is
//! `benches/kmip_pykmip.py`.
//!
//! `cargo bench --bench kmip` prints `RATIO` lines after criterion's output.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, black_box};
use ekm::core::{DataKeyId, KeyOwner, KeyTag};
use ekm_kmip::tags as t;
use ekm_kmip::ttlv::{self, Item};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tower::ServiceExt;

fn get_request(uid: &str) -> Vec<u8> {
    ekm_kmip::request_message(
        (1, 4),
        vec![(t::op::GET, vec![Item::text(t::UNIQUE_IDENTIFIER, uid)])],
    )
    .to_vec()
}

fn succeeded(resp: &[u8]) -> bool {
    ttlv::decode(resp)
        .ok()
        .and_then(|m| m.child(t::BATCH_ITEM)?.child(t::RESULT_STATUS)?.as_enum())
        == Some(t::status::SUCCESS)
}

/// The engine's state as ekmd builds it (metrics, no audit trail: a Get writes none) and 1000
/// cluster keys.
fn state(dir: &std::path::Path) -> (ekmd::AppState, Vec<DataKeyId>) {
    let (engine, _) = support::one_node_engine(dir);
    let ids = (0..1000)
        .map(|_| {
            engine
                .create_data_key(KeyOwner::Cluster, KeyTag::default())
                .expect("create")
        })
        .collect();
    let state = ekmd::AppState::new(engine, "admin".into(), "pw".to_owned().into());
    (state, ids)
}

fn server_side(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, ids) = state(dir.path());
    let server = ekm_kmip::Server::new(state.engine.clone());
    let requests: Vec<Vec<u8>> = ids.iter().map(|i| get_request(&i.to_hex())).collect();
    assert!(succeeded(
        &server.handle(Some(KeyOwner::Cluster), &requests[0])
    ));
    let reporting = ekmd::kmip::Reporting {
        metrics: state.metrics.clone(),
        audit: None,
    };
    let client = ekmd::kmip::Client {
        identity: Arc::from("c"),
        source: std::net::Ipv4Addr::LOCALHOST.into(),
        owner: Some(KeyOwner::Cluster),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let socket = ekmd::socket::router(state.clone());
    let paths: Vec<String> = ids
        .iter()
        .map(|i| format!("/keys/{}", i.to_hex()))
        .collect();

    let mut g = c.benchmark_group("kmip_get");
    let mut i = 0usize;
    g.bench_function("kmip_server_handle", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            black_box(server.handle(Some(KeyOwner::Cluster), &requests[i]))
        })
    });
    let shared = Arc::new((server.clone(), reporting, client, requests.clone()));
    g.bench_function("kmip_listener_answer", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            let (s, idx) = (shared.clone(), i);
            rt.block_on(async move {
                let resp = tokio::task::spawn_blocking(move || {
                    ekmd::kmip::answer(&s.0, &s.1, &s.2, &s.3[idx])
                })
                .await
                .expect("answered");
                black_box(resp)
            })
        })
    });
    g.bench_function("socket_router", |b| {
        b.iter(|| {
            i = (i + 1) % paths.len();
            let req = axum::http::Request::get(paths[i].as_str())
                .body(axum::body::Body::empty())
                .expect("request");
            let router = socket.clone();
            rt.block_on(async move {
                let resp = router.oneshot(req).await.expect("answered");
                assert!(resp.status().is_success());
                let body = axum::body::to_bytes(resp.into_body(), 4096)
                    .await
                    .expect("body");
                black_box(body)
            })
        })
    });
    g.finish();
}

/// One mutual-TLS KMIP session.
struct Session {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl Session {
    fn open(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Session {
        let conn = rustls::ClientConnection::new(
            config.clone(),
            ServerName::try_from("127.0.0.1").expect("name"),
        )
        .expect("client");
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        Session {
            tls: rustls::StreamOwned::new(conn, tcp),
            buf: vec![0; 4096],
        }
    }

    fn call(&mut self, msg: &[u8]) {
        self.tls.write_all(msg).expect("send");
        let mut header = [0u8; 8];
        self.tls.read_exact(&mut header).expect("answer");
        let total = ttlv::message_len(&header).expect("a message");
        self.buf.resize(total, 0);
        self.buf[..8].copy_from_slice(&header);
        self.tls
            .read_exact(&mut self.buf[8..])
            .expect("answer body");
        assert!(succeeded(&self.buf));
    }
}

fn sessions(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, ids) = state(&dir.path().join("engine"));
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let files = ekmd::kmip::ensure_pki(&data, None, "127.0.0.1").expect("pki");
    let server_config = ekmd::kmip::server_config(&files, None).expect("server config");
    let (cert, key) = ekmd::kmip::issue_client_cert(&data, "c", None).expect("client cert");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let reporting = ekmd::kmip::Reporting {
        metrics: state.metrics.clone(),
        audit: None,
    };
    rt.spawn(ekmd::kmip::serve(
        listener,
        server_config,
        ekm_kmip::Server::new(state.engine.clone()),
        reporting,
        ekmd::kmip::Limits::defaults(Some(state.metrics.clone())),
    ));

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&files.client_ca).expect("ca") {
        roots.add(c.expect("ca cert")).expect("root");
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .expect("client config"),
    );
    let requests: Arc<Vec<Vec<u8>>> =
        Arc::new(ids.iter().map(|i| get_request(&i.to_hex())).collect());

    let mut g = c.benchmark_group("kmip_sessions");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(6));
    for n in [1usize, 4, 16] {
        let mut open: Vec<Session> = (0..n).map(|_| Session::open(addr, &config)).collect();
        g.bench_function(BenchmarkId::new("sessions", n), |b| {
            b.iter_custom(|iters| {
                // `iters` Gets in all, spread over the sessions, each on its own thread.
                let per = (iters as usize).div_ceil(n);
                let started = Instant::now();
                std::thread::scope(|s| {
                    for (k, sess) in open.iter_mut().enumerate() {
                        let requests = requests.clone();
                        s.spawn(move || {
                            for j in 0..per {
                                sess.call(&requests[(k * 131 + j) % requests.len()]);
                            }
                        });
                    }
                });
                started.elapsed().mul_f64(iters as f64 / (per * n) as f64)
            })
        });
    }
    g.finish();
    drop(rt);
}

fn main() {
    let mut c = support::criterion();
    server_side(&mut c);
    sessions(&mut c);
    c.final_summary();
    support::report_time_ratio(
        "kmip_get",
        "kmip_listener_answer",
        "socket_router",
        "at most 2x",
    );
    support::report_time_ratio(
        "kmip_get",
        "kmip_server_handle",
        "socket_router",
        "at most 2x",
    );
    for n in [1, 4, 16] {
        if let Some(ns) = support::median_ns("kmip_sessions", &format!("sessions/{n}")) {
            println!(
                "RATE kmip_sessions/{n}: {:.0} Gets/s over {n} mutual-TLS session(s)",
                1e9 / ns
            );
        }
    }
}
