//! Turns AWS SDK errors into ekm's backend error classes, in one place.
//!
//! Owns: the map from KMS error codes, HTTP statuses and transport failures to
//! [`BackendErrorKind`], and the wait a throttled call reports.
//! Must never: put a request or response body (which may hold a KEK), a signature or a
//! credential in a message: only the operation, the status, KMS's error code and message, and
//! the transport's cause chain.

use std::time::Duration;

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use ekm_core::backend::{BackendError, BackendErrorKind};

/// The wait a throttled call reports when KMS sent no `Retry-After` (KMS usually sends none).
pub const THROTTLE_RETRY_AFTER: Duration = Duration::from_secs(2);

/// Longest KMS message kept in an error.
const MAX_MESSAGE: usize = 300;

/// The KMS operation a failure came from (named in messages; `Decrypt` refines one code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `Encrypt` (wrap).
    Encrypt,
    /// `Decrypt` (unwrap).
    Decrypt,
    /// `DescribeKey` (check).
    DescribeKey,
    /// Any other call (test harness).
    Other(&'static str),
}

impl Operation {
    /// The operation's KMS name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Encrypt => "Encrypt",
            Operation::Decrypt => "Decrypt",
            Operation::DescribeKey => "DescribeKey",
            Operation::Other(n) => n,
        }
    }
}

/// Walks an error and everything after it: after an `io::Error` its payload (whose `source`
/// would skip it), after anything else its `source`.
pub(crate) fn chain_iter<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |&e| match e.downcast_ref::<std::io::Error>() {
        Some(io) => io
            .get_ref()
            .map(|i| i as &(dyn std::error::Error + 'static)),
        None => e.source(),
    })
}

/// The cause chain of an error, joined, each cause once.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    for c in chain_iter(e) {
        let t = c.to_string();
        if !out.contains(&t) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&t);
        }
    }
    out
}

/// The TLS failure (rustls) in an error's chain, if any.
pub(crate) fn tls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    chain_iter(e).find_map(|c| c.downcast_ref::<rustls::Error>())
}

/// The class of a KMS error answer: status and error code (`__type`), for operation `op`;
/// `message` is KMS's own text (it tells a foreign ciphertext from a missing permission).
pub fn kind_of(op: Operation, status: u16, code: &str, message: &str) -> BackendErrorKind {
    use BackendErrorKind as K;
    // `__type` may be namespaced ("com.amazonaws.kms#NotFoundException").
    let code = code.rsplit('#').next().unwrap_or(code);
    match code {
        "DisabledException" | "KMSInvalidStateException" => K::KeyDisabled,
        "NotFoundException" => K::KeyNotFound,
        // On Decrypt, AWS's answer to a ciphertext of a key this principal cannot see ("The
        // ciphertext refers to a customer master key that does not exist ...", or moto's bare
        // code for a blob of another key): the blob is not this key's. A missing permission
        // says so ("User: ... is not authorized to perform: kms:Decrypt ...").
        "AccessDeniedException"
            if op == Operation::Decrypt && !message.contains("not authorized") =>
        {
            K::Rejected
        }
        "AccessDeniedException" | "AccessDenied" => K::Forbidden,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "IncompleteSignatureException"
        | "SignatureDoesNotMatch"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "RequestExpired"
        | "InvalidAccessKeyId" => K::AuthenticationFailed,
        "IncorrectKeyException" | "InvalidCiphertextException" | "InvalidKeyUsageException" => {
            K::Rejected
        }
        "ThrottlingException"
        | "Throttling"
        | "ThrottledException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => K::Throttled,
        "KMSInternalException"
        | "DependencyTimeoutException"
        | "KeyUnavailableException"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => K::Unreachable,
        _ => match status {
            401 => K::AuthenticationFailed,
            403 => K::Forbidden,
            404 => K::KeyNotFound,
            407 => K::Unreachable,
            429 => K::Throttled,
            500..=599 => K::Unreachable,
            _ => K::InvalidResponse,
        },
    }
}

