//! The node-local protection key file: 32 random bytes behind a magic header, mode 0600,
//! kept outside the database so a copied database file alone reveals no configuration secret.
//!
//! Must never: create the file readable by group or others, or accept one that is.

use std::io;
use std::path::Path;

use ekm_core::crypto::ProtectionKey;
use ekm_core::secret::{KEY_LEN, KeyMaterial};
use zeroize::Zeroizing;

use crate::secret_file;

const MAGIC: &[u8; 8] = b"EKMPK\x00\x00\x01";

/// Loads the protection key at `path`, creating it (mode 0600, fsynced) when absent.
pub fn load_or_create(path: &Path) -> io::Result<ProtectionKey> {
    match load(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match create(path) {
            // Another process created it first: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load(path),
            other => other,
        },
        other => other,
    }
}

/// Loads an existing protection key, refusing files readable by group or others.
pub fn load(path: &Path) -> io::Result<ProtectionKey> {
    let buf = secret_file::read(path, MAGIC.len() + KEY_LEN)?;
    if buf.len() != MAGIC.len() + KEY_LEN || &buf[..MAGIC.len()] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not an ekm protection key file", path.display()),
        ));
    }
    let material = KeyMaterial::from_slice(&buf[MAGIC.len()..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad key length"))?;
    Ok(ProtectionKey::from_material(material))
}

fn create(path: &Path) -> io::Result<ProtectionKey> {
    let key = ProtectionKey::generate();
    let mut buf = Zeroizing::new(Vec::with_capacity(MAGIC.len() + KEY_LEN));
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(key.material().expose_secret());
    secret_file::create(path, &buf)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_0600_and_reloads_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("protection.key");
        let a = load_or_create(&p).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load_or_create(&p).unwrap();
        assert_eq!(a.material(), b.material());
    }

    #[test]
    fn refuses_group_readable_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        load_or_create(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(
            load(&p).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        let g = dir.path().join("g");
        fs::write(&g, b"garbage").unwrap();
        fs::set_permissions(&g, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load(&g).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
