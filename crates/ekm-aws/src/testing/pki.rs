//! A throwaway test CA and one server certificate for the names the tests dial.
//!
//! Owns: generating the CA and the leaf (localhost, 127.0.0.1, the KMS hosts of the test
//! regions) and writing them as PEM files.
//! Must never: be used outside tests (the keys sit unencrypted in a temporary directory).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Host names every test certificate carries (besides `localhost` and 127.0.0.1).
pub const TEST_HOSTS: &[&str] = &["kms.us-east-1.amazonaws.com", "kms.eu-west-1.amazonaws.com"];

/// A CA and a leaf it signed, written to `dir`.
pub struct TestPki {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// Where the CA certificate is.
    pub ca_file: PathBuf,
    /// Where the leaf certificate is (PEM).
    pub cert_file: PathBuf,
    /// Where the leaf's private key is (PKCS#8 PEM).
    pub key_file: PathBuf,
    leaf_der: Vec<u8>,
    leaf_key_der: Vec<u8>,
}

impl TestPki {
    /// A fresh CA and leaf, written under `dir`.
    pub fn new(dir: &Path) -> Result<Self, String> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let e = |x: rcgen::Error| x.to_string();
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "ekm-aws test CA");
        let ca_key = KeyPair::generate().map_err(e)?;
        let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
        let mut names = vec!["localhost".to_owned()];
        names.extend(TEST_HOSTS.iter().map(|h| (*h).to_owned()));
        let mut leaf = CertificateParams::new(names).map_err(e)?;
        leaf.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        leaf.distinguished_name
            .push(DnType::CommonName, "ekm-aws test server");
        let leaf_key = KeyPair::generate().map_err(e)?;
        let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).map_err(e)?;
        let write = |name: &str, body: &str| -> Result<PathBuf, String> {
            let p = dir.join(name);
            std::fs::write(&p, body).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(p)
        };
        Ok(TestPki {
            ca_file: write("ca.pem", &ca_cert.pem())?,
            cert_file: write("server.pem", &leaf_cert.pem())?,
            key_file: write("server.key", &leaf_key.serialize_pem())?,
            ca_pem: ca_cert.pem(),
            leaf_der: leaf_cert.der().to_vec(),
            leaf_key_der: leaf_key.serialize_der(),
        })
    }

    /// A rustls server configuration presenting the leaf (HTTP/1.1).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|x| x.to_string())?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.leaf_der.clone().into()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(self.leaf_key_der.clone().into()),
            )
            .map_err(|x| x.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
