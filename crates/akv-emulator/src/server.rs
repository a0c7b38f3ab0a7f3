//! The emulator's HTTPS server: TLS set-up, routes, token and key handlers.

// Handlers return the error response itself (`Result<_, Response>`), the axum idiom; its size
// does not matter in a test server.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use parking_lot::Mutex;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPublicKey};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{KeyEntry, LOGIN_HOST, RESOURCE, State, Version};

type Shared = Arc<Mutex<State>>;

/// Requests served, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Tokens issued.
    pub tokens: u64,
    /// Token requests refused.
    pub token_refusals: u64,
    /// Vault requests answered with the 401 challenge.
    pub challenges: u64,
    /// Key reads.
    pub gets: u64,
    /// Wraps.
    pub wraps: u64,
    /// Unwraps.
    pub unwraps: u64,
    /// 429s served.
    pub throttled: u64,
}

/// A CA and a server certificate for the emulator's names; the CA's PEM and the TLS config.
pub(crate) fn tls_config() -> Result<(String, Arc<rustls::ServerConfig>), String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let e = |x: rcgen::Error| x.to_string();
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "akv-emulator test CA");
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let mut leaf = CertificateParams::new(vec![
        "localhost".to_owned(),
        "vault.localhost".to_owned(),
        "*.vault.localhost".to_owned(),
        LOGIN_HOST.to_owned(),
    ])
    .map_err(e)?;
    leaf.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    leaf.distinguished_name
        .push(DnType::CommonName, "akv-emulator");
    let leaf_key = KeyPair::generate().map_err(e)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).map_err(e)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|x| x.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .map_err(|x| x.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((ca_cert.pem(), Arc::new(config)))
}

/// The RSA public key in a certificate (DER).
pub(crate) fn public_key_of_cert(der: &[u8]) -> Result<RsaPublicKey, String> {
    use x509_cert::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    rsa::pkcs8::DecodePublicKey::from_public_key_der(&spki)
        .map_err(|e: rsa::pkcs8::spki::Error| e.to_string())
}

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/keys/{name}", get(get_latest))
        .route("/keys/{name}/", get(get_latest))
        .route("/keys/{name}/create", post(create))
        .route("/keys/{name}/{version}", get(get_version))
        .route("/keys/{name}/{version}/wrapkey", post(wrap))
        .route("/keys/{name}/{version}/unwrapkey", post(unwrap))
        .with_state(state)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned()
}

fn port_of(host: &str) -> String {
    host.rsplit_once(':')
        .map(|(_, p)| p.to_owned())
        .unwrap_or_else(|| "443".into())
}

fn b64d(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
        .or_else(|| URL_SAFE.decode(s).ok())
}

fn vault_error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Response {
    let mut err = json!({"code": code, "message": message});
    if let Some(i) = inner {
        err["innererror"] = json!({"code": i});
    }
    (status, Json(json!({ "error": err }))).into_response()
}

async fn token(
    AxState(state): AxState<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let delay = state.lock().faults.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let refuse = |state: &Shared, why: &str| {
        state.lock().counters.token_refusals += 1;
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": why})),
        )
            .into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let Some(app) = state.lock().apps.get(&client_id).cloned() else {
        return refuse(
            &state,
            "AADSTS700016: Application not found in the directory.",
        );
    };
    if app.tenant != tenant {
        return refuse(&state, "AADSTS90002: Tenant not found.");
    }
    let ok = if let Some(secret) = form.get("client_secret") {
        app.secret.as_deref() == Some(secret.as_str())
    } else if let Some(assertion) = form.get("client_assertion") {
        let aud = format!(
            "https://{LOGIN_HOST}:{}/{tenant}/oauth2/v2.0/token",
            port_of(&host_of(&headers))
        );
        match &app.cert_key {
            Some(k) => verify_assertion(assertion, k, &client_id, &aud),
            None => false,
        }
    } else {
        false
    };
    if !ok {
        return refuse(
            &state,
            "AADSTS7000215: Invalid client secret or assertion provided.",
        );
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut s = state.lock();
    s.tokens.insert(token.clone(), client_id);
    s.counters.tokens += 1;
    Json(json!({
        "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token
    }))
    .into_response()
}

/// Checks an RS256 JWT client assertion: signature by the registered certificate's key,
/// issuer and subject the client, audience the token endpoint, not expired.
fn verify_assertion(jwt: &str, key: &RsaPublicKey, client_id: &str, aud: &str) -> bool {
    use rsa::signature::Verifier;
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Some(hb), Some(pb), Some(sb)) = (b64d(h), b64d(p), b64d(sig)) else {
        return false;
    };
    let (Ok(header), Ok(claims)) = (
        serde_json::from_slice::<Value>(&hb),
        serde_json::from_slice::<Value>(&pb),
    ) else {
        return false;
    };
    if header["alg"] != "RS256" {
        return false;
    }
    let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone());
    let Ok(signature) = rsa::pkcs1v15::Signature::try_from(sb.as_slice()) else {
        return false;
    };
    if verifier
        .verify(format!("{h}.{p}").as_bytes(), &signature)
        .is_err()
    {
        return false;
    }
    let exp = claims["exp"].as_u64().unwrap_or(0);
    claims["iss"] == client_id && claims["sub"] == client_id && claims["aud"] == aud && exp > now()
}

