//! The node's KMIP server over mutual TLS (`--kmip-listen`): the PKI under `DATA_DIR/kmip/`
//! (or the operator's), client certificates (`ekmd kmip-client-cert`), the listener, its
//! metrics and audit records, and the Discover Versions self-probe behind
//! `ekmip_reachability`.
//!
//! A client certificate's subject CN names the owner of the keys it reaches: the cluster's
//! name or an SVM's name ([`ekm_kmip::Server::owner_of`]).
//!
//! Every answered message is counted (`ekm_kmip_requests` by operation and result, Gets also
//! as data-path reads with `path="kmip"`), and every Create, Register, Activate, Revoke and
//! Destroy is in the audit trail — with the certificate's CN as user, the peer's address, the
//! operation, the uid and the result — fsync'd before the answer is written to the socket.
//!
//! The self-probe connects to the listener like a client: through TLS, with a client
//! certificate from a CA made in memory at start ([`ProbeIdentity`]: never written, trusted by
//! the listener besides the client CA, so the probe works with the operator's PKI too), pinning
//! the listener's own certificate. Its CN names no owner: the probe can only discover versions
//! and query.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ekm_core::{Engine, KeyOwner, KmipServerState};
use ekm_kmip::ttlv::{self, Item};
use ekm_kmip::{ItemOutcome, Server, tags};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::audit::{AuditLog, Event};
use crate::metrics::Metrics;

/// How often the listener probes itself.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The CN of the self-probe's client certificate (it names no owner of keys).
pub const PROBE_CN: &str = "ekm KMIP self-probe";

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
/// `probe`: the self-probe's in-memory CA, trusted besides the client CA.
pub fn server_config(
    files: &PkiFiles,
    probe: Option<&ProbeIdentity>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(&files.client_ca)? {
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", files.client_ca.display()))?;
    }
    if let Some(p) = probe {
        roots
            .add(p.ca.clone())
            .map_err(|e| format!("the self-probe's CA: {e}"))?;
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

/// Where the listener reports what it answers: the metrics and, when one is kept, the audit
/// trail.
#[derive(Debug, Clone)]
pub struct Reporting {
    /// Counted into.
    pub metrics: Arc<Metrics>,
    /// Written to (and fsync'd) before an answer that changed state leaves.
    pub audit: Option<Arc<AuditLog>>,
}

/// How a client certificate without a subject CN is named in the audit trail.
const NO_CN: &str = "(client certificate without a CN)";

/// Serves KMIP on `listener` until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    server: Server,
    reporting: Reporting,
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
        let reporting = reporting.clone();
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
            let client = Client {
                identity: Arc::from(cn.as_deref().unwrap_or(NO_CN)),
                source: peer.ip(),
                owner,
            };
            connection(tls, server, reporting, client, peer).await;
        });
    }
}

/// The client of one connection.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its certificate's subject CN (the audit trail's user).
    pub identity: Arc<str>,
    /// Its address.
    pub source: IpAddr,
    /// The owner of keys its CN names, if any.
    pub owner: Option<KeyOwner>,
}

async fn connection<S>(
    mut s: S,
    server: Server,
    reporting: Reporting,
    client: Client,
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
            let resp = answer(&server, &reporting, &client, &header);
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
        let (srv, rep, cl) = (server.clone(), reporting.clone(), client.clone());
        let resp = match tokio::task::spawn_blocking(move || answer(&srv, &rep, &cl, &msg)).await {
            Ok(r) => r,
            Err(_) => return,
        };
        if s.write_all(&resp).await.is_err() || s.flush().await.is_err() {
            return;
        }
    }
}

