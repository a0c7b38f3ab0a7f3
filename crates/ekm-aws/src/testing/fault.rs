//! Fault injection for tests: a TLS server that answers every request with one canned KMS
//! answer (an AWS error body, say) and counts what it got, and a black hole that accepts
//! connections and never says a word.
//!
//! Owns: the canned HTTP/1.1 answers and the request log of the tests' fake endpoints.
//! Must never: listen anywhere but 127.0.0.1, or outlive its test (threads stop on drop).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use super::pki::TestPki;

/// One canned HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: String,
}

impl Answer {
    /// AWS's JSON error answer: `{"__type": code, "message": message}` with `status`.
    pub fn aws_error(status: u16, code: &str, message: &str) -> Self {
        let body = format!(
            "{{\"__type\":{},\"message\":{}}}",
            serde_json::Value::from(code),
            serde_json::Value::from(message)
        );
        Answer {
            status,
            headers: vec![("x-amzn-requestid".into(), "ekm-test".into())],
            body,
        }
    }

    /// KMS's throttling answer.
    pub fn throttling() -> Self {
        Self::aws_error(400, "ThrottlingException", "Rate exceeded")
    }
}

/// A request the fault server received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `X-Amz-Target` (e.g. `TrentService.Encrypt`).
    pub target: String,
    /// The whole request as text (headers and body), for leak checks.
    pub raw: String,
}

/// A TLS endpoint on 127.0.0.1 answering every request with one [`Answer`].
pub struct FaultServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Starts serving `answer` with a certificate of `pki`.
    pub fn start(pki: &TestPki, answer: Answer) -> Result<Self, String> {
        let config = pki.server_config()?;
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("nonblocking: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, n) = (received.clone(), stop.clone(), connections.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        n.fetch_add(1, Ordering::Relaxed);
                        let (config, answer, r) = (config.clone(), answer.clone(), r.clone());
                        std::thread::spawn(move || serve(sock, config, &answer, &r));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(FaultServer {
            addr,
            connections,
            received,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().clone()
    }

    /// TCP connections accepted so far (TLS handshakes tried).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection: TLS, then requests until the client closes (keep-alive honoured).
fn serve(
    sock: TcpStream,
    config: Arc<rustls::ServerConfig>,
    answer: &Answer,
    received: &Mutex<Vec<Received>>,
) {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, sock));
    loop {
        let mut head = String::new();
        let mut content_length = 0usize;
        let mut target = String::new();
        loop {
            let mut line = String::new();
            match tls.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "content-length" {
                    content_length = v.parse().unwrap_or(0);
                } else if k == "x-amz-target" {
                    target = v.to_owned();
                }
            }
            head.push_str(&line);
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        let mut body = vec![0u8; content_length];
        if tls.read_exact(&mut body).is_err() {
            return;
        }
        head.push_str(&String::from_utf8_lossy(&body));
        received.lock().push(Received { target, raw: head });
        let mut out = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n",
            answer.status,
            answer.body.len()
        );
        for (k, v) in &answer.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&answer.body);
        let stream = tls.get_mut();
        if stream.write_all(out.as_bytes()).is_err() || stream.flush().is_err() {
            return;
        }
    }
}

/// A listener on 127.0.0.1 that accepts every connection and never answers (a firewall that
/// drops, a hung server): TLS handshakes stall until the client gives up.
pub struct BlackHole {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BlackHole {
    /// Starts listening.
    pub fn start() -> Result<Self, String> {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("nonblocking: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, _)) => held.push(sock),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(BlackHole {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One CONNECT request a [`ConnectProxy`] received.
#[derive(Debug, Clone)]
pub struct Tunnel {
    /// The CONNECT target (`host:port`).
    pub target: String,
    /// The `Proxy-Authorization` header, if any.
    pub authorization: Option<String>,
}

/// An HTTP CONNECT proxy on 127.0.0.1 that tunnels every target to one address (a proxy
/// that resolves names itself), refusing with 407 unless the expected basic credentials come.
pub struct ConnectProxy {
    addr: SocketAddr,
    tunnels: Arc<Mutex<Vec<Tunnel>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ConnectProxy {
    /// Tunnels to `upstream`; `expect` is the required `Proxy-Authorization` value, if any.
    pub fn start(upstream: SocketAddr, expect: Option<String>) -> Result<Self, String> {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("nonblocking: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (tunnels.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let (t, expect) = (t.clone(), expect.clone());
                        std::thread::spawn(move || tunnel(sock, upstream, expect, &t));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(ConnectProxy {
            addr,
            tunnels,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every CONNECT so far.
    pub fn tunnels(&self) -> Vec<Tunnel> {
        self.tunnels.lock().clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tunnel(
    sock: TcpStream,
    upstream: SocketAddr,
    expect: Option<String>,
    tunnels: &Mutex<Vec<Tunnel>>,
) {
    let _ = sock.set_nonblocking(false);
    let Ok(read_half) = sock.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut target = String::new();
    let mut authorization = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(rest) = line.strip_prefix("CONNECT ") {
            target = rest.split_whitespace().next().unwrap_or("").to_owned();
        } else if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("proxy-authorization") {
                authorization = Some(v.trim().to_owned());
            }
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
    }
    tunnels.lock().push(Tunnel {
        target,
        authorization: authorization.clone(),
    });
    let mut client = sock;
    if expect.is_some() && authorization != expect {
        let _ = client.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\
              Proxy-Authenticate: Basic realm=\"ekm\"\r\ncontent-length: 0\r\n\r\n",
        );
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
        || server.write_all(reader.buffer()).is_err()
    {
        return;
    }
    let (Ok(mut from_server), Ok(mut to_client)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut reader, &mut server);
    let _ = server.shutdown(std::net::Shutdown::Write);
    let _ = back.join();
}
