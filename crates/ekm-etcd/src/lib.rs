//! ekm-etcd: the [`Store`] of a cluster of `ekmd` processes, on a real etcd cluster (3.4+).
//!
//! Every store key of ekm (`ekm_core::layout`) is stored as `<prefix><key>` in etcd; a
//! [`Store::commit`] is one etcd transaction: its checks become compares (`Absent` →
//! create_revision = 0, `Present` → create_revision > 0, `Equals` → value =, or mod_revision =
//! for a long value this store saw at that revision, with the value compared on a retry when
//! only the revision differs), its writes the success branch (the last write per key: etcd
//! refuses a key twice in one transaction). [`Store::rewrite_range`] fences a page by the
//! revision it was read at (one compare over the rewritten span plus the deletion mark, or one
//! per record without a mark) and reads the next page in the same transaction (one round trip
//! per page; see its docs). A watch that cannot replay what it missed (compacted history)
//! delivers [`Change::Resync`].
//!
//! Owns: the mapping of ekm's store contract onto etcd, and the one rule for requests whose
//! outcome is unknown (a timeout, a reset connection, a leader change): they are resolved by
//! reading back what the transaction wrote, never by a blind retry. A retry after such a read
//! is safe for ekm because every commit is either guarded by checks or idempotent.
//!
//! Failover: the client talks to one member at a time; when that member does not answer it
//! moves to the next (the `etcd-client` crate alone keeps dialling a dead member). Every call
//! has a deadline, so with quorum lost a write fails within seconds instead of hanging.
//!
//! Must never: acknowledge a commit that etcd did not apply; hang without a deadline; panic on
//! anything etcd answers.

#![forbid(unsafe_code)]

pub mod testing;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ekm_core::store::{
    Change, ChangeCallback, Check, Entry, RangeRewrite, Rewrite, Store, StoreError, Then,
    Transaction, Write,
};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchFilterType, WatchOptions,
};
use parking_lot::Mutex;

/// etcd's default `--max-txn-ops`: the most compares, and the most operations, per transaction.
pub const MAX_TXN_OPS: usize = 128;

/// How long a page read ahead by a rewrite's commit stays usable by the next rewrite.
const READ_AHEAD_FOR: Duration = Duration::from_secs(1);

/// Values at least this long are remembered with their revision when this store reads one
/// key (`get`, `get_many`) or writes them, so that an `Equals` check on one is sent as a
/// revision compare instead of the value (a create's check of its ~1 KB configuration record,
/// a job step's check of its job record); shorter values cost less to send than to remember.
const REMEMBER_FROM: usize = 128;

/// Values remembered in each of the memory's two generations: when the young one is full it
/// becomes the old one and the old one is dropped; a value used from the old one moves back to
/// the young one, so the values checked again and again (a configuration every create checks)
/// stay while data records read once pass through. A dropped entry costs one value compare,
/// never a wrong answer.
const REMEMBER_PER_GENERATION: usize = 2048;

/// One condition of a transaction: a store check, or (for records read by `rewrite_range`)
/// that the key is still at the revision it was read at.
#[derive(Clone)]
enum Cond {
    Check(Check),
    ModRevision(i64),
    /// `Check::Equals` on a value this store saw at `revision` (the key's revision of its last
    /// change then): sent as "the key's revision is still `revision`", which implies the value.
    /// When that compare fails while the value is still the same (rewritten with the same
    /// bytes, by another process), the commit is tried again with the value compared
    /// ([`Inner::commit`]): the check's meaning is the value's, never stricter.
    Unchanged(Vec<u8>, i64),
    /// No key of `[key, end)` (only `key` when `end` is `None`) changed after `revision`:
    /// a rewritten page's key span, and its deletion mark, as of the page's read.
    NotChangedAfter(Option<Vec<u8>>, i64),
}

impl Cond {
    /// The compare sent to etcd; `by_value`: `Unchanged` as the value compare it stands for.
    fn compare(&self, key: &[u8], by_value: bool) -> Compare {
        let key = key.to_vec();
        match self {
            Cond::Check(Check::Absent(_)) => Compare::create_revision(key, CompareOp::Equal, 0),
            Cond::Check(Check::Present(_)) => Compare::create_revision(key, CompareOp::Greater, 0),
            Cond::Check(Check::Equals(_, v)) => Compare::value(key, CompareOp::Equal, v.clone()),
            Cond::Unchanged(v, _) if by_value => Compare::value(key, CompareOp::Equal, v.clone()),
            Cond::Unchanged(_, r) | Cond::ModRevision(r) => {
                Compare::mod_revision(key, CompareOp::Equal, *r)
            }
            Cond::NotChangedAfter(end, r) => {
                let c = Compare::mod_revision(key, CompareOp::Less, r.saturating_add(1));
                match end {
                    Some(end) => c.with_range(end.clone()),
                    None => c,
                }
            }
        }
    }
}

/// A value as seen at a revision (the key's revision of its last change then).
type Seen = (Vec<u8>, i64);

