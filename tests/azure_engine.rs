//! End to end through the engine with ekm-azure against the AKV emulator over HTTPS:
//! configurations with each authentication method, data keys, rekey-external to a new key
//! version and to another key, rekey-internal, restore after a simulated node reboot;
//! credentials replaced without restarting; 429 honoured; a dead vault and a bad proxy
//! password fail within seconds, clearly.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use ekm::core::{
    CreateRequest, DataKeyId, Engine, EngineOptions, ErrorKind, JobState, KeyId, KeyOwner, KeyTag,
    PatchRequest, StatusFields,
};
use ekm::store::StoreKind;

const WAIT: Duration = Duration::from_secs(60);

fn engine(dir: &std::path::Path, backend: Arc<ekm::azure::AzureBackend>) -> Arc<Engine> {
    let store = ekm::store::open(StoreKind::Redb, &dir.join("store")).unwrap();
    let pk = ekm::store::protection_key::load_or_create(&dir.join("protection.key")).unwrap();
    Engine::open(EngineOptions::new(store, backend, topology(), pk)).unwrap()
}

fn create(e: &Engine, body: &str) -> ekm::core::Result<ekm::core::AzureKeyVault> {
    e.create_config(CreateRequest::from_json(body.as_bytes())?)
}

#[test]
fn the_whole_lifecycle_with_azure_key_vault() {
    let lab = AzureLab::start();
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), lab.backend());
    let cluster = create(&e, &lab.secret_body(None, &lab.key1_v1)).unwrap();
    let vs0 = create(
        &e,
        &lab.cert_body(
            Some("vs0"),
            &lab.key1_v1,
            "client-aes256.p12",
            Some(PFX_PASSWORD),
        ),
    )
    .unwrap();
    assert_eq!(vs0.authentication_method.as_str(), "certificate");
    let mut keys: HashMap<DataKeyId, Vec<u8>> = HashMap::new();
    for owner in [KeyOwner::Cluster, KeyOwner::Svm(VS0), KeyOwner::Svm(VS1)] {
        for id in e
            .create_data_keys(owner, vec![KeyTag::default(); 20])
            .unwrap()
        {
            keys.insert(id, e.read_data_key(&id).unwrap().expose_secret().to_vec());
        }
    }
    let check_keys = |e: &Engine| {
        for (id, m) in &keys {
            assert_eq!(
                e.read_data_key(id).unwrap().expose_secret().as_slice(),
                m.as_slice()
            );
        }
    };
    // rekey-external to a new version of the same key, then to another key.
    for (cfg, target) in [
        (cluster.uuid, &lab.key1_v2),
        (vs0.uuid, &lab.key2),
        (cluster.uuid, &lab.key2),
    ] {
        let job = e
            .start_rekey_external(cfg, KeyId::parse(target).unwrap(), None)
            .unwrap();
        let job = e.wait_job(job.uuid, WAIT).unwrap();
        assert_eq!(job.state, JobState::Success, "{}", job.message);
        assert_eq!(e.get_config(cfg).unwrap().key_id.as_str(), target.as_str());
    }
    // rekey-internal on both scopes.
    for cfg in [cluster.uuid, vs0.uuid] {
        let job = e.start_rekey_internal(cfg).unwrap();
        let job = e.wait_job(job.uuid, WAIT).unwrap();
        assert_eq!(job.state, JobState::Success, "{}", job.message);
    }
    check_keys(&e);
    // A simulated reboot of both nodes, then restore: one unwrap per node per scope.
    e.reset_node(NODE1).unwrap();
    e.reset_node(NODE2).unwrap();
    let unwraps = lab.emu.counters().unwraps;
    for cfg in [cluster.uuid, vs0.uuid] {
        let job = e.start_restore(cfg).unwrap();
        let job = e.wait_job(job.uuid, WAIT).unwrap();
        assert_eq!(job.state, JobState::Success, "{}", job.message);
    }
    assert_eq!(lab.emu.counters().unwraps - unwraps, 4);
    check_keys(&e);
    let st = e
        .get_config_with_status(cluster.uuid, StatusFields::all())
        .unwrap();
    assert!(st.state.unwrap().available);
    assert!(st.azure_reachability.unwrap().reachable);
    // A restarted process over the same store unlocks through AKV again.
    e.shutdown();
    drop(e);
    let e = engine(dir.path(), lab.backend());
    check_keys(&e);
}

#[test]
fn every_pkcs12_format_authenticates_with_a_signed_assertion() {
    let lab = AzureLab::start();
    for (file, pw) in [
        ("client-aes256.p12", Some(PFX_PASSWORD)),
        ("client-legacy-rc2.p12", Some(PFX_PASSWORD)),
        ("client-3des.p12", Some(PFX_PASSWORD)),
        ("client-nopass.p12", None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), lab.backend());
        let tokens = lab.emu.counters().tokens;
        let cfg = create(&e, &lab.cert_body(None, &lab.key1_v1, file, pw))
            .unwrap_or_else(|err| panic!("{file}: {err}"));
        assert!(
            lab.emu.counters().tokens > tokens,
            "{file}: no token was issued"
        );
        e.create_data_key(KeyOwner::Cluster, KeyTag::default())
            .unwrap();
        assert_eq!(e.list_data_keys(cfg.uuid).unwrap().len(), 1);
    }
}

