//! `ekm aws ...`: the AWS KMS key managers, as ONTAP's `security key-manager external aws`
//! commands (enable, show, modify, rekey-internal, rekey-external, restore) and disable.
//!
//! Owns: the AWS request bodies built from the flags; secrets (the secret access key, the
//! proxy password) only from a file or stdin, never from argv.
//! Must never: send a secret anywhere but in the body of the one request that sets it.

use reqwest::Method;
use serde_json::{Value, json};

use super::Session;
use super::jobs::start_of;
use crate::args::{AwsCommand, AwsEnable, AwsModify, AwsSettings, TargetOnly};
use crate::client::Kind;
use crate::output::{cell, rows, table};
use crate::secrets::{SecretFlags, secret};
use crate::{Failure, NO_ENTRIES};

/// Runs one `ekm aws` subcommand.
pub fn run(s: &Session, command: AwsCommand) -> Result<(), Failure> {
    match command {
        AwsCommand::Enable(a) => enable(s, a),
        AwsCommand::Show(a) => show(s, a),
        AwsCommand::Modify(a) => modify(s, a),
        AwsCommand::RekeyInternal(a) => {
            start_of(s, Kind::Aws, &a.target, "rekey-internal", None, a.wait)
        }
        AwsCommand::RekeyExternal(a) => {
            let body = json!({"key_id": a.key_id});
            start_of(
                s,
                Kind::Aws,
                &a.target,
                "rekey-external",
                Some(body),
                a.wait,
            )
        }
        AwsCommand::Restore(a) => start_of(s, Kind::Aws, &a.target, "restore", None, a.wait),
        AwsCommand::Disable(a) => disable(s, a),
    }
}

/// A secret from its `--NAME-file` flag (a file, or stdin for `-`).
fn from_file(name: &str, file: &Option<std::path::PathBuf>) -> Result<Option<String>, Failure> {
    secret(SecretFlags {
        name,
        inline: &None,
        file,
    })
}

/// The settings flags into `body`.
fn add_settings(a: &AwsSettings, body: &mut Value) -> Result<(), Failure> {
    for (k, v) in [
        ("service", &a.service),
        ("default_domain", &a.default_domain),
        ("host", &a.host),
        ("encryption_context", &a.encryption_context),
        ("proxy_type", &a.proxy_type),
        ("proxy_host", &a.proxy_host),
        ("proxy_username", &a.proxy_username),
    ] {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    if let Some(p) = a.port {
        body["port"] = json!(p);
    }
    if let Some(t) = a.timeout {
        body["timeout"] = json!(t);
    }
    if let Some(p) = a.proxy_port {
        body["proxy_port"] = json!(p);
    }
    if let Some(pw) = from_file("proxy-password", &a.proxy_password_file)? {
        body["proxy_password"] = json!(pw);
    }
    Ok(())
}

/// `ekm aws enable`: POST a new AWS KMS configuration.
fn enable(s: &Session, a: AwsEnable) -> Result<(), Failure> {
    let secret = from_file("secret-access-key", &Some(a.secret_access_key_file.clone()))?
        .unwrap_or_default();
    let mut body = json!({"region": a.region, "key_id": a.key_id,
                          "access_key_id": a.access_key_id, "secret_access_key": secret});
    if let Some(v) = &a.target.vserver {
        body["svm"] = json!({"name": v});
    }
    add_settings(&a.settings, &mut body)?;
    let r = s.client.call(
        Method::POST,
        &format!("{}?return_records=true", Kind::Aws.base()),
        Some(body),
    )?;
    let (label, flags) = match &a.target.vserver {
        Some(v) => (format!("SVM {v}'s key manager"), format!(" --vserver {v}")),
        None => ("the cluster's key manager".to_owned(), String::new()),
    };
    s.answer(&r, |r| {
        println!(
            "AWS KMS key manager {} configured ({label}), key {}. Next: ekm aws show{flags}; its keys: ekm key create{flags}.",
            cell(&r["records"][0]["uuid"]),
            cell(&r["records"][0]["key_id"])
        )
    });
    Ok(())
}

/// `ekm aws show`: every AWS KMS configuration, or the one `--vserver`/`--uuid` names.
fn show(s: &Session, a: TargetOnly) -> Result<(), Failure> {
    let named = if a.target.vserver.is_some() || a.target.uuid.is_some() {
        Some(s.client.key_manager_of(Kind::Aws, &a.target)?.uuid)
    } else {
        None
    };
    let list = s
        .client
        .call(Method::GET, &format!("{}?fields=*", Kind::Aws.base()), None)?;
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
                cell(&r["region"]),
                cell(&r["key_id"]),
                cell(&r["access_key_id"]),
            ]
        });
        table(
            &["Vserver", "UUID", "Region", "Key ID", "Access Key ID"],
            &rows,
        );
    });
    Ok(())
}

/// `ekm aws modify`: PATCH what the flags name.
fn modify(s: &Session, a: AwsModify) -> Result<(), Failure> {
    let km = s.client.key_manager_of(Kind::Aws, &a.target)?;
    let mut body = json!({});
    if let Some(id) = &a.access_key_id {
        body["access_key_id"] = json!(id);
    }
    if let Some(sk) = from_file("secret-access-key", &a.secret_access_key_file)? {
        body["secret_access_key"] = json!(sk);
    }
    add_settings(&a.settings, &mut body)?;
    let r = s.client.call(
        Method::PATCH,
        &format!("{}/{}", Kind::Aws.base(), km.uuid),
        Some(body),
    )?;
    s.answer(&r, |_| {
        println!("{} updated (proven against AWS KMS first).", km.label)
    });
    Ok(())
}

/// `ekm aws disable`: DELETE the configuration (refused while it protects keys).
fn disable(s: &Session, a: TargetOnly) -> Result<(), Failure> {
    let km = s.client.key_manager_of(Kind::Aws, &a.target)?;
    let r = s.client.call(
        Method::DELETE,
        &format!("{}/{}", Kind::Aws.base(), km.uuid),
        None,
    )?;
    s.answer(&r, |_| println!("{} removed.", km.label));
    Ok(())
}
