//! The KMIP listener: mutual TLS, one task per connection, one message answered at a time.
//!
//! ```text
//! accept ─► TLS handshake (10 s; TLS 1.2 or 1.3; a client certificate that chains to the
//!   │       client CA or the self-probe's CA)
//!   ▼
//! Client { identity: subject CN, source: peer address, owner: Server::owner_of(CN) }
//!   │
//!   └─► loop: read the 8-byte header ─► message length ─► read the rest
//!              ─► report::answer on a blocking thread ─► write the answer
//!       (a close between messages ends it; a malformed header is answered once, then closed)
//! ```
//!
//! Owns: the TLS configuration of the listener, the accept loop, the framing of messages.
//! Must never: answer a client without a verified certificate, or read a message into memory
//! it does not zeroize.

use std::net::SocketAddr;
use std::sync::Arc;

use ekm_kmip::Server;
use ekm_kmip::ttlv;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::pki::{PkiFiles, load_certs, subject_cn};
use super::probe::ProbeIdentity;
use super::report::{Client, Reporting, answer};

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
