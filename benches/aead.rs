//! Data-key wrap and unwrap: ekm's AEAD module (AES-256-GCM seal and open of a 32-byte key with
//! its 78-byte AAD) and the engine's whole read path, against raw `aes-gcm`, `ring` and
//! `aws-lc-rs` seal/open of the same bytes, in the same run.
//!
//! `cargo bench --bench aead` prints `RATIO` lines (goal: the engine's unwrap path at most 1.5x
//! the fastest raw open).

mod support;

use std::sync::Arc;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use criterion::{Criterion, black_box};
use ekm::core::crypto::AeadKey;
use ekm::core::{Engine, KeyMaterial, KeyOwner, KeyTag};

const AAD: [u8; 78] = [3; 78];

fn engine() -> (tempfile::TempDir, Arc<Engine>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (e, _) = support::one_node_engine(dir.path());
    (dir, e)
}

fn bench(c: &mut Criterion) {
    let key = [7u8; 32];
    let nonce = [9u8; 12];
    let mut g = c.benchmark_group("aead_open");

    // ekm's module and the engine's read path.
    let ekm_key = AeadKey::new(KeyMaterial::from_array(key));
    let mut sealed = [5u8; 32];
    let tag = ekm_key
        .seal_in_place_with(nonce, &AAD, &mut sealed)
        .expect("seal");
    g.bench_function("ekm_module", |b| {
        b.iter(|| {
            let mut buf = sealed;
            ekm_key
                .open_in_place(&nonce, black_box(&AAD), &mut buf, &tag)
                .expect("open");
            black_box(buf)
        })
    });
    let (_dir, e) = engine();
    let ids = e
        .create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); 1000])
        .expect("keys");
    let mut i = 0;
    g.bench_function("engine_read", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            black_box(e.read_data_key(&ids[i]).expect("read"))
        })
    });

    // Raw aes-gcm.
    let rc = aes_gcm::Aes256Gcm::new(&key.into());
    g.bench_function("raw_aes_gcm", |b| {
        b.iter(|| {
            let mut buf = sealed;
            rc.decrypt_in_place_detached(
                aes_gcm::Nonce::from_slice(&nonce),
                black_box(&AAD),
                &mut buf,
                aes_gcm::Tag::from_slice(&tag),
            )
            .expect("open");
            black_box(buf)
        })
    });

    // Raw ring.
    let rk = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &key).expect("key"),
    );
    let mut ring_sealed = [5u8; 32].to_vec();
    rk.seal_in_place_append_tag(
        ring::aead::Nonce::assume_unique_for_key(nonce),
        ring::aead::Aad::from(AAD),
        &mut ring_sealed,
    )
    .expect("seal");
    g.bench_function("raw_ring", |b| {
        b.iter(|| {
            let mut buf = [0u8; 48];
            buf.copy_from_slice(&ring_sealed);
            let out = rk
                .open_in_place(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::from(black_box(AAD)),
                    &mut buf,
                )
                .expect("open");
            black_box(out.len())
        })
    });

    // Raw aws-lc-rs.
    let ak = aws_lc_rs::aead::LessSafeKey::new(
        aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &key).expect("key"),
    );
    let mut aws_sealed = [5u8; 32].to_vec();
    ak.seal_in_place_append_tag(
        aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
        aws_lc_rs::aead::Aad::from(AAD),
        &mut aws_sealed,
    )
    .expect("seal");
    g.bench_function("raw_aws_lc_rs", |b| {
        b.iter(|| {
            let mut buf = [0u8; 48];
            buf.copy_from_slice(&aws_sealed);
            let out = ak
                .open_in_place(
                    aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                    aws_lc_rs::aead::Aad::from(black_box(AAD)),
                    &mut buf,
                )
                .expect("open");
            black_box(out.len())
        })
    });
    g.finish();

    // Seal: ekm's module against the raw libraries (fresh nonce each time is the caller's job;
    // a fixed nonce here measures the cipher alone).
    let mut g = c.benchmark_group("aead_seal");
    g.bench_function("ekm_module", |b| {
        b.iter(|| {
            let mut buf = [5u8; 32];
            black_box(
                ekm_key
                    .seal_in_place_with(nonce, black_box(&AAD), &mut buf)
                    .expect("seal"),
            )
        })
    });
    g.bench_function("raw_aes_gcm", |b| {
        b.iter(|| {
            let mut buf = [5u8; 32];
            black_box(
                rc.encrypt_in_place_detached(
                    aes_gcm::Nonce::from_slice(&nonce),
                    black_box(&AAD),
                    &mut buf,
                )
                .expect("seal"),
            )
        })
    });
    g.bench_function("raw_ring", |b| {
        b.iter(|| {
            let mut buf = [5u8; 32];
            black_box(
                rk.seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::from(black_box(AAD)),
                    &mut buf,
                )
                .expect("seal"),
            )
        })
    });
    g.bench_function("raw_aws_lc_rs", |b| {
        b.iter(|| {
            let mut buf = [5u8; 32];
            black_box(
                ak.seal_in_place_separate_tag(
                    aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                    aws_lc_rs::aead::Aad::from(black_box(AAD)),
                    &mut buf,
                )
                .expect("seal"),
            )
        })
    });
    g.finish();
}

fn main() {
    let mut c = support::criterion();
    bench(&mut c);
    c.final_summary();
    let fastest = ["raw_aes_gcm", "raw_ring", "raw_aws_lc_rs"]
        .iter()
        .filter_map(|f| support::median_ns("aead_open", f).map(|t| (*f, t)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((name, _)) = fastest {
        support::report_time_ratio(
            "aead_open",
            "engine_read",
            name,
            "at most 1.5x the fastest raw open",
        );
        support::report_time_ratio("aead_open", "ekm_module", name, "-");
    }
    for raw in ["raw_aes_gcm", "raw_ring", "raw_aws_lc_rs"] {
        support::report_time_ratio("aead_seal", "ekm_module", raw, "-");
    }
}
