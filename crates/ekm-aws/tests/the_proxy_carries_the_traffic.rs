//! Owns: the configured proxy, against moto through a CONNECT proxy: every call goes through
//! it with basic auth, a refusing proxy is `Unreachable` without echoing its password, and
//! without a configured proxy the proxy environment variables are ignored.
//! Must never: listen or dial anywhere but 127.0.0.1.

use base64::Engine;
use ekm_aws::testing::{
    Answer, CANARY_PROXY_PASSWORD, ConnectProxy, FaultServer, Moto, TestPki, test_access,
    test_options,
};
use ekm_aws::{AwsKms, Binding};
use ekm_core::backend::BackendErrorKind;
use ekm_core::config::{ProxyConfig, ProxyType};
use ekm_core::secret::{KeyMaterial, SecretString};
use uuid::Uuid;

fn binding() -> Binding {
    Binding {
        config: Uuid::new_v4(),
        generation: 1,
    }
}

fn proxy_config(proxy: &ConnectProxy, password: &str) -> ProxyConfig {
    ProxyConfig {
        proxy_type: ProxyType::Http,
        host: "127.0.0.1".into(),
        port: proxy.addr().port(),
        username: Some("ekm-user".into()),
        password: Some(SecretString::from(password.to_owned())),
    }
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

#[test]
fn every_call_goes_through_the_configured_proxy_with_basic_auth() {
    let Some(moto) = Moto::start_or_skip("proxy") else {
        return;
    };
    let (id, _) = moto.create_key().unwrap();
    let expect = basic("ekm-user", CANARY_PROXY_PASSWORD);
    let proxy = ConnectProxy::start(moto.addr(), Some(expect.clone())).unwrap();
    let mut options = moto.options();
    // Through a proxy the name is the proxy's to resolve: no pin may help.
    options.resolve.clear();
    let kms = AwsKms::new(options).unwrap();
    let mut access = moto.access(&id);
    access.proxy = Some(proxy_config(&proxy, CANARY_PROXY_PASSWORD));
    let kek = KeyMaterial::random();
    let b = binding();
    let blob = kms.wrap(&access, &b, &kek).unwrap();
    let back = kms.unwrap(&access, &b, &blob).unwrap();
    assert_eq!(back.expose_secret(), &kek.expose_secret()[..]);
    kms.check(&access).unwrap();
    assert_eq!(
        moto.kms_calls().len(),
        2 + 3 + 1,
        "CreateKey, wrap, unwrap, check"
    );
    let tunnels = proxy.tunnels();
    assert!(!tunnels.is_empty());
    for t in &tunnels {
        assert_eq!(t.target, "kms.us-east-1.amazonaws.com:443");
        assert_eq!(t.authorization.as_deref(), Some(expect.as_str()));
    }
}

#[test]
fn a_proxy_refusing_the_credentials_is_unreachable_and_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path()).unwrap();
    let server =
        FaultServer::start(&pki, Answer::aws_error(400, "NotFoundException", "x")).unwrap();
    let proxy =
        ConnectProxy::start(server.addr(), Some(basic("ekm-user", "the-right-one"))).unwrap();
    let kms = AwsKms::new(test_options(&pki, server.addr())).unwrap();
    let mut access = test_access("alias/k");
    access.proxy = Some(proxy_config(&proxy, CANARY_PROXY_PASSWORD));
    let e = kms
        .wrap(&access, &binding(), &KeyMaterial::random())
        .unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::Unreachable, "{e}");
    assert!(!proxy.tunnels().is_empty(), "the proxy was asked");
    assert!(server.received().is_empty(), "nothing got past the proxy");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(CANARY_PROXY_PASSWORD), "{shown}");
    let encoded = basic("ekm-user", CANARY_PROXY_PASSWORD);
    assert!(!shown.contains(&encoded[6..]), "{shown}");
}

const CHILD: &str = "EKM_AWS_PROXY_ENV_CHILD";

/// Runs in a child process whose environment names a proxy for everything (the test cannot
/// set variables in its own process): the call must still go straight to the endpoint.
#[test]
fn proxy_environment_variables_are_ignored_without_a_configured_proxy() {
    if std::env::var_os(CHILD).is_some() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(dir.path()).unwrap();
        let server =
            FaultServer::start(&pki, Answer::aws_error(400, "NotFoundException", "x")).unwrap();
        let kms = AwsKms::new(test_options(&pki, server.addr())).unwrap();
        let e = kms
            .wrap(&test_access("alias/k"), &binding(), &KeyMaterial::random())
            .unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::KeyNotFound, "went elsewhere: {e}");
        assert_eq!(server.received().len(), 1);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path()).unwrap();
    let decoy = FaultServer::start(&pki, Answer::throttling()).unwrap();
    let proxy = ConnectProxy::start(decoy.addr(), None).unwrap();
    let url = format!("http://{}", proxy.addr());
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "proxy_environment_variables_are_ignored_without_a_configured_proxy",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("HTTPS_PROXY", &url)
        .env("https_proxy", &url)
        .env("ALL_PROXY", &url)
        .env("all_proxy", &url)
        .env("HTTP_PROXY", &url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {text}");
    assert!(text.contains("1 passed"), "the child ran the test: {text}");
    assert!(
        proxy.tunnels().is_empty(),
        "the environment's proxy was used"
    );
}
