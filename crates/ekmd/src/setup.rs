//! Start-up: the data directory, the topology file, the admin credentials.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ekm_core::Topology;
use secrecy::SecretString;

/// Creates the data directory (mode 0700) if needed.
pub fn data_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The topology from `file`, or the default (`cluster1`, one node `node1`, one SVM `vs0`)
/// written to `DATA_DIR/topology.toml` on first start ([`ekm_store::topology_file`]).
pub fn topology(data_dir: &Path, file: Option<&Path>) -> Result<Topology, String> {
    match file {
        Some(f) => ekm_store::topology_file::load(f),
        None => ekm_store::topology_file::load_or_create(&ekm_store::topology_file::default_path(
            data_dir,
        )),
    }
    .map_err(|e| e.to_string())
}

/// Where the admin credentials came from, for the start-up banner.
pub enum CredentialSource {
    /// `EKMD_ADMIN_USER` / `EKMD_ADMIN_PASSWORD`.
    Environment,
    /// A `user:password` file given by flag.
    File(std::path::PathBuf),
    /// Generated at first start into `DATA_DIR/admin-password` (user `admin`).
    Generated(std::path::PathBuf),
}

/// The admin user and password: from the environment, from `file` (`user:password`), or a
/// random password generated once into `DATA_DIR/admin-password` (mode 0600) for user `admin`.
pub fn admin_credentials(
    data_dir: &Path,
    file: Option<&Path>,
) -> Result<(String, SecretString, CredentialSource), String> {
    if let (Ok(u), Ok(p)) = (
        std::env::var("EKMD_ADMIN_USER"),
        std::env::var("EKMD_ADMIN_PASSWORD"),
    ) {
        if u.is_empty() || p.is_empty() {
            return Err("EKMD_ADMIN_USER and EKMD_ADMIN_PASSWORD must not be empty".into());
        }
        return Ok((u, SecretString::from(p), CredentialSource::Environment));
    }
    if let Some(f) = file {
        let text = read_secret_text(f)?;
        let line = text.lines().next().unwrap_or_default();
        let (u, p) = line
            .split_once(':')
            .filter(|(u, p)| !u.is_empty() && !p.is_empty())
            .ok_or_else(|| format!("{}: expected user:password, both non-empty", f.display()))?;
        return Ok((
            u.to_owned(),
            SecretString::from(p.to_owned()),
            CredentialSource::File(f.to_owned()),
        ));
    }
    let path = data_dir.join("admin-password");
    if !path.exists() {
        let mut raw = [0u8; 18];
        ekm_core::crypto::fill_random(&mut raw);
        let pw = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
        match ekm_store::secret_file::create(&path, format!("{pw}\n").as_bytes()) {
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            other => other.map_err(|e| format!("{}: {e}", path.display()))?,
        }
    }
    let text = read_secret_text(&path)?;
    let pw = text.trim();
    if pw.is_empty() {
        return Err(format!(
            "{}: the admin password is empty; remove the file to have a new one generated",
            path.display()
        ));
    }
    Ok((
        "admin".into(),
        SecretString::from(pw.to_owned()),
        CredentialSource::Generated(path),
    ))
}

/// A file holding a secret as text: owner-only, not empty, at most 64 KiB, UTF-8.
fn read_secret_text(path: &Path) -> Result<zeroize::Zeroizing<String>, String> {
    let bytes = ekm_store::secret_file::read(path, 64 * 1024).map_err(|e| e.to_string())?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
    Ok(zeroize::Zeroizing::new(text.to_owned()))
}
