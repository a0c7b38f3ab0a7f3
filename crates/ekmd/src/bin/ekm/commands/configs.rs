//! The configuration subcommands: `enable`, `show`, `update-config`, `update-credentials`,
//! `disable`.
//!
//! Owns: the request bodies built from the credential and proxy flags.
//! Must never: send a secret anywhere but in the body of the one request that sets it.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use super::Session;
use crate::args::{
    Credentials, Enable, Proxy, Target, TargetOnly, UpdateConfig, UpdateCredentials,
};
use crate::client::{BASE, KeyManager};
use crate::output::{cell, rows, table};
use crate::secrets::{SecretFlags, read_file, secret};
use crate::{Failure, NO_ENTRIES};

/// `ekm enable`: POST a new configuration.
pub fn enable(s: &Session, a: Enable) -> Result<(), Failure> {
    let mut body = json!({"client_id": a.client_id, "tenant_id": a.tenant_id, "name": a.name, "key_id": a.key_id});
    if let Some(v) = &a.target.vserver {
        body["svm"] = json!({"name": v});
    }
    add_credentials(&a.credentials, &mut body)?;
    add_proxy(&a.proxy, &mut body)?;
    let r = s.client.call(
        Method::POST,
        &format!("{BASE}?return_records=true"),
        Some(body),
    )?;
    let (label, flags) = match &a.target.vserver {
        Some(v) => (format!("SVM {v}'s key manager"), format!(" --vserver {v}")),
        None => ("the cluster's key manager".to_owned(), String::new()),
    };
    s.answer(&r, |r| {
        println!(
            "Key manager {} configured ({label}). Next: ekm check{flags} shows its status; ekm key create{flags} makes its first data key.",
            cell(&r["records"][0]["uuid"])
        )
    });
    Ok(())
}

/// `ekm show`: every configuration, or the one `--vserver`/`--uuid` names (none there:
/// exit 1). None at all, unnamed, is ONTAP's "There are no entries matching your query."
/// (exit 0).
pub fn show(s: &Session, a: TargetOnly) -> Result<(), Failure> {
    let named = if a.target.vserver.is_some() || a.target.uuid.is_some() {
        Some(s.client.uuid(&a.target)?)
    } else {
        None
    };
    let list = s
        .client
        .call(Method::GET, &format!("{BASE}?fields=*"), None)?;
    let mut records = list["records"].as_array().cloned().unwrap_or_default();
    if let Some(u) = named {
        records.retain(|r| r["uuid"] == u.as_str());
    }
    let shown = json!({"records": records, "num_records": records.len()});
    s.answer(&shown, |shown| {
        if records.is_empty() {
            println!("{NO_ENTRIES}");
            return;
        }
        let rows = rows(&shown["records"], |r| {
            vec![
                if r["scope"] == "svm" {
                    cell(&r["svm"]["name"])
                } else {
                    "(cluster)".into()
                },
                cell(&r["uuid"]),
                cell(&r["client_id"]),
                cell(&r["tenant_id"]),
                cell(&r["name"]),
                cell(&r["key_id"]),
                cell(&r["authentication_method"]),
            ]
        });
        table(
            &[
                "Vserver",
                "UUID",
                "Client ID",
                "Tenant ID",
                "Vault",
                "Key ID",
                "Auth",
            ],
            &rows,
        );
    });
    Ok(())
}

/// `ekm update-config`: PATCH the proxy settings.
pub fn update_config(s: &Session, a: UpdateConfig) -> Result<(), Failure> {
    change(
        s,
        &a.target,
        Method::PATCH,
        || {
            let mut body = json!({});
            add_proxy(&a.proxy, &mut body)?;
            Ok(Some(body))
        },
        |km| format!("Key manager {} ({}) updated.", km.uuid, km.label),
    )
}

