//! The engine's series, read at scrape time from its public API: configurations, jobs by kind
//! and state, running jobs' progress, data keys per owner (counted at most once every
//! [`KEY_COUNT_TTL`]: a count walks every key record), KEK generation age, seals against the
//! advised limit, and per-node KEK availability.
//!
//! Owns: the names, help and labels of these series, and the cache of the key count.
//! Must never: keep the engine alive (it is held weakly), change anything in the store, or
//! label a series with a key id or a job uuid.
//!
//! | series | labels |
//! |---|---|
//! | `ekm_configurations` | — |
//! | `ekm_jobs` | `kind`, `state` |
//! | `ekm_jobs_running_processed`, `ekm_jobs_running_units` | `kind` |
//! | `ekm_data_keys` | `owner` (cluster or SVM name) |
//! | `ekm_kek_generation_age_seconds`, `ekm_kek_seals`, `ekm_kek_seal_limit` | `scope`, `svm` |
//! | `ekm_kek_available` | `scope`, `svm`, `node`, `local` |

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ekm_core::{Engine, JobState};
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

/// How long a count of data keys per owner is reused before it is counted again.
pub const KEY_COUNT_TTL: Duration = Duration::from_secs(30);

/// The series read from the engine at scrape time.
#[derive(Debug)]
pub(super) struct EngineCollector {
    /// The engine read (none until attached, or once dropped).
    pub(super) engine: Arc<Mutex<Option<Weak<Engine>>>>,
    /// The last count of data keys per owner, and when it was made.
    pub(super) key_counts: Mutex<Option<(Instant, KeyCounts)>>,
}

/// Data keys per owner name.
pub(super) type KeyCounts = Vec<(String, u64)>;