async fn discovery(Path(tenant): Path<String>, headers: HeaderMap) -> Response {
    let base = format!(
        "https://{LOGIN_HOST}:{}/{tenant}",
        port_of(&host_of(&headers))
    );
    Json(json!({
        "issuer": format!("{base}/v2.0"),
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "response_types_supported": ["code", "id_token", "token"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "tenant_region_scope": "NA",
    }))
    .into_response()
}

/// Faults, latency and the bearer check of every vault request. `Err` is the response to send.
async fn admit(state: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let (delay, throttle) = {
        let mut s = state.lock();
        let t = if s.faults.throttle_next > 0 {
            s.faults.throttle_next -= 1;
            s.counters.throttled += 1;
            Some(s.faults.retry_after)
        } else {
            None
        };
        (s.faults.delay, t)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(after) = throttle {
        let mut r = vault_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Throttled",
            &format!("Rate limit is exceeded. Try again in {after} seconds."),
            None,
        );
        if let Ok(v) = after.to_string().parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(r);
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_owned);
    let mut s = state.lock();
    if token.is_some_and(|t| s.tokens.contains_key(&t)) {
        return Ok(());
    }
    s.counters.challenges += 1;
    let tenant = s
        .apps
        .values()
        .next()
        .map(|a| a.tenant.clone())
        .unwrap_or_else(|| "organizations".into());
    let challenge = format!(
        "Bearer authorization=\"https://{LOGIN_HOST}:{}/{tenant}\", resource=\"{RESOURCE}\"",
        port_of(&host_of(headers))
    );
    let mut r = vault_error(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "AKV10000: Request is missing a Bearer or PoP token.",
        None,
    );
    if let Ok(v) = challenge.parse() {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    Err(r)
}

fn kid(headers: &HeaderMap, name: &str, version: &str) -> String {
    format!("https://{}/keys/{name}/{version}", host_of(headers))
}

fn bundle(headers: &HeaderMap, name: &str, v: &Version) -> Value {
    let public = v.key.to_public_key();
    let t = now();
    json!({
        "key": {
            "kid": kid(headers, name, &v.id),
            "kty": "RSA",
            "key_ops": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        },
        "attributes": {
            "enabled": v.enabled, "created": t, "updated": t,
            "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90, "exportable": false,
        },
    })
}

fn not_found(name: &str) -> Response {
    vault_error(
        StatusCode::NOT_FOUND,
        "KeyNotFound",
        &format!("A key with (name/id) {name} was not found in this key vault."),
        None,
    )
}

/// Runs `f` on the live key `name` (version `version`, or the newest when empty).
fn with_version<T>(
    state: &Shared,
    name: &str,
    version: &str,
    f: impl FnOnce(&Version) -> Result<T, Response>,
) -> Result<T, Response> {
    let s = state.lock();
    let entry: &KeyEntry = s
        .keys
        .get(name)
        .filter(|k| !k.deleted)
        .ok_or_else(|| not_found(name))?;
    let v = if version.is_empty() {
        entry.versions.last()
    } else {
        entry.versions.iter().find(|v| v.id == version)
    }
    .ok_or_else(|| not_found(&format!("{name}/{version}")))?;
    f(v)
}

async fn get_latest(
    state: AxState<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    get_key(state, name, String::new(), headers).await
}

async fn get_version(
    state: AxState<Shared>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    get_key(state, name, version, headers).await
}

async fn get_key(
    AxState(state): AxState<Shared>,
    name: String,
    version: String,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&state, &headers).await {
        return r;
    }
    state.lock().counters.gets += 1;
    match with_version(&state, &name, &version, |v| Ok(bundle(&headers, &name, v))) {
        Ok(b) => Json(b).into_response(),
        Err(r) => r,
    }
}

async fn create(
    AxState(state): AxState<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = admit(&state, &headers).await {
        return r;
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !matches!(req["kty"].as_str(), Some("RSA") | Some("RSA-HSM")) {
        return vault_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "Only RSA keys are supported by the emulator.",
            None,
        );
    }
    let bits = req["key_size"].as_u64().unwrap_or(2048) as usize;
    if !(2048..=4096).contains(&bits) {
        return vault_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "key_size must be 2048 to 4096.",
            None,
        );
    }
    let Ok(key) = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), bits) else {
        return vault_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "key generation failed",
            None,
        );
    };
    let v = Version {
        id: uuid::Uuid::new_v4().simple().to_string(),
        key,
        enabled: true,
    };
    let b = bundle(&headers, &name, &v);
    let mut s = state.lock();
    let entry = s.keys.entry(name).or_insert(KeyEntry {
        versions: Vec::new(),
        deleted: false,
    });
    entry.deleted = false;
    entry.versions.push(v);
    Json(b).into_response()
}

