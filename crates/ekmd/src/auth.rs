//! HTTP basic authentication: a constant-time check of the admin credentials, and a throttle on
//! failed attempts, per client address and node-wide.
//!
//! The throttle counts failed attempts (wrong credentials; a request *without* credentials
//! guesses nothing and is not counted) per client IP. The first [`FREE_FAILURES`] failures
//! cost nothing; each further one locks the address out for an exponentially growing delay
//! (0.25 s, 0.5 s, 1 s, ... capped at [`MAX_LOCKOUT`]). While locked out, a request that
//! carries credentials is answered 429 with `Retry-After` *without checking them*, so guessing
//! is held to about one attempt per [`MAX_LOCKOUT`] per address. A success, or
//! [`FORGET_AFTER`] without failures, forgets the address. The map holds at most
//! [`MAX_CLIENTS`] addresses: when full, forgotten entries are evicted first, then the oldest
//! *unlocked* one; a locked address stays locked until its time is up.
//!
//! Node-wide, at most [`GLOBAL_BURST`] failed checks at once and [`GLOBAL_FAILURES_PER_SEC`]
//! a second on average are made, from all addresses together: past that, credentials are
//! refused unchecked (429) except from an address that logged in within [`FORGET_AFTER`], so a
//! flood from many addresses neither guesses faster nor locks out the admin's own client.
//!
//! | bound | value | enforced in |
//! |---|---|---|
//! | guesses per address | 3 free, then one per lock-out (≤ 4 s) | [`Throttle::failed`], [`Throttle::locked`] |
//! | guesses per node | 100 at once, 10/s sustained | [`Throttle::failed`] (`spend_global`) |
//! | memory | 4,096 addresses + 256 good ones | [`Throttle::failed`], [`Throttle::succeeded`] |
//!
//! Owns: the credential check and the throttle.
//! Must never: check credentials of a locked-out address, evict a locked address, or compare
//! secrets in time that depends on their contents or lengths.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use parking_lot::{Mutex, RwLock};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
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
/// Failed logins checked per second across all addresses, on average (the node-wide bound).
pub const GLOBAL_FAILURES_PER_SEC: f64 = 10.0;
/// Failed logins checked at once across all addresses before the node-wide bound applies.
pub const GLOBAL_BURST: f64 = 100.0;
/// Most addresses remembered as having logged in (exempt from the node-wide bound).
pub const MAX_GOOD: usize = 256;
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
    if same_credentials(
        (user, pass),
        (
            state.admin_user.as_bytes(),
            state.admin_password.expose_secret().as_bytes(),
        ),
    ) {
        Credentials::Valid
    } else {
        Credentials::Invalid
    }
}

/// Whether `given` (user, password) is `want`: their SHA-256 digests compared in constant
/// time, both always, so the time taken depends neither on the lengths nor on where they
/// differ, and there is no early exit on a wrong user name.
fn same_credentials(given: (&[u8], &[u8]), want: (&[u8], &[u8])) -> bool {
    let digest = |b: &[u8]| zeroize::Zeroizing::new(<[u8; 32]>::from(Sha256::digest(b)));
    let ok = digest(given.0).ct_eq(&*digest(want.0)) & digest(given.1).ct_eq(&*digest(want.1));
    bool::from(ok)
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Why a request with credentials is refused without checking them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address is locked out.
    LockedOut,
    /// The node-wide bound on failed logins is reached (and the address has not logged in
    /// recently).
    RateLimited,
}

/// The node-wide failed-login budget: a bucket of [`GLOBAL_BURST`] checks refilled at
/// [`GLOBAL_FAILURES_PER_SEC`].
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Failed-login bookkeeping per client address (bounded, in memory), and the node-wide bound.
#[derive(Debug)]
pub struct Throttle {
    clients: Mutex<HashMap<IpAddr, Entry>>,
    /// `clients.len()`, readable without the lock: every authenticated request asks the
    /// throttle twice, and almost always nobody is tracked.
    tracked: AtomicUsize,
    global: Mutex<Bucket>,
    /// Until when (nanoseconds after `epoch`) the node-wide budget is spent; 0: it is not.
    spent_until: AtomicU64,
    epoch: Instant,
    /// Addresses that logged in within [`FORGET_AFTER`] (at most [`MAX_GOOD`]): the node-wide
    /// bound does not refuse them, so a flood from elsewhere does not lock the admin out.
    good: RwLock<HashMap<IpAddr, Instant>>,
}

impl Default for Throttle {
    fn default() -> Self {
        let now = Instant::now();
        Throttle {
            clients: Mutex::default(),
            tracked: AtomicUsize::new(0),
            global: Mutex::new(Bucket {
                tokens: GLOBAL_BURST,
                last: now,
            }),
            spent_until: AtomicU64::new(0),
            epoch: now,
            good: RwLock::default(),
        }
    }
}

