//! Refusals about a key manager name its scope: the seed's texts (which say "SVM") for an
//! SVM's key manager, the same texts said of the cluster for the cluster's. The delete
//! refusal 65536867 keeps the seed's text first and adds the way out (delete the data keys
//! first, with the routes that do it), which works. Nothing is written by a refusal.

use axum::http::StatusCode;
use serde_json::json;

mod common;
mod rest;

use common::BASE;
use rest::{api, code, message};

const SEED_NO_KEYS: &str = "There are no existing internal keys for the SVM. A rekey operation is allowed for an SVM with one or more encryption keys.";
const SEED_KEYS_EXIST: &str = "Volume encryption keys (VEK) for one or more encrypted volumes are stored on the key manager configured for the given SVM.";

#[tokio::test]
async fn rekey_internal_without_keys_names_the_cluster_or_the_svm() {
    let a = api();
    for (svm, want) in [
        (
            None,
            "There are no existing internal keys for the cluster. A rekey operation is allowed for a cluster with one or more encryption keys.",
        ),
        (Some("vs0"), SEED_NO_KEYS),
    ] {
        let u = a.create(svm).await;
        let before = a.dump();
        let (s, v) = a
            .call("POST", &format!("{BASE}/{u}/rekey-internal"), None)
            .await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "65537559"), "{v}");
        assert_eq!(message(&v), want, "{svm:?}");
        assert_eq!(a.dump(), before);
    }
}

#[tokio::test]
async fn a_refused_delete_names_the_scope_and_the_way_out_which_works() {
    let a = api();
    for (svm, first) in [
        (
            None,
            "Volume encryption keys (VEK) for one or more encrypted volumes are stored on the key manager configured for the cluster.",
        ),
        (Some("vs0"), SEED_KEYS_EXIST),
    ] {
        let u = a.create(svm).await;
        let id = a.create_key(&u, json!({"key_tag": "vol1"})).await;
        let before = a.dump();
        let (s, v) = a.call("DELETE", &format!("{BASE}/{u}"), None).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "65536867"), "{v}");
        let m = message(&v);
        assert!(
            m.starts_with(&format!("{first} Delete its data keys first")),
            "{m}"
        );
        let list = format!("{BASE}/{u}/keys");
        let delete = format!("DELETE {BASE}/{u}/keys/{{key_id}}");
        assert!(
            m.contains(&format!("GET {list}")) && m.contains(&delete),
            "{m}"
        );
        assert_eq!(a.dump(), before, "a refused delete wrote to the store");
        // The way out: list the keys, delete each, then the key manager.
        let (_, keys) = a.call("GET", &list, None).await;
        assert_eq!(keys["records"][0]["key_id"], id.as_str(), "{keys}");
        let (s, v) = a.call("DELETE", &format!("{list}/{id}"), None).await;
        assert!(s.is_success(), "{v}");
        let (s, v) = a.call("DELETE", &format!("{BASE}/{u}"), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
}
