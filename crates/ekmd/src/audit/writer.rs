//! The trail's file: records appended and fsync'd one at a time, rotated by size, and the
//! chain picked up again at start.
//!
//! ```text
//! FILE.000001    FILE.000002    ...    FILE          (oldest first; FILE is appended to)
//! [seq 1..40] ─► [seq 41..80]  ─► ... ─► [seq 81..]   each file's first record carries
//!                                                      the hash of the last one before it
//! ```
//!
//! When a record would take the file past `max_bytes`, the file is renamed to the next
//! `FILE.NNNNNN` and a new one started; the chain continues across the rename. Only the newest
//! `keep` rotated files are kept ([`DEFAULT_KEEP`], `--audit-keep`): the oldest beyond them are
//! deleted at rotation, and `ekm audit verify` then reports where the kept part starts.
//!
//! Owns: the file (mode 0600), its fsyncs, rotation and retention, the cut of a partial last
//! line at open, and the hand-off of refused logins to their bounded records (`logins.rs`).
//! Must never: acknowledge a record before it is fsync'd, or leave a partial line for the next
//! record to follow.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::logins::Tally;
use super::record::{Event, GENESIS, check_line, seal};
use crate::metrics::Metrics;

/// Default size at which the trail rotates.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Default number of rotated files kept (the oldest beyond it are deleted at rotation): with
/// [`DEFAULT_MAX_BYTES`], the trail takes at most 9 × 64 MiB.
pub const DEFAULT_KEEP: usize = 8;

struct Tail {
    file: File,
    size: u64,
    seq: u64,
    last: String,
}

/// An open audit trail.
pub struct AuditLog {
    path: PathBuf,
    node: String,
    max_bytes: u64,
    keep: usize,
    metrics: Option<Arc<Metrics>>,
    tail: Mutex<Tail>,
    logins: Mutex<Tally>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish()
    }
}