/// Long values with their revisions, in two generations (see [`REMEMBER_PER_GENERATION`]).
#[derive(Default)]
struct Remembered {
    young: HashMap<Vec<u8>, Seen>,
    old: HashMap<Vec<u8>, Seen>,
}

impl Remembered {
    fn insert(&mut self, key: Vec<u8>, seen: Seen) {
        if self.young.len() >= REMEMBER_PER_GENERATION && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.old.remove(&key);
        self.young.insert(key, seen);
    }

    fn revision_of(&mut self, key: &[u8], value: &[u8]) -> Option<i64> {
        if let Some(seen) = self.old.remove(key) {
            self.insert(key.to_vec(), seen);
        }
        match self.young.get(key) {
            Some((v, revision)) if v == value => Some(*revision),
            _ => None,
        }
    }
}

/// A record as read from etcd: full key, value, revision of its last change.
type Kv = (Vec<u8>, Vec<u8>, i64);

/// The next page of a `rewrite_range` pass, read in the same transaction as the page before:
/// the records of `[start, end)`, at most `limit`, as of that commit.
struct ReadAhead {
    start: Vec<u8>,
    end: Vec<u8>,
    limit: i64,
    /// The end of what was read: `end`, or a nearer key (see [`window_end`]).
    window_end: Vec<u8>,
    kvs: Vec<Kv>,
    /// The revision the page was read at (the reading transaction's).
    revision: i64,
    at: std::time::Instant,
}

/// Where to stop reading the page after `first..=last` (a page in key order) within a range
/// ending at `end`: one and a half times as far past `last` as the page spans, counted on the
/// eight bytes after the two keys' common prefix. etcd 3.4 walks the whole of a range in its
/// index even for a read of a few keys, so reading each page of a 100,000-key range up to the
/// range's end costs a walk of the rest of the range per page; a window one and a half pages
/// wide costs a walk of that much, and with keys spread as random ids holds a full page but
/// for a chance of several standard deviations (a short page is only a smaller batch). Keys
/// are only ever read in order from the page's start, so the window decides how many a page
/// holds, never which are seen.
fn window_end(first: &[u8], last: &[u8], end: &[u8]) -> Vec<u8> {
    let common = first.iter().zip(last).take_while(|(a, b)| a == b).count();
    if common >= last.len() {
        return end.to_vec();
    }
    let number = |k: &[u8]| {
        let mut b = [0u8; 8];
        for (slot, byte) in b.iter_mut().zip(k.iter().skip(common)) {
            *slot = *byte;
        }
        u64::from_be_bytes(b)
    };
    let (a, b) = (number(first), number(last));
    let span = b.saturating_sub(a).max(1);
    // last + 1.5 spans, in big-endian arithmetic over the common prefix and those eight bytes.
    let sum = u128::from(b) + u128::from(span) + u128::from(span) / 2;
    let mut carry = sum >> 64;
    let mut head = last[..common].to_vec();
    for byte in head.iter_mut().rev() {
        if carry == 0 {
            break;
        }
        let v = u128::from(*byte) + carry;
        *byte = (v & 0xff) as u8;
        carry = v >> 8;
    }
    if carry != 0 {
        return end.to_vec();
    }
    let k = [&head[..], &(sum as u64).to_be_bytes()[..]].concat();
    if k.as_slice() < end { k } else { end.to_vec() }
}

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

/// The outcome label of a request's result.
fn outcome_of<T>(result: &Result<T, StoreError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(StoreError::Conflict(_)) => "conflict",
        Err(_) => "failed",
    }
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

/// What went wrong with one call to one member.
enum CallError {
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

    fn message(&self) -> &str {
        match self {
            CallError::NotSent(m) | CallError::Unknown(m) | CallError::Refused(m) => m,
        }
    }
}

struct Inner {
    opts: EtcdOptions,
    /// One client per member, connected on first use.
    clients: Vec<tokio::sync::Mutex<Option<Client>>>,
    /// The member in use.
    current: AtomicUsize,
    /// This process's lease and the ephemeral records bound to it.
    lease: Mutex<Option<i64>>,
    ephemeral: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    /// Pages read ahead by rewrite commits, for the rewrites that continue them.
    read_ahead: Mutex<Vec<ReadAhead>>,
    /// Long values as last read or written here, with their revision (full key → value,
    /// revision): what turns an `Equals` check into a revision compare ([`Cond::Unchanged`]).
    /// An entry is true of that revision for ever, so a stale one is never wrong, only
    /// useless (its compare fails and the commit compares the value instead).
    remembered: Mutex<Remembered>,
}

/// The etcd store. See the crate docs.
pub struct EtcdStore {
    rt: tokio::runtime::Runtime,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.inner.opts.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// As [`Store::watch`], from etcd revision `revision` on (tests use it to start a watch
    /// from a revision that was compacted meanwhile).
    #[doc(hidden)]
    pub fn watch_from_revision(&self, prefix: &[u8], revision: i64, on_change: ChangeCallback) {
        self.watch_with(prefix, revision, false, on_change);
    }