#[derive(Clone, Copy)]
enum Op {
    Wrap,
    Unwrap,
}

async fn wrap(
    state: AxState<Shared>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    key_op(state, name, version, headers, body, Op::Wrap).await
}

async fn unwrap(
    state: AxState<Shared>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    key_op(state, name, version, headers, body, Op::Unwrap).await
}

async fn key_op(
    AxState(state): AxState<Shared>,
    name: String,
    version: String,
    headers: HeaderMap,
    body: axum::body::Bytes,
    op: Op,
) -> Response {
    if let Err(r) = admit(&state, &headers).await {
        return r;
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let alg = req["alg"].as_str().unwrap_or_default().to_owned();
    let Some(value) = req["value"].as_str().and_then(b64d) else {
        return vault_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "Property value is required.",
            None,
        );
    };
    {
        let mut s = state.lock();
        match op {
            Op::Wrap => s.counters.wraps += 1,
            Op::Unwrap => s.counters.unwraps += 1,
        }
    }
    let result = with_version(&state, &name, &version, |v| {
        if !v.enabled {
            let what = match op {
                Op::Wrap => "wrapKey",
                Op::Unwrap => "unwrapKey",
            };
            return Err(vault_error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!("Operation {what} is not allowed on a disabled key."),
                Some("KeyDisabled"),
            ));
        }
        let out = match (alg.as_str(), op) {
            ("RSA-OAEP-256", Op::Wrap) => v.key.to_public_key().encrypt(
                &mut rand::thread_rng(),
                Oaep::new::<Sha256>(),
                &value,
            ),
            ("RSA-OAEP-256", Op::Unwrap) => v.key.decrypt(Oaep::new::<Sha256>(), &value),
            ("RSA-OAEP", Op::Wrap) => v.key.to_public_key().encrypt(
                &mut rand::thread_rng(),
                Oaep::new::<sha1::Sha1>(),
                &value,
            ),
            ("RSA-OAEP", Op::Unwrap) => v.key.decrypt(Oaep::new::<sha1::Sha1>(), &value),
            _ => {
                return Err(vault_error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "Unsupported algorithm.",
                    None,
                ));
            }
        };
        out.map(|bytes| json!({"kid": kid(&headers, &name, &v.id), "value": URL_SAFE_NO_PAD.encode(bytes)}))
            .map_err(|_| vault_error(StatusCode::BAD_REQUEST, "BadParameter", "The parameter is incorrect: the value does not decrypt with this key.", None))
    });
    match result {
        Ok(b) => Json(b).into_response(),
        Err(r) => r,
    }
}
