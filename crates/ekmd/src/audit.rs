//! The audit trail: one JSON line per state-changing request, failed login and job end,
//! written and fsync'd before the response of the request it records, hash-chained.
//!
//! A record is one line:
//!
//! ```text
//! {"seq":7,"time":"...","node":"node1","user":"admin","source":"127.0.0.1","operation":"key.create",
//!  "target":"<config uuid>","key_id":"...","status":201,"result":"0","job":null,
//!  "prev":"<hash of record 6>","hash":"<SHA-256 of this line up to ,\"hash\">"}
//! ```
//!
//! `hash` is the SHA-256 (hex) of the line's bytes before `,"hash":`; `prev` is the previous
//! record's `hash` (64 zeros for record 1), so an edited byte breaks its own hash, and a
//! deleted, inserted or reordered line breaks the next record's `prev` (and the `seq` run).
//! The chain continues across size-based rotation: when the file would pass `max_bytes` it is
//! renamed to `FILE.000001`, `FILE.000002`, ... and the first record of the new file carries the
//! hash of the last record of the previous one. [`verify_files`] (`ekm audit verify`) checks
//! files in the order given.
//!
//! What the chain cannot show without a copy kept elsewhere: the newest records removed from
//! the end (ekmd logs each record's `seq`, and `ekm_audit_records` counts them), or a whole
//! trail rewritten with fresh hashes by someone with write access to it.
//!
//! Owns: the record format, the chain, rotation, recovery of the chain at start.
//! Must never: record a secret, a password, a certificate, key material, a request body or an
//! error message (only codes and identifiers).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use ekm_core::{Engine, ErrorKind};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::metrics::Metrics;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Default size at which the trail rotates.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
const HASH_FIELD: &str = ",\"hash\":\"";

/// What one record says (the chain fields are added by [`AuditLog::append`]).
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// The authenticated user (or KMIP client identity); none for a failed login or a job end.
    pub user: Option<String>,
    /// The client address.
    pub source: Option<String>,
    /// What was done: `config.create`, `key.delete`, `login.failed`, `job.end`, ...
    pub operation: String,
    /// The configuration (or other object) acted on.
    pub target: Option<String>,
    /// The data key acted on (an identifier, never material).
    pub key_id: Option<String>,
    /// The HTTP status answered (none for a job end).
    pub status: Option<u16>,
    /// The ONTAP result code: "0" on success.
    pub result: String,
    /// The job started or ended.
    pub job: Option<String>,
    /// A job's final state.
    pub state: Option<String>,
}

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    time: String,
    node: &'a str,
    user: &'a Option<String>,
    source: &'a Option<String>,
    operation: &'a str,
    target: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    result: &'a str,
    job: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: &'a Option<String>,
    prev: &'a str,
}

/// The chain fields of a stored record.
#[derive(Deserialize)]
struct Chain {
    seq: u64,
    prev: String,
    hash: String,
}

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
    metrics: Option<Arc<Metrics>>,
    tail: Mutex<Tail>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish()
    }
}

