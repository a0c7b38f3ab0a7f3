//! rekey-internal of 100,000 keys (1,000,000 with `EKM_BENCH_1M=1`), in rewrapped keys per
//! second, against a raw AES-256-GCM open + seal of the same number of 32-byte keys (fresh OS
//! random nonce per seal, as any correct rewrap needs, drawn through the engine's own
//! `NonceSource`: one OS RNG call per 256 nonces, as the engine's rewrap does) in the same run. Also checks the fake
//! backend's counters: exactly one external wrap per rekey-internal, and at most one unwrap
//! per node per restore.
//!
//! `cargo bench --bench rekey` prints `RATIO` and `COUNTERS` lines after criterion's output.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::{BenchmarkId, Criterion, black_box};
use ekm::core::crypto::NonceSource;
use ekm::core::{
    ClusterInfo, CreateRequest, Engine, EngineOptions, JobState, KeyOwner, KeyTag, Node,
    ProtectionKey, Topology,
};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;
use uuid::Uuid;

/// Keys per rewrap transaction: the engine's default (`EngineOptions::rekey_batch`).
const BATCH: usize = ekm::core::engine::DEFAULT_REKEY_BATCH;

fn topology(nodes: u128) -> Topology {
    Topology {
        cluster: ClusterInfo {
            name: "c".into(),
            uuid: Uuid::from_u128(1),
        },
        nodes: (0..nodes)
            .map(|i| Node {
                name: format!("node{}", i + 1),
                uuid: Uuid::from_u128(100 + i),
            })
            .collect(),
        svms: vec![],
    }
}

fn setup(dir: &std::path::Path, keys: usize, nodes: u128) -> (Arc<Engine>, Arc<FakeBackend>, Uuid) {
    let store = ekm::store::open(StoreKind::Redb, dir).expect("store");
    let fake = Arc::new(FakeBackend::in_memory());
    let e = Engine::open(EngineOptions::new(
        store,
        fake.clone(),
        topology(nodes),
        ProtectionKey::generate(),
    ))
    .expect("engine");
    let body = r#"{"client_id":"c","tenant_id":"t","name":"https://v.vault.azure.net/","key_id":"https://v.vault.azure.net/keys/k/a8e619fd8f234db3b0b95c59540e2a74","client_secret":"s"}"#;
    let cfg = e
        .create_config(CreateRequest::from_json(body.as_bytes()).expect("body"))
        .expect("config")
        .uuid;
    let mut left = keys;
    while left > 0 {
        let n = left.min(10_000);
        e.create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); n])
            .expect("keys");
        left -= n;
    }
    (e, fake, cfg)
}

fn rekey_once(e: &Arc<Engine>, cfg: Uuid) -> Duration {
    let start = Instant::now();
    let job = e.start_rekey_internal(cfg).expect("start");
    let job = e
        .wait_job(job.uuid, Duration::from_secs(600))
        .expect("wait");
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    start.elapsed()
}

fn rekey(c: &mut Criterion, keys: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (e, fake, cfg) = setup(dir.path(), keys, 1);
    let mut g = c.benchmark_group("rekey_internal");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(if keys > 100_000 { 120 } else { 20 }));
    let wraps_before = fake.counters().wraps;
    let mut rekeys = 0u64;
    g.bench_function(BenchmarkId::new("engine", keys), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    rekeys += 1;
                    rekey_once(&e, cfg)
                })
                .sum()
        })
    });
    let wraps = fake.counters().wraps - wraps_before;
    println!(
        "COUNTERS rekey_internal/{keys}: {rekeys} rekeys, {wraps} external wraps ({:.2} per rekey)",
        wraps as f64 / rekeys as f64
    );
    assert_eq!(
        wraps, rekeys,
        "exactly one external wrap per rekey-internal"
    );

    // Baseline: open + seal of the same number of sealed 32-byte keys, same AAD size, with a
    // fresh OS-random nonce per seal from the engine's NonceSource (256 nonces per OS RNG call),
    // one source per batch of the engine's default size, as the engine's rewrap draws them.
    let old = Aes256Gcm::new(&[1u8; 32].into());
    let new = Aes256Gcm::new(&[2u8; 32].into());
    let aad = [7u8; 78];
    let sealed: Vec<([u8; 12], [u8; 32], [u8; 16])> = (0..keys)
        .map(|i| {
            let nonce = [(i % 251) as u8; 12];
            let mut buf = [i as u8; 32];
            let tag = old
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut buf)
                .expect("seal");
            (nonce, buf, tag.into())
        })
        .collect();
    g.bench_function(BenchmarkId::new("raw_open_seal", keys), |b| {
        b.iter(|| {
            for batch in sealed.chunks(BATCH) {
                let mut nonces = NonceSource::default();
                for (nonce, ct, tag) in batch {
                    let mut buf = *ct;
                    old.decrypt_in_place_detached(
                        Nonce::from_slice(nonce),
                        &aad,
                        &mut buf,
                        tag.into(),
                    )
                    .expect("open");
                    let n = nonces.next_nonce();
                    black_box(
                        new.encrypt_in_place_detached(Nonce::from_slice(&n), &aad, &mut buf)
                            .expect("seal"),
                    );
                }
            }
        })
    });
    g.finish();
    if let (Some(engine), Some(raw)) = (
        support::median_ns("rekey_internal", &format!("engine/{keys}")),
        support::median_ns("rekey_internal", &format!("raw_open_seal/{keys}")),
    ) {
        println!(
            "RATIO rekey_internal/{keys}: engine {:.0} keys/s vs raw open+seal {:.0} keys/s = {:.2}x time (goals: >= 100000 keys/s, within 5x)",
            keys as f64 / (engine / 1e9),
            keys as f64 / (raw / 1e9),
            engine / raw
        );
    }
}

fn restore_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (e, fake, cfg) = setup(dir.path(), 1000, 3);
    for n in &e.topology().nodes.clone() {
        e.reset_node(n.uuid).expect("reset");
    }
    let before = fake.counters().unwraps;
    let job = e.start_restore(cfg).expect("restore");
    let job = e.wait_job(job.uuid, Duration::from_secs(60)).expect("wait");
    assert_eq!(job.state, JobState::Success);
    let unwraps = fake.counters().unwraps - before;
    println!("COUNTERS restore 3 nodes x 1000 keys: {unwraps} unwraps (at most one per node)");
    assert!(unwraps <= 3);
}

fn main() {
    let mut c = support::criterion();
    rekey(&mut c, 100_000);
    if std::env::var_os("EKM_BENCH_1M").is_some() {
        rekey(&mut c, 1_000_000);
    }
    restore_counters();
    c.final_summary();
}
