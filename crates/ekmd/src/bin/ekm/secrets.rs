//! Secrets given to `ekm`: inline, in a file, or on stdin (`-`).
//!
//! Owns: reading a `--...-file` flag (one trailing newline dropped), the rule that only one
//! flag may read stdin, and which source of a secret wins: an explicit flag over the
//! environment (`--password-file` over `EKM_PASSWORD`); an inline flag and its `-file` twin
//! together are a usage error naming both.
//! Must never: print, log or echo a secret, or put one in an error message.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Failure;
use crate::args::Cli;

static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// A secret from the flag `flag`'s file: the file's content, or stdin's for `-`, without its
/// trailing newline. Only one flag may read stdin.
fn read_secret(flag: &str, path: &Path) -> Result<String, Failure> {
    let mut text = if path.as_os_str() == "-" {
        if STDIN_TAKEN.swap(true, Ordering::SeqCst) {
            return Err(Failure::Usage(format!(
                "{flag} -: only one secret can be read from stdin (\"-\"); give the others in files"
            )));
        }
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .map_err(|e| Failure::Usage(format!("{flag} -: stdin: {e}")))?;
        t
    } else {
        std::fs::read_to_string(path).map_err(|e| unreadable(flag, path, e))?
    };
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// One secret's two flags: `--NAME` (inline) and `--NAME-file` (a file or stdin).
pub struct SecretFlags<'a> {
    /// The inline flag's name, e.g. `client-secret`.
    pub name: &'a str,
    pub inline: &'a Option<String>,
    pub file: &'a Option<PathBuf>,
}

/// A secret given on the command line or, through its `--...-file` flag, in a file or stdin;
/// both at once is a usage error naming both flags.
pub fn secret(f: SecretFlags) -> Result<Option<String>, Failure> {
    match (f.inline, f.file) {
        (Some(_), Some(_)) => Err(both(f.name)),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(path)) => read_secret(&format!("--{}-file", f.name), path).map(Some),
        (None, None) => Ok(None),
    }
}

/// The admin password (trimmed when read from a file): `--password-file` or `--password`
/// (both given: a usage error), else `EKM_PASSWORD`. An explicit flag wins over the variable.
pub fn admin_password(cli: &Cli) -> Result<String, Failure> {
    let inline = cli.password.as_ref().filter(|_| !cli.password_from_env);
    let env = cli.password.as_ref().filter(|_| cli.password_from_env);
    match (inline, &cli.password_file, env) {
        (Some(_), Some(_), _) => Err(both("password")),
        (Some(p), None, _) => Ok(p.clone()),
        (None, Some(f), _) => Ok(read_secret("--password-file", f)?.trim().to_owned()),
        (None, None, Some(p)) => Ok(p.clone()),
        (None, None, None) => Err(Failure::Usage(
            "no admin password: give --password-file FILE (e.g. ekm-data/admin-password), EKM_PASSWORD or --password".into(),
        )),
    }
}

/// The usage error of a secret given both inline and through its `-file` twin.
fn both(name: &str) -> Failure {
    Failure::Usage(format!(
        "--{name} and --{name}-file are two sources of one secret: give one of them"
    ))
}

/// The bytes of the file flag `flag` names; a failure names the flag and the file (a usage
/// error).
pub fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| unreadable(flag, path, e))
}

/// A flag's file that could not be read, as a usage error naming the flag and the file.
fn unreadable(flag: &str, path: &Path, e: std::io::Error) -> Failure {
    Failure::Usage(format!("{flag} {}: {e}", path.display()))
}
