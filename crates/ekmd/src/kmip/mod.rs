//! The node's KMIP server over mutual TLS (`--kmip-listen`): the PKI under `DATA_DIR/kmip/`
//! (or the operator's), client certificates (`ekmd kmip-client-cert`), the listener, its
//! metrics and audit records, and the Discover Versions self-probe behind
//! `ekmip_reachability`.
//!
//! Owns: nothing itself; each concern has one file, re-exported here as `ekmd::kmip::*`.
//! Must never: answer a client without a verified certificate, or acknowledge a change the
//! audit trail does not hold.
//!
//! | concern | file |
//! |---|---|
//! | the PKI files, client certificates, a certificate's CN ([`ensure_pki`], [`issue_client_cert`]) | `pki.rs` |
//! | the mutual-TLS listener and the connection loop ([`server_config`], [`serve`]) | `listener.rs` |
//! | the metrics and audit records of each message ([`answer`], [`Reporting`], [`Client`]) | `report.rs` |
//! | the Discover Versions self-probe ([`ProbeIdentity`], [`probe`], [`watch`]) | `probe.rs` |
//!
//! `pki` ◄── `listener` ──► `report` ──► `probe` (for [`PROBE_CN`]); `listener` ──► `probe`.

mod listener;
mod pki;
mod probe;
mod report;

pub use listener::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_PER_CLIENT, Limits,
    MESSAGE_TIMEOUT, serve, server_config,
};
pub use pki::{
    PkiFiles, ensure_pki, issue_client_cert, own_certificate, owners_topology,
    record_served_topology, subject_cn, write_client_cert,
};
pub use probe::{
    PROBE_CN, PROBE_EVERY, PROBE_TIMEOUT, ProbeIdentity, discover_versions_request, probe,
    probe_address, watch,
};
pub use report::{Client, Reporting, answer};