fn hex_sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Checks one line: its own hash, and returns (seq, prev, hash).
fn check_line(line: &[u8]) -> Result<(u64, String, String), String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let at = text
        .rfind(HASH_FIELD)
        .ok_or_else(|| "no hash field (not a complete record)".to_owned())?;
    let chain: Chain =
        serde_json::from_str(text).map_err(|e| format!("not a complete JSON record ({e})"))?;
    let computed = hex_sha256(&line[..at]);
    if computed != chain.hash || !text.ends_with(&format!("{HASH_FIELD}{}\"}}", chain.hash)) {
        return Err("its hash does not match its contents (edited)".into());
    }
    Ok((chain.seq, chain.prev, chain.hash))
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
                let (seq, _, hash) = check_line(&l).map_err(|e| {
                    format!(
                        "audit log {}: the last record is damaged: {e}; run `ekm audit verify` and move the file aside",
                        path.display()
                    )
                })?;
                (seq, hash)
            }
        };
        Ok(AuditLog {
            path: path.to_owned(),
            node: node.to_owned(),
            max_bytes: max_bytes.max(1),
            metrics: None,
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
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let body = serde_json::to_string(&Line {
            seq,
            time,
            node: &self.node,
            user: &ev.user,
            source: &ev.source,
            operation: &ev.operation,
            target: &ev.target,
            key_id: &ev.key_id,
            status: ev.status,
            result: &ev.result,
            job: &ev.job,
            state: &ev.state,
            prev: &t.last,
        })
        .map_err(std::io::Error::other)?;
        let body = body.strip_suffix('}').unwrap_or(&body);
        let hash = hex_sha256(body.as_bytes());
        let line = format!("{body}{HASH_FIELD}{hash}\"}}\n");
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
        t.file.sync_all()?;
        let next = rotated(&self.path).last().map(|(n, _)| n + 1).unwrap_or(1);
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{next:06}"));
        std::fs::rename(&self.path, PathBuf::from(name))?;
        t.file = open_append(&self.path)?;
        t.size = 0;
        sync_dir(&self.path);
        Ok(())
    }
}

/// A verified trail.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// The last record's hash.
    pub last_hash: String,
}

/// Checks `files` in order as one chain starting at record 1. The error names the file, the
/// line and what is wrong with the first bad record.
pub fn verify_files(files: &[PathBuf]) -> Result<Verified, String> {
    let mut prev = GENESIS.to_owned();
    let mut expect_seq = 1u64;
    for f in files {
        let data = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
        if !data.is_empty() && !data.ends_with(b"\n") {
            let n = data.iter().filter(|b| **b == b'\n').count() + 1;
            return Err(format!(
                "{}: line {n}: the file ends inside a record (truncated)",
                f.display()
            ));
        }
        let body = data.strip_suffix(b"\n").unwrap_or(&data);
        if body.is_empty() {
            continue;
        }
        for (i, line) in body.split(|b| *b == b'\n').enumerate() {
            let at = format!("{}: line {}", f.display(), i + 1);
            let (seq, p, hash) = check_line(line).map_err(|e| format!("{at}: {e}"))?;
            if p != prev {
                return Err(format!(
                    "{at}: record {seq} does not follow record {} (a record was deleted, inserted or reordered before it)",
                    expect_seq - 1
                ));
            }
            if seq != expect_seq {
                return Err(format!(
                    "{at}: record {seq} where record {expect_seq} was expected"
                ));
            }
            prev = hash;
            expect_seq += 1;
        }
    }
    Ok(Verified {
        records: expect_seq - 1,
        last_hash: prev,
    })
}

/// What a state-changing request is called in the trail.
fn operation(method: &Method, route: &str) -> String {
    let m = method.as_str();
    let op = match (m, route) {
        ("POST", "/api/security/azure-key-vaults") => "config.create",
        ("PATCH", "/api/security/azure-key-vaults/{uuid}") => "config.patch",
        ("DELETE", "/api/security/azure-key-vaults/{uuid}") => "config.delete",
        ("POST", "/api/security/azure-key-vaults/{uuid}/keys") => "key.create",
        ("DELETE", "/api/security/azure-key-vaults/{uuid}/keys/{key_id}") => "key.delete",
        ("POST", "/api/security/azure-key-vaults/{uuid}/rekey-external") => "rekey_external",
        ("POST", "/api/security/azure-key-vaults/{uuid}/rekey-internal") => "rekey_internal",
        ("POST", "/api/security/azure-key-vaults/{uuid}/restore") => "restore",
        ("POST", "/api/security/key-managers/{uuid}/migrate") => "migrate",
        _ => return format!("{m} {route}"),
    };
    op.to_owned()
}

/// Marks a response that refused credentials (wrong ones, or a locked-out address).
#[derive(Debug, Clone, Copy)]
pub struct LoginFailed {
    /// True when refused without checking (the address was locked out).
    pub locked_out: bool,
}

