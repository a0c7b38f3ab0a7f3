//! Reading a data key by id through the engine with 1,000 and 1,000,000 keys in the store, on
//! one thread and on both cores: reads per second and the two-thread scaling ratio (goal
//! ≥ 1.8x), beside the machine's own scaling for raw AES-256-GCM opens measured in the same run.
//! Keys are read from the node key table (KEK unlocked); every id is read once first.
//!
//! `cargo bench --bench read_scaling` prints `RATIO` lines (1,000,000 keys with `EKM_BENCH_1M=1`).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, black_box};
use ekm::core::{DataKeyId, Engine, KeyOwner, KeyTag};

fn setup(dir: &std::path::Path, keys: usize) -> (Arc<Engine>, Vec<DataKeyId>) {
    let (e, _) = support::one_node_engine(dir);
    let mut ids = Vec::with_capacity(keys);
    while ids.len() < keys {
        let n = (keys - ids.len()).min(10_000);
        ids.extend(
            e.create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); n])
                .expect("keys"),
        );
    }
    for id in &ids {
        e.read_data_key(id).expect("warm");
    }
    (e, ids)
}

/// Time for `threads` threads to read `per_thread` keys each (spread over all ids).
fn run(e: &Arc<Engine>, ids: &Arc<Vec<DataKeyId>>, threads: usize, per_thread: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (e, ids) = (e.clone(), ids.clone());
            s.spawn(move || {
                let mut i = t * 7919;
                for _ in 0..per_thread {
                    i = (i + 104_729) % ids.len();
                    black_box(e.read_data_key(&ids[i]).expect("read"));
                }
            });
        }
    });
    start.elapsed()
}

/// The machine's own two-thread scaling for the same work without ekm: raw AES-256-GCM opens
/// of a 32-byte key on one and on two threads.
fn raw_scaling(c: &mut Criterion) {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    let cipher = aes_gcm::Aes256Gcm::new(&[7u8; 32].into());
    let aad = [3u8; 78];
    let nonce = [9u8; 12];
    let mut sealed = [5u8; 32];
    let tag = cipher
        .encrypt_in_place_detached(aes_gcm::Nonce::from_slice(&nonce), &aad, &mut sealed)
        .expect("seal");
    let mut g = c.benchmark_group("read_scaling_raw_aes_gcm");
    for threads in [1usize, 2] {
        g.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            for _ in 0..iters {
                                let mut buf = sealed;
                                cipher
                                    .decrypt_in_place_detached(
                                        aes_gcm::Nonce::from_slice(&nonce),
                                        black_box(&aad),
                                        &mut buf,
                                        aes_gcm::Tag::from_slice(&tag),
                                    )
                                    .expect("open");
                                black_box(buf);
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
    report("read_scaling_raw_aes_gcm");
}

fn report(group: &str) {
    if let (Some(one), Some(two)) = (
        support::median_ns(group, "threads/1"),
        support::median_ns(group, "threads/2"),
    ) {
        println!(
            "RATIO {group}: 1 thread {:.0}/s, 2 threads {:.0}/s = {:.2}x (goal >= 1.8x)",
            1e9 / one,
            2e9 / two,
            (2e9 / two) / (1e9 / one)
        );
    }
}

fn bench(c: &mut Criterion, keys: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (e, ids) = setup(dir.path(), keys);
    let ids = Arc::new(ids);
    let mut g = c.benchmark_group(format!("read_scaling_{keys}"));
    g.throughput(criterion::Throughput::Elements(1));
    for threads in [1usize, 2] {
        // Each iteration is one read per thread; criterion reports time per iteration, so the
        // two-thread figure is the time for two reads done in parallel.
        g.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter_custom(|iters| run(&e, &ids, threads, iters))
        });
    }
    g.finish();
    report(&format!("read_scaling_{keys}"));
}

fn main() {
    let mut c = support::criterion();
    raw_scaling(&mut c);
    bench(&mut c, 1000);
    if std::env::var_os("EKM_BENCH_1M").is_some() {
        bench(&mut c, 1_000_000);
    }
    c.final_summary();
}
