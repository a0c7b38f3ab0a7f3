//! Connection bounds of the TCP listeners (REST, KMIP): at most `max` connections open, the
//! least recently active closed to make room for a new one, and any connection idle past
//! `idle` closed.
//!
//! ```text
//! accept ─► Limiter::admit ─► full? ─► close the connection idle the longest (evicted)
//!              │                        (half-open, or idle keep-alive: a new client wins)
//!              ▼
//!        Limited<TcpStream> ─► TLS ─► HTTP / KMIP     every byte read or written marks it active
//!              ▲
//!        the sweeper (every second) closes what has been idle past `idle`
//! ```
//!
//! A closed connection's next read or write fails, so its task ends and the descriptor is
//! released; until then it still counts, and once `max / CLOSING_SLACK` closed connections
//! are waiting for their tasks a new connection is refused at once. So each listener holds at
//! most `max + max / 4` descriptors, and ekmd's stay under `1.25 × (rest max + kmip max)` plus
//! a few dozen of its own whatever clients do; the defaults (256 each) fit a 1,024 open-file
//! soft limit.
//!
//! Owns: the per-listener count of open connections, eviction, the idle timeout.
//! Must never: let a listener hold more than `max` connections it has admitted, or close a
//! connection that moved a byte within `idle` unless the listener is full.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::Metrics;

/// Default most connections open on one listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// A listener holds at most `max / CLOSING_SLACK` connections beyond `max` that it closed
/// and whose tasks have not yet let go of them.
pub const CLOSING_SLACK: usize = 4;

/// One admitted connection's shared state.
#[derive(Debug)]
struct Slot {
    /// Milliseconds after the limiter's epoch of the last byte moved.
    last: AtomicU64,
    closed: AtomicBool,
    waker: AtomicWaker,
}

