//! Owns: the error map end to end, through the SDK's own parsing of AWS's JSON error bodies,
//! served by a TLS fault server (moto cannot produce most of them): each KMS error code ends
//! in its class, throttling is retried within the budget and then reported with a
//! `retry_after`, and a transient KMS failure is retried while a refusal is not.
//! Must never: listen or dial anywhere but 127.0.0.1.

use std::time::Duration;

use ekm_aws::testing::{Answer, FaultServer, TestPki, test_access, test_options};
use ekm_aws::{AwsKms, Binding};
use ekm_core::backend::{BackendError, BackendErrorKind as K};
use ekm_core::secret::KeyMaterial;
use uuid::Uuid;

/// Serves `answer`; returns what wrap gave and how many requests reached the server.
fn wrap_against(answer: Answer, max_retries: u32) -> (BackendError, usize) {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path()).unwrap();
    let server = FaultServer::start(&pki, answer).unwrap();
    let mut options = test_options(&pki, server.addr());
    options.max_retries = max_retries;
    let kms = AwsKms::new(options).unwrap();
    let binding = Binding {
        config: Uuid::new_v4(),
        generation: 1,
    };
    let e = kms
        .wrap(&test_access("alias/k"), &binding, &KeyMaterial::random())
        .unwrap_err();
    (e, server.received().len())
}

#[test]
fn throttling_is_retried_within_the_budget_then_reported_with_retry_after() {
    let (e, requests) = wrap_against(Answer::throttling(), 2);
    assert_eq!(e.kind, K::Throttled, "{e}");
    assert_eq!(e.retry_after, Some(ekm_aws::THROTTLE_RETRY_AFTER), "{e}");
    assert!(e.message.contains("Rate exceeded"), "{e}");
    assert_eq!(requests, 3, "one attempt and two retries");
}

#[test]
fn a_retry_after_header_is_the_wait_reported() {
    let mut answer = Answer::throttling();
    answer.headers.push(("Retry-After".into(), "9".into()));
    let (e, _) = wrap_against(answer, 0);
    assert_eq!(e.kind, K::Throttled, "{e}");
    assert_eq!(e.retry_after, Some(Duration::from_secs(9)));
}

#[test]
fn every_kms_error_code_keeps_its_class() {
    let cases = [
        (400, "DisabledException", K::KeyDisabled),
        (400, "KMSInvalidStateException", K::KeyDisabled),
        (400, "NotFoundException", K::KeyNotFound),
        (400, "AccessDeniedException", K::Forbidden),
        (400, "UnrecognizedClientException", K::AuthenticationFailed),
        (400, "InvalidSignatureException", K::AuthenticationFailed),
        (403, "SignatureDoesNotMatch", K::AuthenticationFailed),
        (400, "ExpiredTokenException", K::AuthenticationFailed),
        (400, "IncorrectKeyException", K::Rejected),
        (400, "InvalidCiphertextException", K::Rejected),
        (500, "KMSInternalException", K::Unreachable),
        (500, "DependencyTimeoutException", K::Unreachable),
    ];
    for (status, code, kind) in cases {
        let (e, _) = wrap_against(Answer::aws_error(status, code, "said KMS"), 0);
        assert_eq!(e.kind, kind, "{code}: {e}");
        assert!(e.message.contains(code), "{code}: {e}");
        assert_eq!(e.retry_after, None, "{code}: {e}");
    }
}

#[test]
fn a_transient_kms_failure_is_retried_and_a_refusal_is_not() {
    let (e, requests) = wrap_against(Answer::aws_error(500, "KMSInternalException", "x"), 2);
    assert_eq!(e.kind, K::Unreachable, "{e}");
    assert_eq!(requests, 3, "an internal error is retried");
    let (e, requests) = wrap_against(Answer::aws_error(400, "DisabledException", "x"), 2);
    assert_eq!(e.kind, K::KeyDisabled, "{e}");
    assert_eq!(requests, 1, "a refusal is final");
}