/// `ekm update-credentials`: PATCH the client id, tenant id, secret or certificate.
pub fn update_credentials(s: &Session, a: UpdateCredentials) -> Result<(), Failure> {
    change(
        s,
        &a.target,
        Method::PATCH,
        || {
            let mut body = json!({});
            if let Some(v) = a.client_id {
                body["client_id"] = json!(v);
            }
            if let Some(v) = a.tenant_id {
                body["tenant_id"] = json!(v);
            }
            add_credentials(&a.credentials, &mut body)?;
            Ok(Some(body))
        },
        |km| {
            format!(
                "Credentials of key manager {} ({}) updated.",
                km.uuid, km.label
            )
        },
    )
}

/// ONTAP's code for "keys remain on this key manager" (a DELETE refused).
const KEYS_REMAIN: &str = "65536867";

/// `ekm disable`: DELETE the configuration. Refused while it holds keys: says how to list and
/// delete them.
pub fn disable(s: &Session, a: TargetOnly) -> Result<(), Failure> {
    let km = s.client.key_manager(&a.target)?;
    match s
        .client
        .call(Method::DELETE, &format!("{BASE}/{}", km.uuid), None)
    {
        Err(Failure::Refused(r)) if r.code == KEYS_REMAIN => Err(Failure::Api(format!(
            "{} (code {}, HTTP {})\nekm: {} still holds data keys: delete them first (crypto-erase: what they encrypted can no longer be read):\n  ekm key query{flags}\n  ekm key delete{flags} --key-id KEY_ID    (each key listed)\nthen ekm disable{flags} again.",
            r.message,
            r.code,
            r.status,
            km.label,
            flags = km.flags
        ))),
        Err(e) => Err(e),
        Ok(r) => {
            s.answer(&r, |_| {
                println!("Key manager {} ({}) removed.", km.uuid, km.label)
            });
            Ok(())
        }
    }
}

/// Sends `method` to the target's configuration with `body` (built, and its secret files
/// read, once the key manager is found), then says `done(key manager)`.
fn change(
    s: &Session,
    target: &Target,
    method: Method,
    body: impl FnOnce() -> Result<Option<Value>, Failure>,
    done: impl FnOnce(&KeyManager) -> String,
) -> Result<(), Failure> {
    let km = s.client.key_manager(target)?;
    let body = body()?;
    let r = s
        .client
        .call(method, &format!("{BASE}/{}", km.uuid), body)?;
    s.answer(&r, |_| println!("{}", done(&km)));
    Ok(())
}

/// Adds the credential flags to a request body (secrets read from their files or stdin).
fn add_credentials(c: &Credentials, body: &mut Value) -> Result<(), Failure> {
    if let Some(s) = secret(SecretFlags {
        name: "client-secret",
        inline: &c.client_secret,
        file: &c.client_secret_file,
    })? {
        body["client_secret"] = json!(s);
    }
    if let Some(f) = &c.client_certificate_file {
        let der = read_file("--client-certificate-file", f)?;
        body["client_certificate"] = json!(base64::engine::general_purpose::STANDARD.encode(der));
    }
    if let Some(p) = secret(SecretFlags {
        name: "client-certificate-password",
        inline: &c.client_certificate_password,
        file: &c.client_certificate_password_file,
    })? {
        body["client_certificate_password"] = json!(p);
    }
    Ok(())
}

/// Adds the proxy flags to a request body (the password read from its file or stdin).
fn add_proxy(p: &Proxy, body: &mut Value) -> Result<(), Failure> {
    for (k, v) in [
        ("proxy_type", &p.proxy_type),
        ("proxy_host", &p.proxy_host),
        ("proxy_username", &p.proxy_username),
    ] {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    if let Some(v) = secret(SecretFlags {
        name: "proxy-password",
        inline: &p.proxy_password,
        file: &p.proxy_password_file,
    })? {
        body["proxy_password"] = json!(v);
    }
    if let Some(port) = p.proxy_port {
        body["proxy_port"] = json!(port);
    }
    Ok(())
}
