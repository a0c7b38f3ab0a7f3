//! The audit trail: hash-chained JSON lines. Each state-changing request has an intent record,
//! written and fsync'd before the change is attempted (none written: the change is refused),
//! and an outcome record naming it after; refused logins are counted and recorded a bounded
//! number of times per address and window; each job's end has a record.
//!
//! `hash` is the SHA-256 (hex) of the line's bytes before `,"hash":`; `prev` is the previous
//! record's `hash` (64 zeros for record 1), so an edited byte breaks its own hash, and a
//! deleted, inserted or reordered line breaks the next record's `prev` (and the `seq` run).
//! The chain continues across size-based rotation: when the file would pass `max_bytes` it is
//! renamed to `FILE.000001`, `FILE.000002`, ... and the first record of the new file carries the
//! hash of the last record of the previous one; only the newest `keep` rotated files are kept.
//! [`verify_files`] (`ekm audit verify`) checks files in the order given, from record 1 or from
//! the first record kept. ekmd logs each record's `seq`, and `ekm_audit_records` counts them.
//!
//! Owns: the record format, the chain, rotation, recovery of the chain at start (each in the
//! file below).
//! Must never: record a secret, a password, a certificate, key material, a request body or an
//! error message (only codes and identifiers).
//!
//! | concern | file |
//! |---|---|
//! | the record format and hash chain ([`Event`], [`GENESIS`]) | `record.rs` |
//! | the file: append, fsync, rotation, reopening ([`AuditLog`]) | `writer.rs` |
//! | verification ([`verify_files`]) | `verify.rs` |
//! | what each REST request records ([`layer`], [`LoginFailed`], [`Intent`]) | `requests.rs` |
//! | refused logins, bounded per address and window | `logins.rs` |
//! | the `job.end` records ([`watch_job`]) | `jobs.rs` |
//!
//! `record` ◄── `writer` ◄── `jobs` ◄── `requests`; `record` ◄── `verify` (the writer's tests
//! verify what it wrote). KMIP requests are recorded by `crate::kmip`.

mod jobs;
mod logins;
mod record;
mod requests;
mod verify;
mod writer;

pub use jobs::{watch_job, watch_unfinished_jobs};
pub use logins::{LOGIN_WINDOW, MAX_ADDRESSES};
pub use record::{Event, GENESIS};
pub use requests::{Intent, LoginFailed, layer};
pub(crate) use requests::{intent_of, write_intent};
pub use verify::{Verified, verify_files};
pub use writer::{AuditLog, DEFAULT_KEEP, DEFAULT_MAX_BYTES};
