//! ekm on a real etcd cluster: one 3-member cluster of Debian's `etcd` (3.4) on loopback ports,
//! started by the bench, every figure against raw `etcd-client` operations on the same cluster
//! in the same run (same client options, same member):
//!
//! 1. durable data-key creation through the engine (one key, acknowledged) against one raw put
//!    of a record of the same size;
//! 2. rekey-internal of 100,000 keys (`EKM_BENCH_ETCD_KEYS` to change) against raw batched
//!    transactions putting records of the same count and sizes, in batches of the engine's own
//!    size; exactly one external wrap per rekey (the fake backend's counters); and, to show
//!    where the time goes, the same raw transactions with what the store's fence adds (one
//!    compare over the page's key span, one on the configuration's deletion mark, the read
//!    of the next page);
//! 3. delete-to-evicted-everywhere: three engines, each with its own etcd client, as three
//!    ekmd processes; a key read into every node's table, deleted through one node; the time
//!    until every node's read reports it gone (p50, p99 over 200 deletes);
//! 4. a node's key reads (table hits) on etcd against the same on redb.
//!
//! `cargo bench --bench etcd` prints `RATIO`, `LATENCY` and `COUNTERS` lines after criterion's
//! output. The rekey and delete figures are measured loops (one rekey of 100,000 keys takes
//! seconds), engine and raw alternated round by round, the engine first in even rounds and
//! last in odd ones (`EKM_BENCH_ETCD_ROUNDS`, default 4).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, black_box};
use ekm::core::{
    ClusterInfo, CreateRequest, DataKeyId, Engine, EngineOptions, ErrorKind, JobState, KeyOwner,
    KeyTag, Node, ProtectionKey, Topology, layout,
};
use ekm::fake::FakeBackend;
use ekm_etcd::testing::EtcdCluster;
use ekm_etcd::{EtcdOptions, EtcdStore};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp};
use uuid::Uuid;

/// Prefix of the three nodes' state (create, delete, read figures).
const NODES_PREFIX: &str = "/bench-nodes/";
/// Prefix of the rekey figure's state (its own configuration and 100,000 keys).
const REKEY_PREFIX: &str = "/bench-rekey/";
/// Prefix of the raw baselines' records.
const RAW_PREFIX: &str = "/bench-raw-x/";

fn topology() -> Topology {
    Topology {
        cluster: ClusterInfo {
            name: "c".into(),
            uuid: Uuid::from_u128(1),
        },
        nodes: (0..3)
            .map(|i| Node {
                name: format!("node{}", i + 1),
                uuid: Uuid::from_u128(100 + i),
            })
            .collect(),
        svms: vec![],
    }
}

/// The store options every engine and the raw client share: ekmd's defaults.
fn store_options(endpoints: &[String], prefix: &str) -> EtcdOptions {
    let mut o = EtcdOptions::new(endpoints.to_vec());
    o.prefix = prefix.as_bytes().to_vec();
    o
}

/// The engine of node `i` of the topology, as `ekmd serve --store etcd --node node<i+1>` opens
/// it: its own etcd client, its own node's table only.
fn node_engine(
    endpoints: &[String],
    prefix: &str,
    i: usize,
    fake: &Arc<FakeBackend>,
    pk: &ProtectionKey,
) -> Arc<Engine> {
    let topology = topology();
    let node = topology.nodes[i].uuid;
    let store = EtcdStore::open(store_options(endpoints, prefix)).expect("etcd store");
    Engine::open(
        EngineOptions::new(
            store,
            fake.clone(),
            topology,
            ProtectionKey::from_material(pk.material().clone()),
        )
        .local_node(node)
        .managed_nodes(vec![node]),
    )
    .expect("engine")
}

fn create_config(e: &Engine) -> Uuid {
    e.create_config(CreateRequest::from_json(support::CONFIG_BODY.as_bytes()).expect("body"))
        .expect("config")
        .uuid
}

/// Full etcd key length and value length of one data key record (`r/...`) of `config`.
fn record_sizes(e: &Engine, prefix: &str, config: Uuid) -> (usize, usize) {
    let page = e
        .store()
        .scan(&layout::records(config), None, 1)
        .expect("scan");
    let (k, v) = page.first().expect("a record");
    (prefix.len() + k.len(), v.len())
}