/// One gauge family: name, help, and (labels, value) rows.
type Rows = Vec<(Vec<(&'static str, String)>, f64)>;

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &Rows,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn scope_labels(engine: &Engine, svm: Option<uuid::Uuid>) -> Vec<(&'static str, String)> {
    match svm {
        None => vec![("scope", "cluster".into()), ("svm", String::new())],
        Some(u) => vec![
            ("scope", "svm".into()),
            (
                "svm",
                engine
                    .topology()
                    .svm_by_uuid(u)
                    .map(|s| s.name().to_owned())
                    .unwrap_or_else(|| "unknown".into()),
            ),
        ],
    }
}

impl EngineCollector {
    fn key_counts(&self, engine: &Engine) -> Vec<(String, u64)> {
        let mut cache = self.key_counts.lock();
        if let Some((at, counts)) = cache.as_ref() {
            if at.elapsed() < KEY_COUNT_TTL {
                return counts.clone();
            }
        }
        let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
        for c in engine.list_key_managers().unwrap_or_default() {
            for k in engine.list_data_keys(c.uuid()).unwrap_or_default() {
                let owner = match k.svm_uuid {
                    None => "cluster".to_owned(),
                    Some(u) => engine
                        .topology()
                        .svm_by_uuid(u)
                        .map(|s| s.name().to_owned())
                        .unwrap_or_else(|| "unknown".into()),
                };
                *counts.entry(owner).or_default() += 1;
            }
        }
        let counts: Vec<(String, u64)> = counts.into_iter().collect();
        *cache = Some((Instant::now(), counts.clone()));
        counts
    }
}

impl Collector for EngineCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(engine) = self.engine.lock().as_ref().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let configs = match engine.list_key_managers() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(code = e.code(), "metrics: configurations unreadable");
                Vec::new()
            }
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        gauge(
            &mut enc,
            "ekm_configurations",
            "Key manager configurations",
            &vec![(vec![], configs.len() as f64)],
        )?;

        // Jobs by kind and state; running jobs' progress summed by kind.
        let jobs = engine.list_jobs().unwrap_or_default();
        let mut by_state: std::collections::BTreeMap<(String, &'static str), u64> =
            Default::default();
        let mut running: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for j in &jobs {
            let kind = serde_json::to_value(j.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *by_state
                .entry((kind.clone(), j.state.as_str()))
                .or_default() += 1;
            if matches!(j.state, JobState::Running | JobState::Queued) {
                let e = running.entry(kind).or_default();
                e.0 += j.processed;
                e.1 += j.total;
            }
        }
        let rows = by_state
            .iter()
            .map(|((k, s), n)| {
                (
                    vec![("kind", k.clone()), ("state", (*s).to_owned())],
                    *n as f64,
                )
            })
            .collect();
        gauge(&mut enc, "ekm_jobs", "Jobs by kind and state", &rows)?;
        let processed = running
            .iter()
            .map(|(k, (p, _))| (vec![("kind", k.clone())], *p as f64))
            .collect();
        gauge(
            &mut enc,
            "ekm_jobs_running_processed",
            "Units done by the queued and running jobs, by kind",
            &processed,
        )?;
        let total = running
            .iter()
            .map(|(k, (_, t))| (vec![("kind", k.clone())], *t as f64))
            .collect();
        gauge(
            &mut enc,
            "ekm_jobs_running_units",
            "Units to do in all by the queued and running jobs, by kind",
            &total,
        )?;

        let rows = self
            .key_counts(&engine)
            .into_iter()
            .map(|(owner, n)| (vec![("owner", owner)], n as f64))
            .collect();
        gauge(
            &mut enc,
            "ekm_data_keys",
            "Data keys per owner (cluster or SVM name); counted at most every 30 s",
            &rows,
        )?;

        // Roots of trust per scope: whether each holds every generation in use.
        let mut roots = Rows::new();
        for c in configs.iter().filter(|c| c.mirror_of().is_none()) {
            let scope = scope_labels(&engine, c.svm().map(|s| s.uuid()));
            // Bounded labels: the root's place (primary, mirror1, mirror2), never its uuid.
            let coverage = engine.root_coverage(c.uuid()).unwrap_or_default();
            for (i, (_, provider, missing)) in coverage.into_iter().enumerate() {
                let mut l = scope.clone();
                let place = match i {
                    0 => "primary".to_owned(),
                    n => format!("mirror{n}"),
                };
                l.push(("root", place));
                l.push(("kind", provider.kind().to_owned()));
                roots.push((l, if missing.is_empty() { 1.0 } else { 0.0 }));
            }
        }
        gauge(
            &mut enc,
            "ekm_root_fully_wrapped",
            "1 when the root of trust (root: the scope's key manager, primary, or a configuration attached with mirror_of, mirror1 and mirror2 in attach order) holds its copy of every KEK generation in use, else 0",
            &roots,
        )?;

        // KEKs: age and seals of the active generation; availability per node.
        let (mut age, mut seals, mut limit, mut avail) =
            (Rows::new(), Rows::new(), Rows::new(), Rows::new());
        let local = engine.local_node().name.clone();
        for c in &configs {
            let scope = scope_labels(&engine, c.svm().map(|s| s.uuid()));
            let usage = engine.kek_usage(c.uuid()).unwrap_or_default();
            let Some(active) = usage.iter().find(|u| u.state == "active") else {
                continue;
            };
            age.push((scope.clone(), now.saturating_sub(active.created) as f64));
            seals.push((scope.clone(), active.seals as f64));
            limit.push((scope.clone(), active.seal_limit as f64));
            for (node, reason) in engine.kek_availability(c.uuid()).unwrap_or_default() {
                let mut l = scope.clone();
                l.push(("node", node.name.clone()));
                l.push(("local", (node.name == local).to_string()));
                avail.push((l, if reason.is_none() { 1.0 } else { 0.0 }));
            }
        }
        gauge(
            &mut enc,
            "ekm_kek_generation_age_seconds",
            "Age of the active KEK generation of each key manager",
            &age,
        )?;
        gauge(
            &mut enc,
            "ekm_kek_seals",
            "Seals under the active KEK generation (since the last rekey-internal)",
            &seals,
        )?;
        gauge(
            &mut enc,
            "ekm_kek_seal_limit",
            "Seals at which rekey-internal is advised",
            &limit,
        )?;
        gauge(
            &mut enc,
            "ekm_kek_available",
            "1 when the node holds the active KEK generation of the key manager, else 0",
            &avail,
        )?;
        Ok(())
    }
}