    /// Watches `prefix` from `revision` on; `deletes_only`: puts filtered out by etcd.
    fn watch_with(
        &self,
        prefix: &[u8],
        revision: i64,
        deletes_only: bool,
        on_change: ChangeCallback,
    ) {
        let inner = self.inner.clone();
        let full = self.key(prefix);
        let strip = self.inner.opts.prefix.len();
        self.rt.spawn(async move {
            inner
                .watch_loop(full, strip, revision, deletes_only, on_change)
                .await;
        });
    }

    /// The cluster's current revision (read under `prefix`).
    fn current_revision(&self, prefix: &[u8]) -> Result<i64, StoreError> {
        let full = self.key(prefix);
        let resp = self.block(self.inner.read(|mut c| {
            let full = full.clone();
            async move { c.get(full, Some(GetOptions::new().with_limit(1))).await }
        }))?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Connects (lazily: the first call dials) and starts this process's lease keeper.
    pub fn open(opts: EtcdOptions) -> Result<Arc<EtcdStore>, StoreError> {
        if opts.endpoints.is_empty() {
            return Err(StoreError::Io("no etcd endpoint given".into()));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ekm-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io(format!("etcd client runtime: {e}")))?;
        let clients = opts
            .endpoints
            .iter()
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        let inner = Arc::new(Inner {
            opts,
            clients,
            current: AtomicUsize::new(0),
            lease: Mutex::new(None),
            ephemeral: Mutex::new(HashMap::new()),
            read_ahead: Mutex::new(Vec::new()),
            remembered: Mutex::new(Remembered::default()),
        });
        let store = Arc::new(EtcdStore { rt, inner });
        // Prove the cluster answers, and hold a lease, before anything relies on them.
        let inner = store.inner.clone();
        let ttl = store.inner.lease_ttl_secs();
        let lease = store.block(async move {
            inner
                .read(|mut c| async move { c.lease_grant(ttl, None).await })
                .await
        })?;
        *store.inner.lease.lock() = Some(lease.id());
        let keeper = store.inner.clone();
        store
            .rt
            .spawn(async move { keeper.keep_lease_alive(Some(lease.id())).await });
        Ok(store)
    }

    /// Runs `fut` to its end on the calling thread (any thread, including a blocking thread of
    /// another runtime), with the store's runtime driving its I/O and timers: no hand-off to a
    /// runtime thread and back, one thread wake-up less per call.
    fn block<T>(&self, fut: impl Future<Output = T>) -> T {
        let _runtime = self.rt.enter();
        futures_executor::block_on(fut)
    }

    fn key(&self, k: &[u8]) -> Vec<u8> {
        [self.inner.opts.prefix.as_slice(), k].concat()
    }

    /// Store checks as transaction conditions on the prefixed keys: an `Equals` on a value
    /// remembered with its revision becomes a revision compare.
    fn conds(&self, checks: Vec<Check>) -> Vec<(Vec<u8>, Cond)> {
        checks
            .into_iter()
            .map(|c| {
                let k = match &c {
                    Check::Absent(k) | Check::Present(k) | Check::Equals(k, _) => self.key(k),
                };
                let cond = match c {
                    Check::Equals(key, v) => match self.inner.remembered_revision(&k, &v) {
                        Some(r) => Cond::Unchanged(v, r),
                        None => Cond::Check(Check::Equals(key, v)),
                    },
                    other => Cond::Check(other),
                };
                (k, cond)
            })
            .collect()
    }
}

impl Inner {
    async fn client(&self, idx: usize) -> Result<Client, CallError> {
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

    /// Runs one call against the current member, with the call deadline.
    async fn call_once<T, F, Fut>(&self, idx: usize, f: &F) -> Result<T, CallError>
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
                    *self.clients[idx].lock().await = None;
                }
                Err(e)
            }
            Err(_) => {
                *self.clients[idx].lock().await = None;
                Err(CallError::Unknown(format!(
                    "{}: no answer within {:?}",
                    self.opts.endpoints[idx], self.opts.call_timeout
                )))
            }
        }
    }

    /// Remembers a long `value` of `key` as of `revision`, the key's revision of its last
    /// change (see `remembered`).
    fn remember(&self, key: &[u8], value: &[u8], revision: i64) {
        if value.len() < REMEMBER_FROM {
            return;
        }
        self.remembered
            .lock()
            .insert(key.to_vec(), (value.to_vec(), revision));
    }

    /// The value of a key read on its own, remembered with its revision.
    fn seen_value(&self, kv: &etcd_client::KeyValue) -> Vec<u8> {
        self.remember(kv.key(), kv.value(), kv.mod_revision());
        kv.value().to_vec()
    }

    /// The revision at which `key` was seen holding `value`, if remembered.
    fn remembered_revision(&self, key: &[u8], value: &[u8]) -> Option<i64> {
        self.remembered.lock().revision_of(key, value)
    }

    fn observe(&self, f: impl FnOnce(&dyn EtcdObserver)) {
        if let Some(o) = &self.opts.observer {
            f(o.as_ref());
        }
    }

    fn rotate(&self, from: usize) {
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
    async fn read<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
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
            let idx = self.current.load(Ordering::SeqCst);
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

    async fn get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        let resp = self
            .read(|mut c| {
                let key = key.clone();
                async move { c.get(key, None).await }
            })
            .await?;
        Ok(resp.kvs().first().map(|kv| self.seen_value(kv)))
    }

    /// Whether every write of `writes` is visible: how an unknown outcome is resolved.
    async fn applied(&self, writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<bool, StoreError> {
        for (k, v) in writes {
            if self.get(k.clone()).await? != *v {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn lease_ttl_secs(&self) -> i64 {
        self.opts.lease_ttl.as_secs().max(2) as i64
    }

    async fn keep_lease_alive(self: Arc<Self>, mut held: Option<i64>) {
        let ttl = self.lease_ttl_secs();
        loop {
            let id = match held.take() {
                Some(id) => id,
                None => {
                    let granted = self
                        .read(|mut c| async move { c.lease_grant(ttl, None).await })
                        .await;
                    let Ok(lease) = granted else {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    };
                    lease.id()
                }
            };
            *self.lease.lock() = Some(id);
            // Records put while no lease was held (or under an expired one) go under this one.
            let records: Vec<_> = self
                .ephemeral
                .lock()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (k, v) in records {
                let _ = self.put_leased(&k, &v, id).await;
            }
            // Keep it alive at a third of its TTL until a keep-alive fails for longer than it.
            let mut failing_since: Option<tokio::time::Instant> = None;
            loop {
                tokio::time::sleep(Duration::from_secs((ttl / 3).max(1) as u64)).await;
                let alive = self
                    .read(|mut c| async move {
                        let (mut keeper, mut stream) = c.lease_keep_alive(id).await?;
                        keeper.keep_alive().await?;
                        Ok(stream.message().await?.map(|m| m.ttl()).unwrap_or(0))
                    })
                    .await;
                match alive {
                    Ok(t) if t > 0 => failing_since = None,
                    Ok(_) => break, // expired: grant a new one
                    Err(_) => {
                        let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() > self.opts.lease_ttl {
                            break;
                        }
                    }
                }
            }
            *self.lease.lock() = None;
        }
    }

    async fn put_leased(&self, key: &[u8], value: &[u8], lease: i64) -> Result<(), StoreError> {
        let (key, value) = (key.to_vec(), value.to_vec());
        self.read(|mut c| {
            let (key, value) = (key.clone(), value.clone());
            async move {
                c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                    .await
            }
        })
        .await
        .map(drop)
    }
}

impl Store for EtcdStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = self.inner.clone();
        let key = self.key(key);
        self.block(async move { inner.get(key).await })
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        // One transaction of gets: one consistent revision.
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_TXN_OPS) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|k| TxnOp::get(self.key(k), None))
                .collect();
            let inner = self.inner.clone();
            let resp = self.block(async move {
                inner
                    .read(|mut c| {
                        let txn = Txn::new().and_then(ops.clone());
                        async move { c.txn(txn).await }
                    })
                    .await
            })?;
            for op in resp.op_responses() {
                match op {
                    etcd_client::TxnOpResponse::Get(g) => {
                        out.push(g.kvs().first().map(|kv| self.inner.seen_value(kv)))
                    }
                    _ => return Err(StoreError::Io("etcd: unexpected transaction answer".into())),
                }
            }
        }
        if out.len() != keys.len() {
            return Err(StoreError::Io("etcd: short transaction answer".into()));
        }
        Ok(out)
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let full_prefix = self.key(prefix);
        let start = match start_after {
            Some(a) => [self.key(a).as_slice(), &[0]].concat(),
            None => full_prefix.clone(),
        };
        let end = ekm_core::store::prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let strip = self.inner.opts.prefix.len();
        let inner = self.inner.clone();
        let resp = self.block(async move {
            inner
                .read(|mut c| {
                    let opts = GetOptions::new().with_range(end.clone()).with_limit(limit);
                    let start = start.clone();
                    async move { c.get(start, Some(opts)).await }
                })
                .await
        })?;
        Ok(resp
            .kvs()
            .iter()
            .filter(|kv| kv.key().len() >= strip)
            .map(|kv| (kv.key()[strip..].to_vec(), kv.value().to_vec()))
            .collect())
    }

    fn count(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        // One round trip, no values sent.
        let start = self.key(prefix);
        let end = ekm_core::store::prefix_end(&start).unwrap_or_else(|| vec![0]);
        let inner = self.inner.clone();
        let resp = self.block(async move {
            inner
                .read(|mut c| {
                    let opts = GetOptions::new().with_range(end.clone()).with_count_only();
                    let start = start.clone();
                    async move { c.get(start, Some(opts)).await }
                })
                .await
        })?;
        Ok(u64::try_from(resp.count()).unwrap_or(0))
    }

    fn commit(&self, txn: Transaction) -> Result<(), StoreError> {
        // The last write of each key, in first-seen order (etcd refuses a key twice).
        let mut order: Vec<Vec<u8>> = Vec::new();
        let mut last: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        for w in txn.writes {
            let (k, v) = match w {
                Write::Put(k, v) => (self.key(&k), Some(v)),
                Write::Delete(k) => (self.key(&k), None),
            };
            if last.insert(k.clone(), v).is_none() {
                order.push(k);
            }
        }
        let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = order
            .into_iter()
            .map(|k| {
                let v = last.remove(&k).flatten();
                (k, v)
            })
            .collect();
        let checks = self.conds(txn.checks);
        if checks.len() > MAX_TXN_OPS || writes.len() > MAX_TXN_OPS {
            return Err(StoreError::Io(format!(
                "a transaction of {} checks and {} writes exceeds etcd's {MAX_TXN_OPS} operations",
                checks.len(),
                writes.len()
            )));
        }
        let started = std::time::Instant::now();
        let result = self
            .block(self.inner.commit(checks, &writes, &[]))
            .map(drop);
        self.inner
            .observe(|o| o.request("txn", started.elapsed(), outcome_of(&result)));
        result
    }

    /// One page of records rewritten in one etcd transaction, fenced against any change since
    /// the page was read (a record changed since, even back to the same bytes, or deleted, is a
    /// conflict). With a `deletion_mark` the fence is two compares — no key in the span of the
    /// rewritten records changed or appeared after the read's revision, and neither did the
    /// mark, which every deletion writes (a deleted record is no longer in the span) — and, when
    /// they fail, the same transaction once more fenced by each rewritten record's own revision
    /// (a change elsewhere in the span or a deletion elsewhere in the configuration then costs
    /// a read of what failed and one more transaction, not a re-read of the page). Without a
    /// mark, by each record's own revision. etcd evaluates every compare as a read of its keys:
    /// one compare over the span costs much less than one per record.
    ///
    /// The transaction also reads the next page of the range, so that a pass over a range costs
    /// one round trip per page instead of two: the next call for the page right after this one
    /// (same range, same limit, within a second) uses it instead of reading again. The records
    /// it holds are as of this commit, and fenced by its revision when rewritten; a record added
    /// to the range after that commit outside the rewritten span is the same as one added just
    /// after a fresh read — not part of this pass (rekey-internal, the one caller, rewraps only
    /// records that existed when it switched generations).
    fn rewrite_range(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        deletion_mark: Option<&[u8]>,
        rewrite: Rewrite<'_>,
        then: Then<'_>,
    ) -> Result<RangeRewrite, StoreError> {
        let full_prefix = self.key(prefix);
        let start = match start_after {
            Some(a) => [self.key(a).as_slice(), &[0]].concat(),
            None => full_prefix.clone(),
        };
        let end = ekm_core::store::prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        let limit = i64::try_from(limit.clamp(1, MAX_TXN_OPS)).unwrap_or(1);
        let strip = self.inner.opts.prefix.len();
        let (page, read_at) = match self.inner.take_read_ahead(&start, &end, limit) {
            // An empty window short of the range's end says nothing of what lies after it.
            Some(p) if !p.kvs.is_empty() || p.window_end == end => (p.kvs, p.revision),
            _ => self.block(self.inner.range_at(start.clone(), end.clone(), limit))?,
        };
        let mut out = RangeRewrite {
            seen: page.len(),
            last_key: page.last().map(|(k, _, _)| k[strip..].to_vec()),
            rewritten: 0,
        };
        let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        // Each rewritten record's own revision: the fence without a mark, and the fallback
        // when the span fence fails.
        let mut per_record: Vec<(Vec<u8>, Cond)> = Vec::new();
        let mut span: Option<(&[u8], &[u8])> = None;
        for (k, v, revision) in &page {
            if let Some(new) = rewrite(&k[strip..], v).map_err(StoreError::Aborted)? {
                per_record.push((k.clone(), Cond::ModRevision(*revision)));
                span = Some((span.map_or(k.as_slice(), |s| s.0), k.as_slice()));
                writes.push((k.clone(), Some(new)));
                out.rewritten += 1;
            }
        }
        let by_span = match (deletion_mark, span) {
            (Some(mark), Some((first, last))) => Some(vec![
                (
                    first.to_vec(),
                    Cond::NotChangedAfter(Some([last, &[0]].concat()), read_at),
                ),
                (self.key(mark), Cond::NotChangedAfter(None, read_at)),
            ]),
            _ => None,
        };
        let extra = then(&out);
        let extra_conds = self.conds(extra.checks);
        for w in extra.writes {
            let (k, v) = match w {
                Write::Put(k, v) => (self.key(&k), Some(v)),
                Write::Delete(k) => (self.key(&k), None),
            };
            // etcd refuses a key twice: the last write wins, as in `commit`.
            match writes.iter_mut().find(|(wk, _)| *wk == k) {
                Some(slot) => slot.1 = v,
                None => writes.push((k, v)),
            }
        }
        let conds: Vec<(Vec<u8>, Cond)> = match &by_span {
            Some(fence) => fence.iter().chain(&extra_conds).cloned().collect(),
            None => per_record.iter().chain(&extra_conds).cloned().collect(),
        };
        // A span fence fails on any change in the span or any deletion in the configuration,
        // not only on one of this page's records (a key created or deleted elsewhere while a
        // busy volume churns): then the page is tried once more fenced record by record, on the
        // same read, before the caller reads it again.
        let fallback: Option<Vec<(Vec<u8>, Cond)>> = by_span
            .is_some()
            .then(|| per_record.into_iter().chain(extra_conds).collect());
        let longest = fallback.as_ref().map_or(conds.len(), Vec::len);
        if longest > MAX_TXN_OPS || writes.len() > MAX_TXN_OPS {
            return Err(StoreError::Io(format!(
                "a rewrite of {longest} checks and {} writes exceeds etcd's {MAX_TXN_OPS} operations",
                writes.len()
            )));
        }
        // The next page, read by the same transaction when there may be one and it fits.
        let next = match (page.first(), page.last()) {
            (Some((first, _, _)), Some((last, _, _))) if writes.len() < MAX_TXN_OPS => Some((
                [last.as_slice(), &[0]].concat(),
                window_end(first, last, &end),
            )),
            _ => None,
        };
        let reads: Vec<TxnOp> = next
            .iter()
            .map(|(n, window)| {
                let opts = GetOptions::new()
                    .with_range(window.clone())
                    .with_limit(limit);
                TxnOp::get(n.clone(), Some(opts))
            })
            .collect();
        let started = std::time::Instant::now();
        let resp = match fallback {
            None => self.block(self.inner.commit(conds, &writes, &reads)),
            Some(per_record) => {
                let first = self.block(self.inner.commit(conds, &writes, &reads));
                match first {
                    // The span or the mark (the first two checks) failed; a failed check of the
                    // caller's (the job's fence) would fail again.
                    Err(StoreError::Conflict(i)) if i < 2 => {
                        self.block(self.inner.commit(per_record, &writes, &reads))
                    }
                    other => other,
                }
            }
        };
        self.inner
            .observe(|o| o.request("txn", started.elapsed(), outcome_of(&resp)));
        let resp = resp?;
        if let (Some((next, window_end)), Some(resp)) = (next, resp) {
            let revision = resp.header().map(|h| h.revision());
            if let (Some(TxnOpResponse::Get(g)), Some(revision)) =
                (resp.op_responses().last(), revision)
            {
                let kvs = g
                    .kvs()
                    .iter()
                    .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()))
                    .collect();
                self.inner.put_read_ahead(ReadAhead {
                    start: next,
                    end,
                    limit,
                    window_end,
                    kvs,
                    revision,
                    at: std::time::Instant::now(),
                });
            }
        }
        Ok(out)
    }

    fn engine_name(&self) -> &'static str {
        "etcd"
    }

    fn max_ops(&self) -> Option<usize> {
        Some(MAX_TXN_OPS)
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn watch(&self, prefix: &[u8], on_change: ChangeCallback) -> Result<(), StoreError> {
        // Start from the current revision so nothing committed after this call is missed.
        let revision = self.current_revision(prefix)?;
        self.watch_with(prefix, revision + 1, false, on_change);
        Ok(())
    }

    fn watch_deletes(&self, prefix: &[u8], on_change: ChangeCallback) -> Result<(), StoreError> {
        let revision = self.current_revision(prefix)?;
        self.watch_with(prefix, revision + 1, true, on_change);
        Ok(())
    }

    fn put_ephemeral(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let key = self.key(key);
        self.inner
            .ephemeral
            .lock()
            .insert(key.clone(), value.to_vec());
        let lease = *self.inner.lease.lock();
        let inner = self.inner.clone();
        let value = value.to_vec();
        match lease {
            // The keeper puts it as soon as it holds a lease.
            None => Ok(()),
            Some(id) => self.block(async move { inner.put_leased(&key, &value, id).await }),
        }
    }
}

