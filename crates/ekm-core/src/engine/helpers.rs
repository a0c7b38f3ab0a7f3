//! Small helpers every engine file uses: the clock, the store error, paged scans, and how often
//! a conditional write is retried.
//!
//! Owns: nothing stateful; these are free functions and constants below every other engine file.
//! Must never: depend on the [`Engine`](super::Engine) (so any engine file can use them).
//!
//! | helper | what |
//! |---|---|
//! | [`now_secs`] | Unix seconds, for record timestamps |
//! | [`store_failed`] | a [`StoreError`] as the `StoreFailed` error |
//! | [`scan_all`] | every record under a prefix, page by page |
//! | [`CONDITIONAL_ATTEMPTS`] | retries of a write whose checked record changed meanwhile |

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, ErrorKind, Result};
use crate::store::{Store, StoreError};

/// How often a conditional write is retried when what it was based on changed meanwhile.
pub(crate) const CONDITIONAL_ATTEMPTS: usize = 4;

/// Page size of internal scans.
const SCAN_PAGE: usize = 1024;

/// Unix seconds now (0 if the clock is before 1970).
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A store failure, as the error the API returns.
pub(crate) fn store_failed(e: StoreError) -> Error {
    Error::new(ErrorKind::StoreFailed).with_detail(e.to_string())
}

/// Every record under `prefix`, page by page.
pub(crate) fn scan_all(store: &dyn Store, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        let after = out.last().map(|(k, _)| k.clone());
        let page = store
            .scan(prefix, after.as_deref(), SCAN_PAGE)
            .map_err(store_failed)?;
        let done = page.len() < SCAN_PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}
