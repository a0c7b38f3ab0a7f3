//! The KMIP listener's PKI: its CA, server certificate and client certificates
//! (`ekmd kmip-client-cert`), made under `DATA_DIR/kmip/` unless the operator brings their own.
//!
//! | file | holds | mode | made |
//! |---|---|---|---|
//! | `kmip/ca.key` | the CA's key (client certificates are issued from it) | 0600 | once, then kept |
//! | `kmip/ca.pem` | the CA's certificate: client certificates must chain to it | 0644 | when a file is missing |
//! | `kmip/server.key` | the server's key | 0600 | when a file is missing |
//! | `kmip/server.pem` | the server's certificate, for `localhost`, `127.0.0.1` and the host | 0644 | when a file is missing |
//! | `OUT/client.key`, `OUT/client.pem` | a client's key and certificate, CN = the owner | 0600, 0644 | `ekmd kmip-client-cert` |
//!
//! A client certificate's subject CN names the owner of the keys it reaches: the cluster's
//! name or an SVM's name ([`ekm_kmip::Server::owner_of`]).
//!
//! Owns: the files of the PKI, the issue of certificates, reading a certificate's CN.
//! Must never: write a private key other than through `ekm_store::secret_file` (mode 0600), or
//! keep one in memory longer than it is needed.

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The PEM files of a KMIP PKI.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// Server certificate (PEM).
    pub server_cert: PathBuf,
    /// Server key (PEM).
    pub server_key: PathBuf,
    /// CA that client certificates must chain to (PEM).
    pub client_ca: PathBuf,
}

const CA_CN: &str = "ekm KMIP CA";

fn kmip_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("kmip")
}

fn write_public(path: &Path, pem: &str) -> Result<(), String> {
    let tmp = path.with_extension("pem.tmp");
    std::fs::write(&tmp, pem)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn ca_params() -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, CA_CN.to_owned());
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    p
}

/// The CA of `DATA_DIR/kmip/`, as an issuer: its certificate re-made from the same
/// distinguished name and key (what a child's signature is checked against).
fn load_ca(data_dir: &Path) -> Result<(rcgen::Certificate, rcgen::KeyPair), String> {
    let key_path = kmip_dir(data_dir).join("ca.key");
    let pem = ekm_store::secret_file::read(&key_path, 64 * 1024)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let pem = std::str::from_utf8(&pem).map_err(|_| format!("{}: not PEM", key_path.display()))?;
    let key = rcgen::KeyPair::from_pem(pem).map_err(|e| format!("{}: {e}", key_path.display()))?;
    let cert = ca_params().self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert, key))
}