/// The rotated files of `path`, oldest first, with their numbers.
fn rotated(path: &Path) -> Vec<(u64, PathBuf)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let num = n.strip_prefix(&prefix)?.parse::<u64>().ok()?;
            Some((num, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// The last complete line of `file` (reads its tail), and the length of the file up to and
/// including the last newline.
fn last_line(file: &mut File) -> std::io::Result<(Option<Vec<u8>>, u64)> {
    let len = file.metadata()?.len();
    let from = len.saturating_sub(1024 * 1024);
    file.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    // No more than the length measured (a device such as /dev/full reads without end).
    Read::by_ref(file).take(len - from).read_to_end(&mut buf)?;
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        return Ok((None, from));
    };
    let start = buf[..end]
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    Ok((Some(buf[start..end].to_vec()), from + end as u64 + 1))
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the trail at `path`, continuing its chain: from its last
    /// record, or from the newest rotated file when it is empty. A partial last line (a write
    /// cut by a crash, never acknowledged) is cut off; a damaged last record is refused.
    pub fn open(path: &Path, node: &str, max_bytes: u64) -> Result<AuditLog, String> {
        let err = |e: std::io::Error| format!("audit log {}: {e}", path.display());
        let mut file = open_append(path).map_err(err)?;
        let (line, complete) = last_line(&mut file).map_err(err)?;
        let len = file.metadata().map_err(err)?.len();
        if complete < len {
            tracing::warn!(
                path = %path.display(),
                bytes = len - complete,
                "audit log: cutting off a partial last record (a write cut by a crash, never acknowledged)"
            );
            file.set_len(complete).map_err(err)?;
            file.sync_all().map_err(err)?;
        }
        let line = match line {
            Some(l) => Some(l),
            None => match rotated(path).last() {
                Some((_, p)) => {
                    let mut f = File::open(p).map_err(err)?;
                    last_line(&mut f).map_err(err)?.0
                }
                None => None,
            },
        };
        let (seq, last) = match line {
            None => (0, GENESIS.to_owned()),
            Some(l) => {
                let c = check_line(&l).map_err(|e| {
                    format!(
                        "audit log {}: the last record is damaged: {e}; run `ekm audit verify` and move the file aside",
                        path.display()
                    )
                })?;
                (c.seq, c.hash)
            }
        };
        Ok(AuditLog {
            path: path.to_owned(),
            node: node.to_owned(),
            max_bytes: max_bytes.max(1),
            keep: DEFAULT_KEEP,
            metrics: None,
            logins: Mutex::new(Tally::new(Instant::now())),
            tail: Mutex::new(Tail {
                file,
                size: complete,
                seq,
                last,
            }),
        })
    }

    /// Counts records and their write time into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Keeps at most `keep` rotated files: at each rotation the oldest beyond it are deleted,
    /// so the trail takes at most `(keep + 1) × max_bytes` (plus one record).
    pub fn with_keep(mut self, keep: usize) -> Self {
        self.keep = keep;
        self
    }

    /// Records a refused login from `ip` of request `target` (`locked_out`: refused without
    /// checking), bounded: see `logins.rs`. Never fails the request it records (a refusal
    /// changes nothing); a record that cannot be written is logged and counted. Blocking
    /// (fsyncs at most a few records per address and window).
    pub fn refused_login(&self, ip: IpAddr, locked_out: bool, target: String) {
        let (over, now) = self
            .logins
            .lock()
            .note(ip, locked_out, target, Instant::now());
        for ev in over.iter().chain(now.iter()) {
            if let Err(e) = self.append(ev) {
                tracing::error!("audit record of refused logins not written: {e}");
            }
        }
    }

    /// Writes the summaries of refused logins of a window that is over (called every few
    /// seconds by [`AuditLog::summarize_logins_every`], so a quiet address's count is not held
    /// back until its next refusal). Blocking.
    pub fn flush_login_summaries(&self) {
        let over = self.logins.lock().take_if_over(Instant::now());
        for ev in &over {
            if let Err(e) = self.append(ev) {
                tracing::error!("audit record of refused logins not written: {e}");
            }
        }
    }

    /// Starts a thread that writes due refused-login summaries every `every`, for as long as
    /// the trail is open.
    pub fn summarize_logins_every(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("audit-logins".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    let Some(log) = weak.upgrade() else { return };
                    log.flush_login_summaries();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(
                "audit: refused-login summaries will be written only with the next refusal: {e}"
            );
        }
    }

    /// The trail's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and fsyncs it; returns its sequence number. Blocking.
    pub fn append(&self, ev: &Event) -> std::io::Result<u64> {
        let started = Instant::now();
        let r = self.append_inner(ev);
        if let Some(m) = &self.metrics {
            m.audit_written(r.is_ok(), started.elapsed());
        }
        r
    }

    fn append_inner(&self, ev: &Event) -> std::io::Result<u64> {
        let mut t = self.tail.lock();
        let seq = t.seq + 1;
        let (line, hash) = seal(seq, &self.node, ev, &t.last)?;
        if t.size > 0 && t.size + line.len() as u64 > self.max_bytes {
            self.rotate(&mut t)?;
        }
        if let Err(e) = t
            .file
            .write_all(line.as_bytes())
            .and_then(|_| t.file.sync_data())
        {
            // Never leave a partial line for the next record to follow.
            let size = t.size;
            let _ = t.file.set_len(size);
            return Err(e);
        }
        t.size += line.len() as u64;
        t.seq = seq;
        t.last = hash;
        Ok(seq)
    }

    fn rotate(&self, t: &mut Tail) -> std::io::Result<()> {
        // A rotation whose rename succeeded but whose reopen failed (no descriptor, a full
        // disk): the file is gone already; open it now instead of renaming again.
        if !self.path.exists() {
            t.file = open_append(&self.path)?;
            t.size = 0;
            sync_dir(&self.path);
            return Ok(());
        }
        t.file.sync_all()?;
        let next = rotated(&self.path).last().map(|(n, _)| n + 1).unwrap_or(1);
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{next:06}"));
        std::fs::rename(&self.path, PathBuf::from(name))?;
        t.file = open_append(&self.path)?;
        t.size = 0;
        let kept = rotated(&self.path);
        for (_, old) in kept.iter().take(kept.len().saturating_sub(self.keep)) {
            match std::fs::remove_file(old) {
                Ok(()) => {
                    tracing::info!(file = %old.display(), "audit: rotated file removed (--audit-keep)")
                }
                Err(e) => {
                    tracing::warn!(file = %old.display(), "audit: rotated file not removed: {e}")
                }
            }
        }
        sync_dir(&self.path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::tests::ev;
    use super::super::verify::verify_files;
    use super::*;

    fn trail(n: usize) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        let a = AuditLog::open(&p, "node1", DEFAULT_MAX_BYTES).unwrap();
        for i in 0..n {
            a.append(&ev(&format!("op{i}"))).unwrap();
        }
        (d, p)
    }

    #[test]
    fn an_intact_trail_verifies_and_reopening_continues_the_chain() {
        let (_d, p) = trail(5);
        assert_eq!(verify_files(std::slice::from_ref(&p)).unwrap().records, 5);
        let a = AuditLog::open(&p, "node1", DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(a.append(&ev("again")).unwrap(), 6);
        assert_eq!(verify_files(&[p]).unwrap().records, 6);
    }

    #[test]
    fn rotation_continues_the_chain_across_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        let a = AuditLog::open(&p, "node1", 1000)
            .unwrap()
            .with_keep(usize::MAX);
        for i in 0..20 {
            a.append(&ev(&format!("op{i}"))).unwrap();
        }
        let mut files: Vec<PathBuf> = rotated(&p).into_iter().map(|(_, f)| f).collect();
        assert!(files.len() >= 3, "{files:?}");
        files.push(p.clone());
        assert_eq!(verify_files(&files).unwrap().records, 20);
        // Reopened with an empty current file (a crash right after a rotation), the chain
        // continues from the newest rotated file.
        drop(a);
        std::fs::write(&p, "").unwrap();
        let a = AuditLog::open(&p, "node1", 1000)
            .unwrap()
            .with_keep(usize::MAX);
        // The current file's records were lost by the write above: start again from the
        // rotated ones only.
        let mut only_rotated: Vec<PathBuf> = rotated(&p).into_iter().map(|(_, f)| f).collect();
        let n = verify_files(&only_rotated).unwrap().records;
        assert_eq!(a.append(&ev("next")).unwrap(), n + 1);
        only_rotated.push(p.clone());
        assert_eq!(verify_files(&only_rotated).unwrap().records, n + 1);
        // A missing middle file is found.
        files = rotated(&p).into_iter().map(|(_, f)| f).collect();
        files.remove(1);
        files.push(p);
        assert!(
            verify_files(&files)
                .unwrap_err()
                .contains("does not follow")
        );
    }

    #[test]
    fn retention_keeps_the_newest_rotated_files_and_the_kept_part_verifies() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        let a = AuditLog::open(&p, "node1", 1000).unwrap().with_keep(2);
        for i in 0..60 {
            a.append(&ev(&format!("op{i}"))).unwrap();
        }
        let kept = rotated(&p);
        assert_eq!(kept.len(), 2, "{kept:?}");
        let mut files: Vec<PathBuf> = kept.into_iter().map(|(_, f)| f).collect();
        files.push(p.clone());
        let total: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert!(total <= 3 * 1000, "{total} bytes kept");
        let v = verify_files(&files).unwrap();
        assert!(v.first > 1, "older records were removed: {v:?}");
        assert_eq!(v.first + v.records - 1, 60);
        // The kept part without its first file is still caught as a gap.
        files.remove(0);
        files.insert(0, p.clone());
        assert!(verify_files(&files).is_err());
    }

    #[test]
    fn a_partial_last_line_is_cut_off_at_open() {
        let (_d, p) = trail(3);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"seq\":4,\"ti").unwrap();
        drop(f);
        assert!(verify_files(std::slice::from_ref(&p)).is_err());
        let a = AuditLog::open(&p, "node1", DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(a.append(&ev("x")).unwrap(), 4);
        assert_eq!(verify_files(&[p]).unwrap().records, 4);
    }
}
