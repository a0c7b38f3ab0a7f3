//! The Discover Versions self-probe behind `ekmip_reachability`: the node connects to its own
//! KMIP listener like a client, every [`PROBE_EVERY`], and records whether it answered.
//!
//! ```text
//! ProbeIdentity (made in memory at start: a CA and a client certificate, CN = PROBE_CN)
//!   │  the listener trusts this CA besides the client CA (so the probe works with the
//!   │  operator's PKI too); the CN names no owner: the probe can only discover versions
//!   ▼
//! probe: TCP ─► TLS, pinning the listener's own certificate ─► Discover Versions ─► SUCCESS?
//!   │     (all within PROBE_TIMEOUT)
//!   ▼
//! watch: on a change, Engine::set_kmip_server(Answering | NotAnswering(why))
//! ```
//!
//! Owns: the probe's identity, its pinning of the server certificate, its timing.
//! Must never: write the probe's CA key anywhere, or name an owner of keys in its certificate.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ekm_core::{Engine, KmipServerState};
use ekm_kmip::tags;
use ekm_kmip::ttlv;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often the listener probes itself.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The CN of the self-probe's client certificate (it names no owner of keys).
pub const PROBE_CN: &str = "ekm KMIP self-probe";

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
    /// The in-memory CA (which the listener trusts besides the client CA).
    pub(super) fn ca(&self) -> &CertificateDer<'static> {
        &self.ca
    }

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