/// Largest response body the audit layer reads for its codes and ids.
const MAX_READ: usize = 1024 * 1024;

/// The operations layer of the REST router (one layer, for the cost of one): counts every
/// request in the metrics by its route template, and — after the handler answers a
/// state-changing request (any method but GET/HEAD/OPTIONS, once authenticated) or a login is
/// refused — appends its audit record and fsyncs it before the response leaves. If the record
/// cannot be written the answer is a 500 saying so: nothing is acknowledged that the trail
/// does not hold.
pub async fn layer(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = s.metrics.route(
        req.extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str())
            .unwrap_or("unmatched"),
    );
    let method = req.method().clone();
    let started = Instant::now();
    let changing = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let path = if changing && s.audit.is_some() {
        req.uri().path().to_owned()
    } else {
        String::new()
    };
    let ip: IpAddr = crate::client_ip(&req);
    let resp = next.run(req).await;
    let status = resp.status();
    s.metrics
        .http_request(route, &method, status, started.elapsed());
    let Some(audit) = s.audit.clone() else {
        return resp;
    };
    let failed = resp.extensions().get::<LoginFailed>().copied();
    if failed.is_none() && (!changing || status == StatusCode::UNAUTHORIZED) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_READ)
        .await
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let mut ev = Event {
        user: failed.is_none().then(|| s.admin_user.to_string()),
        source: Some(ip.to_string()),
        status: Some(status.as_u16()),
        result: v["error"]["code"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if status.is_success() {
                    "0".into()
                } else {
                    status.as_u16().to_string()
                }
            }),
        ..Default::default()
    };
    if let Some(f) = failed {
        ev.operation = if f.locked_out {
            "login.locked_out".into()
        } else {
            "login.failed".into()
        };
        ev.target = Some(format!("{} {}", method_name(&method), route));
    } else {
        ev.operation = operation(&method, route);
        let segs: Vec<&str> = path.split('/').collect();
        // /api/security/{azure-key-vaults|key-managers}/{uuid}[/keys/{key_id}]
        ev.target = segs
            .get(4)
            .filter(|t| uuid::Uuid::parse_str(t).is_ok())
            .map(|t| t.to_string())
            .or_else(|| {
                parts
                    .headers
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| l.rsplit('/').next())
                    .filter(|t| uuid::Uuid::parse_str(t).is_ok())
                    .map(str::to_owned)
            });
        ev.key_id = segs
            .get(6)
            .filter(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|k| k.to_string())
            .or_else(|| v["key_id"].as_str().map(str::to_owned));
        ev.job = v["job"]["uuid"].as_str().map(str::to_owned);
    }
    let job = ev.job.clone();
    let a = audit.clone();
    let written = tokio::task::spawn_blocking(move || a.append(&ev)).await;
    match written {
        Ok(Ok(seq)) => tracing::debug!(seq, "audit record written"),
        Ok(Err(e)) => {
            tracing::error!("audit record not written: {e}");
            return crate::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::StoreFailed,
                "The request was carried out but could not be recorded in the audit trail; see ekmd's log.",
            );
        }
        Err(_) => {
            return crate::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::StoreFailed,
                "The audit trail could not be written.",
            );
        }
    }
    if let Some(job) = job.and_then(|j| uuid::Uuid::parse_str(&j).ok()) {
        if status.is_success() {
            watch_job(s.engine.clone(), audit, job);
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn method_name(m: &Method) -> &str {
    m.as_str()
}

/// Records the end of job `uuid` when it comes (a detached thread polling the engine; it never
/// holds ekmd's shutdown up).
pub fn watch_job(engine: Arc<Engine>, audit: Arc<AuditLog>, uuid: uuid::Uuid) {
    let spawned = std::thread::Builder::new()
        .name("ekmd-audit-job".into())
        .spawn(move || {
            loop {
                match engine.wait_job(uuid, Duration::from_secs(10)) {
                    Ok(j) if j.state.is_terminal() => {
                        let ev = Event {
                            operation: "job.end".into(),
                            target: Some(j.config.to_string()),
                            result: j.code.to_string(),
                            job: Some(uuid.to_string()),
                            state: Some(j.state.as_str().into()),
                            ..Default::default()
                        };
                        if let Err(e) = audit.append(&ev) {
                            tracing::error!(job = %uuid, "audit record of a job end not written: {e}");
                        }
                        return;
                    }
                    Ok(_) => continue,
                    Err(_) => return,
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("audit: cannot watch job {uuid}: {e}");
    }
}

/// Watches every unfinished job (at start: jobs resumed from the store).
pub fn watch_unfinished_jobs(engine: &Arc<Engine>, audit: &Arc<AuditLog>) {
    for j in engine.list_jobs().unwrap_or_default() {
        if !j.state.is_terminal() {
            watch_job(engine.clone(), audit.clone(), j.uuid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: &str) -> Event {
        Event {
            user: Some("admin".into()),
            source: Some("127.0.0.1".into()),
            operation: op.into(),
            target: Some(uuid::Uuid::nil().to_string()),
            status: Some(200),
            result: "0".into(),
            ..Default::default()
        }
    }

    fn trail(n: usize) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        let a = AuditLog::open(&p, "node1", DEFAULT_MAX_BYTES).unwrap();
        for i in 0..n {
            a.append(&ev(&format!("op{i}"))).unwrap();
        }
        (d, p)
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(p: &Path, l: &[String]) {
        std::fs::write(p, l.join("\n") + "\n").unwrap();
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
    fn every_kind_of_tampering_is_found_with_the_first_bad_record() {
        let (_d, p) = trail(6);
        let orig = lines(&p);
        let check = |l: Vec<String>, want: &str| {
            write_lines(&p, &l);
            let e = verify_files(std::slice::from_ref(&p)).unwrap_err();
            assert!(e.contains(want), "{e} lacks {want}");
        };
        // An edited byte (inside a field, JSON still valid).
        let mut l = orig.clone();
        l[2] = l[2].replace("\"op2\"", "\"op9\"");
        check(l, "line 3: its hash does not match");
        // An edited byte in the last record too (no successor to catch it).
        let mut l = orig.clone();
        l[5] = l[5].replace("node1", "node2");
        check(l, "line 6: its hash does not match");
        // A deleted line.
        let mut l = orig.clone();
        l.remove(3);
        check(l, "line 4: record 5 does not follow record 3");
        // Two lines swapped.
        let mut l = orig.clone();
        l.swap(1, 2);
        check(l, "line 2: record 3 does not follow record 1");
        // A truncation in the middle: bytes cut from inside record 3 to inside record 5.
        let all = orig.join("\n") + "\n";
        let a = orig[..2].iter().map(|s| s.len() + 1).sum::<usize>() + 20;
        let b = orig[..4].iter().map(|s| s.len() + 1).sum::<usize>() + 20;
        std::fs::write(&p, format!("{}{}", &all[..a], &all[b..])).unwrap();
        let e = verify_files(std::slice::from_ref(&p)).unwrap_err();
        assert!(e.contains("line 3"), "{e}");
        // The file cut inside its last record.
        std::fs::write(&p, &all[..all.len() - 10]).unwrap();
        let e = verify_files(std::slice::from_ref(&p)).unwrap_err();
        assert!(e.contains("line 6: the file ends inside a record"), "{e}");
        // Restored, it verifies again.
        write_lines(&p, &orig);
        verify_files(&[p]).unwrap();
    }

    #[test]
    fn rotation_continues_the_chain_across_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        let a = AuditLog::open(&p, "node1", 1000).unwrap();
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
        let a = AuditLog::open(&p, "node1", 1000).unwrap();
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
