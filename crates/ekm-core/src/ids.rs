//! Identifiers that are valid by construction: AKV key ids, vault URLs, data key ids, key tags,
//! key owners.
//!
//! Owns: parsing of every identifier that arrives from outside.
//! Must never: panic on any input; accept a key id without a version.
//!
//! | type | what | example |
//! |---|---|---|
//! | [`KeyId`] | an AKV key with its version | `https://v.vault.azure.net/keys/k1/a8e6…2a74` |
//! | [`VaultUrl`] | a vault (`name` in the seed) | `https://myvault.vault.azure.net/` |
//! | [`DataKeyId`] | a data key: 32 random bytes | 64 hex characters |
//! | [`KeyTag`] | the caller's label of a data key | `vol1` |
//! | [`KeyOwner`] | whose data key it is | the cluster, or one SVM by uuid |

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};

/// Longest URL accepted for `key_id` and `name`.
const MAX_URL_LEN: usize = 2048;

/// Parses an `https://host[:port]` URL with no user info, query or fragment. Returns the URL and
/// its path.
fn parse_https(input: &str) -> Option<Url> {
    // ASCII and the plain `https://` form only: no IDNA rewriting of hosts, no lenient
    // `https:/host` spellings, so what is accepted prints back as what was given.
    if input.len() > MAX_URL_LEN
        || !input.is_ascii()
        || !input.starts_with("https://")
        || input.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let url = Url::parse(input).ok()?;
    if url.scheme() != "https"
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return None;
    }
    Some(url)
}

/// `scheme://host[:port]` of a URL, without a trailing slash.
fn origin_of(url: &Url) -> String {
    match url.port() {
        Some(p) => format!("https://{}:{}", url.host_str().unwrap_or_default(), p),
        None => format!("https://{}", url.host_str().unwrap_or_default()),
    }
}

/// An AKV key identifier *with* its version:
/// `https://<host>[:port]/keys/<name>/<32 hex version>`.
///
/// Any https host is accepted, so sovereign clouds, private endpoints and local emulators work.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyId {
    text: String,
    vault: String,
    name: String,
    version: String,
}

impl KeyId {
    /// Parses a key id; any other form is [`ErrorKind::InvalidKeyId`].
    pub fn parse(input: &str) -> Result<KeyId> {
        Self::parse_inner(input)
            .ok_or_else(|| Error::new(ErrorKind::InvalidKeyId).with_target("key_id"))
    }

    fn parse_inner(input: &str) -> Option<KeyId> {
        let url = parse_https(input)?;
        let mut segments = url.path_segments()?;
        let (keys, name, version) = (segments.next()?, segments.next()?, segments.next()?);
        if segments.next().is_some() || keys != "keys" {
            return None;
        }
        let name_ok = (1..=127).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let version_ok = version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit());
        if !name_ok || !version_ok {
            return None;
        }
        let vault = origin_of(&url);
        let version = version.to_ascii_lowercase();
        let text = format!("{vault}/keys/{name}/{version}");
        if text.len() > MAX_URL_LEN {
            return None;
        }
        Some(KeyId {
            text,
            vault,
            name: name.to_owned(),
            version,
        })
    }

    /// The canonical URL text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `https://host[:port]` of the vault that holds the key.
    pub fn vault(&self) -> &str {
        &self.vault
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-hex key version.
    pub fn version(&self) -> &str {
        &self.version
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.text)
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyId::parse(&s).map_err(|_| serde::de::Error::custom("invalid key id"))
    }
}

/// The vault URI of a configuration (`name` in the seed): `https://host[:port]` with an empty
/// or `/` path. Kept as given, so GET returns what was configured.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VaultUrl(String);

impl VaultUrl {
    /// Parses a vault URL; any other form is [`ErrorKind::InvalidValue`] on `name`.
    pub fn parse(input: &str) -> Result<VaultUrl> {
        let ok = parse_https(input).is_some_and(|u| u.path() == "/" || u.path().is_empty());
        if ok {
            Ok(VaultUrl(input.to_owned()))
        } else {
            Err(Error::invalid_value(
                "name",
                "expected an https vault URL such as \"https://myvault.vault.azure.net/\".",
            ))
        }
    }

    /// The URL as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `https://host[:port]` of the vault, as [`KeyId::vault`] writes it (host lowercased, no
    /// default port, no trailing slash): the two compare equal when the key is in this vault.
    pub fn origin(&self) -> String {
        match parse_https(&self.0) {
            Some(u) => origin_of(&u),
            None => self.0.trim_end_matches('/').to_owned(),
        }
    }
}

impl fmt::Debug for VaultUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultUrl({})", self.0)
    }
}

impl Serialize for VaultUrl {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for VaultUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        VaultUrl::parse(&s).map_err(|_| serde::de::Error::custom("invalid vault url"))
    }
}

/// Length in bytes of a data key id (shown as 64 hex characters).
pub const DATA_KEY_ID_LEN: usize = 32;

/// The id of a data key: 32 random bytes, written as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataKeyId([u8; DATA_KEY_ID_LEN]);

