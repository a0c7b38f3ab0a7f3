//! The server's clock: KMIP dates are Unix seconds.
//!
//! Owns: what "now" is for every date the server writes or compares (Initial Date, Last
//! Change Date, whether an Activation Date has come).
//! Must never: panic on a clock set before 1970 (it reads as 0).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
