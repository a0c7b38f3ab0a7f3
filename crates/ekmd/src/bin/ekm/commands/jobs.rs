//! The job subcommands: `rekey-internal`, `rekey-external`, `restore`, each started with a
//! POST and, with `--wait`, followed to its end; `job show` for a job started before.
//!
//! Owns: what a started or finished job prints: its uuid, what it does, and how to follow
//! it. Must never: report success for a job that failed (exit code 4).

use reqwest::Method;
use serde_json::{Value, json};

use super::Session;
use crate::Failure;
use crate::args::{JobShow, RekeyExternal, Target, Waited};
use crate::client::{JOBS, Kind};
use crate::output::{cell, table};

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
    start_of(s, Kind::Azure, target, action, body, wait)
}

/// `start` on a configuration of `kind`.
pub fn start_of(
    s: &Session,
    kind: Kind,
    target: &Target,
    action: &str,
    body: Option<Value>,
    wait: bool,
) -> Result<(), Failure> {
    let km = s.client.key_manager_of(kind, target)?;
    let path = format!("{}/{}/{action}", kind.base(), km.uuid);
    let started = s.client.call(Method::POST, &path, body)?;
    followed(s, &started, &format!("{action} of {}", km.label), wait)
}

/// Prints what became of the job `started` (a `{"job": {uuid, ...}}` answer) that does `what`:
/// started (and how to follow it), or, with `wait`, its outcome once it ended.
pub fn followed(s: &Session, started: &Value, what: &str, wait: bool) -> Result<(), Failure> {
    let uuid = cell(&started["job"]["uuid"]);
    if !wait {
        s.answer(started, |_| {
            println!(
                "Job {uuid} started: {what}. Follow it with: ekm job show {uuid} --wait (or ekm job show {uuid} for its state now)."
            )
        });
        return Ok(());
    }
    let done = s.client.wait(&uuid, what)?;
    s.answer(&done, |d| {
        let msg = cell(&d["message"]);
        let msg = if msg.is_empty() || msg == "-" {
            String::new()
        } else {
            format!(": {msg}")
        };
        println!("Job {uuid} succeeded: {what}{msg}");
    });
    Ok(())
}

/// `ekm job show JOB_UUID [--wait]`: the job's state and progress, or its outcome.
pub fn show(s: &Session, a: JobShow) -> Result<(), Failure> {
    if a.wait {
        let done = s.client.wait(&a.uuid, "the job")?;
        s.answer(&done, print_job);
        return Ok(());
    }
    let j = match s
        .client
        .call(Method::GET, &format!("{JOBS}/{}", a.uuid), None)
    {
        Err(Failure::Refused(r)) if r.status == 404 => {
            return Err(Failure::Api(format!(
                "{} No job has uuid {}.",
                crate::NO_ENTRIES,
                a.uuid
            )));
        }
        other => other?,
    };
    s.answer(&j, print_job);
    Ok(())
}

/// A job record as a two-column table.
fn print_job(j: &Value) {
    let progress = format!(
        "{}/{}",
        cell(&j["progress"]["processed"]),
        cell(&j["progress"]["total"])
    );
    let row = |k: &str, v: String| vec![k.to_owned(), v];
    table(
        &["Field", "Value"],
        &[
            row("Job", cell(&j["uuid"])),
            row("Description", cell(&j["description"])),
            row("State", cell(&j["state"])),
            row("Progress", progress),
            row("Message", cell(&j["message"])),
            row("Code", cell(&j["code"])),
            row("Start Time", cell(&j["start_time"])),
            row("End Time", cell(&j["end_time"])),
        ],
    );
}
