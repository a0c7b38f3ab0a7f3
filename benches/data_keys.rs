//! Data keys: (a) reading a key by id with the KEK unlocked, against a raw AES-256-GCM open of
//! the same 32 bytes (same AAD length) in the same run, and serving a 16-byte key (record
//! version 3, a KMIP AES-128 key) against that 32-byte read; (b) durable data-key creation,
//! against a raw redb insert + commit of a record of the same size in the same run.
//!
//! `cargo bench --bench data_keys` prints `RATIO` lines after criterion's output.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use criterion::{Criterion, black_box};
use ekm::core::{DataKeyId, DataKeyMaterial, Engine, KeyOwner, KeyTag};

fn engine(dir: &std::path::Path) -> Arc<Engine> {
    support::one_node_engine(dir).0
}

fn read_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = engine(dir.path());
    let ids: Vec<DataKeyId> = (0..1000)
        .map(|_| {
            e.create_data_key(KeyOwner::Cluster, KeyTag::default())
                .expect("create")
        })
        .collect();
    let short: Vec<DataKeyId> = (0..1000)
        .map(|_| {
            let m = DataKeyMaterial::random(16).expect("16 bytes");
            e.import_data_key_with_attributes(KeyOwner::Cluster, KeyTag::default(), m, None)
                .expect("import")
        })
        .collect();

    // The raw baseline: one prebuilt AES-256-GCM cipher opening a sealed 32-byte key with a
    // 78-byte AAD, exactly the work the engine's read path must do.
    let cipher = Aes256Gcm::new(&[7u8; 32].into());
    let aad = [3u8; 78];
    let nonce = [9u8; 12];
    let mut sealed = [5u8; 32];
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut sealed)
        .expect("seal");

    let mut g = c.benchmark_group("read_data_key");
    let mut i = 0usize;
    g.bench_function("engine", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            black_box(e.read_data_key(&ids[i]).expect("read"))
        })
    });
    // The same read of a 16-byte key as the socket serves it: its length comes with the
    // record in the key table.
    let mut j = 0usize;
    g.bench_function("engine_served_16_bytes", |b| {
        b.iter(|| {
            j = (j + 1) % short.len();
            black_box(e.read_served_key(&short[j]).expect("read"))
        })
    });
    g.bench_function("raw_aes_gcm_open", |b| {
        b.iter(|| {
            let mut buf = sealed;
            cipher
                .decrypt_in_place_detached(
                    Nonce::from_slice(&nonce),
                    black_box(&aad),
                    &mut buf,
                    Tag::from_slice(&tag),
                )
                .expect("open");
            black_box(buf)
        })
    });
    g.finish();
}

fn create_durable(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = engine(&dir.path().join("engine"));
    e.create_data_key(KeyOwner::Cluster, KeyTag::default())
        .expect("warm KEK");
    let raw = redb::Database::create(dir.path().join("raw.redb")).expect("raw db");
    const T: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("raw");

    let mut g = c.benchmark_group("create_data_key");
    g.sample_size(30).measurement_time(Duration::from_secs(8));
    g.bench_function("engine", |b| {
        b.iter(|| {
            e.create_data_key(KeyOwner::Cluster, KeyTag::default())
                .expect("create")
        })
    });
    let value = [0x42u8; 101];
    g.bench_function("raw_redb_commit", |b| {
        b.iter(|| {
            let mut k = [0u8; 34];
            getrandom::fill(&mut k).expect("rng");
            let w = raw.begin_write().expect("begin");
            {
                let mut t = w.open_table(T).expect("table");
                t.insert(&k[..], &value[..]).expect("insert");
            }
            w.commit().expect("commit");
        })
    });
    g.finish();
}

fn main() {
    let mut c = support::criterion();
    read_path(&mut c);
    create_durable(&mut c);
    c.final_summary();
    support::report_time_ratio("read_data_key", "engine", "raw_aes_gcm_open", "at most 3x");
    support::report_time_ratio(
        "read_data_key",
        "engine_served_16_bytes",
        "engine",
        "about 1x",
    );
    support::report_rate_ratio(
        "create_data_key",
        "engine",
        "raw_redb_commit",
        "at least 0.8x",
    );
}
