//! JSON bodies into typed values, serde's errors mapped to ONTAP codes without echoing a value.

use serde::Deserialize;

use super::model::MAX_BODY_LEN;
use crate::error::{Error, ErrorKind, Result};

/// Parses JSON into `T`, mapping serde's errors to ONTAP codes without echoing any value.
pub(crate) fn parse_json<'de, T: Deserialize<'de>>(json: &'de [u8]) -> Result<T> {
    if json.len() > MAX_BODY_LEN {
        return Err(Error::invalid_value(
            "body",
            "the request body is larger than 256 KiB.",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let text = inner.to_string();
        if let Some(rest) = text.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or_default();
            // Echo a field name only when it looks like one: a secret pasted as a name stays out.
            let looks_like_name = (1..=64).contains(&field.len())
                && field
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !looks_like_name {
                return Error::new(ErrorKind::UnexpectedArgument)
                    .with_detail("The body has a field that is not accepted here.");
            }
            let full = match path.rsplit_once('.') {
                Some((parent, _)) if path.contains('.') => format!("{parent}.{field}"),
                _ => field.to_owned(),
            };
            return Error::new(ErrorKind::UnexpectedArgument)
                .with_detail(format!(
                    "Field \"{}\" is not accepted here.",
                    full.escape_debug()
                ))
                .with_target(full);
        }
        if inner.is_syntax() || inner.is_eof() || path == "." {
            return Error::invalid_value("body", "expected a JSON object.");
        }
        Error::invalid_value(&path, "has a value of the wrong type or range.")
    })
}
