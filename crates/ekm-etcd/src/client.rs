//! Client and failover: one connection per member, one member in use at a time, a deadline on
//! every call, and what a failed call proves about whether it was applied.
//!
//! Owns: dialling members (TLS, keep-alive, require-leader), moving to the next member when
//! one does not answer, the classification of a failed call ([`CallError`]), and reads that
//! are safe to repeat on another member.
//! Must never: wait on a member without a deadline; treat a call as not applied unless the
//! failure proves it was never sent; keep a connection that failed (tonic may keep it broken).
//!
//! ```text
//!   call ──► member[current] ──ok──► answer
//!               │ refused connect (NotSent) / no answer, reset (Unknown)
//!               ▼
//!          drop its connection, current = next member (observer: failover)
//!               │ a read: try the next member, each once; a write: see commit.rs
//!               ▼
//!          every member tried: "etcd cluster not reachable (no quorum or every member down)"
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ekm_core::store::StoreError;
use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, KeyValue, TlsOptions,
};

use crate::options::{EtcdObserver, EtcdOptions};

/// Runs `fut` to its end on the calling thread (any thread, including a blocking thread of
/// another runtime), with the store's runtime `rt` driving its I/O and timers: no hand-off to a
/// runtime thread and back, one thread wake-up less per call. `fut` must not call back into
/// code that blocks on the store again (a nested `block_on` panics): callbacks of the engine
/// run between two calls, never inside one.
pub(crate) fn block_on<T>(rt: &tokio::runtime::Runtime, fut: impl Future<Output = T>) -> T {
    let _runtime = rt.enter();
    futures_executor::block_on(fut)
}

/// A record as read from etcd: full key, value, revision of its last change.
pub(crate) type Kv = (Vec<u8>, Vec<u8>, i64);

/// What went wrong with one call to one member.
pub(crate) enum CallError {
    /// The request did not reach etcd (refused connection): nothing was applied.
    NotSent(String),
    /// The request may or may not have been applied (deadline, reset, leader change).
    Unknown(String),
    /// etcd refused the request (too many operations, too large): nothing was applied.
    Refused(String),
}

impl CallError {
    fn of(e: etcd_client::Error) -> CallError {
        match e {
            etcd_client::Error::TransportError(t) => CallError::NotSent(t.to_string()),
            etcd_client::Error::GRpcStatus(s) => {
                use tonic::Code;
                match s.code() {
                    // Only a failure to connect proves the request was not sent; a reset or
                    // closed connection may have delivered it.
                    Code::Unavailable
                        if s.message().contains("error trying to connect")
                            || s.message().contains("tcp connect error")
                            || s.message().contains("Connection refused") =>
                    {
                        CallError::NotSent(s.message().to_owned())
                    }
                    Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Unknown
                    | Code::Aborted
                    | Code::Cancelled
                    | Code::Internal => {
                        CallError::Unknown(format!("{}: {}", s.code(), s.message()))
                    }
                    _ => CallError::Refused(format!("{}: {}", s.code(), s.message())),
                }
            }
            other => CallError::Unknown(other.to_string()),
        }
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            CallError::NotSent(m) | CallError::Unknown(m) | CallError::Refused(m) => m,
        }
    }
}

/// The members of the etcd cluster, as this process talks to them.
pub(crate) struct Cluster {
    pub(crate) opts: EtcdOptions,
    /// One client per member, connected on first use.
    clients: Vec<tokio::sync::Mutex<Option<Client>>>,
    /// The member in use.
    current: AtomicUsize,
}

impl Cluster {
    pub(crate) fn new(opts: EtcdOptions) -> Cluster {
        let clients = opts
            .endpoints
            .iter()
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        Cluster {
            opts,
            clients,
            current: AtomicUsize::new(0),
        }
    }

    /// The etcd key of store key `k`: `<prefix><k>`.
    pub(crate) fn key(&self, k: &[u8]) -> Vec<u8> {
        [self.opts.prefix.as_slice(), k].concat()
    }

    /// The etcd keys `[start, end)` of the records under store prefix `prefix`, strictly after
    /// store key `start_after` when given.
    pub(crate) fn range_of(&self, prefix: &[u8], start_after: Option<&[u8]>) -> (Vec<u8>, Vec<u8>) {
        let full_prefix = self.key(prefix);
        let end = ekm_core::store::prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        let start = match start_after {
            Some(a) => [self.key(a).as_slice(), &[0]].concat(),
            None => full_prefix,
        };
        (start, end)
    }

    /// The length of the prefix every etcd key of ekm starts with.
    pub(crate) fn prefix_len(&self) -> usize {
        self.opts.prefix.len()
    }

