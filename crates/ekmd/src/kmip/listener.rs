//! The KMIP listener: mutual TLS, one task per connection, one message answered at a time,
//! every connection bounded.
//!
//! ```text
//! accept ─► Limiter::admit (at most --kmip-max-connections open: the one idle the longest
//!   │       is closed to make room; closed after --kmip-idle-timeout without a byte)
//!   ▼
//! TLS handshake (--kmip-handshake-timeout; TLS 1.2 or 1.3; a client certificate that chains
//!   │           to the client CA or the self-probe's CA)
//!   ▼
//! Client { identity: subject CN, source: peer address, owner: Server::owner_of(CN) }
//!   │   more than --kmip-max-connections-per-client open with this CN: closed
//!   └─► loop: read the 8-byte header ─► message length ─► read the rest (within
//!              MESSAGE_TIMEOUT) ─► report::answer on a blocking thread ─► write the answer
//!       (a close between messages ends it; a malformed header is answered once, then closed)
//! ```
//!
//! Blocking work is bounded by the connections: each has at most one message being answered.
//!
//! Owns: the TLS configuration of the listener, the accept loop, the connection bounds, the
//! framing of messages.
//! Must never: answer a client without a verified certificate, hold more connections than its
//! bounds, or read a message into memory it does not zeroize.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ekm_kmip::Server;
use ekm_kmip::ttlv;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::pki::{PkiFiles, load_certs, subject_cn};
use super::probe::ProbeIdentity;
use super::report::{Client, Reporting, answer};
use crate::connections::Limiter;

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
            .add(p.ca().clone())
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

/// How a client certificate without a subject CN is named in the audit trail.
const NO_CN: &str = "(client certificate without a CN)";

/// Longest a client may take to send the rest of a message once its header arrived.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default most connections open with one client certificate's CN.
pub const DEFAULT_MAX_PER_CLIENT: usize = 64;
/// Default idle timeout of a KMIP connection.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default TLS handshake timeout.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection bounds of the KMIP listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// All connections (and their idle timeout).
    pub connections: Arc<Limiter>,
    /// Most connections open with one certificate CN.
    pub per_client: usize,
    /// Longest TLS handshake.
    pub handshake: Duration,
}

impl Limits {
    /// The default bounds (`--kmip-max-connections` and the rest unset), counted into
    /// `metrics` when given.
    pub fn defaults(metrics: Option<Arc<crate::metrics::Metrics>>) -> Limits {
        Limits {
            connections: Limiter::new(
                "kmip",
                crate::connections::DEFAULT_MAX_CONNECTIONS,
                DEFAULT_IDLE_TIMEOUT,
                metrics,
            ),
            per_client: DEFAULT_MAX_PER_CLIENT,
            handshake: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Counts the open connections of one CN while alive.
struct ClientSlot {
    counts: Arc<parking_lot::Mutex<HashMap<Arc<str>, usize>>>,
    cn: Arc<str>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock();
        if let Some(n) = c.get_mut(&self.cn) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.cn);
            }
        }
    }
}

/// Serves KMIP on `listener` until the task is aborted, within `limits`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    server: Server,
    reporting: Reporting,
    limits: Limits,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let per_client = Arc::new(parking_lot::Mutex::new(HashMap::<Arc<str>, usize>::new()));
    limits.connections.start_sweeper();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("KMIP accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let Some(tcp) = limits.connections.admit(tcp) else {
            // Full of connections still closing: dropped at once.
            continue;
        };
        let acceptor = acceptor.clone();
        let server = server.clone();
        let reporting = reporting.clone();
        let (per_client, limits) = (per_client.clone(), limits.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
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
            let identity: Arc<str> = Arc::from(cn.as_deref().unwrap_or(NO_CN));
            let _slot = {
                let mut counts = per_client.lock();
                let n = counts.entry(identity.clone()).or_insert(0);
                if *n >= limits.per_client {
                    drop(counts);
                    tracing::warn!(%peer, client = %identity, cap = limits.per_client, "KMIP connection closed: too many open with this client certificate");
                    tls.get_ref().0.close("client_cap");
                    return;
                }
                *n += 1;
                ClientSlot {
                    counts: per_client.clone(),
                    cn: identity.clone(),
                }
            };
            let owner = cn.as_deref().and_then(|cn| server.owner_of(cn));
            let client = Client {
                identity,
                source: peer.ip(),
                owner,
            };
            connection(tls, server, reporting, client, peer).await;
        });
    }
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
        match tokio::time::timeout(MESSAGE_TIMEOUT, s.read_exact(&mut msg[8..])).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::info!(%peer, "KMIP: a message's body did not arrive in time; connection closed");
                return;
            }
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