impl Inner {
    /// Commits `conds` → `writes`, then `reads`, in one transaction. Returns the answer when
    /// the transaction ran (`None` when an unknown outcome was resolved by reading back).
    ///
    /// A transaction whose compares failed only because a key compared by revision
    /// ([`Cond::Unchanged`]) was rewritten with the same bytes is tried once more with those
    /// values compared: a check fails only when what it says does not hold.
    async fn commit(
        &self,
        checks: Vec<(Vec<u8>, Cond)>,
        writes: &[(Vec<u8>, Option<Vec<u8>>)],
        reads: &[TxnOp],
    ) -> Result<Option<TxnResponse>, StoreError> {
        let ops: Vec<TxnOp> = writes
            .iter()
            .map(|(k, v)| match v {
                Some(v) => TxnOp::put(k.clone(), v.clone(), None),
                None => TxnOp::delete(k.clone(), None),
            })
            .chain(reads.iter().cloned())
            .collect();
        let by_revision = checks.iter().any(|(_, c)| matches!(c, Cond::Unchanged(..)));
        let mut by_value = false;
        loop {
            let compares = checks.iter().map(|(k, c)| c.compare(k, by_value)).collect();
            match self.commit_with(compares, &ops, writes).await {
                Ok(Some(resp)) => {
                    if let Some(revision) = resp.header().map(|h| h.revision()) {
                        for (k, v) in writes {
                            if let Some(v) = v {
                                self.remember(k, v, revision);
                            }
                        }
                    }
                    return Ok(Some(resp));
                }
                Err(StoreError::Conflict(_)) if by_revision && !by_value => {
                    match self.first_failing(&checks).await {
                        Some(i) => return Err(StoreError::Conflict(i)),
                        None => by_value = true,
                    }
                }
                Err(StoreError::Conflict(_)) => {
                    return Err(StoreError::Conflict(
                        self.first_failing(&checks).await.unwrap_or(0),
                    ));
                }
                other => return other,
            }
        }
    }

