//! mTLS to etcd (`--etcd-ca-file --etcd-cert --etcd-key`): against a real etcd that requires
//! client certificates, the store works with a certificate from the CA etcd trusts, and is
//! refused without one or with one from another CA.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ekm_core::store::{Store, Transaction};
use ekm_etcd::{EtcdOptions, EtcdStore, EtcdTls};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// Issues a leaf certificate and writes `NAME.pem` and `NAME.key` into `dir`.
    fn issue(&self, dir: &Path, name: &str, usage: ExtendedKeyUsagePurpose) {
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

struct Etcd(Child);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A store on `endpoint` and a put through it: the error of whichever failed.
fn store_and_put(
    endpoint: &str,
    tls: Option<EtcdTls>,
) -> Result<std::sync::Arc<EtcdStore>, ekm_core::store::StoreError> {
    let mut o = EtcdOptions::new(vec![endpoint.to_owned()]);
    o.prefix = b"/mtls/".to_vec();
    o.tls = tls;
    let s = EtcdStore::open(o)?;
    put(&s)?;
    Ok(s)
}

fn put(s: &EtcdStore) -> Result<(), ekm_core::store::StoreError> {
    let mut t = Transaction::new();
    t.put(b"k", b"v");
    s.commit(t)
}

#[test]
fn etcd_with_client_certificates_takes_ours_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("etcd test CA");
    ca.issue(d, "server", ExtendedKeyUsagePurpose::ServerAuth);
    ca.issue(d, "client", ExtendedKeyUsagePurpose::ClientAuth);
    std::fs::write(d.join("ca.pem"), ca.cert.pem()).unwrap();
    let other = Ca::new("another CA");
    other.issue(d, "stranger", ExtendedKeyUsagePurpose::ClientAuth);

    let (client_port, peer_port) = (free_port(), free_port());
    let url = format!("https://127.0.0.1:{client_port}");
    let _etcd = Etcd(
        Command::new(ekm_etcd::testing::etcd_binary())
            .arg("--data-dir")
            .arg(d.join("etcd"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{peer_port}"))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://127.0.0.1:{peer_port}"))
            .arg("--initial-cluster")
            .arg(format!("default=http://127.0.0.1:{peer_port}"))
            .arg("--client-cert-auth")
            .arg("--trusted-ca-file")
            .arg(d.join("ca.pem"))
            .arg("--cert-file")
            .arg(d.join("server.pem"))
            .arg("--key-file")
            .arg(d.join("server.key"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("etcd.log")).unwrap())
            .spawn()
            .expect("etcd starts"),
    );

    let tls = |name: &str| {
        Some(EtcdTls {
            ca: d.join("ca.pem"),
            cert: d.join(format!("{name}.pem")),
            key: d.join(format!("{name}.key")),
        })
    };
    let started = Instant::now();
    let ours = loop {
        match store_and_put(&url, tls("client")) {
            Ok(s) => break s,
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(20),
                "etcd with mTLS never took our client certificate: {e}; its log:\n{}",
                std::fs::read_to_string(d.join("etcd.log")).unwrap_or_default()
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ours.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));

    assert!(
        store_and_put(&url, tls("stranger")).is_err(),
        "a client certificate from another CA must be refused"
    );
    assert!(
        store_and_put(&url, None).is_err(),
        "a client without a certificate (plain http) must be refused"
    );
}
