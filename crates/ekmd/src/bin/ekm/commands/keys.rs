//! The data-key subcommands: `key create` and `key query`.
//!
//! Owns: how keys are listed. Must never: ask for or print key material (the REST API has
//! none; only the data-path socket serves it).

use reqwest::Method;
use serde_json::json;

use super::Session;
use crate::Failure;
use crate::args::{KeyCreate, TargetOnly};
use crate::client::BASE;
use crate::output::{cell, rows, table};

/// `ekm key create`: prints the new key's id.
pub fn create(s: &Session, a: KeyCreate) -> Result<(), Failure> {
    let u = s.client.uuid(&a.target)?;
    let mut body = json!({"key_tag": a.tag});
    if let Some(v) = a.svm {
        body["svm"] = json!({"name": v});
    }
    let r = s
        .client
        .call(Method::POST, &format!("{BASE}/{u}/keys"), Some(body))?;
    s.answer(&r, |r| println!("{}", cell(&r["key_id"])));
    Ok(())
}

/// `ekm key query`: the keys of the target's configuration, without material.
pub fn query(s: &Session, a: TargetOnly) -> Result<(), Failure> {
    let u = s.client.uuid(&a.target)?;
    let r = s
        .client
        .call(Method::GET, &format!("{BASE}/{u}/keys"), None)?;
    s.answer(&r, |r| {
        let rows = rows(&r["records"], |k| {
            vec![
                cell(&k["key_id"]),
                cell(&k["key_tag"]),
                cell(&k["svm"]["name"]),
                cell(&k["kek_generation"]),
            ]
        });
        table(&["Key ID", "Key Tag", "SVM", "KEK Generation"], &rows);
    });
    Ok(())
}
