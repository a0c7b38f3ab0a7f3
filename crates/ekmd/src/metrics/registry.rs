//! The series registry: every series ekmd counts as things happen (REST, data path, backend,
//! audit, KMIP, etcd), with its name, help and labels, and the registry that exposes them and
//! the engine's scrape-time series.
//!
//! Owns: every metric name, its help and its labels (the engine's scrape-time series are in
//! `engine.rs`), the bounded set of route labels.
//! Must never: label a series with a key id, a job uuid, a user name or anything a request
//! sent (routes are the templates axum matched, methods a fixed set).
//!
//! | series | kind | labels |
//! |---|---|---|
//! | `ekm_http_requests` | counter | `route`, `method`, `status` |
//! | `ekm_http_request_duration_seconds` | histogram | `route`, `method` |
//! | `ekm_datapath_key_reads` | counter | `path` (socket, kmip), `outcome` |
//! | `ekm_datapath_key_read_duration_seconds` | histogram | `path` |
//! | `ekm_backend_calls` | counter | `operation` (wrap, unwrap, check), `outcome` |
//! | `ekm_backend_call_duration_seconds` | histogram | `operation` |
//! | `ekm_backend_throttled` | counter | `operation` |
//! | `ekm_backend_throttle_wait_seconds` | counter | — |
//! | `ekm_audit_records` | counter | `result` (written, failed) |
//! | `ekm_audit_write_duration_seconds` | histogram | — |
//! | `ekm_kmip_requests` | counter | `operation`, `result` |
//! | `ekm_logins_refused` | counter | `reason` (wrong_credentials, locked_out, rate_limited) |
//! | `ekm_connections_open` | gauge | `listener` (rest, kmip) |
//! | `ekm_connections_closed` | counter | `listener`, `reason` (evicted, idle, client_cap, refused) |
//! | `ekm_etcd_requests` (cluster mode) | counter | `kind` (txn, read), `outcome` |
//! | `ekm_etcd_request_duration_seconds` | histogram | `kind` |
//! | `ekm_etcd_failovers` | counter | — |
//! | `ekm_etcd_watch_restarts` | counter | `reason` (error, compacted) |
//! | `ekm_etcd_watch_revisions_behind` | gauge | — |

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use ekm_core::{BackendError, BackendErrorKind, Engine, ErrorKind};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::engine::EngineCollector;

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
    logins_refused: Family<L1, Counter>,
    connections_open: Family<L1, prometheus_client::metrics::gauge::Gauge>,
    connections_closed: Family<L2, Counter>,
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
        let logins_refused = Family::<L1, Counter>::default();
        registry.register(
            "ekm_logins_refused",
            "REST logins refused, by reason (wrong_credentials; locked_out, refused unchecked while the address is locked out; rate_limited, refused unchecked while the node-wide failed-login bound is reached)",
            logins_refused.clone(),
        );
        let connections_open = Family::<L1, prometheus_client::metrics::gauge::Gauge>::default();
        registry.register(
            "ekm_connections_open",
            "TCP connections open, by listener (rest, kmip)",
            connections_open.clone(),
        );
        let connections_closed = Family::<L2, Counter>::default();
        registry.register(
            "ekm_connections_closed",
            "Connections ekmd closed itself, by listener and reason (evicted: the listener was full and it was idle the longest; idle: idle past the timeout; client_cap: over the per-client-certificate cap; refused: dropped at accept while a quarter more than the cap were still closing)",
            connections_closed.clone(),
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
            logins_refused,
            connections_open,
            connections_closed,
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

    /// Counts one refused REST login by `reason` (`wrong_credentials`, `locked_out`,
    /// `rate_limited`).
    pub fn login_refused(&self, reason: &'static str) {
        self.logins_refused
            .get_or_create(&[("reason", reason.into())])
            .inc();
    }

    /// Sets the connections open on `listener`.
    pub fn connections_open(&self, listener: &'static str, open: usize) {
        self.connections_open
            .get_or_create(&[("listener", listener.into())])
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// Counts one connection ekmd closed on `listener` for `reason`.
    pub fn connection_closed(&self, listener: &'static str, reason: &'static str) {
        self.connections_closed
            .get_or_create(&[("listener", listener.into()), ("reason", reason.into())])
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

    pub(super) fn backend_call<T>(
        &self,
        op: &'static str,
        started: Instant,
        r: &Result<T, BackendError>,
    ) {
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
