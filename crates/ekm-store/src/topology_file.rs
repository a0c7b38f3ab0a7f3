//! The topology file on disk: read and checked, or written with the one-node default on first
//! start.
//!
//! Owns: where the default topology lives (`DATA_DIR/topology.toml`) and writing it exactly once
//! (files mode 0600, as every file ekmd writes in its data directory).
//! Must never: overwrite a topology file, or start from a file it could not read whole.
//!
//! The format and its checks are [`Topology::from_toml`]'s; this module only does the file I/O.

use std::io;
use std::path::{Path, PathBuf};

use ekm_core::Topology;

/// The default topology file of a data directory: `DATA_DIR/topology.toml`.
pub fn default_path(data_dir: &Path) -> PathBuf {
    data_dir.join("topology.toml")
}

/// Reads and checks the topology file at `path`. An unreadable or invalid file is an error
/// naming the file (`InvalidData` for a file that reads but does not parse or check).
pub fn load(path: &Path) -> io::Result<Topology> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Topology::from_toml(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Reads the topology at `path`, first writing [`Topology::single_node`] there if no file
/// exists. The default is written whole to a temporary file, fsync'd, and linked into place
/// (never replacing a file): of two processes starting at once, both read the one complete
/// file that won, never a half-written one.
pub fn load_or_create(path: &Path) -> io::Result<Topology> {
    match crate::secret_file::create(path, Topology::single_node().to_toml().as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
    load(path)
}

/// Replaces the file at `path` with `topology`, atomically (a reader sees the old file or the
/// new one, whole).
pub fn replace(path: &Path, topology: &Topology) -> io::Result<()> {
    crate::secret_file::replace(path, topology.to_toml().as_bytes())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_written_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = default_path(dir.path());
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.nodes[0].name, "node1");
        assert_eq!(
            load_or_create(&path).unwrap(),
            first,
            "a second start reuses the file"
        );
    }

    #[test]
    fn a_typo_names_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = default_path(dir.path());
        let text = Topology::single_node()
            .to_toml()
            .replace("[[nodes]]", "[[node]]");
        std::fs::write(&path, text).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        assert!(e.contains("unknown field `node`"), "{e}");
    }
}