/// A raw `etcd-client` connection to one member, with the store's own client options.
struct Raw {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Raw {
    fn connect(endpoint: &str) -> Raw {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let timeout = EtcdOptions::new(vec![]).call_timeout;
        // As `ekm-etcd` connects (crates/ekm-etcd/src/client.rs, `Cluster`).
        let options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            .with_keep_alive(Duration::from_secs(2), timeout)
            .with_require_leader(true);
        let client = rt
            .block_on(Client::connect([endpoint], Some(options)))
            .expect("raw etcd client");
        Raw { rt, client }
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.rt
            .block_on(self.client.put(key, value, None))
            .expect("raw put");
    }

    /// A transaction that must succeed; returns its revision.
    fn txn_when(&mut self, compares: Vec<Compare>, ops: Vec<TxnOp>) -> i64 {
        let resp = self
            .rt
            .block_on(self.client.txn(Txn::new().when(compares).and_then(ops)))
            .expect("raw txn");
        assert!(resp.succeeded());
        resp.header().map_or(0, |h| h.revision())
    }

    fn txn(&mut self, ops: Vec<TxnOp>) {
        let resp = self
            .rt
            .block_on(self.client.txn(Txn::new().and_then(ops)))
            .expect("raw txn");
        assert!(resp.succeeded());
    }
}

/// A raw key of `len` bytes under [`RAW_PREFIX`], unique by `tag` and `n`.
fn raw_key(len: usize, tag: u8, n: u64) -> Vec<u8> {
    let mut k = RAW_PREFIX.as_bytes().to_vec();
    k.push(tag);
    k.extend_from_slice(&n.to_be_bytes());
    k.resize(len.max(k.len()), b'.');
    k
}

fn create_durable(c: &mut Criterion, e: &Engine, raw: &mut Raw, config: Uuid) {
    e.create_data_key(KeyOwner::Cluster, KeyTag::default())
        .expect("warm KEK");
    let (klen, vlen) = record_sizes(e, NODES_PREFIX, config);
    println!("SIZES data key record on etcd: key {klen} bytes, value {vlen} bytes");
    let value = vec![0x42u8; vlen];
    let mut n = 0u64;
    let mut g = c.benchmark_group("etcd_create_data_key");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    g.bench_function("engine", |b| {
        b.iter(|| {
            e.create_data_key(KeyOwner::Cluster, KeyTag::default())
                .expect("create")
        })
    });
    g.bench_function("raw_etcd_put", |b| {
        b.iter(|| {
            n += 1;
            raw.put(raw_key(klen, b'c', n), value.clone())
        })
    });
    g.finish();
}

fn reads(c: &mut Criterion, node: &Engine, creator: &Engine) {
    // Keys created through another node, then read once here: the misses fill this node's
    // table from etcd, as the data path of an ekmd does.
    let mut ids: Vec<DataKeyId> = Vec::new();
    for _ in 0..25 {
        ids.extend(
            creator
                .create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); 40])
                .expect("create"),
        );
    }
    for id in &ids {
        node.read_data_key(id).expect("fill");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (redb, _) = support::one_node_engine(dir.path());
    let redb_ids: Vec<DataKeyId> = redb
        .create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); ids.len()])
        .expect("create");

    let mut g = c.benchmark_group("etcd_read_data_key");
    let mut i = 0usize;
    g.bench_function("etcd_node", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            black_box(node.read_data_key(&ids[i]).expect("read"))
        })
    });
    let mut i = 0usize;
    g.bench_function("redb", |b| {
        b.iter(|| {
            i = (i + 1) % redb_ids.len();
            black_box(redb.read_data_key(&redb_ids[i]).expect("read"))
        })
    });
    g.finish();
}

