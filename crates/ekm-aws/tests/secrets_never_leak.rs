//! Owns: the canaries: the secret access key and the proxy password never appear in `Debug`
//! output or in any error of the failure paths, and never go on the wire (only a signature
//! made with the secret does); the KEK appears in no error.
//! Must never: listen or dial anywhere but 127.0.0.1.

use std::net::{Ipv4Addr, TcpListener};

use base64::Engine;
use ekm_aws::testing::{
    Answer, BlackHole, CANARY_PROXY_PASSWORD, CANARY_SECRET, ConnectProxy, FaultServer, TestPki,
    test_access, test_options,
};
use ekm_aws::{AwsAccess, AwsKms, Binding};
use ekm_core::backend::BackendError;
use ekm_core::config::{ProxyConfig, ProxyType};
use ekm_core::secret::{KeyMaterial, SecretString};
use uuid::Uuid;

fn with_proxy(mut a: AwsAccess, port: u16) -> AwsAccess {
    a.proxy = Some(ProxyConfig {
        proxy_type: ProxyType::Http,
        host: "127.0.0.1".into(),
        port,
        username: Some("u".into()),
        password: Some(SecretString::from(CANARY_PROXY_PASSWORD.to_owned())),
    });
    a
}

fn assert_clean(what: &str, text: &str, kek: &KeyMaterial) {
    assert!(!text.contains(CANARY_SECRET), "{what}: {text}");
    assert!(!text.contains(CANARY_PROXY_PASSWORD), "{what}: {text}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(kek.expose_secret());
    assert!(!text.contains(&b64), "{what}: {text}");
    assert!(
        !text.contains(&hex::encode(kek.expose_secret())),
        "{what}: {text}"
    );
}

fn shown(e: &BackendError) -> String {
    format!("{e} | {e:?}")
}

#[test]
fn debug_output_shows_no_secret() {
    let access = with_proxy(test_access("alias/k"), 3128);
    let kms = AwsKms::new(ekm_aws::AwsOptions::default()).unwrap();
    let kek = KeyMaterial::random();
    let text = format!("{access:?} {kms:?} {:?} {kek:?}", kms.options());
    assert_clean("Debug", &text, &kek);
    assert!(text.contains("[redacted]"), "{text}");
}

#[test]
fn no_failure_path_shows_a_secret_and_the_secret_never_goes_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path()).unwrap();
    let kek = KeyMaterial::random();
    let binding = Binding {
        config: Uuid::new_v4(),
        generation: 1,
    };
    let mut errors = Vec::new();
    // KMS refusals (through a proxy that takes the canary password), echoing our own
    // canaries back as their message: scrubbed anyway.
    let echo = format!("key {CANARY_SECRET} proxy {CANARY_PROXY_PASSWORD}");
    for code in [
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "AccessDeniedException",
        "ThrottlingException",
        "ValidationException",
    ] {
        let server = FaultServer::start(&pki, Answer::aws_error(400, code, &echo)).unwrap();
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("u:{CANARY_PROXY_PASSWORD}"));
        let proxy = ConnectProxy::start(server.addr(), Some(format!("Basic {auth}"))).unwrap();
        let mut options = test_options(&pki, server.addr());
        options.max_retries = 0;
        let kms = AwsKms::new(options).unwrap();
        let access = with_proxy(test_access("alias/k"), proxy.addr().port());
        errors.push(kms.wrap(&access, &binding, &kek).unwrap_err());
        errors.push(kms.unwrap(&access, &binding, b"blob").unwrap_err());
        errors.push(kms.check(&access).unwrap_err());
        for r in server.received() {
            assert!(!r.raw.contains(CANARY_SECRET), "on the wire: {}", r.raw);
            assert!(
                !r.raw.contains(CANARY_PROXY_PASSWORD),
                "on the wire: {}",
                r.raw
            );
            assert!(
                !r.raw.contains(&auth),
                "proxy credentials past the proxy: {}",
                r.raw
            );
        }
        assert_eq!(
            server.received().len(),
            3,
            "the calls went through the proxy to KMS"
        );
    }
    // Transport failures: silence, refusal, untrusted TLS, a proxy refusing us.
    let hole = BlackHole::start().unwrap();
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let tls = FaultServer::start(&pki, Answer::throttling()).unwrap();
    let proxy = ConnectProxy::start(tls.addr(), Some("Basic nope".into())).unwrap();
    let mut access = test_access("alias/k");
    access.timeout_secs = 1;
    for (addr, trust, proxied) in [
        (hole.addr(), true, false),
        (closed_addr, true, false),
        (tls.addr(), false, false),
        (tls.addr(), true, true),
    ] {
        let mut options = test_options(&pki, addr);
        options.max_retries = 0;
        if !trust {
            options.extra_ca_pem = None;
        }
        let kms = AwsKms::new(options).unwrap();
        let a = if proxied {
            with_proxy(access.clone(), proxy.addr().port())
        } else {
            access.clone()
        };
        errors.push(kms.wrap(&a, &binding, &kek).unwrap_err());
    }
    assert_eq!(errors.len(), 5 * 3 + 4);
    for e in &errors {
        assert_clean("error", &shown(e), &kek);
    }
}
