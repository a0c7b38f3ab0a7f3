//! Secrets given to `ekm`: inline, in a file, or on stdin (`-`).
//!
//! Owns: reading a `--...-file` flag (one trailing newline dropped) and the rule that only one
//! flag may read stdin.
//! Must never: print, log or echo a secret, or put one in an error message.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Failure;
use crate::args::Cli;

static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// A secret from a `--...-file` flag: the file's content, or stdin's for `-`, without its
/// trailing newline. Only one flag may read stdin.
fn read_secret(path: &Path) -> Result<String, Failure> {
    let mut text = if path.as_os_str() == "-" {
        if STDIN_TAKEN.swap(true, Ordering::SeqCst) {
            return Err(Failure::Usage(
                "only one secret can be read from stdin (\"-\")".into(),
            ));
        }
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .map_err(|e| Failure::Usage(format!("stdin: {e}")))?;
        t
    } else {
        std::fs::read_to_string(path).map_err(|e| unreadable(path, e))?
    };
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// A secret given on the command line or, through its `--...-file` flag, in a file or stdin.
pub fn secret(inline: &Option<String>, file: &Option<PathBuf>) -> Result<Option<String>, Failure> {
    match (inline, file) {
        (Some(s), _) => Ok(Some(s.clone())),
        (None, Some(f)) => read_secret(f).map(Some),
        (None, None) => Ok(None),
    }
}

/// The admin password: `--password`/`EKM_PASSWORD`, else `--password-file` (trimmed).
pub fn admin_password(cli: &Cli) -> Result<String, Failure> {
    match (&cli.password, &cli.password_file) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(f)) => Ok(read_secret(f)?.trim().to_owned()),
        (None, None) => Err(Failure::Usage(
            "give --password, EKM_PASSWORD or --password-file".into(),
        )),
    }
}

/// The bytes of a file named by a flag; a failure names the file (a usage error).
pub fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| unreadable(path, e))
}

/// A flag's file that could not be read, as a usage error naming it.
fn unreadable(path: &Path, e: std::io::Error) -> Failure {
    Failure::Usage(format!("{}: {e}", path.display()))
}
