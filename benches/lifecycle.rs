//! Lifecycle costs: restore of 3 nodes x 1,000 keys with a backend that takes 20 ms per call
//! (the cost must be the calls, not the engine); opening a store of N keys and serving the first
//! key after a clean shutdown (N = 1,000,000 with `EKM_BENCH_1M=1`, else 100,000); durable
//! creation one key per commit, from two threads at once, and grouped 16 keys per commit.
//!
//! `cargo bench --bench lifecycle` prints `RATIO` lines.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, black_box};
use ekm::core::{
    ClusterInfo, CreateRequest, DataKeyId, Engine, EngineOptions, KeyOwner, KeyTag, Node, Topology,
};
use ekm::fake::FakeBackend;
use uuid::Uuid;

fn topology(nodes: u128) -> Topology {
    Topology {
        cluster: ClusterInfo {
            name: "c".into(),
            uuid: Uuid::from_u128(1),
        },
        nodes: (0..nodes)
            .map(|i| Node {
                name: format!("n{i}"),
                uuid: Uuid::from_u128(10 + i),
            })
            .collect(),
        svms: vec![],
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    fake: Arc<FakeBackend>,
    pk: std::path::PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pk = dir.path().join("pk");
        Fixture {
            fake: Arc::new(FakeBackend::open(&dir.path().join("vault.json")).expect("vault")),
            dir,
            pk,
        }
    }

    fn open(&self, nodes: u128) -> Arc<Engine> {
        let store = ekm::store::open(ekm::store::StoreKind::Redb, &self.dir.path().join("store"))
            .expect("store");
        let pk = ekm::store::protection_key::load_or_create(&self.pk).expect("pk");
        Engine::open(EngineOptions::new(
            store,
            self.fake.clone(),
            topology(nodes),
            pk,
        ))
        .expect("engine")
    }
}

fn configure(e: &Engine) -> Uuid {
    let body = r#"{"client_id":"c","tenant_id":"t","name":"https://v.vault.azure.net/","key_id":"https://v.vault.azure.net/keys/k/a8e619fd8f234db3b0b95c59540e2a74","client_secret":"s"}"#;
    e.create_config(CreateRequest::from_json(body.as_bytes()).expect("body"))
        .expect("config")
        .uuid
}

fn restore(c: &mut Criterion) {
    let f = Fixture::new();
    let e = f.open(3);
    let cfg = configure(&e);
    e.create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); 1000])
        .expect("keys");
    f.fake.set_latency(Duration::from_millis(20));
    let mut g = c.benchmark_group("restore_3x1000_20ms");
    g.sample_size(10);
    g.bench_function("engine", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for n in 0..3 {
                    e.reset_node(Uuid::from_u128(10 + n)).expect("reset");
                }
                let start = Instant::now();
                let job = e.start_restore(cfg).expect("restore");
                let job = e.wait_job(job.uuid, Duration::from_secs(60)).expect("wait");
                assert_eq!(job.state, ekm::core::JobState::Success);
                total += start.elapsed();
            }
            total
        })
    });
    // The floor: three backend calls of 20 ms, nothing else.
    g.bench_function("three_backend_calls", |b| {
        b.iter(|| (0..3).for_each(|_| std::thread::sleep(Duration::from_millis(20))))
    });
    g.finish();
    support::report_time_ratio(
        "restore_3x1000_20ms",
        "engine",
        "three_backend_calls",
        "close to 1x: the calls, not the engine",
    );
}

