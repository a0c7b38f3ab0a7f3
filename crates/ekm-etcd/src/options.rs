//! How a store reaches its etcd cluster, and what it tells its embedder.
//!
//! Owns: the options an embedder sets ([`EtcdOptions`], [`EtcdTls`]), the observer it is told
//! of the traffic through ([`EtcdObserver`]), and etcd's limit on operations per transaction.
//! Must never: hold anything but paths to secrets (the TLS key is read when a member is dialled).
//!
//! | option | default | what it bounds |
//! |---|---|---|
//! | `endpoints` | — | the members, tried in turn on failover |
//! | `prefix` | `/ekm/` | every key ekm writes |
//! | `call_timeout` | 2 s | one call to one member (connect, request, keep-alive) |
//! | `lease_ttl` | 10 s | how long this process's ephemeral records outlive it |

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ekm_core::store::StoreError;

/// etcd's default `--max-txn-ops`: the most compares, and the most operations, per transaction.
pub const MAX_TXN_OPS: usize = 128;

/// How a store reaches its etcd cluster.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs of the members (`http://127.0.0.1:2379`, or `https://` with `tls`).
    pub endpoints: Vec<String>,
    /// Prefix of every key ekm writes (`/ekm/`).
    pub prefix: Vec<u8>,
    /// mTLS to etcd: CA, client certificate and key (PEM files).
    pub tls: Option<EtcdTls>,
    /// Deadline of one call to one member.
    pub call_timeout: Duration,
    /// Time to live of this process's lease (its ephemeral records vanish that long after it dies).
    pub lease_ttl: Duration,
    /// Told of every transaction, failover and watch restart (ekmd's Prometheus metrics).
    pub observer: Option<Arc<dyn EtcdObserver>>,
}

impl EtcdOptions {
    /// Endpoints with the default prefix `/ekm/`, 2 s per call, a 10 s lease.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdOptions {
            endpoints,
            prefix: b"/ekm/".to_vec(),
            tls: None,
            call_timeout: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(10),
            observer: None,
        }
    }
}

/// PEM files for mTLS to etcd.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// CA that signed the members' certificates.
    pub ca: PathBuf,
    /// Client certificate.
    pub cert: PathBuf,
    /// Client key.
    pub key: PathBuf,
}

/// What an embedder (ekmd's metrics) is told about the store's traffic with etcd.
pub trait EtcdObserver: Send + Sync + std::fmt::Debug {
    /// One request ended after `took` (with its failover and, for a transaction, the read-back
    /// of an unknown outcome). `kind`: `"txn"` (a `Store::commit`) or `"read"`. `outcome`:
    /// `"ok"`, `"conflict"` (a transaction's check failed) or `"failed"` (etcd unreachable,
    /// refused, or the outcome could not be resolved).
    fn request(&self, kind: &'static str, took: Duration, outcome: &'static str);
    /// The client moved from a member that failed to the next one.
    fn failover(&self);
    /// A watch had to start again: `"error"` (its stream broke; it resumes where it was) or
    /// `"compacted"` (etcd no longer had the revisions it missed: the engine resynchronizes).
    fn watch_restart(&self, reason: &'static str);
    /// How many revisions the cluster was ahead of the last change a watch delivered, when
    /// the watch delivered it (0 when it keeps up).
    fn watch_revisions_behind(&self, behind: u64);
}

/// The outcome label of a request's result ([`EtcdObserver::request`]).
pub(crate) fn outcome_of<T>(result: &Result<T, StoreError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(StoreError::Conflict(_)) => "conflict",
        Err(_) => "failed",
    }
}