#[test]
fn credentials_are_replaced_without_a_restart_and_proven_first() {
    let lab = AzureLab::start();
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), lab.backend());
    let cfg = create(&e, &lab.secret_body(None, &lab.key1_v1)).unwrap();
    let id = e
        .create_data_key(KeyOwner::Cluster, KeyTag::default())
        .unwrap();
    // A wrong secret is refused by Entra ID (the seed's PATCH code 65537540) and the old
    // credentials stay in force.
    let err = e
        .patch_config(
            cfg.uuid,
            PatchRequest::from_json(br#"{"client_secret":"not-the-secret"}"#).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidClientSecret);
    assert!(err.message().contains("authentication failed"), "{err}");
    assert!(!err.message().contains("not-the-secret"));
    // Switch to certificate authentication, live.
    let body = format!(
        r#"{{"client_id":"{AZ_CERT_APP}","client_certificate":"{}","client_certificate_password":"{PFX_PASSWORD}"}}"#,
        pfx_b64("client-3des.p12")
    );
    let patched = e
        .patch_config(cfg.uuid, PatchRequest::from_json(body.as_bytes()).unwrap())
        .unwrap();
    assert_eq!(patched.authentication_method.as_str(), "certificate");
    e.reset_node(NODE1).unwrap();
    e.read_data_key(&id).unwrap();
}

#[test]
fn throttling_is_honoured_and_missing_keys_are_named() {
    let lab = AzureLab::start();
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), lab.backend());
    create(&e, &lab.secret_body(None, &lab.key1_v1)).unwrap();
    lab.emu.throttle_next(1, 1);
    let start = Instant::now();
    e.create_data_key(KeyOwner::Cluster, KeyTag::default())
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "Retry-After was not honoured"
    );
    assert_eq!(lab.emu.counters().throttled, 1);
    // A soft-deleted key: the create is refused, naming the cause.
    lab.emu.set_deleted("key2", true);
    let err = create(&e, &lab.secret_body(Some("vs0"), &lab.key2)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AkvUnavailable);
    assert!(err.message().contains("does not exist"), "{err}");
}

#[test]
fn a_dead_vault_fails_within_seconds() {
    let lab = AzureLab::start();
    let mut options = lab.options.clone();
    options.request_timeout = Duration::from_secs(1);
    options.max_retries = 1;
    options.max_retry_time = Duration::from_secs(3);
    let backend = Arc::new(ekm::azure::AzureBackend::new(options).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), backend);
    lab.emu.set_delay(Duration::from_secs(30));
    let start = Instant::now();
    let err = create(&e, &lab.secret_body(None, &lab.key1_v1)).unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::AkvUnavailable, "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(e.list_configs().unwrap().is_empty());
}

/// An authenticating HTTP CONNECT proxy on loopback that tunnels every request to `target`.
fn start_proxy(
    user: &str,
    password: &str,
    target: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    tokio::runtime::Runtime,
) {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let expected = format!(
        "basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let tunnels = Arc::new(AtomicUsize::new(0));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let t = tunnels.clone();
    rt.spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let (expected, t) = (expected.clone(), t.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    let Ok(n) = client.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&head).to_lowercase();
                let authorized = text.starts_with("connect ")
                    && text.lines().any(|l| l.strip_prefix("proxy-authorization:").is_some_and(|v| v.trim() == expected.to_lowercase()));
                if !authorized {
                    let _ = client
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"ekm\"\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else { return };
                t.fetch_add(1, Ordering::SeqCst);
                if client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (addr, tunnels, rt)
}

#[test]
fn through_an_authenticating_proxy() {
    let lab = AzureLab::start();
    let (proxy, tunnels, _rt) = start_proxy("proxyuser", "proxy-pass-3c9", lab.emu.addr());
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), lab.backend());
    let with_proxy = |pw: &str| {
        lab.secret_body(None, &lab.key1_v1).replacen(
            '{',
            &format!(
                r#"{{"proxy_type":"http","proxy_host":"127.0.0.1","proxy_port":{},"proxy_username":"proxyuser","proxy_password":"{pw}","#,
                proxy.port()
            ),
            1,
        )
    };
    // Wrong password: refused quickly and clearly.
    let start = Instant::now();
    let err = create(&e, &with_proxy("wrong-proxy-pass")).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::AkvUnavailable);
    assert!(
        err.message().to_lowercase().contains("proxy") || err.message().contains("407"),
        "{err}"
    );
    assert!(!err.message().contains("wrong-proxy-pass"));
    assert_eq!(tunnels.load(Ordering::SeqCst), 0);
    // Right password: everything goes through the tunnel.
    let cfg = create(&e, &with_proxy("proxy-pass-3c9")).unwrap();
    assert_eq!(cfg.proxy_host.as_deref(), Some("127.0.0.1"));
    e.create_data_key(KeyOwner::Cluster, KeyTag::default())
        .unwrap();
    assert!(tunnels.load(Ordering::SeqCst) >= 1);
}
