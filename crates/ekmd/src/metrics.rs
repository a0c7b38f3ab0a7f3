//! Prometheus metrics (`GET /metrics`), on the official `prometheus-client` crate.
//!
//! Two kinds of series:
//! - **counted as they happen**: REST requests by route template, method and status (with a
//!   latency histogram), data-path key reads by path and outcome, backend calls by operation
//!   and outcome (through [`MeteredBackend`], a decorator of the real backend, so `ekm-core`
//!   stays free of metrics), throttled backend calls and the waits the vault asked for, audit
//!   records and the time their write and fsync took, KMIP requests (a hook for the KMIP server);
//! - **read at scrape time** from the engine's public API ([`EngineCollector`]): configurations,
//!   jobs by kind and state, running jobs' progress, data keys per owner (counted at most once
//!   every [`KEY_COUNT_TTL`]: a count walks every key record), KEK generation age, seals against
//!   the advised limit, and per-node KEK availability.
//!
//! Owns: every metric name, its help and its labels.
//! Must never: label a series with a key id, a job uuid, a user name or anything a request
//! sent (routes are the templates axum matched, methods a fixed set): labels stay bounded by
//! the code and the topology.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ekm_core::{
    Backend, BackendCall, BackendError, BackendErrorKind, Engine, ErrorKind, JobState, KeyId,
    KeyMaterial, SecretBytes,
};
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

/// The content type of the Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long a count of data keys per owner is reused before it is counted again.
pub const KEY_COUNT_TTL: Duration = Duration::from_secs(30);

type L2 = [(&'static str, String); 2];

/// The labels of a REST request: all `'static` or integers, so counting one allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

/// The labels of a REST latency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}
type L1 = [(&'static str, String); 1];

/// Every metric ekmd keeps, and the registry that exposes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    engine: Arc<Mutex<Option<Weak<Engine>>>>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    routes: parking_lot::RwLock<std::collections::HashMap<String, &'static str>>,
    key_reads: Family<L2, Counter>,
    key_read_duration: Histograms<L1>,
    backend_calls: Family<L2, Counter>,
    backend_duration: Histograms<L1>,
    backend_throttled: Family<L1, Counter>,
    backend_throttle_wait: Counter<f64, std::sync::atomic::AtomicU64>,
    audit_records: Family<L1, Counter>,
    audit_write_duration: Histogram,
    kmip_requests: Family<L2, Counter>,
}

/// Makes the histograms of one family (all with the same buckets).
#[derive(Debug, Clone, Copy)]
pub struct Buckets {
    start: f64,
    factor: f64,
    n: u16,
}

impl prometheus_client::metrics::family::MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(self.start, self.factor, self.n))
    }
}

fn histogram(start: f64, factor: f64, n: u16) -> Buckets {
    Buckets { start, factor, n }
}

type Histograms<L> = Family<L, Histogram, Buckets>;

