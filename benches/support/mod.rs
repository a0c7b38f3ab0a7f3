//! Ratio reporting for the criterion benchmarks: each figure is compared with a baseline
//! measured in the same run, using criterion's median estimates.
//!
//! Criterion leaves its estimates on disk between runs, so a run that measured only some
//! functions (a filter, an interrupted run) would find the others' estimates of an earlier run.
//! Every bench starts with [`criterion`], which records when the run began; [`median_ns`]
//! refuses estimates written before that, so a ratio never pairs this run with an older one.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use ekm::core::{ClusterInfo, CreateRequest, Engine, EngineOptions, Node, ProtectionKey, Topology};
use uuid::Uuid;

/// An engine over a redb store in `dir`, one node, an in-memory fake backend, and one cluster
/// configuration; returns the engine and the configuration's uuid.
pub fn one_node_engine(dir: &Path) -> (Arc<Engine>, Uuid) {
    let store = ekm::store::open(ekm::store::StoreKind::Redb, dir).expect("store");
    let topology = Topology {
        cluster: ClusterInfo {
            name: "c".into(),
            uuid: Uuid::from_u128(1),
        },
        nodes: vec![Node {
            name: "n1".into(),
            uuid: Uuid::from_u128(2),
        }],
        svms: vec![],
    };
    let e = Engine::open(EngineOptions::new(
        store,
        Arc::new(ekm::fake::FakeBackend::in_memory()),
        topology,
        ProtectionKey::generate(),
    ))
    .expect("engine");
    let cfg = e
        .create_config(CreateRequest::from_json(CONFIG_BODY.as_bytes()).expect("body"))
        .expect("config");
    (e, cfg.uuid)
}

/// A cluster configuration for the fake backend.
pub const CONFIG_BODY: &str = r#"{"client_id":"c","tenant_id":"t","name":"https://v.vault.azure.net/","key_id":"https://v.vault.azure.net/keys/k/a8e619fd8f234db3b0b95c59540e2a74","client_secret":"s"}"#;

static RUN_START: OnceLock<SystemTime> = OnceLock::new();

/// The run's criterion, configured from the command line; marks the start of the run.
pub fn criterion() -> criterion::Criterion {
    RUN_START.get_or_init(SystemTime::now);
    criterion::Criterion::default().configure_from_args()
}

fn criterion_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("criterion")
}

/// Median time per iteration in nanoseconds of `group/function` from this run, if it ran in
/// this run (an estimate left by an earlier run is ignored, and said so).
pub fn median_ns(group: &str, function: &str) -> Option<f64> {
    let start = *RUN_START
        .get()
        .expect("the bench's main starts with support::criterion()");
    let path = criterion_dir()
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    let written = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if written < start {
        println!(
            "NOTE {group}/{function}: not measured in this run (its estimate on disk is older)"
        );
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// Prints `subject / baseline` of the medians with the goal, when both ran in this run.
pub fn report_time_ratio(group: &str, subject: &str, baseline: &str, goal: &str) {
    if let (Some(s), Some(b)) = (median_ns(group, subject), median_ns(group, baseline)) {
        println!(
            "RATIO {group}: {subject} {s:.0} ns / {baseline} {b:.0} ns = {:.2}x time (goal: {goal})",
            s / b
        );
    }
}

/// Prints the rate ratio `baseline time / subject time` (subject's rate relative to baseline).
pub fn report_rate_ratio(group: &str, subject: &str, baseline: &str, goal: &str) {
    if let (Some(s), Some(b)) = (median_ns(group, subject), median_ns(group, baseline)) {
        println!(
            "RATIO {group}: {subject} {:.0}/s vs {baseline} {:.0}/s = {:.2}x rate (goal: {goal})",
            1e9 / s,
            1e9 / b,
            b / s
        );
    }
}
