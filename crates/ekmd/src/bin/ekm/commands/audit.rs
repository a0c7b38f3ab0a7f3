//! `ekm audit verify DATA_DIR | FILE | FILE...` (offline: reads the files, not ekmd).
//!
//! Owns: which files make the trail, in which order: a data directory's `audit.log` with its
//! rotated `audit.log.NNNNNN` (oldest, the smallest number, first); one log file with its
//! `FILE.NNNNNN` beside it; or the files as given, where a shell pattern that matched nothing
//! (passed as is, e.g. `audit.log.*` before the first rotation) stands for no file.
//! Must never: call a missing or unreadable file a tampered trail (exit 6, not 5), or skip a
//! file that was named.

use std::path::{Path, PathBuf};

use crate::Failure;
use crate::output::print_json;

/// The trail's file name in a data directory (ekmd's default `--audit-log`).
const AUDIT_LOG: &str = "audit.log";

/// Verifies the trail `paths` name; exit 5 naming the first bad record, 6 when a file is
/// missing or unreadable. Says where the kept part starts when retention removed older files,
/// and which changes have an intent but no outcome.
pub fn verify(paths: &[PathBuf], json: bool) -> Result<(), Failure> {
    let files = trail_files(paths)?;
    for f in &files {
        std::fs::File::open(f)
            .map_err(|e| Failure::Missing(format!("{}: {e}; nothing was verified", f.display())))?;
    }
    let v = ekmd::audit::verify_files(&files).map_err(Failure::Tampered)?;
    let last = v.first + v.records.saturating_sub(1);
    if json {
        print_json(&serde_json::json!({
            "intact": true,
            "files": files,
            "records": v.records,
            "first_seq": v.first,
            "last_seq": last,
            "last_hash": v.last_hash,
            "unresolved_intents": v.unresolved_intents,
        }));
        return Ok(());
    }
    let span = match files.as_slice() {
        [one] => one.display().to_string(),
        [first, .., last] => format!("{} to {}", first.display(), last.display()),
        [] => String::new(),
    };
    println!(
        "audit trail intact: {} records ({} to {last}) in {} file(s) ({span}); last hash {}",
        v.records,
        v.first,
        files.len(),
        v.last_hash
    );
    if v.first > 1 {
        println!(
            "the kept part starts at record {} (records 1 to {} are not in these files: removed by retention, --audit-keep, or with whole older files; compare with a copy kept off the host); it runs to record {last}",
            v.first,
            v.first - 1
        );
    }
    if !v.unresolved_intents.is_empty() {
        println!(
            "changes with an intent but no outcome recorded (ekmd stopped or could not write the outcome; look at the objects): records {:?}",
            v.unresolved_intents
        );
    }
    Ok(())
}

/// The files of the trail `paths` name, oldest first.
fn trail_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    if let [one] = paths {
        if one.is_dir() {
            let log = one.join(AUDIT_LOG);
            if !log.is_file() {
                return Err(Failure::Missing(format!(
                    "{}: no {AUDIT_LOG} in this directory (is it ekmd's --data-dir? with --audit-log elsewhere, give that file); nothing was verified",
                    one.display()
                )));
            }
            return Ok(with_rotated(&log));
        }
        if one.is_file() && !is_rotated(one) {
            return Ok(with_rotated(one));
        }
    }
    let mut files = Vec::new();
    for p in paths {
        if !p.exists() && is_pattern(p) {
            eprintln!(
                "ekm: note: {} matched no file (no rotated file yet): taken as none",
                p.display()
            );
            continue;
        }
        if !p.is_file() {
            return Err(Failure::Missing(format!(
                "{}: {}; nothing was verified (give DATA_DIR, or its {AUDIT_LOG}: the rotated files are found beside it)",
                p.display(),
                if p.exists() {
                    "not a file"
                } else {
                    "no such file"
                }
            )));
        }
        files.push(p.clone());
    }
    if files.is_empty() {
        return Err(Failure::Missing(
            "no audit file matched; nothing was verified (give DATA_DIR, or its audit.log)".into(),
        ));
    }
    Ok(files)
}

/// `log`'s rotated files (`log.NNNNNN`, the smallest number the oldest), then `log`.
fn with_rotated(log: &Path) -> Vec<PathBuf> {
    let dir = match log.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!("{}.", log.file_name().unwrap_or_default().to_string_lossy());
    let mut rotated: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(&prefix)?;
            let num = (n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse::<u64>().ok())??;
            Some((num, dir.join(name)))
        })
        .collect();
    rotated.sort();
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, f)| f).collect();
    files.push(log.to_path_buf());
    files
}

/// Whether `f` is named as a rotated file of a trail (`FILE.NNNNNN`).
fn is_rotated(f: &Path) -> bool {
    f.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.len() == 6 && e.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `p` holds a shell pattern's characters (a pattern the shell found no match for is
/// passed as is).
fn is_pattern(p: &Path) -> bool {
    p.to_string_lossy().contains(['*', '?', '['])
}
