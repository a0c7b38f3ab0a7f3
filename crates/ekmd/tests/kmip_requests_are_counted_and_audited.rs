//! KMIP requests as ekmd's listener answers them (`ekmd::kmip::answer`, what each TLS
//! connection calls): counted by operation and result (bounded labels), Gets also as data-path
//! reads with `path="kmip"`; Create/Register/Activate/Revoke/Destroy in the audit trail with
//! the certificate's CN as user, the source address, the uid and the result, before the
//! answer; never the key material (a canary key registered over KMIP is nowhere in the trail);
//! and no acknowledgement when the trail cannot be written.

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use common::{ADMIN_PASSWORD, ADMIN_USER, topology};
use ekm_core::{CreateRequest, Engine, EngineOptions, KeyOwner, ProtectionKey};
use ekm_kmip::tags::{self as t, op, reason};
use ekm_kmip::ttlv::{self, Item};
use ekmd::AppState;
use ekmd::audit::AuditLog;
use ekmd::kmip::{Client, Reporting, answer};
use ekmd::metrics::Metrics;
use serde_json::Value;

/// A key no one else would pick: it must never show in the trail, in any encoding.
const CANARY: [u8; 32] = *b"KMIP-CANARY-KEY-MATERIAL-0123456";

struct Env {
    _dir: tempfile::TempDir,
    server: ekm_kmip::Server,
    reporting: Reporting,
    metrics: Arc<Metrics>,
    audit_path: std::path::PathBuf,
}

/// ekmd's state with a cluster configuration, metrics and an audit trail at `audit_at`
/// (default: a file in the temporary directory).
fn env(audit_at: Option<&std::path::Path>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = ekm_store::open(ekm_store::StoreKind::Redb, &dir.path().join("store")).unwrap();
    let engine = Engine::open(EngineOptions::new(
        store,
        Arc::new(ekm_fake::FakeBackend::in_memory()),
        topology(),
        ProtectionKey::generate(),
    ))
    .unwrap();
    engine
        .create_config(
            CreateRequest::from_json(
                format!(
                    r#"{{"client_id":"c","tenant_id":"t","name":"https://keyvault-test.vault.azure.net/","key_id":"{}","client_secret":"s"}}"#,
                    common::KEY
                )
                .as_bytes(),
            )
            .unwrap(),
        )
        .unwrap();
    let metrics = Metrics::new();
    let audit_path = audit_at
        .map(|p| p.to_owned())
        .unwrap_or_else(|| dir.path().join("audit.log"));
    let audit = Arc::new(AuditLog::open(&audit_path, "node1", 1 << 20).unwrap());
    let state = AppState::with_metrics(
        engine.clone(),
        ADMIN_USER.into(),
        ADMIN_PASSWORD.to_owned().into(),
        metrics.clone(),
    )
    .with_audit(audit.clone());
    Env {
        _dir: dir,
        server: ekm_kmip::Server::new(engine),
        reporting: Reporting {
            metrics: state.metrics.clone(),
            audit: state.audit.clone(),
        },
        metrics,
        audit_path,
    }
}

fn client() -> Client {
    Client {
        identity: Arc::from("cluster1"),
        source: "192.0.2.7".parse::<IpAddr>().unwrap(),
        owner: Some(KeyOwner::Cluster),
    }
}

fn request(items: Vec<(u32, Vec<Item>)>) -> Vec<u8> {
    ekm_kmip::request_message((1, 4), items).to_vec()
}

/// (status, reason, uid) of each batch item of an answer.
fn results(resp: &[u8]) -> Vec<(u32, Option<u32>, Option<String>)> {
    ttlv::decode(resp)
        .unwrap()
        .all(t::BATCH_ITEM)
        .map(|b| {
            (
                b.child(t::RESULT_STATUS).and_then(Item::as_enum).unwrap(),
                b.child(t::RESULT_REASON).and_then(Item::as_enum),
                b.child(t::RESPONSE_PAYLOAD)
                    .and_then(|p| p.child(t::UNIQUE_IDENTIFIER))
                    .and_then(Item::as_text)
                    .map(str::to_owned),
            )
        })
        .collect()
}

