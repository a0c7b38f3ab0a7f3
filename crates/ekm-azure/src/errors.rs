//! Turns Azure SDK errors into the backend's error classes, with messages an operator can act
//! on. Never includes request bodies (which may hold secrets) — only status, service error
//! code, and the transport cause.

use azure_core::error::ErrorKind;
use ekm_core::backend::{BackendError, BackendErrorKind};

/// The cause chain of an error, joined (transport errors hide the useful part in `source`).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// A short description of an SDK error.
pub(crate) fn describe(e: &azure_core::Error) -> String {
    chain(e)
}

/// The service's inner error code, when the body carries one (`KeyDisabled` sits there).
fn inner_code(raw: Option<&azure_core::http::RawResponse>) -> Option<String> {
    let body = raw?.body();
    let v: serde_json::Value = serde_json::from_slice(body.as_ref()).ok()?;
    let err = v.get("error")?;
    let inner = err
        .get("innererror")
        .and_then(|i| i.get("code"))
        .and_then(|c| c.as_str());
    inner
        .or_else(|| err.get("code").and_then(|c| c.as_str()))
        .map(str::to_owned)
}

fn retry_after(raw: Option<&azure_core::http::RawResponse>) -> Option<std::time::Duration> {
    let v = raw?
        .headers()
        .get_optional_str(&azure_core::http::headers::RETRY_AFTER)?;
    v.trim()
        .parse::<u64>()
        .ok()
        .map(std::time::Duration::from_secs)
}

/// Classifies an SDK error.
pub fn classify(e: &azure_core::Error) -> BackendError {
    use BackendErrorKind as K;
    match e.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let raw = raw_response.as_deref();
            let code = inner_code(raw)
                .or_else(|| error_code.clone())
                .unwrap_or_default();
            let status = u16::from(*status);
            let kind = match (status, code.as_str()) {
                (_, "KeyDisabled") => K::KeyDisabled,
                (401, _) => K::AuthenticationFailed,
                (403, _) => K::Forbidden,
                (404, _) => K::KeyNotFound,
                (429, _) => K::Throttled,
                (400, "BadParameter") => K::Rejected,
                (400, _) if code.contains("Decrypt") || code.contains("Crypto") => K::Rejected,
                (400, _) => K::Rejected,
                (407, _) => K::Unreachable,
                (500..=599, _) => K::Unreachable,
                _ => K::InvalidResponse,
            };
            let mut err =
                BackendError::new(kind, format!("HTTP {status} {code}").trim().to_owned());
            if kind == K::Throttled {
                err.retry_after = retry_after(raw);
            }
            err
        }
        ErrorKind::Credential => BackendError::new(
            K::AuthenticationFailed,
            format!(
                "the identity provider refused the credential: {}",
                describe(e)
            ),
        ),
        ErrorKind::Connection | ErrorKind::Io => BackendError::new(K::Unreachable, describe(e)),
        _ => {
            let text = describe(e);
            // Proxy and TLS failures surface as "Other" from the transport.
            let kind = if text.contains("proxy")
                || text.contains("connect")
                || text.contains("timed out")
                || text.contains("tls")
                || text.contains("certificate")
            {
                K::Unreachable
            } else {
                K::InvalidResponse
            };
            BackendError::new(kind, text)
        }
    }
}
