//! JSON bodies into typed values, serde's errors mapped to ONTAP codes without echoing a value.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::model::MAX_BODY_LEN;
use crate::error::{Error, ErrorKind, Result};

/// Parses a request body into `T`: the one path every body-taking endpoint takes. Every
/// refusal names what is wrong without echoing a value: an empty body, JSON that does not
/// parse (serde's cause with its line and column), a body that is not an object (what it is
/// instead), an unknown field (262179), a field of the wrong type (its path, what it expects,
/// and where). All but the unknown field are 262197 on target `body` or the field.
pub fn parse_json<'de, T: Deserialize<'de>>(json: &'de [u8]) -> Result<T> {
    if json.len() > MAX_BODY_LEN {
        return Err(Error::invalid_value(
            "body",
            "the request body is larger than 256 KiB.",
        ));
    }
    check_object(json)?;
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let text = inner.to_string();
        if let Some(rest) = text.strip_prefix("unknown field `") {
            return unknown_field(rest, &path);
        }
        if inner.is_syntax() || inner.is_eof() {
            return Error::invalid_value("body", &format!("the body is not valid JSON: {text}."));
        }
        let field = if path == "." { "body" } else { path.as_str() };
        // serde's text names the value ("invalid type: string \"...\", expected u16"): only
        // what is expected, which comes from the type, and the position are kept.
        let text = text
            .strip_suffix(&format!(
                " at line {} column {}",
                inner.line(),
                inner.column()
            ))
            .unwrap_or(&text);
        let expected = text
            .rsplit_once(", expected ")
            .map(|(_, x)| format!(" (expected {x})"))
            .unwrap_or_default();
        Error::invalid_value(
            field,
            &format!(
                "has a value of the wrong type or range{expected} at line {} column {}.",
                inner.line(),
                inner.column()
            ),
        )
    })?;
    de.end().map_err(not_json)?;
    Ok(value)
}

fn not_json(e: serde_json::Error) -> Error {
    Error::invalid_value("body", &format!("the body is not valid JSON: {e}."))
}

/// The body is not empty and starts an object rather than an array or a scalar (serde would
/// read `[]` as a struct of defaults). What is not an object is said to be malformed or what
/// it is instead; an object's own syntax is the typed parse's to report (serde's skipping
/// parser, which this uses, says "key must be a string" for a trailing comma).
fn check_object(json: &[u8]) -> Result<()> {
    let first = json
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    let Some(first) = first else {
        return Err(Error::invalid_value(
            "body",
            "the body is empty: expected a JSON object.",
        ));
    };
    if *first == b'{' {
        return Ok(());
    }
    serde_json::from_slice::<IgnoredAny>(json).map_err(not_json)?;
    let found = match first {
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    };
    Err(Error::invalid_value(
        "body",
        &format!("expected a JSON object, found {found}."),
    ))
}

/// 262179 for an unknown field, named by its full path when it looks like a field name.
fn unknown_field(rest: &str, path: &str) -> Error {
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
    Error::new(ErrorKind::UnexpectedArgument)
        .with_detail(format!(
            "Field \"{}\" is not accepted here.",
            full.escape_debug()
        ))
        .with_target(full)
}