impl Slot {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// The bound of one listener.
#[derive(Debug)]
pub struct Limiter {
    name: &'static str,
    max: usize,
    idle: Duration,
    epoch: Instant,
    next: AtomicU64,
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    metrics: Option<Arc<Metrics>>,
}

impl Limiter {
    /// A bound of `max` connections (at least 1), each closed after `idle` without a byte,
    /// for the listener called `name` (the metrics' `listener` label).
    pub fn new(
        name: &'static str,
        max: usize,
        idle: Duration,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<Limiter> {
        Arc::new(Limiter {
            name,
            max: max.max(1),
            idle,
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            slots: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Admits `stream`, first closing the connection idle the longest when the listener is
    /// full. A closed connection counts until its task has dropped it (its descriptor is
    /// released then); while more than [`CLOSING_SLACK`] of `max` are still closing, a new
    /// connection is refused instead (`None`: drop it), so the listener never holds more than
    /// `max + max / CLOSING_SLACK` descriptors.
    pub fn admit<S>(self: &Arc<Self>, stream: S) -> Option<Limited<S>> {
        let slot = Arc::new(Slot {
            last: AtomicU64::new(self.now_ms()),
            closed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = {
            let mut slots = self.slots.lock();
            let open = slots
                .values()
                .filter(|s| !s.closed.load(Ordering::Relaxed))
                .count();
            if slots.len() >= self.max + (self.max / CLOSING_SLACK).max(1) {
                drop(slots);
                self.count_closed("refused");
                return None;
            }
            let evicted = if open >= self.max {
                slots
                    .values()
                    .filter(|s| !s.closed.load(Ordering::Relaxed))
                    .min_by_key(|s| s.last.load(Ordering::Relaxed))
                    .cloned()
            } else {
                None
            };
            slots.insert(id, slot.clone());
            evicted
        };
        if let Some(e) = evicted {
            e.close();
            self.count_closed("evicted");
        }
        self.report_open();
        Some(Limited {
            inner: stream,
            slot,
            id,
            limiter: self.clone(),
        })
    }

    /// Connections held now (open, or closed and not yet dropped by their tasks).
    pub fn open(&self) -> usize {
        self.slots.lock().len()
    }

    /// Closes every connection idle past the timeout; returns how many. They stay counted
    /// until their tasks drop them.
    pub fn close_idle(&self) -> usize {
        let cutoff = self
            .now_ms()
            .saturating_sub(u64::try_from(self.idle.as_millis()).unwrap_or(u64::MAX));
        let idle: Vec<Arc<Slot>> = self
            .slots
            .lock()
            .values()
            .filter(|s| {
                !s.closed.load(Ordering::Relaxed) && s.last.load(Ordering::Relaxed) < cutoff
            })
            .cloned()
            .collect();
        for s in &idle {
            s.close();
            self.count_closed("idle");
        }
        idle.len()
    }

    /// Starts the task that applies the idle timeout every second (on the current runtime),
    /// for as long as the limiter lives.
    pub fn start_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(l) = weak.upgrade() else { return };
                l.close_idle();
            }
        });
    }

    fn release(&self, id: u64) {
        if self.slots.lock().remove(&id).is_some() {
            self.report_open();
        }
    }

    fn count_closed(&self, reason: &'static str) {
        if let Some(m) = &self.metrics {
            m.connection_closed(self.name, reason);
        }
    }

    fn report_open(&self) {
        if let Some(m) = &self.metrics {
            m.connections_open(self.name, self.slots.lock().len());
        }
    }
}

/// An admitted connection: its stream, and the slot that counts it until it is dropped.
#[derive(Debug)]
pub struct Limited<S> {
    inner: S,
    slot: Arc<Slot>,
    id: u64,
    limiter: Arc<Limiter>,
}

impl<S> Limited<S> {
    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Closes the connection (its next read or write fails); its place is freed when it is
    /// dropped.
    pub fn close(&self, reason: &'static str) {
        self.slot.close();
        self.limiter.count_closed(reason);
    }

    fn touched(&self) {
        self.slot
            .last
            .store(self.limiter.now_ms(), Ordering::Relaxed);
    }

    fn closed(&self, cx: &mut Context<'_>) -> bool {
        self.slot.waker.register(cx.waker());
        self.slot.closed.load(Ordering::Acquire)
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed by ekmd (idle, or making room for a new one)",
    )
}

impl<S> Drop for Limited<S> {
    fn drop(&mut self) {
        self.limiter.release(self.id);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touched();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.closed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touched();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The axum-server acceptor that admits each REST connection through a [`Limiter`] (before
/// TLS, so a half-open connection counts too).
#[derive(Debug, Clone)]
pub struct LimitAcceptor {
    limiter: Arc<Limiter>,
}

impl LimitAcceptor {
    /// Admits through `limiter`.
    pub fn new(limiter: Arc<Limiter>) -> Self {
        LimitAcceptor { limiter }
    }
}

impl<I, S> axum_server::accept::Accept<I, S> for LimitAcceptor {
    type Stream = Limited<I>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Limited<I>, S)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        std::future::ready(match self.limiter.admit(stream) {
            Some(s) => Ok((s, service)),
            // Dropped here: its descriptor is closed at once.
            None => Err(io::Error::other(
                "the listener is full of closing connections",
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_full_listener_closes_the_connection_idle_the_longest() {
        let l = Limiter::new("test", 2, Duration::from_secs(60), None);
        let (a, mut a_peer) = tokio::io::duplex(64);
        let (b, _b_peer) = tokio::io::duplex(64);
        let (c, _c_peer) = tokio::io::duplex(64);
        let mut a = l.admit(a).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let b = l.admit(b).unwrap();
        // a moves a byte: b is now the one idle the longest.
        tokio::time::sleep(Duration::from_millis(5)).await;
        a_peer.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 1];
        a.read_exact(&mut buf).await.unwrap();
        let mut c = l.admit(c).unwrap();
        let mut b = b;
        assert_eq!(
            b.read(&mut buf).await.unwrap_err().kind(),
            io::ErrorKind::ConnectionAborted
        );
        // Closed, b still counts until dropped: 2 open + 1 closing.
        assert_eq!(l.open(), 3);
        a.write_all(b"y").await.unwrap();
        c.write_all(b"z").await.unwrap();
        drop((a, b, c));
        assert_eq!(l.open(), 0);
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_and_its_pending_read_ends() {
        let l = Limiter::new("test", 10, Duration::from_millis(1), None);
        let (a, _peer) = tokio::io::duplex(64);
        let mut a = l.admit(a).unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            a.read(&mut buf).await.map_err(|e| e.kind())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(l.close_idle(), 1);
        assert_eq!(reader.await.unwrap(), Err(io::ErrorKind::ConnectionAborted));
        assert_eq!(l.open(), 0, "dropped by its task: released");
    }

    #[test]
    fn closing_connections_count_and_past_the_slack_new_ones_are_refused() {
        let l = Limiter::new("test", 4, Duration::from_secs(60), None);
        // Every one admitted evicts another, and none lets go: past max + max/4 the next is
        // refused, so descriptors stay bounded while evicted tasks are slow to notice.
        let held: Vec<_> = (0..20).filter_map(|i| l.admit(i)).collect();
        assert_eq!(held.len(), 4 + (4 / CLOSING_SLACK).max(1));
        assert_eq!(l.open(), held.len());
        drop(held);
        assert_eq!(l.open(), 0);
        assert!(l.admit(0).is_some());
    }
}
