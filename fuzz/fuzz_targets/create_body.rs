//! The create body (`POST /api/security/azure-key-vaults`) into a validated request: any bytes
//! give a request or an error with an ONTAP code, never a panic, and neither the error (its
//! message, Display and Debug) nor the request's Debug echoes a secret field's value.
#![no_main]
use libfuzzer_sys::fuzz_target;

/// The write-only fields of a create body.
const SECRET_FIELDS: &[&str] = &[
    "client_secret",
    "client_certificate",
    "client_certificate_password",
    "proxy_password",
];

/// The secret values of `data` worth looking for: strings of at least 8 characters in a secret
/// field that appear nowhere else in the body (a key or another value, which an error may name
/// legitimately) and in no fixed error text.
fn secrets(data: &[u8]) -> Vec<String> {
    let Ok(serde_json::Value::Object(body)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        return Vec::new();
    };
    let mut elsewhere: Vec<String> = Vec::new();
    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    out.push(k.clone());
                    collect(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            serde_json::Value::String(s) => out.push(s.clone()),
            other => out.push(other.to_string()),
        }
    }
    for (k, v) in &body {
        elsewhere.push(k.clone());
        if !SECRET_FIELDS.contains(&k.as_str()) {
            collect(v, &mut elsewhere);
        }
    }
    elsewhere.extend(
        ekm_core::ErrorKind::ALL
            .iter()
            .map(|k| k.message().to_owned()),
    );
    elsewhere.extend(SECRET_FIELDS.iter().map(|f| f.to_string()));
    SECRET_FIELDS
        .iter()
        .filter_map(|f| body.get(*f).and_then(|v| v.as_str()))
        .filter(|s| s.chars().count() >= 8)
        .filter(|s| !elsewhere.iter().any(|e| e.contains(*s)))
        .map(str::to_owned)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let secrets = secrets(data);
    let texts = match ekm_core::CreateRequest::from_json(data) {
        Ok(req) => vec![format!("{req:?}")],
        Err(e) => {
            assert!(e.code() > 0);
            vec![e.message(), e.to_string(), format!("{e:?}")]
        }
    };
    for s in &secrets {
        for t in &texts {
            assert!(!t.contains(s.as_str()), "a secret value is echoed in {t:?}");
        }
    }
});