    /// One commit of `compares` → `ops`, failing over between members; an unknown outcome is
    /// resolved by reading back `writes`. A failed compare is `Conflict(0)`: the caller finds
    /// which check failed.
    async fn commit_with(
        &self,
        compares: Vec<Compare>,
        ops: &[TxnOp],
        writes: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<Option<TxnResponse>, StoreError> {
        let call = |mut c: Client| {
            let txn = Txn::new().when(compares.clone()).and_then(ops.to_vec());
            async move { c.txn(txn).await }
        };
        let mut last = String::new();
        let mut outcome_unknown = false;
        for _ in 0..=self.opts.endpoints.len() {
            let idx = self.current.load(Ordering::SeqCst);
            match self.call_once(idx, &call).await {
                Ok(resp) if resp.succeeded() => return Ok(Some(resp)),
                // After an unknown outcome, the retry's checks may fail against the first
                // attempt's own writes, applied late: then it did commit.
                Ok(_) if outcome_unknown && !writes.is_empty() && self.applied(writes).await? => {
                    return Ok(None);
                }
                Ok(_) => return Err(StoreError::Conflict(0)),
                Err(CallError::Refused(m)) => return Err(StoreError::Io(format!("etcd: {m}"))),
                Err(CallError::NotSent(m)) => {
                    last = m;
                    self.rotate(idx);
                }
                Err(CallError::Unknown(m)) => {
                    outcome_unknown = true;
                    // The one rule: an unknown outcome is resolved by reading, never by a blind
                    // retry. Applied: done. Not applied (as read from a member with quorum):
                    // the commit is tried again; its checks guard against a late apply.
                    last = m;
                    self.rotate(idx);
                    match self.applied(writes).await {
                        Ok(true) if !writes.is_empty() => return Ok(None),
                        Ok(_) => {}
                        Err(e) => {
                            return Err(StoreError::Io(format!(
                                "etcd: the outcome of a write is unknown ({last}) and could not be read back: {e}"
                            )));
                        }
                    }
                }
            }
        }
        Err(StoreError::Io(format!(
            "etcd cluster not reachable for writes (no quorum or every member down): {last}"
        )))
    }

    /// The index of the first check that does not hold now (what `Conflict` carries); `None`
    /// when every check holds (a `Cond::Unchanged` whose key was rewritten with the same bytes,
    /// or a change undone since the commit).
    async fn first_failing(&self, checks: &[(Vec<u8>, Cond)]) -> Option<usize> {
        for (i, (k, c)) in checks.iter().enumerate() {
            let holds = match c {
                Cond::ModRevision(r) => match self.range(k.clone(), Vec::new(), 1).await {
                    Ok(kvs) => kvs.first().map(|kv| kv.2) == Some(*r),
                    Err(_) => false,
                },
                Cond::NotChangedAfter(end, r) => {
                    let end = end.clone().unwrap_or_default();
                    match self.range(k.clone(), end, 0).await {
                        Ok(kvs) => kvs.iter().all(|kv| kv.2 <= *r),
                        Err(_) => false,
                    }
                }
                Cond::Check(check) => {
                    let Ok(v) = self.get(k.clone()).await else {
                        return Some(i);
                    };
                    match check {
                        Check::Absent(_) => v.is_none(),
                        Check::Present(_) => v.is_some(),
                        Check::Equals(_, want) => v.as_ref() == Some(want),
                    }
                }
                Cond::Unchanged(want, _) => match self.get(k.clone()).await {
                    Ok(v) => v.as_ref() == Some(want),
                    Err(_) => false,
                },
            };
            if !holds {
                return Some(i);
            }
        }
        None
    }

    /// Up to `limit` records of `[start, end)` (only `start` when `end` is empty), in key
    /// order, with their revisions.
    async fn range(&self, start: Vec<u8>, end: Vec<u8>, limit: i64) -> Result<Vec<Kv>, StoreError> {
        self.range_at(start, end, limit).await.map(|(kvs, _)| kvs)
    }

    /// As [`Inner::range`], with the revision the records were read at.
    async fn range_at(
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

    /// The page read ahead for exactly this range and limit, if it is fresh, with the end of
    /// the window it was read in. Every page of the range is forgotten: only the call right
    /// after the one that read a page may use it, so a page left by an earlier pass (whose
    /// last call put it) or skipped by a call that could not read ahead (an unknown outcome)
    /// is never taken for what the range holds now.
    fn take_read_ahead(&self, start: &[u8], end: &[u8], limit: i64) -> Option<ReadAhead> {
        let mut pages = self.read_ahead.lock();
        pages.retain(|p| p.at.elapsed() < READ_AHEAD_FOR);
        let i = pages
            .iter()
            .position(|p| p.start == start && p.end == end && p.limit == limit);
        let taken = i.map(|i| pages.swap_remove(i));
        pages.retain(|p| p.end != end);
        taken
    }

    fn put_read_ahead(&self, page: ReadAhead) {
        let mut pages = self.read_ahead.lock();
        pages.retain(|p| {
            p.at.elapsed() < READ_AHEAD_FOR && !(p.start == page.start && p.end == page.end)
        });
        // One per rewrite pass in progress; a handful at most.
        if pages.len() >= 16 {
            pages.remove(0);
        }
        pages.push(page);
    }

    async fn watch_loop(
        &self,
        prefix: Vec<u8>,
        strip: usize,
        mut from: i64,
        deletes_only: bool,
        on_change: ChangeCallback,
    ) {
        loop {
            let idx = self.current.load(Ordering::SeqCst);
            let client = match self.client(idx).await {
                Ok(c) => c,
                Err(_) => {
                    self.rotate(idx);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut client = client;
            let mut opts = WatchOptions::new().with_prefix().with_start_revision(from);
            if deletes_only {
                // Progress notifications move `from` on while only puts happen, so that a
                // restarted watch does not replay (or find compacted) the history they made.
                opts = opts
                    .with_filters([WatchFilterType::NoPut])
                    .with_progress_notify();
            }
            let Ok(mut stream) = client.watch(prefix.clone(), Some(opts)).await else {
                *self.clients[idx].lock().await = None;
                self.rotate(idx);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            loop {
                match stream.message().await {
                    Ok(Some(resp)) => {
                        if resp.canceled() {
                            if resp.compact_revision() > from {
                                // Compacted past `from`: the changes in between are gone.
                                // The watcher rebuilds from the store; changes from the
                                // oldest revision still kept follow.
                                from = resp.compact_revision();
                                self.observe(|o| o.watch_restart("compacted"));
                                on_change(Change::Resync);
                            } else {
                                // Cancelled for another reason (the member is shutting
                                // down, ...): watch again, through another member, after a
                                // pause rather than in a tight loop.
                                *self.clients[idx].lock().await = None;
                                self.rotate(idx);
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            break;
                        }
                        if resp.events().is_empty() && !resp.created() && deletes_only {
                            // A progress notification: every change up to its revision has
                            // been delivered.
                            if let Some(h) = resp.header() {
                                from = from.max(h.revision() + 1);
                            }
                            continue;
                        }
                        if let (Some(h), Some(last)) = (resp.header(), resp.events().last()) {
                            let behind = h.revision() - last.kv().map_or(0, |kv| kv.mod_revision());
                            self.observe(|o| o.watch_revisions_behind(behind.max(0) as u64));
                        }
                        for ev in resp.events() {
                            let Some(kv) = ev.kv() else { continue };
                            if kv.key().len() < strip {
                                continue;
                            }
                            let key = kv.key()[strip..].to_vec();
                            from = from.max(kv.mod_revision() + 1);
                            on_change(match ev.event_type() {
                                EventType::Put => Change::Put(key, kv.value().to_vec()),
                                EventType::Delete => Change::Delete(key),
                            });
                        }
                    }
                    _ => {
                        self.observe(|o| o.watch_restart("error"));
                        *self.clients[idx].lock().await = None;
                        self.rotate(idx);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::window_end;

    #[test]
    fn a_window_starts_past_the_page_and_stays_in_the_range() {
        let end = b"r0".to_vec();
        let w = window_end(b"r/\x10\x00", b"r/\x10\x01", &end);
        assert!(w.as_slice() > &b"r/\x10\x01"[..]);
        assert!(w < end);
        // One and a half spans past the last key, on the eight bytes after the common prefix.
        assert_eq!(
            w,
            [&b"r/\x10"[..], &0x0280_0000_0000_0000u64.to_be_bytes()].concat()
        );
        // 1.5 spans past the last key carry into the common prefix (0xf0 + 0x168 = 0x258).
        assert_eq!(
            window_end(b"r/\x10\x00", b"r/\x10\xf0", &end),
            [&b"r/\x12"[..], &0x5800_0000_0000_0000u64.to_be_bytes()].concat()
        );
        // A one-key page, and a window that would pass the range's end: the range's end.
        assert_eq!(window_end(b"r/a", b"r/a", &end), end);
        assert_eq!(window_end(b"r/\x00", b"r/\xf0", &end), end);
    }
}