    /// The index of the member in use.
    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }

    pub(crate) async fn client(&self, idx: usize) -> Result<Client, CallError> {
        let mut slot = self.clients[idx].lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.opts.call_timeout)
            .with_timeout(self.opts.call_timeout)
            .with_keep_alive(Duration::from_secs(2), self.opts.call_timeout)
            // A member cut off from the majority must not keep serving watches and reads.
            .with_require_leader(true);
        if let Some(tls) = &self.opts.tls {
            let read = |p: &PathBuf| {
                std::fs::read(p).map_err(|e| CallError::Refused(format!("{}: {e}", p.display())))
            };
            let ca = Certificate::from_pem(read(&tls.ca)?);
            let id = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
            options = options.with_tls(TlsOptions::new().ca_certificate(ca).identity(id));
        }
        let endpoint = self.opts.endpoints[idx].clone();
        let c = tokio::time::timeout(
            self.opts.call_timeout,
            Client::connect([endpoint.as_str()], Some(options)),
        )
        .await
        .map_err(|_| CallError::NotSent(format!("{endpoint}: connect timed out")))?
        .map_err(|e| match CallError::of(e) {
            CallError::Unknown(m) | CallError::NotSent(m) => CallError::NotSent(m),
            r => r,
        })?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Drops member `idx`'s connection: the next call dials afresh.
    pub(crate) async fn forget_client(&self, idx: usize) {
        *self.clients[idx].lock().await = None;
    }

    /// Runs one call against the current member, with the call deadline.
    pub(crate) async fn call_once<T, F, Fut>(&self, idx: usize, f: &F) -> Result<T, CallError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let client = self.client(idx).await?;
        match tokio::time::timeout(self.opts.call_timeout, f(client)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let e = CallError::of(e);
                if !matches!(e, CallError::Refused(_)) {
                    // A fresh connection next time: tonic may keep a broken one.
                    self.forget_client(idx).await;
                }
                Err(e)
            }
            Err(_) => {
                self.forget_client(idx).await;
                Err(CallError::Unknown(format!(
                    "{}: no answer within {:?}",
                    self.opts.endpoints[idx], self.opts.call_timeout
                )))
            }
        }
    }

    pub(crate) fn observe(&self, f: impl FnOnce(&dyn EtcdObserver)) {
        if let Some(o) = &self.opts.observer {
            f(o.as_ref());
        }
    }

    /// Moves from member `from` to the next, unless another call moved already.
    pub(crate) fn rotate(&self, from: usize) {
        let next = (from + 1) % self.opts.endpoints.len();
        let moved = self
            .current
            .compare_exchange(from, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if moved && let Some(o) = &self.opts.observer {
            o.failover();
        }
    }

    /// A read (or any call safe to repeat): tries each member once.
    pub(crate) async fn read<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = std::time::Instant::now();
        let result = self.read_once_per_member(f).await;
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        self.observe(|o| o.request("read", started.elapsed(), outcome));
        result
    }

    async fn read_once_per_member<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last = String::new();
        for _ in 0..self.opts.endpoints.len() {
            let idx = self.current();
            match self.call_once(idx, &f).await {
                Ok(v) => return Ok(v),
                Err(CallError::Refused(m)) => return Err(StoreError::Io(format!("etcd: {m}"))),
                Err(e) => {
                    last = e.message().to_owned();
                    self.rotate(idx);
                }
            }
        }
        Err(StoreError::Io(format!(
            "etcd cluster not reachable (no quorum or every member down): {last}"
        )))
    }

    /// The record of one (full) key, if there is one.
    pub(crate) async fn get(&self, key: Vec<u8>) -> Result<Option<KeyValue>, StoreError> {
        let mut resp = self
            .read(|mut c| {
                let key = key.clone();
                async move { c.get(key, None).await }
            })
            .await?;
        Ok(resp.take_kvs().into_iter().next())
    }

    /// Up to `limit` records of `[start, end)` (only `start` when `end` is empty), in key
    /// order, with their revisions.
    pub(crate) async fn range(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: i64,
    ) -> Result<Vec<Kv>, StoreError> {
        self.range_at(start, end, limit).await.map(|(kvs, _)| kvs)
    }

    /// As [`Cluster::range`], with the revision the records were read at.
    pub(crate) async fn range_at(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: i64,
    ) -> Result<(Vec<Kv>, i64), StoreError> {
        let resp = self
            .read(|mut c| {
                let mut opts = GetOptions::new().with_limit(limit);
                if !end.is_empty() {
                    opts = opts.with_range(end.clone());
                }
                let start = start.clone();
                async move { c.get(start, Some(opts)).await }
            })
            .await?;
        let revision = resp
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| StoreError::Io("etcd: an answer without a revision".into()))?;
        let kvs = resp
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()))
            .collect();
        Ok((kvs, revision))
    }
}
