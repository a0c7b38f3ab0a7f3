//! PKCS#12 client certificates: decoding and checking that a file opens with its password.
//!
//! Owns: the one place that hands untrusted PKCS#12 bytes to the parser.
//! Must never: panic on any input, or keep the decoded private key after the check.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, ErrorKind, Result};
use crate::secret::SecretBytes;

/// Largest PKCS#12 file accepted, decoded.
pub const MAX_PKCS12_LEN: usize = 64 * 1024;

const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A PKCS#12 client certificate that is known to open with its password and to hold a private
/// key with its certificate chain. Wiped on drop; `Debug` shows nothing.
#[derive(Clone, Debug)]
pub struct ClientCertificate {
    pfx: SecretBytes,
    password: Option<SecretString>,
}

impl ClientCertificate {
    /// Decodes base64 PKCS#12 (line breaks and spaces allowed) and checks it opens with
    /// `password` (an absent password is the empty one). Any failure is
    /// [`ErrorKind::InvalidClientCertificate`].
    pub fn from_base64(b64: &SecretString, password: Option<SecretString>) -> Result<Self> {
        let compact: zeroize::Zeroizing<Vec<u8>> = zeroize::Zeroizing::new(
            b64.expose_secret()
                .bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect(),
        );
        let der = B64
            .decode(&*compact)
            .map_err(|_| invalid("The certificate is not valid base64."))?;
        Self::from_der(SecretBytes::new(der), password)
    }

    /// Checks DER PKCS#12 bytes open with `password`.
    pub fn from_der(pfx: SecretBytes, password: Option<SecretString>) -> Result<Self> {
        if pfx.is_empty() || pfx.len() > MAX_PKCS12_LEN {
            return Err(invalid("The certificate is empty or larger than 64 KiB."));
        }
        let pw = password.as_ref().map(|p| p.expose_secret()).unwrap_or("");
        let store = open_store(pfx.expose_secret(), pw)?;
        let has_chain = store
            .private_key_chain()
            .is_some_and(|(_, chain)| !chain.certs().is_empty());
        if !has_chain {
            return Err(invalid(
                "The PKCS#12 file holds no private key with its certificate.",
            ));
        }
        Ok(ClientCertificate { pfx, password })
    }

    /// The DER PKCS#12 bytes.
    pub fn pfx(&self) -> &SecretBytes {
        &self.pfx
    }

    /// The password, if one was given.
    pub fn password(&self) -> Option<&SecretString> {
        self.password.as_ref()
    }

    /// Opens the file again (for a backend that needs the key and chain).
    pub fn open(&self) -> Result<KeyStore> {
        let pw = self
            .password
            .as_ref()
            .map(|p| p.expose_secret())
            .unwrap_or("");
        open_store(self.pfx.expose_secret(), pw)
    }
}

fn invalid(why: &str) -> Error {
    Error::new(ErrorKind::InvalidClientCertificate)
        .with_detail(why.to_owned())
        .with_target("client_certificate")
}

/// Runs the parser, turning an unexpected panic inside it into an ordinary error: the bytes
/// come from the network and the parser is third-party code.
fn open_store(der: &[u8], password: &str) -> Result<KeyStore> {
    let parsed = std::panic::catch_unwind(|| {
        KeyStore::from_pkcs12(der, password, Pkcs12ImportPolicy::Strict)
    });
    match parsed {
        Ok(Ok(store)) => Ok(store),
        Ok(Err(_)) | Err(_) => Err(invalid(
            "The PKCS#12 file does not parse or does not open with the given password.",
        )),
    }
}
