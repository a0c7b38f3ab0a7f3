//! Verification of an audit trail (`ekm audit verify`): the files given, in order, as one
//! chain from record 1 — or from the first record kept, when retention (`--audit-keep`)
//! removed the oldest files.
//!
//! Owns: what counts as a broken trail and how the first bad record is named (file, line, what).
//! Must never: change a file it checks; call a trail intact when a line was edited, deleted,
//! inserted, reordered or cut.
//!
//! | found | reported as |
//! |---|---|
//! | a byte edited | `FILE: line N: its hash does not match its contents (edited)` |
//! | a line deleted, inserted or reordered; a file missing | `FILE: line N: record S does not follow record P ...` |
//! | a `seq` out of its run | `FILE: line N: record S where record E was expected` |
//! | the file cut inside a record | `FILE: line N: the file ends inside a record (truncated)` |
//! | a line that is not a record | `FILE: line N: not UTF-8` / `no hash field ...` / `not a complete JSON record ...` |
//!
//! A trail may start after record 1 only at the head of a rotated file (`FILE.NNNNNN`), as
//! retention leaves it; the report says where the kept part starts.
//!
//! What the chain cannot show without a copy kept elsewhere: the newest records removed from
//! the end, whole oldest files removed (indistinguishable from retention), or a whole trail
//! rewritten with fresh hashes by someone with write access to it.

use std::path::PathBuf;

use super::record::{GENESIS, check_line};

/// A verified trail.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// The `seq` of the first record kept: 1, unless older files were removed by retention
    /// (`--audit-keep`).
    pub first: u64,
    /// The last record's hash.
    pub last_hash: String,
    /// The intents with no outcome in the files given (oldest first): changes whose result the
    /// trail does not know (ekmd died or could not write the outcome; the newest may still be
    /// in flight).
    pub unresolved_intents: Vec<u64>,
}

/// Checks `files` in order as one chain. It starts at record 1 (`prev` of 64 zeros), or, when
/// retention removed older files, at whatever record the first file starts with: from there
/// on every record must follow the one before it. The error names the file, the line and what
/// is wrong with the first bad record.
pub fn verify_files(files: &[PathBuf]) -> Result<Verified, String> {
    let mut prev: Option<String> = None;
    let (mut first, mut expect_seq) = (1u64, 1u64);
    let mut open = std::collections::BTreeSet::new();
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
            let r = check_line(line).map_err(|e| format!("{at}: {e}"))?;
            match &prev {
                // The first record kept: record 1, or where retention cut the trail.
                None if r.seq == 1 && r.prev != GENESIS => {
                    return Err(format!(
                        "{at}: record 1 does not start a chain (its prev is not 64 zeros)"
                    ));
                }
                // Retention removes whole files, oldest first: a trail may start after
                // record 1 only at the head of a rotated file (FILE.NNNNNN). Anywhere else the
                // missing head cannot be told from a cut one.
                None if r.seq > 1 && !is_rotated(f) => {
                    return Err(format!(
                        "{at}: the trail starts at record {} but record 1 is missing, and {} is not a rotated file (FILE.NNNNNN) that retention could have left first: its head was cut, or an older file is missing",
                        r.seq,
                        f.display()
                    ));
                }
                None => (first, expect_seq) = (r.seq, r.seq),
                Some(p) if *p != r.prev => {
                    return Err(format!(
                        "{at}: record {} does not follow record {} (a record was deleted, inserted or reordered before it)",
                        r.seq,
                        expect_seq - 1
                    ));
                }
                Some(_) => {}
            }
            if r.seq != expect_seq {
                return Err(format!(
                    "{at}: record {} where record {expect_seq} was expected",
                    r.seq
                ));
            }
            if r.is_intent {
                open.insert(r.seq);
            }
            if let Some(i) = r.outcome_of {
                open.remove(&i);
            }
            prev = Some(r.hash);
            expect_seq += 1;
        }
    }
    Ok(Verified {
        records: expect_seq - first,
        first,
        last_hash: prev.unwrap_or_else(|| GENESIS.to_owned()),
        unresolved_intents: open.into_iter().collect(),
    })
}

/// Whether `f` is named as a rotated file of the trail (`FILE.NNNNNN`).
fn is_rotated(f: &std::path::Path) -> bool {
    f.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.len() == 6 && e.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::record::tests::ev;
    use super::super::record::{Event, seal};
    use super::*;

    /// A trail of `n` records, written line by line as the audit file writes them.
    fn trail(n: usize) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        let (mut text, mut prev) = (String::new(), GENESIS.to_owned());
        for i in 0..n {
            let (line, hash) = seal(i as u64 + 1, "node1", &ev(&format!("op{i}")), &prev).unwrap();
            text.push_str(&line);
            prev = hash;
        }
        std::fs::write(&p, text).unwrap();
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
    fn a_cut_head_is_refused_unless_the_trail_starts_with_a_rotated_file() {
        let (d, p) = trail(6);
        let l = lines(&p);
        write_lines(&p, &l[2..]);
        let e = verify_files(std::slice::from_ref(&p)).unwrap_err();
        assert!(e.contains("record 1 is missing"), "{e}");
        // The same lines as the oldest file retention kept: accepted, from record 3.
        let kept = d.path().join("audit.log.000007");
        std::fs::rename(&p, &kept).unwrap();
        let v = verify_files(&[kept]).unwrap();
        assert_eq!((v.first, v.records), (3, 4));
    }

    #[test]
    fn an_intent_without_an_outcome_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        let mut text = String::new();
        let mut prev = GENESIS.to_owned();
        let intent = |op: &str| Event {
            phase: Some("intent"),
            result: "pending".into(),
            ..ev(op)
        };
        let outcome = |op: &str, of: u64| Event {
            intent: Some(of),
            ..ev(op)
        };
        for (seq, e) in [
            (1, intent("key.create")),
            (2, outcome("key.create", 1)),
            (3, intent("key.delete")),
        ] {
            let (line, hash) = seal(seq, "node1", &e, &prev).unwrap();
            text.push_str(&line);
            prev = hash;
        }
        std::fs::write(&p, text).unwrap();
        let v = verify_files(&[p]).unwrap();
        assert_eq!(v.unresolved_intents, vec![3]);
        assert_eq!((v.first, v.records), (1, 3));
    }
}
