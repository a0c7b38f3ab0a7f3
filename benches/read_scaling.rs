//! Reading a data key by id through the engine with 1,000 and 1,000,000 keys in the store, on
//! one thread and on both cores: reads per second and the two-thread scaling ratio (goal
//! ≥ 1.8x). Keys are read from the node key table (KEK unlocked); every id is read once first.
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
    let group = format!("read_scaling_{keys}");
    if let (Some(one), Some(two)) = (
        support::median_ns(&group, "threads/1"),
        support::median_ns(&group, "threads/2"),
    ) {
        println!(
            "RATIO {group}: 1 thread {:.0} reads/s, 2 threads {:.0} reads/s = {:.2}x (goal >= 1.8x)",
            1e9 / one,
            2e9 / two,
            (2e9 / two) / (1e9 / one)
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, 1000);
    if std::env::var_os("EKM_BENCH_1M").is_some() {
        bench(&mut c, 1_000_000);
    }
    c.final_summary();
}
