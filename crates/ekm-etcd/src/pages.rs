//! Pages and fences: `Store::rewrite_range` on etcd, one page of records rewritten per
//! transaction, fenced against any change since the page was read, with the next page read by
//! the same transaction.
//!
//! Owns: the fence of a rewritten page (by its span and the deletion mark, or record by
//! record), the page read ahead by a rewrite's commit ([`ReadAheads`]), and the read window
//! of a page ([`window_end`]).
//! Must never: rewrite a record that changed after its page was read (even back to the same
//! bytes) or was deleted; let a page read ahead by an earlier pass stand for what the range
//! holds now.
//!
//! ```text
//!   rewrite_range(page n) ─► read ahead for n? ─yes─► use it (read at rev R)
//!                                   └─no──► read the page (rev R)
//!     rewrite its records ─► one transaction:
//!        compares: span [first, last] and the mark unchanged after R   (or each record's rev)
//!        success:  the rewritten records + the caller's writes; get page n+1 (window)
//!     span fence failed ─► once more on the same read, fenced record by record
//!     page n+1 kept for the next call (same range and limit, within 1 s)
//! ```

use std::time::Duration;

use ekm_core::store::{RangeRewrite, Rewrite, StoreError, Then};
use etcd_client::{GetOptions, TxnOp, TxnOpResponse};
use parking_lot::Mutex;

use crate::client::Kv;
use crate::commit::{Cond, KeyWrite};
use crate::options::{MAX_TXN_OPS, outcome_of};
use crate::reads::Etcd;

/// How long a page read ahead by a rewrite's commit stays usable by the next rewrite.
const READ_AHEAD_FOR: Duration = Duration::from_secs(1);

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

/// Pages read ahead by rewrite commits, for the rewrites that continue them.
#[derive(Default)]
pub(crate) struct ReadAheads(Mutex<Vec<ReadAhead>>);

impl ReadAheads {
    /// The page read ahead for exactly this range and limit, if it is fresh, with the end of
    /// the window it was read in. Every page of the range is forgotten: only the call right
    /// after the one that read a page may use it, so a page left by an earlier pass (whose
    /// last call put it) or skipped by a call that could not read ahead (an unknown outcome)
    /// is never taken for what the range holds now.
    fn take(&self, start: &[u8], end: &[u8], limit: i64) -> Option<ReadAhead> {
        let mut pages = self.0.lock();
        pages.retain(|p| p.at.elapsed() < READ_AHEAD_FOR);
        let i = pages
            .iter()
            .position(|p| p.start == start && p.end == end && p.limit == limit);
        let taken = i.map(|i| pages.swap_remove(i));
        pages.retain(|p| p.end != end);
        taken
    }

    fn put(&self, page: ReadAhead) {
        let mut pages = self.0.lock();
        pages.retain(|p| {
            p.at.elapsed() < READ_AHEAD_FOR && !(p.start == page.start && p.end == page.end)
        });
        // One per rewrite pass in progress; a handful at most.
        if pages.len() >= 16 {
            pages.remove(0);
        }
        pages.push(page);
    }
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

impl Etcd<'_> {
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
    ///
    /// `rewrite` and `then` (the engine's) run on the calling thread between the store's calls,
    /// never inside one: they may read the store themselves.
    #[allow(clippy::too_many_arguments)] // the six of `Store::rewrite_range`, and the pages
    pub(crate) fn rewrite_range(
        &self,
        pages: &ReadAheads,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        deletion_mark: Option<&[u8]>,
        rewrite: Rewrite<'_>,
        then: Then<'_>,
    ) -> Result<RangeRewrite, StoreError> {
        let (start, end) = self.cluster.range_of(prefix, start_after);
        let limit = i64::try_from(limit.clamp(1, MAX_TXN_OPS)).unwrap_or(1);
        let strip = self.cluster.prefix_len();
        let (page, read_at) = match pages.take(&start, &end, limit) {
            // An empty window short of the range's end says nothing of what lies after it.
            Some(p) if !p.kvs.is_empty() || p.window_end == end => (p.kvs, p.revision),
            _ => self.block(self.cluster.range_at(start.clone(), end.clone(), limit))?,
        };
        let mut out = RangeRewrite {
            seen: page.len(),
            last_key: page.last().map(|(k, _, _)| k[strip..].to_vec()),
            rewritten: 0,
        };
        let mut writes: Vec<KeyWrite> = Vec::new();
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
                (self.cluster.key(mark), Cond::NotChangedAfter(None, read_at)),
            ]),
            _ => None,
        };
        let extra = then(&out);
        let extra_conds = self.conds(extra.checks);
        for w in extra.writes {
            let (k, v) = self.key_write(w);
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
        let resp = self.block(async {
            match fallback {
                None => self.commit(conds, &writes, &reads).await,
                Some(per_record) => match self.commit(conds, &writes, &reads).await {
                    // The span or the mark (the first two checks) failed; a failed check of the
                    // caller's (the job's fence) would fail again.
                    Err(StoreError::Conflict(i)) if i < 2 => {
                        self.commit(per_record, &writes, &reads).await
                    }
                    other => other,
                },
            }
        });
        self.cluster
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
                pages.put(ReadAhead {
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