impl Metrics {
    /// Fresh metrics; [`Metrics::attach_engine`] adds the engine's series.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "ekm_http_requests",
            "REST requests by route template, method and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<RouteLabels, Histogram, _>::new_with_constructor(histogram(0.000_25, 2.0, 16));
        registry.register(
            "ekm_http_request_duration_seconds",
            "REST request latency by route template and method",
            http_duration.clone(),
        );
        let key_reads = Family::<L2, Counter>::default();
        registry.register(
            "ekm_datapath_key_reads",
            "Data-path key reads by path (socket, kmip) and outcome (ok, not_found, kek_locked, error)",
            key_reads.clone(),
        );
        let key_read_duration =
            Family::<L1, Histogram, _>::new_with_constructor(histogram(0.000_01, 3.0, 12));
        registry.register(
            "ekm_datapath_key_read_duration_seconds",
            "Data-path key read latency by path",
            key_read_duration.clone(),
        );
        let backend_calls = Family::<L2, Counter>::default();
        registry.register(
            "ekm_backend_calls",
            "External key manager calls by operation (wrap, unwrap, check) and outcome (ok or the failure class)",
            backend_calls.clone(),
        );
        let backend_duration =
            Family::<L1, Histogram, _>::new_with_constructor(histogram(0.001, 2.5, 12));
        registry.register(
            "ekm_backend_call_duration_seconds",
            "External key manager call latency by operation",
            backend_duration.clone(),
        );
        let backend_throttled = Family::<L1, Counter>::default();
        registry.register(
            "ekm_backend_throttled",
            "External key manager calls refused as throttled, by operation",
            backend_throttled.clone(),
        );
        let backend_throttle_wait = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "ekm_backend_throttle_wait_seconds",
            "Seconds the throttling vault asked ekm to wait (Retry-After), summed",
            backend_throttle_wait.clone(),
        );
        let audit_records = Family::<L1, Counter>::default();
        registry.register(
            "ekm_audit_records",
            "Audit records written, by result (written, failed)",
            audit_records.clone(),
        );
        let audit_write_duration = Histogram::new(exponential_buckets(0.000_05, 2.0, 14));
        registry.register(
            "ekm_audit_write_duration_seconds",
            "Time to append and fsync one audit record",
            audit_write_duration.clone(),
        );
        let kmip_requests = Family::<L2, Counter>::default();
        registry.register(
            "ekm_kmip_requests",
            "KMIP requests by operation and result",
            kmip_requests.clone(),
        );
        let engine = Arc::new(Mutex::new(None));
        registry.register_collector(Box::new(EngineCollector {
            engine: engine.clone(),
            key_counts: Mutex::new(None),
        }));
        Arc::new(Metrics {
            registry: Mutex::new(registry),
            engine,
            http_requests,
            http_duration,
            routes: Default::default(),
            key_reads,
            key_read_duration,
            backend_calls,
            backend_duration,
            backend_throttled,
            backend_throttle_wait,
            audit_records,
            audit_write_duration,
            kmip_requests,
        })
    }

    /// Reads the engine's series from `engine` at every scrape (held weakly: the metrics never
    /// keep an engine alive).
    pub fn attach_engine(&self, engine: &Arc<Engine>) {
        *self.engine.lock() = Some(Arc::downgrade(engine));
    }

    /// The Prometheus text exposition of every series. Reads the store: call it on a blocking
    /// thread.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry.lock())
        {
            tracing::warn!("metrics encoding failed: {e}");
        }
        out
    }

    /// The `'static` copy of a route template: made once per template (routes are the
    /// router's own, a bounded set), so counting a request allocates nothing afterwards.
    pub(crate) fn route(&self, route: &str) -> &'static str {
        if let Some(r) = self.routes.read().get(route) {
            return r;
        }
        let mut map = self.routes.write();
        if map.len() >= 256 {
            return "other";
        }
        map.entry(route.to_owned())
            .or_insert_with(|| Box::leak(route.to_owned().into_boxed_str()))
    }

    /// Counts one REST request (`route`: the template axum matched).
    pub fn http_request(&self, route: &str, method: &Method, status: StatusCode, took: Duration) {
        let route = self.route(route);
        let method = method_label(method);
        self.http_requests
            .get_or_create(&HttpLabels {
                route,
                method,
                status: status.as_u16(),
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels { route, method })
            .observe(took.as_secs_f64());
    }

    /// Counts one data-path key read on `path` ("socket", "kmip") with its outcome.
    pub fn key_read(&self, path: &'static str, outcome: &'static str, took: Duration) {
        self.key_reads
            .get_or_create(&[("path", path.to_owned()), ("outcome", outcome.to_owned())])
            .inc();
        self.key_read_duration
            .get_or_create(&[("path", path.to_owned())])
            .observe(took.as_secs_f64());
    }

    /// Counts one KMIP request (for the KMIP server): `operation` and `result` must come from
    /// fixed sets (the KMIP operation and result-status enumerations), never from input text.
    pub fn kmip_request(&self, operation: &'static str, result: &'static str) {
        self.kmip_requests
            .get_or_create(&[
                ("operation", operation.to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
    }

    /// Counts one audit record write and its duration.
    pub fn audit_written(&self, ok: bool, took: Duration) {
        let r = if ok { "written" } else { "failed" };
        self.audit_records
            .get_or_create(&[("result", r.into())])
            .inc();
        if ok {
            self.audit_write_duration.observe(took.as_secs_f64());
        }
    }

    fn backend_call<T>(&self, op: &'static str, started: Instant, r: &Result<T, BackendError>) {
        let outcome = match r {
            Ok(_) => "ok",
            Err(e) => backend_outcome(e.kind),
        };
        self.backend_calls
            .get_or_create(&[
                ("operation", op.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
        self.backend_duration
            .get_or_create(&[("operation", op.to_owned())])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = r {
            if e.kind == BackendErrorKind::Throttled {
                self.backend_throttled
                    .get_or_create(&[("operation", op.to_owned())])
                    .inc();
                if let Some(d) = e.retry_after {
                    self.backend_throttle_wait.inc_by(d.as_secs_f64());
                }
            }
        }
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn backend_outcome(k: BackendErrorKind) -> &'static str {
    match k {
        BackendErrorKind::Unreachable => "unreachable",
        BackendErrorKind::AuthenticationFailed => "authentication_failed",
        BackendErrorKind::Forbidden => "forbidden",
        BackendErrorKind::KeyNotFound => "key_not_found",
        BackendErrorKind::KeyDisabled => "key_disabled",
        BackendErrorKind::Throttled => "throttled",
        BackendErrorKind::Rejected => "rejected",
        BackendErrorKind::InvalidResponse => "invalid_response",
        _ => "other",
    }
}

/// The outcome label of a data-path read that failed with `kind`.
pub fn read_outcome(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::EntryNotFound => "not_found",
        ErrorKind::KekUnavailable => "kek_locked",
        _ => "error",
    }
}

/// A [`Backend`] that counts and times every call of the one it wraps.
#[derive(Debug)]
pub struct MeteredBackend {
    inner: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
}

impl MeteredBackend {
    /// `inner`, measured into `metrics`.
    pub fn new(inner: Arc<dyn Backend>, metrics: Arc<Metrics>) -> Self {
        MeteredBackend { inner, metrics }
    }
}

impl Backend for MeteredBackend {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn algorithm(&self) -> &'static str {
        self.inner.algorithm()
    }

    fn wrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &KeyId,
        kek: &KeyMaterial,
    ) -> Result<Vec<u8>, BackendError> {
        let t = Instant::now();
        let r = self.inner.wrap_kek(call, key, kek);
        self.metrics.backend_call("wrap", t, &r);
        r
    }

    fn unwrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &KeyId,
        wrapped: &[u8],
    ) -> Result<SecretBytes, BackendError> {
        let t = Instant::now();
        let r = self.inner.unwrap_kek(call, key, wrapped);
        self.metrics.backend_call("unwrap", t, &r);
        r
    }

    fn check(&self, call: &BackendCall<'_>, key: &KeyId) -> Result<(), BackendError> {
        let t = Instant::now();
        let r = self.inner.check(call, key);
        self.metrics.backend_call("check", t, &r);
        r
    }
}

/// The series read from the engine at scrape time.
#[derive(Debug)]
struct EngineCollector {
    engine: Arc<Mutex<Option<Weak<Engine>>>>,
    key_counts: Mutex<Option<(Instant, KeyCounts)>>,
}

/// Data keys per owner name.
type KeyCounts = Vec<(String, u64)>;

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
        for c in engine.list_configs().unwrap_or_default() {
            for k in engine.list_data_keys(c.uuid).unwrap_or_default() {
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
        let configs = match engine.list_configs() {
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

        // KEKs: age and seals of the active generation; availability per node.
        let (mut age, mut seals, mut limit, mut avail) =
            (Rows::new(), Rows::new(), Rows::new(), Rows::new());
        let local = engine.local_node().name.clone();
        for c in &configs {
            let scope = scope_labels(&engine, c.svm.as_ref().map(|s| s.uuid()));
            let usage = engine.kek_usage(c.uuid).unwrap_or_default();
            let Some(active) = usage.iter().find(|u| u.state == "active") else {
                continue;
            };
            age.push((scope.clone(), now.saturating_sub(active.created) as f64));
            seals.push((scope.clone(), active.seals as f64));
            limit.push((scope.clone(), active.seal_limit as f64));
            for (node, reason) in engine.kek_availability(c.uuid).unwrap_or_default() {
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

/// `GET /metrics`: the exposition (read on a blocking thread: engine series read the store).
pub async fn scrape(State(s): State<AppState>) -> Response {
    let m = s.metrics.clone();
    match tokio::task::spawn_blocking(move || m.encode()).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The router of `--metrics-listen`: `/metrics` only, without authentication.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(state)
}

/// The etcd store's series (cluster mode only): requests (transactions and reads) by outcome
/// with their latency, failovers between members, watch restarts and how far behind the
/// watches run.
#[derive(Debug)]
struct EtcdMetrics {
    requests: Family<L2, Counter>,
    request_duration: Histograms<L1>,
    failovers: Counter,
    watch_restarts: Family<L1, Counter>,
    watch_behind: prometheus_client::metrics::gauge::Gauge,
}

impl ekm_etcd::EtcdObserver for EtcdMetrics {
    fn request(&self, kind: &'static str, took: Duration, outcome: &'static str) {
        self.requests
            .get_or_create(&[("kind", kind.to_owned()), ("outcome", outcome.to_owned())])
            .inc();
        self.request_duration
            .get_or_create(&[("kind", kind.to_owned())])
            .observe(took.as_secs_f64());
    }

    fn failover(&self) {
        self.failovers.inc();
    }

    fn watch_restart(&self, reason: &'static str) {
        self.watch_restarts
            .get_or_create(&[("reason", reason.to_owned())])
            .inc();
    }

    fn watch_revisions_behind(&self, behind: u64) {
        self.watch_behind
            .set(i64::try_from(behind).unwrap_or(i64::MAX));
    }
}

impl Metrics {
    /// Registers the etcd series and returns the observer to give the etcd store.
    pub fn etcd_observer(&self) -> Arc<dyn ekm_etcd::EtcdObserver> {
        let m = EtcdMetrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(histogram(0.000_25, 2.0, 16)),
            failovers: Counter::default(),
            watch_restarts: Family::default(),
            watch_behind: Default::default(),
        };
        let mut r = self.registry.lock();
        r.register(
            "ekm_etcd_requests",
            "etcd requests by kind (txn: a Store::commit; read) and outcome (ok, conflict, failed)",
            m.requests.clone(),
        );
        r.register(
            "ekm_etcd_request_duration_seconds",
            "etcd request latency by kind, including failover and the read-back of unknown outcomes",
            m.request_duration.clone(),
        );
        r.register(
            "ekm_etcd_failovers",
            "Times the etcd client moved to another member after one failed",
            m.failovers.clone(),
        );
        r.register(
            "ekm_etcd_watch_restarts",
            "etcd watches started again, by reason (error: stream broke; compacted: changes lost, caches rebuilt)",
            m.watch_restarts.clone(),
        );
        r.register(
            "ekm_etcd_watch_revisions_behind",
            "Revisions the etcd cluster was ahead of the last change a watch delivered (0: keeping up)",
            m.watch_behind.clone(),
        );
        Arc::new(m)
    }
}
