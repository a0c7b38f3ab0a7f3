//! The data-key subcommands: `key create`, `key query` and `key delete`.
//!
//! Owns: how keys are listed, and what a delete says (erased everywhere, or the erase job
//! that waits for the nodes still holding the key).
//! Must never: ask for or print key material (the REST API has none; only the data-path
//! socket serves it).

use reqwest::Method;
use serde_json::json;

use super::Session;
use super::jobs::followed;
use crate::args::{KeyCreate, KeyDelete, TargetOnly};
use crate::output::{cell, rows, table};
use crate::{Failure, NO_ENTRIES};

/// `ekm key create`: prints the new key's id.
pub fn create(s: &Session, a: KeyCreate) -> Result<(), Failure> {
    let (kind, km) = s.client.key_manager_any(&a.target)?;
    let mut body = json!({"key_tag": a.tag});
    if let Some(v) = a.svm {
        body["svm"] = json!({"name": v});
    }
    let r = s.client.call(
        Method::POST,
        &format!("{}/{}/keys", kind.base(), km.uuid),
        Some(body),
    )?;
    s.answer(&r, |r| println!("{}", cell(&r["key_id"])));
    Ok(())
}

/// `ekm key query`: the keys of the target's configuration, without material.
pub fn query(s: &Session, a: TargetOnly) -> Result<(), Failure> {
    let (kind, km) = s.client.key_manager_any(&a.target)?;
    let r = s.client.call(
        Method::GET,
        &format!("{}/{}/keys", kind.base(), km.uuid),
        None,
    )?;
    s.answer(&r, |r| {
        let rows = rows(&r["records"], |k| {
            vec![
                cell(&k["key_id"]),
                cell(&k["key_tag"]),
                cell(&k["svm"]["name"]),
                cell(&k["kek_generation"]),
            ]
        });
        if rows.is_empty() {
            println!("{NO_ENTRIES}");
            return;
        }
        table(&["Key ID", "Key Tag", "SVM", "KEK Generation"], &rows);
    });
    Ok(())
}

/// `ekm key delete`: DELETE the key from the target's configuration. 200: every node has
/// evicted it; 202: deleted (no node serves it any more), with the erase job that waits for
/// the nodes still holding it in memory (followed with `--wait`).
pub fn delete(s: &Session, a: KeyDelete) -> Result<(), Failure> {
    let (kind, km) = s.client.key_manager_any(&a.target)?;
    let path = format!("{}/{}/keys/{}", kind.base(), km.uuid, a.key_id);
    let r = match s.client.call(Method::DELETE, &path, None) {
        Err(Failure::Refused(r)) if r.status == 404 => {
            return Err(Failure::Api(format!(
                "{NO_ENTRIES} Key {} is not a key of {}: ekm key query{} lists its keys.",
                a.key_id, km.label, km.flags
            )));
        }
        other => other?,
    };
    if r["job"]["uuid"].is_string() {
        if !s.json {
            println!(
                "Key {} deleted from {}: no node serves it any more; some node still holds it in memory, so an erase job tracks it until every node has evicted it.",
                a.key_id, km.label
            );
        }
        return followed(s, &r, &format!("erase of key {}", a.key_id), a.wait);
    }
    s.answer(&r, |_| {
        println!(
            "Key {} deleted from {} and erased on every node.",
            a.key_id, km.label
        )
    });
    Ok(())
}
