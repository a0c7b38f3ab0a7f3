//! PKCS#12 certificate authentication: a JWT client assertion signed (RS256) with the
//! certificate's private key, with the certificate's SHA-1 and SHA-256 thumbprints in the
//! header, as Entra ID expects. Pure Rust: `p12-keystore` opens the file, `rsa` signs.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ekm_core::backend::{BackendError, BackendErrorKind};
use ekm_core::pkcs12::ClientCertificate;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha2::{Digest, Sha256};

/// Signs client assertions for one application. The key is held as the `rsa` crate holds it
/// (zeroized on drop); `Debug` shows only the client id.
pub(crate) struct CertificateAssertion {
    signing: SigningKey<Sha256>,
    x5t: String,
    x5t_s256: String,
    client_id: String,
    audience: String,
}

impl fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn refused(why: &str) -> BackendError {
    BackendError::new(BackendErrorKind::AuthenticationFailed, why)
}

impl CertificateAssertion {
    pub(crate) fn new(
        cert: &ClientCertificate,
        client_id: &str,
        authority: &str,
        tenant: &str,
    ) -> Result<Self, BackendError> {
        let store = cert
            .open()
            .map_err(|_| refused("the client certificate does not open"))?;
        let (_, chain) = store
            .private_key_chain()
            .ok_or_else(|| refused("the client certificate has no private key"))?;
        let key = rsa::RsaPrivateKey::from_pkcs8_der(chain.key().as_der())
            .map_err(|_| refused("the certificate's private key is not an RSA key"))?;
        let leaf = chain
            .certs()
            .first()
            .ok_or_else(|| refused("the client certificate has no certificate"))?;
        let der = leaf.as_der();
        let x5t = B64URL.encode(<sha1::Sha1 as sha1::Digest>::digest(der));
        let x5t_s256 = B64URL.encode(Sha256::digest(der));
        Ok(CertificateAssertion {
            signing: SigningKey::<Sha256>::new(key),
            x5t,
            x5t_s256,
            client_id: client_id.to_owned(),
            audience: format!(
                "{}/{tenant}/oauth2/v2.0/token",
                authority.trim_end_matches('/')
            ),
        })
    }

    /// A fresh assertion, valid for ten minutes.
    pub(crate) fn sign(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = serde_json::json!({
            "alg": "RS256", "typ": "JWT", "x5t": self.x5t, "x5t#S256": self.x5t_s256,
        });
        let claims = serde_json::json!({
            "aud": self.audience, "iss": self.client_id, "sub": self.client_id,
            "jti": uuid::Uuid::new_v4().to_string(), "nbf": now, "iat": now, "exp": now + 600,
        });
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let signature = self.signing.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64URL.encode(signature.to_bytes()))
    }
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        Ok(self.sign())
    }
}
