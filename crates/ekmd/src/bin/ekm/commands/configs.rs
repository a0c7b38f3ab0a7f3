//! The configuration subcommands: `enable`, `show`, `check`, `update-config`,
//! `update-credentials`, `disable`.
//!
//! Owns: the request bodies built from the credential and proxy flags.
//! Must never: send a secret anywhere but in the body of the one request that sets it.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use super::Session;
use crate::Failure;
use crate::args::{
    Credentials, Enable, Proxy, Target, TargetOnly, UpdateConfig, UpdateCredentials,
};
use crate::client::BASE;
use crate::output::{cell, rows, table};
use crate::secrets::{read_file, secret};

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
    s.answer(&r, |r| {
        println!("Key manager {} configured.", cell(&r["records"][0]["uuid"]))
    });
    Ok(())
}

/// `ekm show`: every configuration, or the one `--vserver`/`--uuid` names.
pub fn show(s: &Session, a: TargetOnly) -> Result<(), Failure> {
    let list = s
        .client
        .call(Method::GET, &format!("{BASE}?fields=*"), None)?;
    let mut records = list["records"].as_array().cloned().unwrap_or_default();
    if a.target.vserver.is_some() || a.target.uuid.is_some() {
        let u = s.client.uuid(&a.target)?;
        records.retain(|r| r["uuid"] == u.as_str());
    }
    let shown = json!({"records": records, "num_records": records.len()});
    s.answer(&shown, |shown| {
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

/// `ekm check`: KEK availability, AKV reachability and each node's status.
pub fn check(s: &Session, a: TargetOnly) -> Result<(), Failure> {
    let u = s.client.uuid(&a.target)?;
    let r = s.client.call(
        Method::GET,
        &format!("{BASE}/{u}?fields=state,azure_reachability,ekmip_reachability"),
        None,
    )?;
    s.answer(&r, |r| {
        println!(
            "KEK available on all nodes: {} {}",
            cell(&r["state"]["available"]),
            cell(&r["state"]["message"])
        );
        println!(
            "AKV reachable: {} {}",
            cell(&r["azure_reachability"]["reachable"]),
            cell(&r["azure_reachability"]["message"])
        );
        let rows = rows(&r["ekmip_reachability"], |n| {
            vec![
                cell(&n["node"]["name"]),
                cell(&n["reachable"]),
                cell(&n["code"]),
                cell(&n["message"]),
            ]
        });
        table(&["Node", "Reachable", "Code", "Message"], &rows);
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
        |u| format!("Key manager {u} updated."),
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
        |u| format!("Credentials of key manager {u} updated."),
    )
}

/// `ekm disable`: DELETE the configuration.
pub fn disable(s: &Session, a: TargetOnly) -> Result<(), Failure> {
    change(
        s,
        &a.target,
        Method::DELETE,
        || Ok(None),
        |u| format!("Key manager {u} removed."),
    )
}

/// Sends `method` to the target's configuration with `body` (built, and its secret files
/// read, once the uuid is known), then says `done(uuid)`.
fn change(
    s: &Session,
    target: &Target,
    method: Method,
    body: impl FnOnce() -> Result<Option<Value>, Failure>,
    done: impl FnOnce(&str) -> String,
) -> Result<(), Failure> {
    let u = s.client.uuid(target)?;
    let body = body()?;
    let r = s.client.call(method, &format!("{BASE}/{u}"), body)?;
    s.answer(&r, |_| println!("{}", done(&u)));
    Ok(())
}

/// Adds the credential flags to a request body (secrets read from their files or stdin).
fn add_credentials(c: &Credentials, body: &mut Value) -> Result<(), Failure> {
    if let Some(s) = secret(&c.client_secret, &c.client_secret_file)? {
        body["client_secret"] = json!(s);
    }
    if let Some(f) = &c.client_certificate_file {
        let der = read_file(f)?;
        body["client_certificate"] = json!(base64::engine::general_purpose::STANDARD.encode(der));
    }
    if let Some(p) = secret(
        &c.client_certificate_password,
        &c.client_certificate_password_file,
    )? {
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
    if let Some(v) = secret(&p.proxy_password, &p.proxy_password_file)? {
        body["proxy_password"] = json!(v);
    }
    if let Some(port) = p.proxy_port {
        body["proxy_port"] = json!(port);
    }
    Ok(())
}