impl Throttle {
    /// An empty throttle.
    pub fn new() -> Self {
        Self::default()
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// How long a request with credentials from `ip` must still wait, and why, if it is
    /// refused unchecked.
    pub fn locked(&self, ip: IpAddr, now: Instant) -> Option<(Duration, Refusal)> {
        if self.tracked.load(Ordering::Acquire) > 0 {
            let map = self.clients.lock();
            if let Some(until) = map.get(&ip).and_then(|e| e.locked_until) {
                if until > now {
                    return Some((until - now, Refusal::LockedOut));
                }
            }
        }
        let spent = self.spent_until.load(Ordering::Acquire);
        let at = self.nanos(now);
        if spent > at && !self.good.read().contains_key(&ip) {
            return Some((Duration::from_nanos(spent - at), Refusal::RateLimited));
        }
        None
    }

    /// Records a failed attempt from `ip`; returns the lock-out it now has.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        self.spend_global(now);
        let mut map = self.clients.lock();
        if !map.contains_key(&ip) && map.len() >= MAX_CLIENTS {
            map.retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
        }
        if !map.contains_key(&ip) && map.len() >= MAX_CLIENTS {
            // A locked address is never evicted (that would lift its lock-out): the oldest
            // unlocked one makes room; when every address is locked, `ip` goes untracked and
            // only the node-wide bound holds it.
            let unlocked = map
                .iter()
                .filter(|(_, e)| e.locked_until.is_none_or(|u| u <= now))
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| *k);
            match unlocked {
                Some(k) => {
                    map.remove(&k);
                }
                None => return None,
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
        self.tracked.store(map.len(), Ordering::Release);
        lockout
    }

    /// Takes one check from the node-wide budget; when it is spent, refuses further
    /// unchecked until the next check is due.
    fn spend_global(&self, now: Instant) {
        let mut b = self.global.lock();
        let refill = now.saturating_duration_since(b.last).as_secs_f64() * GLOBAL_FAILURES_PER_SEC;
        b.tokens = (b.tokens + refill).min(GLOBAL_BURST);
        b.last = now;
        b.tokens -= 1.0;
        if b.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - b.tokens) / GLOBAL_FAILURES_PER_SEC);
            self.spent_until
                .store(self.nanos(now + wait), Ordering::Release);
        }
    }

    /// Forgets `ip`'s failures (it logged in), and exempts it from the node-wide bound for
    /// [`FORGET_AFTER`].
    pub fn succeeded(&self, ip: IpAddr, now: Instant) {
        // Almost always already there and fresh: a shared read, no write lock per request.
        let fresh = |t: &Instant| now.saturating_duration_since(*t) < FORGET_AFTER / 2;
        if !self.good.read().get(&ip).is_some_and(fresh) {
            let mut good = self.good.write();
            if !good.contains_key(&ip) && good.len() >= MAX_GOOD {
                good.retain(|_, t| now.duration_since(*t) < FORGET_AFTER);
                if good.len() >= MAX_GOOD {
                    if let Some(k) = good.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                        good.remove(&k);
                    }
                }
            }
            good.insert(ip, now);
        }
        if self.tracked.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut map = self.clients.lock();
        map.remove(&ip);
        self.tracked.store(map.len(), Ordering::Release);
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
        t.succeeded(ip, now);
        assert!(t.locked(ip, now).is_none());
    }

    #[test]
    fn a_locked_address_stays_locked_when_other_addresses_fill_the_table() {
        let t = Throttle::new();
        let t0 = Instant::now();
        let victim = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..=FREE_FAILURES + 4 {
            t.failed(victim, t0);
        }
        let (wait, why) = t.locked(victim, t0).expect("locked");
        assert_eq!(why, Refusal::LockedOut);
        // One failure each from as many other addresses as the table holds, spread over less
        // than the lock-out (the node-wide bound would refuse most of them: count anyway).
        let mut now = t0;
        for i in 0..(MAX_CLIENTS as u32 + 10) {
            now = t0 + Duration::from_micros(u64::from(i) + 1);
            t.failed(IpAddr::from((0x0b00_0000 + i).to_be_bytes()), now);
        }
        assert_eq!(
            t.locked(victim, now).map(|l| l.1),
            Some(Refusal::LockedOut),
            "evicting the locked address lifted its lock-out"
        );
        assert!(t.len() <= MAX_CLIENTS);
        // Its time up, it is free again.
        assert_ne!(
            t.locked(victim, t0 + wait).map(|l| l.1),
            Some(Refusal::LockedOut)
        );
    }

    #[test]
    fn the_node_wide_bound_holds_a_flood_from_many_addresses_but_not_a_known_good_one() {
        let t = Throttle::new();
        let t0 = Instant::now();
        let admin = IpAddr::from([192, 168, 1, 10]);
        t.succeeded(admin, t0);
        // Three wrong passwords from each of 4,096 addresses within one second: only the
        // checks the throttle lets through are guesses.
        let mut checked = 0u32;
        for round in 0..3u32 {
            for i in 0..4096u32 {
                let now = t0 + Duration::from_micros(u64::from(round * 4096 + i) * 80);
                let ip = IpAddr::from((0x0c00_0000 + i).to_be_bytes());
                if t.locked(ip, now).is_none() {
                    checked += 1;
                    t.failed(ip, now);
                }
            }
        }
        // ~1 s of flood: the burst and about 10 more.
        assert!(
            checked <= GLOBAL_BURST as u32 + 2 * GLOBAL_FAILURES_PER_SEC as u32,
            "{checked} password checks made"
        );
        // While the flood goes on, a new address is refused unchecked; the admin's is not.
        let later = t0 + Duration::from_micros(3 * 4096 * 80);
        let stranger = IpAddr::from([172, 16, 0, 9]);
        assert_eq!(
            t.locked(stranger, later).map(|l| l.1),
            Some(Refusal::RateLimited)
        );
        assert_eq!(
            t.locked(admin, later),
            None,
            "the admin's address is not locked out"
        );
    }

    #[test]
    fn credentials_match_only_when_user_and_password_both_match() {
        let want: (&[u8], &[u8]) = (b"admin", b"pw");
        assert!(same_credentials((b"admin", b"pw"), want));
        assert!(!same_credentials((b"admin", b"pwx"), want));
        assert!(!same_credentials((b"admin", b"p"), want));
        assert!(!same_credentials((b"admi", b"pw"), want));
        assert!(!same_credentials((b"", b""), want));
    }
}
