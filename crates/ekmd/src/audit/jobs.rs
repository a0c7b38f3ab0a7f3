//! The record of a job's end: a job started by a recorded request (or resumed at start) is
//! watched until it ends, then its `job.end` record is appended.
//!
//! ```text
//! request starts job J ─► its record (job: J) ─► watch_job(J): a thread waits on the engine
//!                                                  │  J ends (succeeded, failed, ...)
//!                                                  ▼
//!          {"operation":"job.end","target":<config>,"result":<code>,"job":J,"state":...}
//! ```
//!
//! Owns: the `job.end` records and the threads that wait for them.
//! Must never: hold ekmd's shutdown up, or record a job's message (only its code and state).

use std::sync::Arc;
use std::time::Duration;

use ekm_core::Engine;

use super::record::Event;
use super::writer::AuditLog;

/// Records the end of job `uuid` when it comes (a detached thread polling the engine; it never
/// holds ekmd's shutdown up).
pub fn watch_job(engine: Arc<Engine>, audit: Arc<AuditLog>, uuid: uuid::Uuid) {
    let spawned = std::thread::Builder::new()
        .name("ekmd-audit-job".into())
        .spawn(move || {
            loop {
                match engine.wait_job(uuid, Duration::from_secs(10)) {
                    Ok(j) if j.state.is_terminal() => {
                        let ev = Event {
                            operation: "job.end".into(),
                            target: Some(j.config.to_string()),
                            result: j.code.to_string(),
                            job: Some(uuid.to_string()),
                            state: Some(j.state.as_str().into()),
                            ..Default::default()
                        };
                        if let Err(e) = audit.append(&ev) {
                            tracing::error!(job = %uuid, "audit record of a job end not written: {e}");
                        }
                        return;
                    }
                    Ok(_) => continue,
                    Err(_) => return,
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("audit: cannot watch job {uuid}: {e}");
    }
}

/// Watches every unfinished job (at start: jobs resumed from the store).
pub fn watch_unfinished_jobs(engine: &Arc<Engine>, audit: &Arc<AuditLog>) {
    for j in engine.list_jobs().unwrap_or_default() {
        if !j.state.is_terminal() {
            watch_job(engine.clone(), audit.clone(), j.uuid);
        }
    }
}