/// A KMS error answer as a backend error (`retry_after` filled in when throttled).
pub fn from_answer(
    op: Operation,
    status: u16,
    code: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> BackendError {
    let kind = kind_of(op, status, code, message);
    let mut text = format!("KMS {} answered HTTP {status}", op.name());
    if !code.is_empty() {
        text.push(' ');
        text.push_str(code);
    }
    let message = message.trim();
    if !message.is_empty() {
        text.push_str(": ");
        text.extend(message.chars().take(MAX_MESSAGE));
    }
    if kind == BackendErrorKind::KeyDisabled {
        text.push_str(" (the key is disabled or pending deletion)");
    }
    let mut err = BackendError::new(kind, text);
    if kind == BackendErrorKind::Throttled {
        err.retry_after = Some(retry_after.unwrap_or(THROTTLE_RETRY_AFTER));
    }
    err
}

/// A `Retry-After` header in seconds.
fn retry_after(raw: &HttpResponse) -> Option<Duration> {
    raw.headers()
        .get("retry-after")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The error code and message of an answer the JSON error parser could not read: AWS's
/// `x-amzn-ErrorType` header, else an XML `<Code>` (the query-protocol shape some gateways and
/// moto's credential checks answer with).
fn fallback_code(raw: &HttpResponse) -> (String, String) {
    let body = raw
        .body()
        .bytes()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let element = |name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let len = body[start..].find(&format!("</{name}>"))?;
        Some(body[start..start + len].trim().to_owned())
    };
    let code = raw
        .headers()
        .get("x-amzn-errortype")
        .and_then(|h| h.split(':').next())
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .or_else(|| element("Code"))
        .unwrap_or_default();
    (code, element("Message").unwrap_or_default())
}

/// Classifies an SDK error of operation `op`; `endpoint` and `attempt` only word the message.
pub fn classify<E>(
    op: Operation,
    endpoint: &str,
    attempt: Duration,
    e: &SdkError<E, HttpResponse>,
) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use BackendErrorKind as K;
    let name = op.name();
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let (code, message) = match err.code() {
                Some(code) => (code.to_owned(), err.message().unwrap_or("").to_owned()),
                None => fallback_code(se.raw()),
            };
            from_answer(
                op,
                se.raw().status().as_u16(),
                &code,
                &message,
                retry_after(se.raw()),
            )
        }
        SdkError::TimeoutError(_) => BackendError::new(
            K::Unreachable,
            format!(
                "KMS {name} at {endpoint}: no answer in time (each attempt is given {} s, \
                 retries included the call is bounded)",
                attempt.as_secs()
            ),
        ),
        SdkError::DispatchFailure(d) => {
            let text = d
                .as_connector_error()
                .map(|c| chain(c))
                .unwrap_or_else(|| chain(e));
            let cause = d
                .as_connector_error()
                .and_then(|c| tls_cause(c))
                .map(|t| format!("TLS handshake failed: {t}"));
            let what = if d.is_timeout() {
                format!("timed out ({text})")
            } else if let Some(tls) = cause {
                format!("{tls} ({text})")
            } else {
                text
            };
            BackendError::new(K::Unreachable, format!("KMS {name} at {endpoint}: {what}"))
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            let kind = if (500..=599).contains(&status) {
                K::Unreachable
            } else {
                K::InvalidResponse
            };
            BackendError::new(
                kind,
                format!(
                    "KMS {name} at {endpoint}: unreadable answer (HTTP {status}): {}",
                    chain(e)
                ),
            )
        }
        SdkError::ConstructionFailure(_) => BackendError::new(
            K::InvalidResponse,
            format!("KMS {name}: cannot build the request: {}", chain(e)),
        ),
        _ => BackendError::new(K::InvalidResponse, format!("KMS {name}: {}", chain(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BackendErrorKind as K;

    #[test]
    fn every_documented_kms_code_has_its_class() {
        let e = Operation::Encrypt;
        let table = [
            ("DisabledException", K::KeyDisabled),
            ("KMSInvalidStateException", K::KeyDisabled),
            ("NotFoundException", K::KeyNotFound),
            ("AccessDeniedException", K::Forbidden),
            ("UnrecognizedClientException", K::AuthenticationFailed),
            ("InvalidSignatureException", K::AuthenticationFailed),
            ("ExpiredTokenException", K::AuthenticationFailed),
            ("IncorrectKeyException", K::Rejected),
            ("InvalidCiphertextException", K::Rejected),
            ("ThrottlingException", K::Throttled),
            ("KMSInternalException", K::Unreachable),
            ("DependencyTimeoutException", K::Unreachable),
            ("com.amazonaws.kms#NotFoundException", K::KeyNotFound),
        ];
        for (code, kind) in table {
            assert_eq!(kind_of(e, 400, code, ""), kind, "{code}");
        }
        assert_eq!(kind_of(e, 503, "Whatever", ""), K::Unreachable);
        assert_eq!(
            kind_of(e, 400, "ValidationException", ""),
            K::InvalidResponse
        );
    }

    #[test]
    fn a_foreign_ciphertext_is_rejected_not_forbidden() {
        let m = "The ciphertext refers to a customer master key that does not exist";
        assert_eq!(
            kind_of(Operation::Decrypt, 400, "AccessDeniedException", m),
            K::Rejected
        );
        assert_eq!(
            kind_of(Operation::Encrypt, 400, "AccessDeniedException", m),
            K::Forbidden
        );
        assert_eq!(
            kind_of(Operation::Decrypt, 400, "AccessDeniedException", ""),
            K::Rejected
        );
        let policy = "User: arn:aws:iam::1:user/u is not authorized to perform: kms:Decrypt";
        assert_eq!(
            kind_of(Operation::Decrypt, 400, "AccessDeniedException", policy),
            K::Forbidden
        );
    }

    #[test]
    fn throttling_always_says_how_long_to_wait() {
        let e = from_answer(Operation::Encrypt, 400, "ThrottlingException", "", None);
        assert_eq!(e.retry_after, Some(THROTTLE_RETRY_AFTER));
        let e = from_answer(
            Operation::Encrypt,
            400,
            "ThrottlingException",
            "",
            Some(Duration::from_secs(7)),
        );
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        let e = from_answer(Operation::Encrypt, 400, "NotFoundException", "", None);
        assert_eq!(e.retry_after, None);
    }
}
