//! A KMIP Destroy never destroys an Active key: not when an Activate on another connection
//! lands between the Destroy's read of the state and its delete (the delete is conditional on
//! the attributes record it read), and not when a Pre-Active key's Activation Date has passed
//! (the state follows the date, KMIP 1.4 §3.22).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use common::hooked::{Call, Hooked};
use common::kmip::{self, attribute, create_items, uid_of};
use common::{create, engine_over, secret_body};
use ekm::core::{DataKeyId, KeyOwner, Write};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;
use ekm_kmip::Server;
use ekm_kmip::tags::{self as t, op, reason};
use ekm_kmip::ttlv::{Item, Value};

/// `operation` on the object `uid`.
fn on(uid: &str, operation: u32) -> Vec<(u32, Vec<Item>)> {
    vec![(operation, vec![Item::text(t::UNIQUE_IDENTIFIER, uid)])]
}

/// (status, reason, payload) of the one batch item of the answer to `items` (from the
/// cluster).
fn answer(server: &Server, items: Vec<(u32, Vec<Item>)>) -> (u32, Option<u32>, Item) {
    kmip::answer(server, KeyOwner::Cluster, items).remove(0)
}

fn state_of(server: &Server, uid: &str) -> Option<u32> {
    let (_, _, p) = answer(
        server,
        vec![(
            op::GET_ATTRIBUTES,
            vec![
                Item::text(t::UNIQUE_IDENTIFIER, uid),
                Item::text(t::ATTRIBUTE_NAME, "State"),
            ],
        )],
    );
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
                let (st, _, _) = answer(s.get().unwrap(), on(&uid, op::ACTIVATE));
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

    let (st, _, p) = answer(server, create_items(vec![]));
    assert_eq!(st, t::status::SUCCESS);
    let uid = uid_of(&p);
    assert_eq!(state_of(server, &uid), Some(t::state::PRE_ACTIVE));
    *target.lock().unwrap() = Some(uid.clone());
    armed.store(true, Ordering::SeqCst);
    let (st, why, _) = answer(server, on(&uid, op::DESTROY));
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
        create_items(vec![attribute("Activation Date", Value::DateTime(now + 1))]),
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
    let (st, why, _) = answer(&server, on(&uid, op::DESTROY));
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