/// Answers one request message from `client`: counts it, and appends (and fsyncs) the audit
/// records of its state-changing items before returning the answer. When a record cannot be
/// written, every item of the answer becomes a General Failure saying so: nothing is
/// acknowledged that the trail does not hold. Blocking.
pub fn answer(
    server: &Server,
    reporting: &Reporting,
    client: &Client,
    request: &[u8],
) -> zeroize::Zeroizing<Vec<u8>> {
    let mut outcomes = Vec::new();
    let resp = server.handle_with_outcomes(client.owner, request, &mut outcomes);
    let m = &reporting.metrics;
    // The node's own reachability probe (a Discover Versions every few seconds) is not
    // client traffic: it would drown the series of a quiet node.
    let counted = &*client.identity != PROBE_CN;
    if counted && outcomes.is_empty() {
        m.kmip_request("none", "invalid_message");
    }
    for o in outcomes.iter().filter(|_| counted) {
        m.kmip_request(o.operation_name(), o.result_name());
        if o.is_get() {
            m.key_read("kmip", read_outcome(o), o.took);
        }
    }
    let Some(audit) = &reporting.audit else {
        return resp;
    };
    for o in outcomes.iter().filter(|o| o.is_audited()) {
        let ev = Event {
            user: Some(client.identity.to_string()),
            source: Some(client.source.to_string()),
            operation: format!("kmip.{}", o.operation_name()),
            key_id: o.uid.clone(),
            result: match o.reason {
                None => "0".into(),
                Some(_) => o.result_name().into(),
            },
            ..Default::default()
        };
        match audit.append(&ev) {
            Ok(seq) => tracing::info!(seq, operation = %ev.operation, "audit record written"),
            Err(e) => {
                tracing::error!(
                    operation = %ev.operation,
                    "audit record could not be written ({e}); the KMIP answer says so"
                );
                return unacknowledged(&resp, &outcomes);
            }
        }
    }
    resp
}

/// The data-path outcome label of a Get.
fn read_outcome(o: &ItemOutcome) -> &'static str {
    match o.reason {
        None => "ok",
        Some(tags::reason::ITEM_NOT_FOUND) => "not_found",
        Some(_) => "error",
    }
}

/// `resp` with every batch item replaced by a General Failure: the audit trail could not
/// record what was done.
fn unacknowledged(resp: &[u8], outcomes: &[ItemOutcome]) -> zeroize::Zeroizing<Vec<u8>> {
    let header = ttlv::decode(resp)
        .ok()
        .and_then(|m| m.child(tags::RESPONSE_HEADER).cloned())
        .unwrap_or_else(|| Item::structure(tags::RESPONSE_HEADER, Vec::new()));
    let mut children = vec![header];
    for o in outcomes {
        let mut item = Vec::new();
        if let Some(op) = o.operation {
            item.push(Item::enumeration(tags::OPERATION, op));
        }
        item.push(Item::enumeration(
            tags::RESULT_STATUS,
            tags::status::OPERATION_FAILED,
        ));
        item.push(Item::enumeration(
            tags::RESULT_REASON,
            tags::reason::GENERAL_FAILURE,
        ));
        item.push(Item::text(
            tags::RESULT_MESSAGE,
            "The audit trail could not record this request; its outcome is not acknowledged.",
        ));
        children.push(Item::structure(tags::BATCH_ITEM, item));
    }
    ttlv::encode(&Item::structure(tags::RESPONSE_MESSAGE, children))
}

/// The self-probe's client identity: a CA made in memory (its key never leaves this
/// process) and a client certificate from it whose CN ([`PROBE_CN`]) names no owner.
pub struct ProbeIdentity {
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ProbeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeIdentity")
    }
}

impl ProbeIdentity {
    /// A fresh CA and client certificate.
    pub fn new() -> Result<ProbeIdentity, String> {
        let mut ca = rcgen::CertificateParams::default();
        ca.distinguished_name.push(
            rcgen::DnType::CommonName,
            "ekm KMIP self-probe CA (in memory)",
        );
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        let ca_key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let ca = ca.self_signed(&ca_key).map_err(|e| e.to_string())?;
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, PROBE_CN);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = p.signed_by(&key, &ca, &ca_key).map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?;
        Ok(ProbeIdentity {
            ca: ca.der().clone(),
            cert: cert.der().clone(),
            key,
        })
    }
}

