//! Files that hold a secret (protection key, admin password, TLS private key, the fake vault):
//! written whole or not at all, readable by their owner only, never empty.
//!
//! Writing: a temporary file in the same directory (mode 0600 from its creation, never
//! chmod-ed later), the contents, fsync, then an atomic link (`create`: fails if the file
//! exists, so two processes never both think they created it) or rename (`replace`) into place,
//! then an fsync of the directory. A crash at any point leaves the old file or the new one,
//! never an empty or partial one.
//!
//! Reading: a file readable by group or others, an empty file, or one over the caller's size
//! limit is refused with a message that names the file and says why.
//!
//! Must never: leave a partially written secret file under its name; accept an empty secret.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Creates `path` holding `contents`; [`io::ErrorKind::AlreadyExists`] if it exists.
pub fn create(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = write_temporary(path, contents)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    linked?;
    sync_dir(path)
}

/// Replaces `path` (or creates it) with `contents`, atomically.
pub fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = write_temporary(path, contents)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path)
}

/// Reads a secret file of at most `max_len` bytes, refusing one that is readable by group or
/// others, or empty.
pub fn read(path: &Path, max_len: usize) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut f = File::open(path)?;
    let meta = f.metadata()?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} has mode {:o}; a file holding a secret must be readable by its owner only (chmod 600 {})",
                path.display(),
                mode & 0o777,
                path.display()
            ),
        ));
    }
    if !meta.is_file() {
        return Err(invalid(path, "is not a regular file"));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(max_len.min(64 * 1024) + 1));
    Read::by_ref(&mut f)
        .take(max_len as u64 + 1)
        .read_to_end(&mut buf)?;
    if buf.is_empty() {
        return Err(invalid(
            path,
            "is empty (a crash while it was written by an older version?); remove it to have it made again, or restore it",
        ));
    }
    if buf.len() > max_len {
        return Err(invalid(path, &format!("is larger than {max_len} bytes")));
    }
    Ok(buf)
}

fn invalid(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} {why}", path.display()),
    )
}

/// Writes `contents` to a new temporary file beside `path` (mode 0600 at creation) and syncs it.
fn write_temporary(path: &Path, contents: &[u8]) -> io::Result<PathBuf> {
    if contents.is_empty() {
        return Err(invalid(
            path,
            "would be empty: a secret file is never written empty",
        ));
    }
    let name = path
        .file_name()
        .ok_or_else(|| invalid(path, "has no file name"))?;
    let mut random = [0u8; 8];
    ekm_core::crypto::fill_random(&mut random);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", hex::encode(random)));
    let tmp = path.with_file_name(tmp_name);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = f.write_all(contents).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_whole_with_mode_0600_and_never_over_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("admin-password");
        create(&p, b"s3cret\n").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(&*read(&p, 1024).unwrap(), b"s3cret\n");
        let e = create(&p, b"other\n").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(&*read(&p, 1024).unwrap(), b"s3cret\n");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vault.json");
        replace(&p, b"one").unwrap();
        replace(&p, b"two").unwrap();
        assert_eq!(&*read(&p, 16).unwrap(), b"two");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn empty_readable_by_others_or_oversize_files_are_refused_and_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        File::create(&empty).unwrap();
        fs::set_permissions(&empty, fs::Permissions::from_mode(0o600)).unwrap();
        let e = read(&empty, 64).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("is empty"), "{e}");

        let open = dir.path().join("open");
        create(&open, b"x").unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o644)).unwrap();
        let e = read(&open, 64).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("chmod 600"), "{e}");

        let big = dir.path().join("big");
        create(&big, &[7; 65]).unwrap();
        assert!(read(&big, 64).unwrap_err().to_string().contains("larger"));

        assert!(create(&dir.path().join("nothing"), b"").is_err());
        assert!(!dir.path().join("nothing").exists());
    }
}
