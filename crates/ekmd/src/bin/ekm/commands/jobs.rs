//! The job subcommands: `rekey-internal`, `rekey-external`, `restore`, each started with a
//! POST and, with `--wait`, followed to its end.
//!
//! Owns: what a started or finished job prints. Must never: report success for a job that
//! failed (exit code 4).

use reqwest::Method;
use serde_json::{Value, json};

use super::Session;
use crate::Failure;
use crate::args::{RekeyExternal, Target, Waited};
use crate::client::BASE;
use crate::output::cell;

/// `ekm rekey-internal`.
pub fn rekey_internal(s: &Session, a: Waited) -> Result<(), Failure> {
    start(s, &a.target, "rekey-internal", None, a.wait)
}

/// `ekm rekey-external`.
pub fn rekey_external(s: &Session, a: RekeyExternal) -> Result<(), Failure> {
    let body = json!({"key_id": a.key_id});
    start(s, &a.target, "rekey-external", Some(body), a.wait)
}

/// `ekm restore`.
pub fn restore(s: &Session, a: Waited) -> Result<(), Failure> {
    start(s, &a.target, "restore", None, a.wait)
}

/// POSTs `action` on the target's configuration; with `wait`, follows the job to its end.
fn start(
    s: &Session,
    target: &Target,
    action: &str,
    body: Option<Value>,
    wait: bool,
) -> Result<(), Failure> {
    let path = format!("{BASE}/{}/{action}", s.client.uuid(target)?);
    let started = s.client.call(Method::POST, &path, body)?;
    let shown = if wait {
        s.client.wait(&started)?
    } else {
        started
    };
    s.answer(&shown, |shown| {
        if wait {
            println!(
                "Job {} succeeded: {}",
                cell(&shown["uuid"]),
                cell(&shown["message"])
            );
        } else {
            println!(
                "Job {} started; ekm ... --wait waits for it.",
                cell(&shown["job"]["uuid"])
            );
        }
    });
    Ok(())
}
