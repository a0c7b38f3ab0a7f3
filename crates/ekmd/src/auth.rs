//! HTTP basic authentication: a constant-time check of the admin credentials, and a per-client
//! throttle on failed attempts.
//!
//! The throttle counts failed attempts (wrong credentials; a request *without* credentials
//! guesses nothing and is not counted) per client IP. The first [`FREE_FAILURES`] failures
//! cost nothing; each further one locks the address out for an exponentially growing delay
//! (0.25 s, 0.5 s, 1 s, ... capped at [`MAX_LOCKOUT`]). While locked out, a request that
//! carries credentials is answered 429 with `Retry-After` *without checking them*, so guessing
//! is held to about one attempt per [`MAX_LOCKOUT`] per address. A success, or
//! [`FORGET_AFTER`] without failures, forgets the address. The map holds at most
//! [`MAX_CLIENTS`] addresses: when full, forgotten entries are evicted first, then the one
//! whose last failure is oldest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use parking_lot::Mutex;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::AppState;

/// Failures from one address before lock-outs start.
pub const FREE_FAILURES: u32 = 3;
/// Longest lock-out after a failure.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(4);
/// An address without failures for this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Most addresses tracked at once.
pub const MAX_CLIENTS: usize = 4096;
const FIRST_LOCKOUT: Duration = Duration::from_millis(250);

/// What the credentials of a request are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// No (basic) credentials at all.
    Missing,
    /// The admin's.
    Valid,
    /// Something else.
    Invalid,
}

/// Checks the `Authorization` header against the admin credentials in constant time.
pub fn check(state: &AppState, headers: &HeaderMap) -> Credentials {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Credentials::Missing;
    };
    let Some(b64) = v.to_str().ok().and_then(|v| {
        v.strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
    }) else {
        return Credentials::Missing;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return Credentials::Invalid;
    };
    // The decoded header holds the password: wiped when this returns.
    let raw = zeroize::Zeroizing::new(raw);
    let Some(colon) = raw.iter().position(|b| *b == b':') else {
        return Credentials::Invalid;
    };
    let (user, pass) = (&raw[..colon], &raw[colon + 1..]);
    // Both compared, always: no early exit on a wrong user name.
    let ok = user.ct_eq(state.admin_user.as_bytes())
        & pass.ct_eq(state.admin_password.expose_secret().as_bytes());
    if bool::from(ok) {
        Credentials::Valid
    } else {
        Credentials::Invalid
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Failed-login bookkeeping per client address (bounded, in memory).
#[derive(Debug, Default)]
pub struct Throttle {
    clients: Mutex<HashMap<IpAddr, Entry>>,
    /// `clients.len()`, readable without the lock: every authenticated request asks the
    /// throttle twice, and almost always nobody is tracked.
    tracked: std::sync::atomic::AtomicUsize,
}

impl Throttle {
    /// An empty throttle.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long `ip` is still locked out, if it is.
    pub fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.tracked.load(std::sync::atomic::Ordering::Acquire) == 0 {
            return None;
        }
        let map = self.clients.lock();
        let until = map.get(&ip)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Records a failed attempt from `ip`; returns the lock-out it now has.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.clients.lock();
        if !map.contains_key(&ip) && map.len() >= MAX_CLIENTS {
            map.retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
            if map.len() >= MAX_CLIENTS {
                if let Some(oldest) = map.iter().min_by_key(|(_, e)| e.last).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        let e = map.entry(ip).or_insert(Entry {
            failures: 0,
            last: now,
            locked_until: None,
        });
        if now.duration_since(e.last) >= FORGET_AFTER {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last = now;
        let lockout = lockout_after(e.failures);
        e.locked_until = lockout.map(|d| now + d);
        self.tracked
            .store(map.len(), std::sync::atomic::Ordering::Release);
        lockout
    }

    /// Forgets `ip` (it logged in).
    pub fn succeeded(&self, ip: IpAddr) {
        if self.tracked.load(std::sync::atomic::Ordering::Acquire) == 0 {
            return;
        }
        let mut map = self.clients.lock();
        map.remove(&ip);
        self.tracked
            .store(map.len(), std::sync::atomic::Ordering::Release);
    }

    /// Addresses tracked (for tests).
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The lock-out after the `failures`-th failure in a row.
pub fn lockout_after(failures: u32) -> Option<Duration> {
    let over = failures.checked_sub(FREE_FAILURES)?.checked_sub(1);
    let over = over?;
    let d = FIRST_LOCKOUT.saturating_mul(1u32 << over.min(16));
    Some(d.min(MAX_LOCKOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_grow_and_are_capped() {
        assert_eq!(lockout_after(1), None);
        assert_eq!(lockout_after(FREE_FAILURES), None);
        assert_eq!(lockout_after(FREE_FAILURES + 1), Some(FIRST_LOCKOUT));
        assert_eq!(lockout_after(FREE_FAILURES + 2), Some(FIRST_LOCKOUT * 2));
        assert_eq!(lockout_after(1000), Some(MAX_LOCKOUT));
        assert_eq!(lockout_after(u32::MAX), Some(MAX_LOCKOUT));
    }

    #[test]
    fn the_map_stays_bounded() {
        let t = Throttle::new();
        let now = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 100) {
            t.failed(IpAddr::from(i.to_be_bytes()), now);
        }
        assert_eq!(t.len(), MAX_CLIENTS);
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.failed(ip, now), None);
        }
        assert!(t.failed(ip, now).is_some());
        assert!(t.locked(ip, now).is_some());
        t.succeeded(ip);
        assert!(t.locked(ip, now).is_none());
    }
}
