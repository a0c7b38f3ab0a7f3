//! A KMIP Destroy never destroys an Active key: not when an Activate on another connection
//! lands between the Destroy's read of the state and its delete (the delete is conditional on
//! the attributes record it read), and not when a Pre-Active key's Activation Date has passed
//! (the state follows the date, KMIP 1.4 §3.22).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use common::hooked::{Call, Hooked};
use common::{create, engine_over, secret_body};
use ekm::core::{DataKeyId, KeyOwner, Write};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;
use ekm_kmip::Server;
use ekm_kmip::tags::{self as t, op, reason};
use ekm_kmip::ttlv::{self, Item, Value};

fn attribute(name: &str, value: Value) -> Item {
    Item::structure(
        t::ATTRIBUTE,
        vec![
            Item::text(t::ATTRIBUTE_NAME, name),
            Item {
                tag: t::ATTRIBUTE_VALUE,
                value,
            },
        ],
    )
}

fn create_request(extra: Vec<Item>) -> Vec<u8> {
    let mut attrs = vec![
        attribute(
            "Cryptographic Algorithm",
            Value::Enumeration(t::ALGORITHM_AES),
        ),
        attribute("Cryptographic Length", Value::Integer(256)),
        attribute("Cryptographic Usage Mask", Value::Integer(12)),
    ];
    attrs.extend(extra);
    ekm_kmip::request_message(
        (1, 4),
        vec![(
            op::CREATE,
            vec![
                Item::enumeration(t::OBJECT_TYPE, t::OBJECT_SYMMETRIC_KEY),
                Item::structure(t::TEMPLATE_ATTRIBUTE, attrs),
            ],
        )],
    )
    .to_vec()
}

fn on(uid: &str, operation: u32) -> Vec<u8> {
    ekm_kmip::request_message(
        (1, 4),
        vec![(operation, vec![Item::text(t::UNIQUE_IDENTIFIER, uid)])],
    )
    .to_vec()
}

/// (status, reason, payload) of the first batch item.
fn answer(server: &Server, req: &[u8]) -> (u32, Option<u32>, Item) {
    let msg = ttlv::decode(&server.handle(Some(KeyOwner::Cluster), req)).unwrap();
    let b = msg.child(t::BATCH_ITEM).unwrap();
    (
        b.child(t::RESULT_STATUS).and_then(Item::as_enum).unwrap(),
        b.child(t::RESULT_REASON).and_then(Item::as_enum),
        b.child(t::RESPONSE_PAYLOAD)
            .cloned()
            .unwrap_or(Item::structure(t::RESPONSE_PAYLOAD, vec![])),
    )
}

fn uid_of(payload: &Item) -> String {
    payload
        .child(t::UNIQUE_IDENTIFIER)
        .and_then(Item::as_text)
        .unwrap()
        .to_owned()
}

fn state_of(server: &Server, uid: &str) -> Option<u32> {
    let req = ekm_kmip::request_message(
        (1, 4),
        vec![(
            op::GET_ATTRIBUTES,
            vec![
                Item::text(t::UNIQUE_IDENTIFIER, uid),
                Item::text(t::ATTRIBUTE_NAME, "State"),
            ],
        )],
    );
    let (_, _, p) = answer(server, &req);
    p.child(t::ATTRIBUTE)?.child(t::ATTRIBUTE_VALUE)?.as_enum()
}

#[test]
fn an_activate_between_the_destroys_read_and_its_delete_keeps_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let inner = ekm::store::open(StoreKind::Redb, &dir.path().join("store")).unwrap();
    let server: Arc<OnceLock<Server>> = Arc::new(OnceLock::new());
    let target: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let armed = Arc::new(AtomicBool::new(false));
    let (s, tgt, arm) = (server.clone(), target.clone(), armed.clone());
    // The Destroy's delete is about to commit: another connection activates the key first.
    let store = Arc::new(Hooked::new("activate-in-between", inner, move |call| {
        if let Call::Commit(txn) = call {
            let deletes_a_key = txn
                .writes
                .iter()
                .any(|w| matches!(w, Write::Delete(k) if k.starts_with(b"d/")));
            if deletes_a_key && arm.swap(false, Ordering::SeqCst) {
                let uid = tgt.lock().unwrap().clone().unwrap();
                let (st, _, _) = answer(s.get().unwrap(), &on(&uid, op::ACTIVATE));
                assert_eq!(st, t::status::SUCCESS, "the Activate in between");
            }
        }
        Ok(())
    }));
    let fake = Arc::new(FakeBackend::open(&dir.path().join("fake-vault.json")).unwrap());
    let engine = engine_over(store, fake, &dir.path().join("protection.key"), 64);
    create(&engine, &secret_body(None, "s3cret")).unwrap();
    let _ = server.set(Server::new(engine.clone()));
    let server = server.get().unwrap();

    let (st, _, p) = answer(server, &create_request(vec![]));
    assert_eq!(st, t::status::SUCCESS);
    let uid = uid_of(&p);
    assert_eq!(state_of(server, &uid), Some(t::state::PRE_ACTIVE));
    *target.lock().unwrap() = Some(uid.clone());
    armed.store(true, Ordering::SeqCst);
    let (st, why, _) = answer(server, &on(&uid, op::DESTROY));
    assert!(!armed.load(Ordering::SeqCst), "the Activate ran in between");
    assert_eq!(
        (st, why),
        (t::status::OPERATION_FAILED, Some(reason::PERMISSION_DENIED)),
        "a Destroy deleted a key activated after it read the state"
    );
    assert!(
        engine
            .data_key_info(&DataKeyId::parse(&uid).unwrap())
            .is_ok()
    );
    assert_eq!(state_of(server, &uid), Some(t::state::ACTIVE));
}

#[test]
fn a_pre_active_key_whose_activation_date_passed_is_active_and_not_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let store = ekm::store::open(StoreKind::Redb, &dir.path().join("store")).unwrap();
    let fake = Arc::new(FakeBackend::open(&dir.path().join("fake-vault.json")).unwrap());
    let engine = engine_over(store, fake, &dir.path().join("protection.key"), 64);
    create(&engine, &secret_body(None, "s3cret")).unwrap();
    let server = Server::new(engine.clone());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (st, _, p) = answer(
        &server,
        &create_request(vec![attribute("Activation Date", Value::DateTime(now + 1))]),
    );
    assert_eq!(st, t::status::SUCCESS);
    let uid = uid_of(&p);
    assert_eq!(state_of(&server, &uid), Some(t::state::PRE_ACTIVE));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(
        state_of(&server, &uid),
        Some(t::state::ACTIVE),
        "the state follows the Activation Date"
    );
    let (st, why, _) = answer(&server, &on(&uid, op::DESTROY));
    assert_eq!(
        (st, why),
        (t::status::OPERATION_FAILED, Some(reason::PERMISSION_DENIED))
    );
    assert!(
        engine
            .data_key_info(&DataKeyId::parse(&uid).unwrap())
            .is_ok()
    );
}