/// Waits until `e` reports `id` gone; panics after 10 s.
fn wait_gone(e: &Engine, id: &DataKeyId, since: Instant) {
    loop {
        match e.read_data_key(id) {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::EntryNotFound => return,
            Err(err) => panic!("read during the delete: {err}"),
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "a deleted key still served after 10 s"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn delete_evicted(engines: &[Arc<Engine>], deletes: usize) {
    let mut total = Vec::with_capacity(deletes);
    let mut commit = Vec::with_capacity(deletes);
    for i in 0..deletes {
        let id = engines[i % 3]
            .create_data_key(KeyOwner::Cluster, KeyTag::default())
            .expect("create");
        for e in engines {
            e.read_data_key(&id).expect("read into every table");
        }
        let deleter = &engines[(i + 1) % 3];
        let start = Instant::now();
        deleter.delete_data_key(&id).expect("delete");
        commit.push(start.elapsed());
        for e in engines {
            wait_gone(e, &id, start);
        }
        total.push(start.elapsed());
    }
    total.sort();
    commit.sort();
    println!(
        "LATENCY delete_to_evicted_everywhere ({deletes} deletes, 3 nodes): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal: p99 <= 1000 ms); the delete's own commit: p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(&total, 0.5)),
        ms(percentile(&total, 0.99)),
        ms(*total.last().expect("deletes")),
        ms(percentile(&commit, 0.5)),
        ms(percentile(&commit, 0.99)),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 0 {
        (v[n / 2 - 1] + v[n / 2]) / 2
    } else {
        v[n / 2]
    }
}

fn rekey_once(e: &Arc<Engine>, cfg: Uuid) -> Duration {
    let start = Instant::now();
    let job = e.start_rekey_internal(cfg).expect("start");
    let job = e
        .wait_job(job.uuid, Duration::from_secs(1800))
        .expect("wait");
    assert_eq!(job.state, JobState::Success, "{}", job.message);
    start.elapsed()
}

fn rekey(endpoints: &[String], raw: &mut Raw, keys: usize, rounds: usize) {
    let fake = Arc::new(FakeBackend::in_memory());
    let e = node_engine(
        endpoints,
        REKEY_PREFIX,
        0,
        &fake,
        &ProtectionKey::generate(),
    );
    let cfg = create_config(&e);
    // Keys per create transaction: one check and two puts each, within etcd's 128 operations.
    let per_txn = (ekm_etcd::MAX_TXN_OPS - 2) / 2;
    let fill = Instant::now();
    let mut left = keys;
    while left > 0 {
        let n = left.min(per_txn);
        e.create_data_keys(KeyOwner::Cluster, vec![KeyTag::default(); n])
            .expect("keys");
        left -= n;
    }
    println!(
        "SETUP {keys} keys created on etcd in {:.1} s ({per_txn} per transaction)",
        fill.elapsed().as_secs_f64()
    );
    let (klen, vlen) = record_sizes(&e, REKEY_PREFIX, cfg);
    let batch = e.rekey_internal_batch();
    let value = vec![0x24u8; vlen];
    let raw_keys: Vec<Vec<u8>> = (0..keys as u64).map(|n| raw_key(klen, b'r', n)).collect();
    let raw_pass = |raw: &mut Raw| {
        let start = Instant::now();
        for chunk in raw_keys.chunks(batch) {
            raw.txn(
                chunk
                    .iter()
                    .map(|k| TxnOp::put(k.clone(), value.clone(), None))
                    .collect(),
            );
        }
        start.elapsed()
    };
    // The same puts with what the engine's transactions add per page, to show where the time
    // goes: the fence against a record changed or deleted since it was read (no key of the
    // page's span changed after the read's revision, nor the deletion mark) and the read of
    // the next page (bounded, as the store reads it).
    let mark = raw_key(40, b'e', 0);
    let fenced_pass = |raw: &mut Raw| {
        let start = Instant::now();
        let chunks: Vec<&[Vec<u8>]> = raw_keys.chunks(batch).collect();
        let mut read_at = raw
            .rt
            .block_on(raw.client.get(chunks[0][0].clone(), None))
            .expect("raw get")
            .header()
            .map_or(0, |h| h.revision());
        for (i, chunk) in chunks.iter().enumerate() {
            let mut ops: Vec<TxnOp> = chunk
                .iter()
                .map(|k| TxnOp::put(k.clone(), value.clone(), None))
                .collect();
            if let Some(next) = chunks.get(i + 1) {
                let last = [next[next.len() - 1].as_slice(), &[0]].concat();
                let opts = etcd_client::GetOptions::new()
                    .with_range(last)
                    .with_limit(batch as i64);
                ops.push(TxnOp::get(next[0].clone(), Some(opts)));
            }
            let after_last = [chunk[chunk.len() - 1].as_slice(), &[0]].concat();
            let compares = vec![
                Compare::mod_revision(chunk[0].clone(), CompareOp::Less, read_at + 1)
                    .with_range(after_last),
                Compare::mod_revision(mark.clone(), CompareOp::Less, read_at + 1),
            ];
            read_at = raw.txn_when(compares, ops);
        }
        start.elapsed()
    };
    // Warm-up, not counted: the raw records exist before the first measured pass, as the
    // engine's do; both sides then overwrite. The engine's first rekey is not counted either.
    raw_pass(raw);
    rekey_once(&e, cfg);
    let wraps_before = fake.counters().wraps;
    let (mut engine_t, mut raw_t, mut fenced_t) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternated, so that neither side always runs right after the other's writes (etcd
        // compacts and commits its backend in the background).
        let (t, r, f);
        if round % 2 == 0 {
            t = rekey_once(&e, cfg);
            r = raw_pass(raw);
            f = fenced_pass(raw);
        } else {
            r = raw_pass(raw);
            f = fenced_pass(raw);
            t = rekey_once(&e, cfg);
        }
        println!(
            "ROUND rekey_internal/{keys} {round}: engine {:.2} s, raw batched txns {:.2} s, raw with the engine's fence and read-ahead {:.2} s",
            t.as_secs_f64(),
            r.as_secs_f64(),
            f.as_secs_f64()
        );
        engine_t.push(t);
        raw_t.push(r);
        fenced_t.push(f);
    }
    let wraps = fake.counters().wraps - wraps_before;
    println!(
        "COUNTERS rekey_internal/{keys} on etcd: {rounds} rekeys, {wraps} external wraps ({:.2} per rekey)",
        wraps as f64 / rounds as f64
    );
    assert_eq!(
        wraps, rounds as u64,
        "exactly one external wrap per rekey-internal"
    );
    let (et, rt) = (median(engine_t), median(raw_t));
    println!(
        "RATIO rekey_internal/{keys} on etcd: engine {:.0} keys/s ({:.2} s) vs raw batched txns of {batch} puts {:.0} keys/s ({:.2} s) = {:.2}x rate (medians of {rounds}; goal: at least 0.7x)",
        keys as f64 / et.as_secs_f64(),
        et.as_secs_f64(),
        keys as f64 / rt.as_secs_f64(),
        rt.as_secs_f64(),
        rt.as_secs_f64() / et.as_secs_f64(),
    );
    let ft = median(fenced_t);
    println!(
        "RATIO rekey_internal/{keys} on etcd: raw with the engine's fence (span and deletion mark compares) and the next page read {:.0} keys/s ({:.2} s) = {:.2}x of the raw puts' rate; the engine = {:.2}x of it",
        keys as f64 / ft.as_secs_f64(),
        ft.as_secs_f64(),
        rt.as_secs_f64() / ft.as_secs_f64(),
        ft.as_secs_f64() / et.as_secs_f64(),
    );
    e.shutdown();
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let mut c = support::criterion();
    // Room for the rekey passes' history (8 GiB, etcd's largest advised quota), and periodic
    // compaction as a production cluster runs it.
    let cluster = EtcdCluster::start_with_args(
        3,
        &[
            "--quota-backend-bytes=8589934592",
            "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=2m",
        ],
    )
    .expect("etcd cluster starts (is Debian's etcd-server installed?)");
    let endpoints = cluster.endpoints();
    // The engines' clients start on the first member; the raw client talks to it too.
    let mut raw = Raw::connect(&endpoints[0]);

    let fake = Arc::new(FakeBackend::in_memory());
    let pk = ProtectionKey::generate();
    let engines: Vec<Arc<Engine>> = (0..3)
        .map(|i| node_engine(&endpoints, NODES_PREFIX, i, &fake, &pk))
        .collect();
    let config = create_config(&engines[0]);

    create_durable(&mut c, &engines[0], &mut raw, config);
    reads(&mut c, &engines[1], &engines[0]);
    delete_evicted(&engines, env_usize("EKM_BENCH_ETCD_DELETES", 200));
    rekey(
        &endpoints,
        &mut raw,
        env_usize("EKM_BENCH_ETCD_KEYS", 100_000),
        env_usize("EKM_BENCH_ETCD_ROUNDS", 4),
    );
    for e in &engines {
        e.shutdown();
    }
    c.final_summary();
    support::report_rate_ratio(
        "etcd_create_data_key",
        "engine",
        "raw_etcd_put",
        "at least 0.8x",
    );
    support::report_time_ratio(
        "etcd_read_data_key",
        "etcd_node",
        "redb",
        "equal: both are table hits",
    );
    drop(cluster);
}
