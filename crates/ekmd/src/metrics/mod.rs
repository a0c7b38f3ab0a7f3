//! Prometheus metrics (`GET /metrics`), on the official `prometheus-client` crate.
//!
//! Two kinds of series:
//! - **counted as they happen**: REST requests by route template, method and status (with a
//!   latency histogram), data-path key reads by path and outcome, backend calls by operation
//!   and outcome (through [`MeteredBackend`], a decorator of the real backend, so `ekm-core`
//!   stays free of metrics), throttled backend calls and the waits the vault asked for, audit
//!   records and the time their write and fsync took, KMIP requests (a hook for the KMIP server);
//! - **read at scrape time** from the engine's public API (`engine.rs`): configurations,
//!   jobs by kind and state, running jobs' progress, data keys per owner (counted at most once
//!   every [`KEY_COUNT_TTL`]: a count walks every key record), KEK generation age, seals against
//!   the advised limit, and per-node KEK availability.
//!
//! Owns: every metric name, its help and its labels (each in the file below).
//! Must never: label a series with a key id, a job uuid, a user name or anything a request
//! sent (routes are the templates axum matched, methods a fixed set): labels stay bounded by
//! the code and the topology.
//!
//! | concern | file |
//! |---|---|
//! | the series registry: every counted series, its labels ([`Metrics`]) | `registry.rs` |
//! | the metered backend wrapper ([`MeteredBackend`]) | `backend.rs` |
//! | the engine's scrape-time series | `engine.rs` |
//! | the `/metrics` endpoint ([`scrape`], [`router`]) | `scrape.rs` |
//!
//! `engine` ◄── `registry` ◄── `backend`; `scrape` ──► `crate::AppState`.

mod backend;
mod engine;
mod registry;
mod scrape;

pub use backend::MeteredBackend;
pub use engine::KEY_COUNT_TTL;
pub use registry::{Buckets, Metrics, read_outcome};
pub use scrape::{CONTENT_TYPE, router, scrape};
