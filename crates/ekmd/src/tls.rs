//! HTTPS: the operator's certificate, or a self-signed one made in the data directory on first
//! start (key mode 0600).

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Certificate and key files (PEM) for the REST listener: `given` when the operator passed
/// both, else `DATA_DIR/tls-cert.pem` and `DATA_DIR/tls-key.pem`, created if absent for the
/// names `localhost`, `127.0.0.1` and `host`.
pub fn ensure_cert(
    data_dir: &Path,
    given: Option<(PathBuf, PathBuf)>,
    host: &str,
) -> Result<(PathBuf, PathBuf), String> {
    if let Some(pair) = given {
        return Ok(pair);
    }
    let cert = data_dir.join("tls-cert.pem");
    let key = data_dir.join("tls-key.pem");
    if cert.exists() && key.exists() {
        // Ours: owner-only and not empty, or refused with the reason.
        ekm_store::secret_file::read(&key, 64 * 1024).map_err(|e| e.to_string())?;
        return Ok((cert, key));
    }
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !names.iter().any(|n| n == host) && !host.is_empty() && host != "0.0.0.0" && host != "::" {
        names.push(host.to_owned());
    }
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    // The key first, whole or not at all; the certificate last, so that a certificate on disk
    // always has its key beside it.
    let key_pem = zeroize::Zeroizing::new(ck.key_pair.serialize_pem());
    ekm_store::secret_file::replace(&key, key_pem.as_bytes())
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let tmp = cert.with_extension("pem.tmp");
    std::fs::write(&tmp, ck.cert.pem())
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &cert))
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok((cert, key))
}

/// A rustls server config from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