fn register_canary() -> Vec<u8> {
    request(vec![(
        op::REGISTER,
        vec![
            Item::enumeration(t::OBJECT_TYPE, t::OBJECT_SYMMETRIC_KEY),
            Item::structure(
                t::SYMMETRIC_KEY,
                vec![Item::structure(
                    t::KEY_BLOCK,
                    vec![
                        Item::enumeration(t::KEY_FORMAT_TYPE, t::KEY_FORMAT_RAW),
                        Item::structure(
                            t::KEY_VALUE,
                            vec![Item::bytes(t::KEY_MATERIAL, CANARY.to_vec())],
                        ),
                        Item::enumeration(t::CRYPTOGRAPHIC_ALGORITHM, t::ALGORITHM_AES),
                        Item::int(t::CRYPTOGRAPHIC_LENGTH, 256),
                    ],
                )],
            ),
        ],
    )])
}

fn uid(u: &str) -> Vec<Item> {
    vec![Item::text(t::UNIQUE_IDENTIFIER, u)]
}

fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

fn audit_records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn kmip_requests_are_counted_by_operation_and_result_and_gets_as_kmip_reads() {
    let e = env(None);
    let c = client();
    let r = results(&answer(&e.server, &e.reporting, &c, &register_canary()));
    let id = r[0].2.clone().expect("a uid");
    for _ in 0..2 {
        let r = results(&answer(
            &e.server,
            &e.reporting,
            &c,
            &request(vec![(op::GET, uid(&id))]),
        ));
        assert_eq!(r[0].0, t::status::SUCCESS);
    }
    let missing = "ab".repeat(32);
    let r = results(&answer(
        &e.server,
        &e.reporting,
        &c,
        &request(vec![(op::GET, uid(&missing))]),
    ));
    assert_eq!(r[0].1, Some(reason::ITEM_NOT_FOUND));
    // Not a KMIP message at all.
    answer(&e.server, &e.reporting, &c, b"not TTLV");

    let text = e.metrics.encode();
    let kmip = |labels: &str| series(&text, &format!("ekm_kmip_requests_total{{{labels}}}"));
    assert_eq!(kmip(r#"operation="register",result="success""#), Some(1.0));
    assert_eq!(kmip(r#"operation="get",result="success""#), Some(2.0));
    assert_eq!(
        kmip(r#"operation="get",result="item_not_found""#),
        Some(1.0)
    );
    assert_eq!(
        kmip(r#"operation="none",result="invalid_message""#),
        Some(1.0)
    );
    let reads = |labels: &str| series(&text, &format!("ekm_datapath_key_reads_total{{{labels}}}"));
    assert_eq!(reads(r#"path="kmip",outcome="ok""#), Some(2.0));
    assert_eq!(reads(r#"path="kmip",outcome="not_found""#), Some(1.0));
    assert_eq!(
        series(
            &text,
            r#"ekm_datapath_key_read_duration_seconds_count{path="kmip"}"#
        ),
        Some(3.0)
    );
    // Bounded labels: no uid, no client name in any KMIP series.
    for l in text.lines().filter(|l| l.contains("kmip")) {
        assert!(
            !l.contains(&id) && !l.contains(&missing) && !l.contains("cluster1"),
            "{l}"
        );
    }
}

#[test]
fn kmip_state_changes_are_audited_with_the_client_identity_and_never_the_key() {
    let e = env(None);
    let c = client();
    let r = results(&answer(&e.server, &e.reporting, &c, &register_canary()));
    let id = r[0].2.clone().unwrap();
    let revoke = Item::structure(
        t::REVOCATION_REASON,
        vec![Item::enumeration(t::REVOCATION_REASON_CODE, 6)],
    );
    let mut add_contact = uid(&id);
    add_contact.push(Item::structure(
        t::ATTRIBUTE,
        vec![
            Item::text(t::ATTRIBUTE_NAME, "Contact Information"),
            Item::text(t::ATTRIBUTE_VALUE, "storage-team"),
        ],
    ));
    let steps = vec![
        (op::ADD_ATTRIBUTE, add_contact),
        (op::ACTIVATE, uid(&id)),
        (op::GET, uid(&id)),
        (op::DESTROY, uid(&id)), // refused: the key is Active
    ];
    for (o, p) in steps {
        answer(&e.server, &e.reporting, &c, &request(vec![(o, p)]));
    }
    let mut revoke_payload = uid(&id);
    revoke_payload.push(revoke);
    answer(
        &e.server,
        &e.reporting,
        &c,
        &request(vec![(op::REVOKE, revoke_payload), (op::DESTROY, uid(&id))]),
    );
    let all = audit_records(&e.audit_path);
    // Each change's intent came first; its outcome names it.
    let intents: Vec<&Value> = all.iter().filter(|r| r["phase"] == "intent").collect();
    let records: Vec<Value> = all
        .iter()
        .filter(|r| r["phase"] != "intent")
        .cloned()
        .collect();
    for r in &records {
        let i = intents
            .iter()
            .find(|i| i["seq"] == r["intent"])
            .unwrap_or_else(|| panic!("no intent before {r}"));
        assert!(i["seq"].as_u64() < r["seq"].as_u64());
        let intended = format!("{}.intent", r["operation"].as_str().unwrap());
        assert!(
            i["operation"] == intended.as_str() || i["operation"] == "kmip.batch.intent",
            "{i} {r}"
        );
    }
    assert_eq!(
        intents.len(),
        5,
        "one intent per message asking for a change: {intents:#?}"
    );
    let ops: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().unwrap(),
                r["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("kmip.register", "0"),
            ("kmip.add_attribute", "0"),
            ("kmip.activate", "0"),
            ("kmip.destroy", "permission_denied"),
            ("kmip.revoke", "0"),
            ("kmip.destroy", "0"),
        ],
        "a Get is not a change: it is not in the trail"
    );
    for r in &records {
        assert_eq!(r["user"], "cluster1", "{r}");
        assert_eq!(r["source"], "192.0.2.7", "{r}");
        assert_eq!(r["key_id"], id.as_str(), "{r}");
    }
    let v = ekmd::audit::verify_files(std::slice::from_ref(&e.audit_path)).unwrap();
    assert!(v.unresolved_intents.is_empty(), "{v:?}");
    // The canary, in every encoding a careless record could carry it in.
    let trail = std::fs::read(&e.audit_path).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    for needle in [
        CANARY.to_vec(),
        hex::encode(CANARY).into_bytes(),
        hex::encode_upper(CANARY).into_bytes(),
        b64.encode(CANARY).into_bytes(),
        CANARY[..12].to_vec(),
    ] {
        assert!(
            !trail.windows(needle.len()).any(|w| w == needle.as_slice()),
            "key material in the audit trail"
        );
    }
}

#[test]
fn a_change_the_trail_cannot_hold_is_refused_before_it_is_made() {
    // Every write to /dev/full fails (ENOSPC).
    let e = env(Some(std::path::Path::new("/dev/full")));
    let resp = answer(&e.server, &e.reporting, &client(), &register_canary());
    let r = results(&resp);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].0, r[0].1),
        (t::status::OPERATION_FAILED, Some(reason::GENERAL_FAILURE)),
        "{r:?}"
    );
    assert!(r[0].2.is_none(), "the uid is not acknowledged");
    let msg = ttlv::decode(&resp).unwrap();
    let text = msg
        .child(t::BATCH_ITEM)
        .and_then(|b| b.child(t::RESULT_MESSAGE))
        .and_then(Item::as_text)
        .unwrap()
        .to_owned();
    assert!(text.contains("audit trail"), "{text}");
    // Refused before it was made: no key exists (a Locate, a read, is still answered).
    let r = results(&answer(
        &e.server,
        &e.reporting,
        &client(),
        &request(vec![(op::LOCATE, vec![])]),
    ));
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].0,
        t::status::SUCCESS,
        "a read is not refused for the trail"
    );
    assert_eq!(r[0].2, None, "the refused Register created a key");
    // A read changes nothing: it is answered without the trail.
    let r = results(&answer(
        &e.server,
        &e.reporting,
        &client(),
        &request(vec![(op::DISCOVER_VERSIONS, vec![])]),
    ));
    assert_eq!(r[0].0, t::status::SUCCESS);
}
