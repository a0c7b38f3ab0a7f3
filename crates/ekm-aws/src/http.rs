//! The SDK's HTTP client: `reqwest` (rustls) behind the smithy `HttpClient` trait, and an
//! interceptor that keeps bodies out of the SDK's trace log.
//!
//! Owns: TLS trust (system roots plus the extra CA, the `verify`/`verify_host` switches), host
//! pinning, the proxy (and no proxy from the environment without one), connect and read
//! timeouts, and the map from transport failures to smithy `ConnectorError`s.
//! Must never: follow a redirect, read a proxy from the environment, or hand the SDK a body
//! whose `Debug` prints its bytes (an Encrypt request and a Decrypt answer carry a KEK).

use std::fmt;
use std::time::Duration;

use aws_sdk_kms::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_kms::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use ekm_core::backend::{BackendError, BackendErrorKind};
use ekm_core::config::ProxyType;
use ekm_core::secret::ExposeSecret;

use crate::access::{AwsAccess, AwsOptions};
use crate::errors;

/// A body whose `Debug` is `BoxBody`, never its bytes; rebuilt for every retry.
fn opaque_body(bytes: Bytes) -> SdkBody {
    SdkBody::retryable(move || SdkBody::from_body_1_x(http_body_util::Full::new(bytes.clone())))
}

/// Swaps the serialized request body for an [`opaque_body`] once it is signed, before the
/// orchestrator traces the request it transmits.
#[derive(Debug)]
pub(crate) struct HideBodies;

impl Intercept for HideBodies {
    fn name(&self) -> &'static str {
        "ekm-aws: opaque bodies"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request_mut().body_mut();
        if let Some(bytes) = body.bytes() {
            let bytes = Bytes::copy_from_slice(bytes);
            *body = opaque_body(bytes);
        }
        Ok(())
    }
}

/// The `reqwest` client one configuration's SDK client sends through.
#[derive(Clone)]
pub(crate) struct ReqwestHttpClient {
    client: reqwest::Client,
}

impl fmt::Debug for ReqwestHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReqwestHttpClient")
    }
}

impl ReqwestHttpClient {
    /// A client for `access` under `options`.
    pub(crate) fn new(options: &AwsOptions, access: &AwsAccess) -> Result<Self, BackendError> {
        let attempt = access.attempt_timeout();
        let mut b = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout.min(attempt))
            .timeout(attempt)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60));
        let extra = match &options.extra_ca_pem {
            Some(pem) => reqwest::Certificate::from_pem_bundle(pem).map_err(|_| {
                BackendError::new(
                    BackendErrorKind::Unreachable,
                    "the extra CA is not valid PEM",
                )
            })?,
            None => Vec::new(),
        };
        b = if !access.verify {
            // ONTAP `verify` false: any certificate (and so any name) is accepted.
            b.tls_danger_accept_invalid_certs(true)
        } else if !access.verify_host {
            // The chain is still verified, against an explicit root set (rustls allows
            // skipping the name check only then): the system's roots plus the extra CA.
            b.tls_certs_only(native_roots().into_iter().chain(extra))
                .tls_danger_accept_invalid_hostnames(true)
        } else {
            b.tls_certs_merge(extra)
        };
        for (host, addr) in &options.resolve {
            b = b.resolve(host, *addr);
        }
        b = match &access.proxy {
            // Never HTTPS_PROXY and friends: key traffic goes where the configuration says.
            None => b.no_proxy(),
            Some(p) => {
                let scheme = match p.proxy_type {
                    ProxyType::Http => "http",
                    ProxyType::Https => "https",
                };
                let host = if p.host.contains(':') && !p.host.starts_with('[') {
                    format!("[{}]", p.host)
                } else {
                    p.host.clone()
                };
                let mut proxy = reqwest::Proxy::all(format!("{scheme}://{host}:{}", p.port))
                    .map_err(|_| {
                        BackendError::new(
                            BackendErrorKind::Unreachable,
                            "the proxy address is not usable",
                        )
                    })?;
                if let Some(user) = &p.username {
                    let pw = p.password.as_ref().map(|s| s.expose_secret()).unwrap_or("");
                    proxy = proxy.basic_auth(user, pw);
                }
                b.proxy(proxy)
            }
        };
        let client = b.build().map_err(|e| {
            BackendError::new(
                BackendErrorKind::Unreachable,
                format!("cannot build the HTTP client: {}", errors::chain(&e)),
            )
        })?;
        Ok(ReqwestHttpClient { client })
    }
}

/// The operating system's trusted roots (only read when `verify_host` is off: otherwise the
/// platform verifier uses them itself).
fn native_roots() -> Vec<reqwest::Certificate> {
    rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
        .collect()
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            client: self.client.clone(),
            read_timeout: settings.read_timeout(),
        })
    }
}

/// One connector: the shared client plus the SDK's read timeout for each request.
struct Connector {
    client: reqwest::Client,
    read_timeout: Option<Duration>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(send(client, read_timeout, request))
    }
}

async fn send(
    client: reqwest::Client,
    read_timeout: Option<Duration>,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let method = reqwest::Method::from_bytes(request.method().as_bytes())
        .map_err(|e| ConnectorError::user(e.into()))?;
    let mut b = client.request(method, request.uri());
    for (name, value) in request.headers() {
        b = b.header(name, value);
    }
    if let Some(t) = read_timeout {
        b = b.timeout(t);
    }
    let body = collect(request.into_body()).await?;
    let rsp = b.body(body).send().await.map_err(connector_error)?;
    let status = StatusCode::try_from(rsp.status().as_u16())
        .map_err(|e| ConnectorError::other(e.into(), None))?;
    let headers = rsp.headers().clone();
    let bytes = rsp.bytes().await.map_err(connector_error)?;
    let mut out = HttpResponse::new(status, opaque_body(bytes));
    for (name, value) in &headers {
        if let Ok(v) = value.to_str() {
            out.headers_mut()
                .append(name.as_str().to_owned(), v.to_owned());
        }
    }
    Ok(out)
}

/// The whole request body (KMS requests are small JSON documents).
async fn collect(body: SdkBody) -> Result<Bytes, ConnectorError> {
    if let Some(b) = body.bytes() {
        return Ok(Bytes::copy_from_slice(b));
    }
    use http_body_util::BodyExt;
    let collected = body.collect().await.map_err(ConnectorError::user)?;
    Ok(collected.to_bytes())
}

/// A transport failure as the SDK's retry logic sees it: timeouts and connection failures are
/// transient (retried within the budget); a TLS refusal is not (retrying cannot fix trust).
fn connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if errors::tls_cause(&e).is_some() {
        ConnectorError::other(e.into(), None)
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_opaque_body_never_shows_its_bytes() {
        let b = opaque_body(Bytes::from_static(b"CANARY-KEK"));
        let dbg = format!("{b:?}");
        assert!(!dbg.contains("CANARY"), "{dbg}");
        assert!(b.try_clone().is_some(), "retries need a rebuildable body");
    }
}
