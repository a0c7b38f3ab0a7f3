//! The node's KMIP server over mutual TLS (`--kmip-listen`): the PKI under `DATA_DIR/kmip/`
//! (or the operator's), client certificates (`ekmd kmip-client-cert`), the listener, and the
//! Discover Versions probe behind `ekmip_reachability`.
//!
//! A client certificate's subject CN names the owner of the keys it reaches: the cluster's
//! name or an SVM's name ([`ekm_kmip::Server::owner_of`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ekm_kmip::Server;
use ekm_kmip::ttlv;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The rustls configuration: TLS 1.2 and 1.3, a client certificate required and verified
/// against the client CA.
pub fn server_config(files: &PkiFiles) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(&files.client_ca)? {
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", files.client_ca.display()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_file(&files.server_key)
        .map_err(|e| format!("{}: {e}", files.server_key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&files.server_cert)?, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
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

/// Binds `addr` and serves KMIP on it until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    server: Server,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("KMIP accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::info!(%peer, "KMIP TLS handshake refused: {e}");
                    return;
                }
                Err(_) => return,
            };
            let cn = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| subject_cn(c));
            let owner = cn.as_deref().and_then(|cn| server.owner_of(cn));
            connection(tls, server, owner, peer).await;
        });
    }
}

async fn connection<S>(
    mut s: S,
    server: Server,
    owner: Option<ekm_core::KeyOwner>,
    peer: SocketAddr,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let mut header = [0u8; 8];
        match s.read_exact(&mut header).await {
            Ok(_) => {}
            // A close, with or without close_notify, between messages is a normal end.
            Err(_) => return,
        }
        let Some(total) = ttlv::message_len(&header) else {
            // The stream cannot be resynchronised: answer once and close.
            let resp = server.handle(owner, &header);
            let _ = s.write_all(&resp).await;
            let _ = s.shutdown().await;
            tracing::info!(%peer, "KMIP: malformed message header; connection closed");
            return;
        };
        let mut msg = zeroize::Zeroizing::new(vec![0u8; total]);
        msg[..8].copy_from_slice(&header);
        if s.read_exact(&mut msg[8..]).await.is_err() {
            return;
        }
        let srv = server.clone();
        let resp = match tokio::task::spawn_blocking(move || srv.handle(owner, &msg)).await {
            Ok(r) => r,
            Err(_) => return,
        };
        if s.write_all(&resp).await.is_err() || s.flush().await.is_err() {
            return;
        }
    }
}

/// The Discover Versions probe behind `ekmip_reachability`: connects to `addr` with a client
/// certificate issued by `identity` (PEM cert, PEM key) trusting `ca`, sends Discover
/// Versions, and checks the answer succeeded.
pub async fn probe(addr: SocketAddr, ca: &Path, identity: (&str, &str)) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c).map_err(|e| e.to_string())?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(identity.0.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(identity.1.as_bytes()).map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let work = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("KMIP server not answering on {addr}: {e}"))?;
        let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("KMIP TLS handshake with {addr} failed: {e}"))?;
        tls.write_all(&discover_versions_request())
            .await
            .map_err(|e| e.to_string())?;
        let mut header = [0u8; 8];
        tls.read_exact(&mut header)
            .await
            .map_err(|e| e.to_string())?;
        let total = ttlv::message_len(&header).ok_or("KMIP answer is not a message")?;
        let mut body = vec![0u8; total];
        body[..8].copy_from_slice(&header);
        tls.read_exact(&mut body[8..])
            .await
            .map_err(|e| e.to_string())?;
        let resp = ttlv::decode(&body).map_err(|e| e.to_string())?;
        let ok = resp
            .child(ekm_kmip::tags::BATCH_ITEM)
            .and_then(|b| b.child(ekm_kmip::tags::RESULT_STATUS))
            .and_then(ttlv::Item::as_enum)
            == Some(ekm_kmip::tags::status::SUCCESS);
        let _ = tls.shutdown().await;
        if ok {
            Ok(())
        } else {
            Err("KMIP server refused Discover Versions".to_owned())
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), work)
        .await
        .map_err(|_| format!("KMIP server on {addr} did not answer within 5 s"))?
}

/// A KMIP 1.0 Discover Versions request (no versions named: the server lists its own).
pub fn discover_versions_request() -> zeroize::Zeroizing<Vec<u8>> {
    use ekm_kmip::tags as t;
    use ttlv::Item;
    ttlv::encode(&Item::structure(
        t::REQUEST_MESSAGE,
        vec![
            Item::structure(
                t::REQUEST_HEADER,
                vec![
                    Item::structure(
                        t::PROTOCOL_VERSION,
                        vec![
                            Item::int(t::PROTOCOL_VERSION_MAJOR, 1),
                            Item::int(t::PROTOCOL_VERSION_MINOR, 0),
                        ],
                    ),
                    Item::int(t::BATCH_COUNT, 1),
                ],
            ),
            Item::structure(
                t::BATCH_ITEM,
                vec![
                    Item::enumeration(t::OPERATION, t::op::DISCOVER_VERSIONS),
                    Item::structure(t::REQUEST_PAYLOAD, Vec::new()),
                ],
            ),
        ],
    ))
}
