//! Connection floods against a real ekmd under a 1,024 open-file limit (a service manager's
//! default): thousands of idle mutual-TLS KMIP sessions from one certificate and thousands of
//! half-open REST connections leave `/healthz`, the data-path socket and another owner's KMIP
//! Get answering, and ekmd's descriptors under its bounds.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::free_port;
use ekm_kmip::tags::{self as t, op};
use ekm_kmip::ttlv::{self, Item};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const KEY: [u8; 32] = *b"FLOOD-TEST-KEY-MATERIAL-01234567";

struct Daemon {
    child: Child,
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    rest: u16,
    kmip: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let topo = dir.path().join("topology.toml");
    std::fs::write(
        &topo,
        format!(
            "[cluster]\nname = \"cluster1\"\nuuid = \"{}\"\n\n[[nodes]]\nname = \"node1\"\nuuid = \"{}\"\n\n[[svms]]\nname = \"vs0\"\nuuid = \"{}\"\n",
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4()
        ),
    )
    .unwrap();
    let (rest, kmip) = (free_port(), free_port());
    // util-linux's prlimit sets the limit and execs ekmd (same pid).
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=1024:1024", "--", env!("CARGO_BIN_EXE_ekmd")])
        .args(["serve", "--plain-http", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{rest}"), "--topology"])
        .arg(&topo)
        .args(["--kmip-listen", &format!("127.0.0.1:{kmip}")])
        .env("EKMD_ADMIN_USER", "admin")
        .env("EKMD_ADMIN_PASSWORD", "admin-pw")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !(seen.contains("KMIP listening") && seen.contains("ekmd listening on")) {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("ekmd exited before its listeners were up: {seen}");
        }
        seen.push_str(&line);
    }
    let r = reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{rest}/api/security/azure-key-vaults?return_records=true"
        ))
        .basic_auth("admin", Some("admin-pw"))
        .json(&serde_json::json!({"client_id": "c", "tenant_id": "t",
            "name": "https://keyvault-test.vault.azure.net/", "key_id": common::KEY, "client_secret": "s"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
    Daemon {
        child,
        _dir: dir,
        data,
        rest,
        kmip,
    }
}

/// A client certificate for `owner`, and the TLS configuration that presents it.
fn tls_for(d: &Daemon, owner: &str) -> Arc<rustls::ClientConfig> {
    let out = d.data.parent().unwrap().join(format!("client-{owner}"));
    let st = Command::new(env!("CARGO_BIN_EXE_ekmd"))
        .args(["kmip-client-cert", "--data-dir"])
        .arg(&d.data)
        .args(["--owner", owner, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    client_config(&d.data.join("kmip/ca.pem"), &out)
}

fn client_config(ca: &Path, certs: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(certs.join("client.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(certs.join("client.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap(),
    )
}

type Session = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A mutual-TLS session to the KMIP listener, its handshake completed within `wait` (`None`:
/// refused or not answered).
fn session(port: u16, tls: &Arc<rustls::ClientConfig>, wait: Duration) -> Option<Session> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(wait)).ok()?;
    let mut conn =
        rustls::ClientConnection::new(tls.clone(), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).ok()?;
    }
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    Some(rustls::StreamOwned::new(conn, tcp))
}

fn call(s: &mut Session, items: Vec<(u32, Vec<Item>)>) -> Item {
    s.write_all(&ekm_kmip::request_message((1, 4), items))
        .unwrap();
    let mut header = [0u8; 8];
    s.read_exact(&mut header).unwrap();
    let len = ttlv::message_len(&header).expect("a TTLV message");
    let mut body = vec![0u8; len];
    body[..8].copy_from_slice(&header);
    s.read_exact(&mut body[8..]).unwrap();
    ttlv::decode(&body).unwrap()
}

fn register() -> Vec<(u32, Vec<Item>)> {
    vec![(
        op::REGISTER,
        vec![
            Item::enumeration(t::OBJECT_TYPE, t::OBJECT_SYMMETRIC_KEY),
            Item::structure(
                t::SYMMETRIC_KEY,
                vec![Item::structure(
                    t::KEY_BLOCK,
                    vec![
                        Item::enumeration(t::KEY_FORMAT_TYPE, t::KEY_FORMAT_RAW),
                        Item::structure(
                            t::KEY_VALUE,
                            vec![Item::bytes(t::KEY_MATERIAL, KEY.to_vec())],
                        ),
                        Item::enumeration(t::CRYPTOGRAPHIC_ALGORITHM, t::ALGORITHM_AES),
                        Item::int(t::CRYPTOGRAPHIC_LENGTH, 256),
                    ],
                )],
            ),
        ],
    )]
}

fn status_of(answer: &Item) -> Option<u32> {
    answer
        .child(t::BATCH_ITEM)?
        .child(t::RESULT_STATUS)?
        .as_enum()
}

/// One HTTP/1.1 GET over `stream`; the status line answered.
fn http_get(mut stream: impl Read + Write, path: &str) -> String {
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: ekmd\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines().next().unwrap_or_default().to_owned()
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn idle_kmip_sessions_and_half_open_rest_connections_leave_ekmd_answering() {
    // This process holds both floods' ends: raise its own soft limit as far as it may go.
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    let flood = usize::try_from(hard.saturating_sub(500) / 2)
        .unwrap_or(5_000)
        .min(5_000);
    assert!(
        flood >= 2_000,
        "the test needs about 10,000 descriptors (hard limit {hard})"
    );
    let d = start();
    let pid = d.child.id();
    let (attacker, other) = (tls_for(&d, "vs0"), tls_for(&d, "cluster1"));
    // The other owner's key, made before the flood.
    let ten = Duration::from_secs(10);
    let mut s = session(d.kmip, &other, ten).expect("a session");
    let reg = call(&mut s, register());
    assert_eq!(status_of(&reg), Some(t::status::SUCCESS), "{reg:?}");
    let uid = reg
        .child(t::BATCH_ITEM)
        .and_then(|b| b.child(t::RESPONSE_PAYLOAD))
        .and_then(|p| p.child(t::UNIQUE_IDENTIFIER))
        .and_then(Item::as_text)
        .unwrap()
        .to_owned();
    drop(s);

    // Idle mutual-TLS sessions from one certificate, all held open by this process (an ekmd
    // that stops answering handshakes ends the flood at its deadline).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut idle = Vec::new();
    for _ in 0..flood {
        if std::time::Instant::now() > deadline {
            break;
        }
        if let Some(s) = session(d.kmip, &attacker, Duration::from_secs(1)) {
            idle.push(s);
        }
    }
    // Half-open REST connections: connected, nothing sent.
    let rest = std::net::SocketAddr::from(([127, 0, 0, 1], d.rest));
    let mut half_open = Vec::new();
    for _ in 0..flood {
        if std::time::Instant::now() > deadline + Duration::from_secs(30) {
            break;
        }
        if let Ok(c) = TcpStream::connect_timeout(&rest, Duration::from_secs(1)) {
            half_open.push(c);
        }
    }
    let fds = open_descriptors(pid);
    // 256 REST + 256 KMIP connections (the defaults), a quarter more of each closing at
    // most, and ekmd's own files.
    assert!(fds <= 320 + 320 + 100, "ekmd holds {fds} descriptors");

    // Everything still answers.
    let health = TcpStream::connect(("127.0.0.1", d.rest)).unwrap();
    health
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let line = http_get(health, "/healthz");
    assert!(line.starts_with("HTTP/1.1 "), "/healthz: {line:?}");
    let sock = std::os::unix::net::UnixStream::connect(d.data.join("ekmd.sock")).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let line = http_get(sock, &format!("/keys/{uid}"));
    assert!(line.contains(" 200 "), "the socket: {line:?}");
    let mut s = session(d.kmip, &other, ten).expect("the other owner gets a session");
    let got = call(
        &mut s,
        vec![(op::GET, vec![Item::text(t::UNIQUE_IDENTIFIER, &uid)])],
    );
    assert_eq!(status_of(&got), Some(t::status::SUCCESS), "{got:?}");
    assert!(
        open_descriptors(pid) < 1024,
        "still under the limit after answering"
    );
    drop((idle, half_open));
}