fn open_store(c: &mut Criterion) {
    let keys: usize = if std::env::var_os("EKM_BENCH_1M").is_some() {
        1_000_000
    } else {
        100_000
    };
    let f = Fixture::new();
    let first: DataKeyId = {
        let e = f.open(1);
        configure(&e);
        let mut first = None;
        let mut made = 0;
        while made < keys {
            let n = (keys - made).min(10_000);
            let ids = e
                .create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); n])
                .expect("keys");
            first.get_or_insert(ids[0]);
            made += n;
        }
        e.shutdown();
        drop(e);
        first.expect("a key")
    };
    let mut g = c.benchmark_group("open_and_serve_first_key");
    g.sample_size(20);
    g.bench_function(BenchmarkId::new("clean_shutdown", keys), |b| {
        b.iter(|| {
            let e = f.open(1);
            black_box(e.read_data_key(&first).expect("read"));
            e.shutdown();
        })
    });
    // After a kill: a copy of the store taken while a process held it open, never closed (the
    // state SIGKILL leaves: every commit durable, the clean-shutdown mark absent).
    let killed = tempfile::tempdir().expect("tempdir");
    {
        let e = f.open(1);
        e.create_data_key(KeyOwner::Cluster, KeyTag::default())
            .expect("one more");
        std::fs::copy(
            f.dir.path().join("store/ekm.redb"),
            killed.path().join("snapshot.redb"),
        )
        .expect("copy");
        // Leak the engine: its store is never closed, as in a crash.
        std::mem::forget(e);
    }
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("after_kill", keys), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let run = tempfile::tempdir().expect("tempdir");
                std::fs::create_dir_all(run.path().join("store")).expect("dir");
                std::fs::copy(
                    killed.path().join("snapshot.redb"),
                    run.path().join("store/ekm.redb"),
                )
                .expect("copy");
                std::fs::copy(&f.pk, run.path().join("pk")).expect("copy pk");
                let start = Instant::now();
                let store =
                    ekm::store::open(ekm::store::StoreKind::Redb, &run.path().join("store"))
                        .expect("store");
                let pk =
                    ekm::store::protection_key::load_or_create(&run.path().join("pk")).expect("pk");
                let e = Engine::open(EngineOptions::new(store, f.fake.clone(), topology(1), pk))
                    .expect("engine");
                black_box(e.read_data_key(&first).expect("read"));
                total += start.elapsed();
                e.shutdown();
            }
            total
        })
    });
    g.finish();
    for case in ["clean_shutdown", "after_kill"] {
        if let Some(t) = support::median_ns("open_and_serve_first_key", &format!("{case}/{keys}")) {
            println!(
                "RATIO open_and_serve_first_key/{case}/{keys}: {:.1} ms (goal < 50 ms after a clean shutdown)",
                t / 1e6
            );
        }
    }
}

fn create(c: &mut Criterion) {
    let f = Fixture::new();
    let e = f.open(1);
    configure(&e);
    e.create_data_key(KeyOwner::Cluster, KeyTag::default())
        .expect("warm");
    let mut g = c.benchmark_group("create_durable");
    g.sample_size(20).measurement_time(Duration::from_secs(6));
    g.bench_function("one_per_commit", |b| {
        b.iter(|| {
            e.create_data_key(KeyOwner::Cluster, KeyTag::default())
                .expect("create")
        })
    });
    // Two threads, one key per commit each: time per pair of keys, in the steady state. The two
    // threads live for the whole benchmark; each sample hands both the same number of keys to
    // create through a channel and is timed from the hand-off until both are done, so no thread
    // start-up is measured.
    std::thread::scope(|s| {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let workers: Vec<std::sync::mpsc::Sender<u64>> = (0..2)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::channel::<u64>();
                let done = done_tx.clone();
                let e = &e;
                s.spawn(move || {
                    for n in rx {
                        for _ in 0..n {
                            e.create_data_key(KeyOwner::Cluster, KeyTag::default())
                                .expect("create");
                        }
                        done.send(()).expect("bench alive");
                    }
                });
                tx
            })
            .collect();
        g.bench_function("two_threads_one_per_commit", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for w in &workers {
                    w.send(iters).expect("worker alive");
                }
                for _ in &workers {
                    done_rx.recv().expect("worker done");
                }
                start.elapsed()
            })
        });
        // Dropping the senders ends the workers' loops.
        drop(workers);
    });
    // Grouped: 16 keys in one durable commit; time per group.
    g.bench_function("grouped_16_per_commit", |b| {
        b.iter(|| {
            e.create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); 16])
                .expect("create")
        })
    });
    g.finish();
    let m = |f: &str| support::median_ns("create_durable", f);
    if let (Some(one), Some(two), Some(g16)) = (
        m("one_per_commit"),
        m("two_threads_one_per_commit"),
        m("grouped_16_per_commit"),
    ) {
        println!(
            "RATIO create_durable: one per commit {:.0} keys/s; two threads {:.0} keys/s ({:.2}x); grouped 16 per commit {:.0} keys/s ({:.2}x)",
            1e9 / one,
            2e9 / two,
            (2e9 / two) / (1e9 / one),
            16e9 / g16,
            (16e9 / g16) / (1e9 / one)
        );
    }
}

fn main() {
    let mut c = support::criterion();
    restore(&mut c);
    open_store(&mut c);
    create(&mut c);
    c.final_summary();
}