/// Accepts exactly one server certificate (the listener's own), with its handshake
/// signatures checked.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The listener's own certificate (the first of `files.server_cert`), which the probe pins.
pub fn own_certificate(files: &PkiFiles) -> Result<CertificateDer<'static>, String> {
    load_certs(&files.server_cert)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{}: no certificate", files.server_cert.display()))
}

/// Where the probe connects for a listener bound to `bound`: the same port on loopback when
/// it listens on every address.
pub fn probe_address(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// The Discover Versions probe behind `ekmip_reachability`: connects to `addr` as
/// `identity`, accepting only the server certificate `server_cert`, sends Discover Versions,
/// and checks the answer succeeded — within [`PROBE_TIMEOUT`].
pub async fn probe(
    addr: SocketAddr,
    server_cert: &CertificateDer<'static>,
    identity: &ProbeIdentity,
) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            cert: server_cert.clone(),
            provider,
        }))
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key.clone_key())
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let work = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("no connection to {addr}: {e}"))?;
        let name = ServerName::from(addr.ip());
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("the TLS handshake with {addr} failed: {e}"))?;
        tls.write_all(&discover_versions_request())
            .await
            .map_err(|e| format!("sending to {addr} failed: {e}"))?;
        let mut header = [0u8; 8];
        tls.read_exact(&mut header)
            .await
            .map_err(|e| format!("no answer from {addr}: {e}"))?;
        let total = ttlv::message_len(&header)
            .ok_or_else(|| format!("the answer from {addr} is not a KMIP message"))?;
        let mut body = vec![0u8; total];
        body[..8].copy_from_slice(&header);
        tls.read_exact(&mut body[8..])
            .await
            .map_err(|e| format!("the answer from {addr} was cut short: {e}"))?;
        let resp = ttlv::decode(&body).map_err(|e| format!("the answer from {addr}: {e}"))?;
        let ok = resp
            .child(tags::BATCH_ITEM)
            .and_then(|b| b.child(tags::RESULT_STATUS))
            .and_then(ttlv::Item::as_enum)
            == Some(tags::status::SUCCESS);
        let _ = tls.shutdown().await;
        if ok {
            Ok(())
        } else {
            Err(format!("{addr} refused Discover Versions"))
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, work)
        .await
        .map_err(|_| format!("{addr} did not answer within {} s", PROBE_TIMEOUT.as_secs()))?
}

/// Probes the listener at `addr` every [`PROBE_EVERY`] and records the result in the engine
/// (status' `ekmip_reachability`, and this node's liveness record in a shared store). Runs
/// until aborted.
pub async fn watch(
    engine: Arc<Engine>,
    addr: SocketAddr,
    server_cert: CertificateDer<'static>,
    identity: Arc<ProbeIdentity>,
) {
    let mut last: Option<KmipServerState> = None;
    loop {
        let state = match probe(addr, &server_cert, &identity).await {
            Ok(()) => KmipServerState::Answering,
            Err(e) => KmipServerState::NotAnswering(e),
        };
        if last.as_ref() != Some(&state) {
            match &state {
                KmipServerState::NotAnswering(why) => {
                    tracing::warn!("KMIP self-probe failed: {why}")
                }
                _ => tracing::info!("KMIP self-probe: the listener answers"),
            }
            last = Some(state.clone());
            let e = engine.clone();
            let _ = tokio::task::spawn_blocking(move || e.set_kmip_server(state)).await;
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// A KMIP 1.0 Discover Versions request (no versions named: the server lists its own).
pub fn discover_versions_request() -> zeroize::Zeroizing<Vec<u8>> {
    ekm_kmip::request_message(
        (1, 0),
        vec![(ekm_kmip::tags::op::DISCOVER_VERSIONS, Vec::new())],
    )
}