impl DataKeyId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut b = [0u8; DATA_KEY_ID_LEN];
        crate::random::fill_random(&mut b);
        DataKeyId(b)
    }

    /// Parses 64 hex characters (either case).
    pub fn parse(input: &str) -> Result<DataKeyId> {
        let mut b = [0u8; DATA_KEY_ID_LEN];
        hex::decode_to_slice(input, &mut b).map_err(|_| {
            Error::invalid_value("key_id", "expected a data key id of 64 hex characters.")
        })?;
        Ok(DataKeyId(b))
    }

    /// From the raw 32 bytes.
    pub fn from_bytes(b: [u8; DATA_KEY_ID_LEN]) -> Self {
        DataKeyId(b)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; DATA_KEY_ID_LEN] {
        &self.0
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for DataKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for DataKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKeyId({})", self.to_hex())
    }
}

impl Serialize for DataKeyId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// Longest key tag in bytes.
pub const MAX_KEY_TAG_LEN: usize = 255;

/// A caller's label for a data key (ONTAP uses it for the volume); printable, at most 255 bytes.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize)]
pub struct KeyTag(String);

impl KeyTag {
    /// Parses a tag; control characters and overlong tags are refused.
    pub fn parse(input: &str) -> Result<KeyTag> {
        if input.len() > MAX_KEY_TAG_LEN || input.chars().any(char::is_control) {
            return Err(Error::invalid_value(
                "key_tag",
                "expected at most 255 bytes of printable text.",
            ));
        }
        Ok(KeyTag(input.to_owned()))
    }

    /// The tag text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyTag({:?})", self.0)
    }
}

/// Who a data key belongs to: the cluster, or one SVM. Its record form (kind byte and uuid) is
/// written and read by `codec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyOwner {
    /// The cluster (admin SVM).
    Cluster,
    /// A data SVM.
    Svm(Uuid),
}

impl KeyOwner {
    /// The SVM uuid, if any.
    pub fn svm(self) -> Option<Uuid> {
        match self {
            KeyOwner::Cluster => None,
            KeyOwner::Svm(u) => Some(u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "a8e619fd8f234db3b0b95c59540e2a74";

    #[test]
    fn key_id_accepts_versioned_urls_on_any_https_host() {
        for ok in [
            format!("https://keyvault-test.vault.azure.net/keys/key1/{V}"),
            format!("https://myvault.vault.usgovcloudapi.net/keys/k-2/{V}"),
            format!(
                "https://myvault.vault.localhost:8443/keys/key1/{}",
                V.to_uppercase()
            ),
        ] {
            let k = KeyId::parse(&ok).unwrap();
            assert_eq!(k.version(), V);
        }
        let k = KeyId::parse(&format!("https://h.example:8443/keys/key1/{V}")).unwrap();
        assert_eq!(k.vault(), "https://h.example:8443");
        assert_eq!(k.name(), "key1");
    }

    #[test]
    fn key_id_rejects_everything_else() {
        for bad in [
            String::new(),
            "https://keyvault1.vault.azure.net/keys/key1".to_owned(),
            format!("http://v.vault.azure.net/keys/key1/{V}"),
            format!("https://v.vault.azure.net/secrets/key1/{V}"),
            format!("https://v.vault.azure.net/keys/key1/{V}/"),
            format!("https://v.vault.azure.net/keys/key1/{V}?x=1"),
            format!("https://v.vault.azure.net/keys/key1/{V}#f"),
            format!("https://u:p@v.vault.azure.net/keys/key1/{V}"),
            format!("https://v.vault.azure.net/keys/key_1/{V}"),
            format!("https://v.vault.azure.net/keys//{V}"),
            "https://v.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a7".to_owned(),
            "https://v.vault.azure.net/keys/key1/g8e619fd8f234db3b0b95c59540e2a74".to_owned(),
            format!(" https://v.vault.azure.net/keys/key1/{V}"),
            "not a url".to_owned(),
        ] {
            let e = KeyId::parse(&bad).unwrap_err();
            assert_eq!(e.code(), 65_537_523, "{bad}");
        }
    }

    #[test]
    fn fuzz_regression_key_ids_print_back_to_themselves() {
        // Found by the `ids` fuzz target: a lenient `https:/` spelling with a non-ASCII host
        // parsed, but its canonical text (IDNA-encoded, longer) did not.
        let crash = include_bytes!("../../../fuzz/regressions/ids-key-id-not-canonical");
        let text = String::from_utf8_lossy(crash);
        if let Ok(k) = KeyId::parse(&text) {
            assert_eq!(KeyId::parse(k.as_str()).unwrap(), k);
        }
        assert!(KeyId::parse(&format!("https:/v.vault.azure.net/keys/k/{V}")).is_err());
        assert!(KeyId::parse(&format!("https://vä.vault.azure.net/keys/k/{V}")).is_err());
    }

    #[test]
    fn vault_url_forms() {
        assert!(VaultUrl::parse("https://mykeyvault.azure.vault.net/").is_ok());
        assert!(VaultUrl::parse("https://10.234.237.18").is_ok());
        assert!(VaultUrl::parse("http://x.vault.azure.net/").is_err());
        assert!(VaultUrl::parse("https://x.vault.azure.net/keys").is_err());
    }

    #[test]
    fn data_key_id_roundtrip() {
        let id = DataKeyId::random();
        assert_eq!(DataKeyId::parse(&id.to_hex()).unwrap(), id);
        assert!(DataKeyId::parse("abc").is_err());
        assert!(DataKeyId::parse(&"zz".repeat(32)).is_err());
    }
}