/// The PKI to serve with: `given` when the operator passed all three files, else
/// `DATA_DIR/kmip/{ca,server}.{pem,key}`, created on first start (keys mode 0600) for the
/// names `localhost`, `127.0.0.1` and `host`.
pub fn ensure_pki(
    data_dir: &Path,
    given: Option<PkiFiles>,
    host: &str,
) -> Result<PkiFiles, String> {
    if let Some(g) = given {
        return Ok(g);
    }
    let dir = kmip_dir(data_dir);
    let files = PkiFiles {
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_ca: dir.join("ca.pem"),
    };
    if files.server_cert.exists() && files.server_key.exists() && files.client_ca.exists() {
        ekm_store::secret_file::read(&files.server_key, 64 * 1024)
            .map_err(|e| format!("{}: {e}", files.server_key.display()))?;
        return Ok(files);
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let ca_key_path = dir.join("ca.key");
    if !ca_key_path.exists() {
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let key_pem = zeroize::Zeroizing::new(key.serialize_pem());
        ekm_store::secret_file::replace(&ca_key_path, key_pem.as_bytes())
            .map_err(|e| format!("{}: {e}", ca_key_path.display()))?;
    }
    let (ca, ca_key) = load_ca(data_dir)?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !names.iter().any(|n| n == host) && !host.is_empty() && host != "0.0.0.0" && host != "::" {
        names.push(host.to_owned());
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ekm KMIP server".to_owned());
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .map_err(|e| e.to_string())?;
    let key_pem = zeroize::Zeroizing::new(key.serialize_pem());
    ekm_store::secret_file::replace(&files.server_key, key_pem.as_bytes())
        .map_err(|e| format!("{}: {e}", files.server_key.display()))?;
    write_public(&files.client_ca, &ca.pem())?;
    write_public(&files.server_cert, &cert.pem())?;
    Ok(files)
}

/// Where `ekmd kmip-client-cert` finds the owners it may issue for: `explicit` (its
/// `--topology`), else the topology the KMIP server of `DATA_DIR` last started with
/// (`DATA_DIR/kmip/topology.toml`, see [`record_served_topology`]), else the data directory's
/// default topology file (before the first start with KMIP on).
pub fn owners_topology(data_dir: &Path, explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    let served = kmip_dir(data_dir).join("topology.toml");
    if served.exists() {
        served
    } else {
        ekm_store::topology_file::default_path(data_dir)
    }
}

/// Records the topology this KMIP server serves in `DATA_DIR/kmip/topology.toml`, so that
/// `ekmd kmip-client-cert` checks owners against it whichever `--topology` file `serve` was
/// given. Called after [`ensure_pki`] made the directory.
pub fn record_served_topology(
    data_dir: &Path,
    topology: &ekm_core::Topology,
) -> Result<(), String> {
    ekm_store::topology_file::replace(&kmip_dir(data_dir).join("topology.toml"), topology)
        .map_err(|e| e.to_string())
}

/// Issues a client certificate for `owner` (its subject CN) from the CA of `DATA_DIR/kmip/`,
/// valid for `days` from now (`None`: rcgen's default, effectively without end; a negative
/// number makes an already expired one, for tests).
pub fn issue_client_cert(
    data_dir: &Path,
    owner: &str,
    days: Option<i64>,
) -> Result<(String, zeroize::Zeroizing<String>), String> {
    let (ca, ca_key) = load_ca(data_dir)?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, owner.to_owned());
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    if let Some(d) = days {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let (from, to) = if d < 0 {
            (now + (d - 1) * 86_400, now + d * 86_400)
        } else {
            (now - 3600, now + d * 86_400)
        };
        params.not_before = rcgen::date_time_ymd(1970, 1, 1) + time_offset(from);
        params.not_after = rcgen::date_time_ymd(1970, 1, 1) + time_offset(to);
    }
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .map_err(|e| e.to_string())?;
    Ok((cert.pem(), zeroize::Zeroizing::new(key.serialize_pem())))
}

fn time_offset(secs: i64) -> std::time::Duration {
    std::time::Duration::from_secs(secs.max(0) as u64)
}

/// `ekmd kmip-client-cert`: writes `OUT/client.pem` and `OUT/client.key` (mode 0600).
pub fn write_client_cert(
    data_dir: &Path,
    owner: &str,
    out: &Path,
    days: Option<i64>,
) -> Result<(), String> {
    if !kmip_dir(data_dir).join("ca.key").exists() {
        return Err(format!(
            "{} has no KMIP CA: start ekmd serve --kmip-listen once with this data directory (and without --kmip-client-ca)",
            data_dir.display()
        ));
    }
    if owner.is_empty() || owner.chars().any(char::is_control) {
        return Err("--owner: expected an SVM or cluster name".into());
    }
    let (cert, key) = issue_client_cert(data_dir, owner, days)?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let key_path = out.join("client.key");
    ekm_store::secret_file::replace(&key_path, key.as_bytes())
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    write_public(&out.join("client.pem"), &cert)
}

/// The certificates of a PEM file.
pub(super) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The listener's own certificate (the first of `files.server_cert`), which the probe pins.
pub fn own_certificate(files: &PkiFiles) -> Result<CertificateDer<'static>, String> {
    load_certs(&files.server_cert)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{}: no certificate", files.server_cert.display()))
}

/// The subject CN of a DER certificate.
pub fn subject_cn(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3") {
                let v = &atv.value;
                if let Ok(s) = v.decode_as::<x509_cert::der::asn1::Utf8StringRef<'_>>() {
                    return Some(s.as_str().to_owned());
                }
                if let Ok(s) = v.decode_as::<x509_cert::der::asn1::PrintableStringRef<'_>>() {
                    return Some(s.as_str().to_owned());
                }
            }
        }
    }
    None
}
