//! Refused logins in the trail, bounded: one record at once for the first refusal of each
//! kind from an address in a window, one summary with a count for the rest at the window's end.
//!
//! ```text
//!  window (LOGIN_WINDOW, 60 s)          ───────────────────────────────►  end of window
//!  10.0.0.7  ✗ ──► record now           ✗ ✗ ✗ ... (counted)               ──► record, count 41
//!  10.0.0.8  ✗ ──► record now                                             (nothing more)
//!  the 65th address and beyond: counted together ───────────────────────► record, source "*"
//! ```
//!
//! So a flood of bad logins from any number of addresses costs at most
//! 4 × [`MAX_ADDRESSES`] + 2 records (and as many fsyncs) per window — a record at once and a
//! summary, for each of the two kinds, per address — not one per request.
//!
//! Owns: which refused logins become records, and the counts of the others.
//! Must never: lose the count of a refusal (the summary is written at the window's end or
//! when the next refusal finds the window over), or record the user name that was refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::record::Event;

/// How long one window of refused-login summaries lasts.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses recorded one by one per window; refusals from further addresses are summed up
/// under source `*`.
pub const MAX_ADDRESSES: usize = 64;

/// Refusals of one kind from one source in the current window.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    /// Refusals seen.
    seen: u64,
    /// Of them, already in a record.
    recorded: u64,
}

/// One source's refusals, by kind: `[wrong credentials, locked out]`.
type Kinds = [Counts; 2];

/// The counts of the current window.
#[derive(Debug)]
pub(super) struct Tally {
    started: Instant,
    by_source: HashMap<IpAddr, Kinds>,
    others: Kinds,
    /// The target (`METHOD /route`) last refused, for the summaries.
    last_target: HashMap<IpAddr, String>,
}

impl Tally {
    pub(super) fn new(now: Instant) -> Tally {
        Tally {
            started: now,
            by_source: HashMap::new(),
            others: Kinds::default(),
            last_target: HashMap::new(),
        }
    }

    /// Counts one refusal from `ip` (`locked_out`: refused unchecked) of request `target`.
    /// Returns the summaries of a window that is over (to be written first), and the record
    /// of this refusal when it is the first of its kind from `ip` in the window.
    pub(super) fn note(
        &mut self,
        ip: IpAddr,
        locked_out: bool,
        target: String,
        now: Instant,
    ) -> (Vec<Event>, Option<Event>) {
        let over = self.take_if_over(now);
        let kind = usize::from(locked_out);
        let tracked = self.by_source.len() < MAX_ADDRESSES || self.by_source.contains_key(&ip);
        let c = if tracked {
            &mut self.by_source.entry(ip).or_default()[kind]
        } else {
            &mut self.others[kind]
        };
        c.seen += 1;
        let now_record = (tracked && c.recorded == 0).then(|| {
            c.recorded = 1;
            record(Some(ip), locked_out, Some(target.clone()), None)
        });
        if tracked {
            self.last_target.insert(ip, target);
        }
        (over, now_record)
    }

    /// The summaries of the window when it is over (and a new window started), else nothing.
    pub(super) fn take_if_over(&mut self, now: Instant) -> Vec<Event> {
        if now.duration_since(self.started) < LOGIN_WINDOW {
            return Vec::new();
        }
        let old = std::mem::replace(self, Tally::new(now));
        let mut out = Vec::new();
        let mut sources: Vec<_> = old.by_source.into_iter().collect();
        sources.sort_by_key(|(ip, _)| *ip);
        for (ip, kinds) in sources {
            for (kind, c) in kinds.iter().enumerate() {
                if c.seen > c.recorded {
                    let target = old.last_target.get(&ip).cloned();
                    out.push(record(
                        Some(ip),
                        kind == 1,
                        target,
                        Some(c.seen - c.recorded),
                    ));
                }
            }
        }
        for (kind, c) in old.others.iter().enumerate() {
            if c.seen > 0 {
                out.push(record(None, kind == 1, None, Some(c.seen)));
            }
        }
        out
    }
}

/// The record of refused logins from `ip` (`None`: the addresses beyond [`MAX_ADDRESSES`]),
/// standing for `count` refusals (`None`: one).
fn record(
    ip: Option<IpAddr>,
    locked_out: bool,
    target: Option<String>,
    count: Option<u64>,
) -> Event {
    Event {
        user: None,
        source: Some(ip.map_or_else(|| "*".to_owned(), |i| i.to_string())),
        operation: if locked_out {
            "login.locked_out"
        } else {
            "login.failed"
        }
        .into(),
        target,
        status: Some(if locked_out { 429 } else { 401 }),
        // NotAuthorized's ONTAP code, as the refusal answered.
        result: ekm_core::ErrorKind::NotAuthorized.code().to_string(),
        count,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_becomes_one_record_per_address_and_kind_and_one_summary_each() {
        let t0 = Instant::now();
        let mut t = Tally::new(t0);
        let mut now_records = 0;
        for i in 0..10_000u32 {
            let ip = IpAddr::from((i % 200).to_be_bytes());
            let (over, rec) = t.note(ip, i % 2 == 0, "GET /api".into(), t0);
            assert!(over.is_empty());
            now_records += usize::from(rec.is_some());
        }
        // One record now per tracked address (each address sees one kind: i % 200 and i % 2
        // have the same parity).
        assert_eq!(now_records, MAX_ADDRESSES);
        let summaries = t.take_if_over(t0 + LOGIN_WINDOW);
        let total: u64 =
            summaries.iter().map(|e| e.count.unwrap()).sum::<u64>() + now_records as u64;
        assert_eq!(total, 10_000, "no refusal uncounted");
        assert_eq!(summaries.len(), MAX_ADDRESSES + 2);
        assert!(summaries.iter().any(|e| e.source.as_deref() == Some("*")));
        // The next window starts empty.
        assert!(t.take_if_over(t0 + LOGIN_WINDOW).is_empty());
    }
}
