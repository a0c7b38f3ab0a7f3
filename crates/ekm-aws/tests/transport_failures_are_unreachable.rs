//! Owns: the network failing, bounded in time: a silent endpoint gives up within the attempt
//! timeout times the attempts, a refused connection fails fast, an endpoint whose certificate
//! is not trusted is `Unreachable` with a TLS message (and not retried); `verify`/`verify_host`
//! off let exactly those checks go.
//! Must never: listen or dial anywhere but 127.0.0.1.

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use ekm_aws::testing::{Answer, BlackHole, FaultServer, TestPki, test_access, test_options};
use ekm_aws::{AwsKms, Binding};
use ekm_core::backend::{BackendError, BackendErrorKind as K};
use ekm_core::secret::KeyMaterial;
use uuid::Uuid;

fn binding() -> Binding {
    Binding {
        config: Uuid::new_v4(),
        generation: 1,
    }
}

fn wrap(kms: &AwsKms, access: &ekm_aws::AwsAccess) -> Result<Vec<u8>, BackendError> {
    kms.wrap(access, &binding(), &KeyMaterial::random())
}

#[test]
fn a_silent_endpoint_is_unreachable_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path()).unwrap();
    let hole = BlackHole::start().unwrap();
    let mut options = test_options(&pki, hole.addr());
    options.max_retries = 1;
    let kms = AwsKms::new(options).unwrap();
    let mut access = test_access("alias/k");
    access.timeout_secs = 1;
    let start = Instant::now();
    let e = wrap(&kms, &access).unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind, K::Unreachable, "{e}");
    // Two attempts of 1 s plus one backoff of at most 200 ms, and some slack.
    assert!(took < Duration::from_secs(4), "took {took:?}: {e}");
    assert!(took >= Duration::from_secs(1), "took {took:?}: {e}");
}

#[test]
fn the_whole_call_is_bounded_by_max_call_time() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path()).unwrap();
    let hole = BlackHole::start().unwrap();
    let mut options = test_options(&pki, hole.addr());
    options.max_retries = 10;
    options.max_call_time = Duration::from_millis(1500);
    let kms = AwsKms::new(options).unwrap();
    let mut access = test_access("alias/k");
    access.timeout_secs = 1;
    let start = Instant::now();
    let e = wrap(&kms, &access).unwrap_err();
    assert_eq!(e.kind, K::Unreachable, "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_refused_connection_is_unreachable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path()).unwrap();
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let kms = AwsKms::new(test_options(&pki, addr)).unwrap();
    let start = Instant::now();
    let e = wrap(&kms, &test_access("alias/k")).unwrap_err();
    assert_eq!(e.kind, K::Unreachable, "{e}");
    assert!(e.message.contains("kms.us-east-1.amazonaws.com"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn an_untrusted_certificate_is_unreachable_with_a_tls_message_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path()).unwrap();
    let server = FaultServer::start(&pki, Answer::throttling()).unwrap();
    let mut options = test_options(&pki, server.addr());
    options.extra_ca_pem = None;
    let kms = AwsKms::new(options).unwrap();
    let e = wrap(&kms, &test_access("alias/k")).unwrap_err();
    assert_eq!(e.kind, K::Unreachable, "{e}");
    assert!(e.message.contains("TLS"), "{e}");
    assert!(e.message.to_lowercase().contains("certificate"), "{e}");
    assert!(
        server.received().is_empty(),
        "no request crossed an untrusted TLS session"
    );
    assert_eq!(server.connections(), 1, "a TLS refusal is not retried");
    eprintln!("{e}");
}

#[test]
fn verify_off_accepts_an_untrusted_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path()).unwrap();
    let server =
        FaultServer::start(&pki, Answer::aws_error(400, "NotFoundException", "x")).unwrap();
    let mut options = test_options(&pki, server.addr());
    options.extra_ca_pem = None;
    let kms = AwsKms::new(options).unwrap();
    let mut access = test_access("alias/k");
    access.verify = false;
    let e = wrap(&kms, &access).unwrap_err();
    assert_eq!(e.kind, K::KeyNotFound, "the request went through: {e}");
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_certificate_for_another_name_fails_unless_verify_host_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path()).unwrap();
    let server =
        FaultServer::start(&pki, Answer::aws_error(400, "NotFoundException", "x")).unwrap();
    let mut options = test_options(&pki, server.addr());
    options
        .resolve
        .push(("kms.other.example".into(), server.addr()));
    let kms = AwsKms::new(options).unwrap();
    let mut access = test_access("alias/k");
    access.host = Some("kms.other.example".into());
    let e = wrap(&kms, &access).unwrap_err();
    assert_eq!(e.kind, K::Unreachable, "{e}");
    assert!(e.message.contains("TLS"), "{e}");
    access.verify_host = false;
    let e = wrap(&kms, &access).unwrap_err();
    assert_eq!(e.kind, K::KeyNotFound, "the request went through: {e}");
}
