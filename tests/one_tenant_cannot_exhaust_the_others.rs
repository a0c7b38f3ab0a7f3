//! What one tenant (an SVM's KMIP client) can do to the others: its attribute values and
//! instances are bounded, its keys are bounded per owner (refused over KMIP with Permission
//! Denied, over the engine's API with 65537504), and its Locate reads its own records only.

mod common;

use std::sync::{Arc, Mutex};

use common::hooked::{Call, Hooked};
use common::kmip::{self, attribute, create_items, uid_of};
use common::{VS0, VS1, create, secret_body, topology};
use ekm::core::{Engine, EngineOptions, ErrorKind, KeyOwner, KeyTag, layout};
use ekm::fake::FakeBackend;
use ekm::store::StoreKind;
use ekm_kmip::Server;
use ekm_kmip::attrs::{MAX_ATTRIBUTE_BYTES, MAX_CLIENT_ATTRIBUTES};
use ekm_kmip::tags::{self as t, op, reason};
use ekm_kmip::ttlv::{Item, Value};

struct Lab {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    server: Server,
    scans: Arc<Mutex<Vec<Vec<u8>>>>,
}

fn lab(max_keys: u64) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let inner = ekm::store::open(StoreKind::Redb, &dir.path().join("store")).unwrap();
    let scans = Arc::new(Mutex::new(Vec::new()));
    let seen = scans.clone();
    let store = Arc::new(Hooked::new("scans-recorded", inner, move |call| {
        if let Call::Scanned(prefix) = call {
            seen.lock().unwrap().push(prefix.to_vec());
        }
        Ok(())
    }));
    let fake = Arc::new(FakeBackend::open(&dir.path().join("fake-vault.json")).unwrap());
    let pk = ekm::store::protection_key::load_or_create(&dir.path().join("pk")).unwrap();
    let engine =
        Engine::open(EngineOptions::new(store, fake, topology(), pk).max_keys_per_owner(max_keys))
            .unwrap();
    create(&engine, &secret_body(None, "s3cret")).unwrap();
    Lab {
        _dir: dir,
        server: Server::new(engine.clone()),
        engine,
        scans,
    }
}

/// (status, reason, payload) of each batch item of the answer to `items` from `owner`.
fn answer(
    lab: &Lab,
    owner: KeyOwner,
    items: Vec<(u32, Vec<Item>)>,
) -> Vec<(u32, Option<u32>, Item)> {
    kmip::answer(&lab.server, owner, items)
}

fn keys_of(lab: &Lab, owner: KeyOwner) -> usize {
    lab.engine.list_data_keys_of(owner).unwrap().len()
}

#[test]
fn attribute_values_and_instances_are_bounded() {
    let lab = lab(1_000);
    let vs0 = KeyOwner::Svm(VS0);
    // Too long a value: refused (Invalid Field), nothing made.
    let long = "x".repeat(MAX_ATTRIBUTE_BYTES + 1);
    let r = answer(
        &lab,
        vs0,
        create_items(vec![attribute(
            "Contact Information",
            Value::TextString(long.clone()),
        )]),
    );
    assert_eq!(
        (r[0].0, r[0].1),
        (t::status::OPERATION_FAILED, Some(reason::INVALID_FIELD)),
        "{r:?}"
    );
    assert_eq!(keys_of(&lab, vs0), 0);
    let r = answer(
        &lab,
        vs0,
        create_items(vec![attribute(
            "x-blob",
            Value::ByteString(vec![7u8; MAX_ATTRIBUTE_BYTES + 1].into()),
        )]),
    );
    assert_eq!(r[0].1, Some(reason::INVALID_FIELD), "{r:?}");
    // Up to the bound of instances, then refused (Permission Denied) and not stored.
    let r = answer(&lab, vs0, create_items(vec![]));
    let uid = uid_of(&r[0].2);
    let add = |n: usize| {
        let mut p = vec![Item::text(t::UNIQUE_IDENTIFIER, &uid)];
        p.push(attribute(
            &format!("x-tag{n}"),
            Value::TextString("v".into()),
        ));
        answer(&lab, vs0, vec![(op::ADD_ATTRIBUTE, p)])
    };
    for n in 0..MAX_CLIENT_ATTRIBUTES {
        let r = add(n);
        assert_eq!(r[0].0, t::status::SUCCESS, "instance {n}: {r:?}");
    }
    let r = add(MAX_CLIENT_ATTRIBUTES);
    assert_eq!(
        (r[0].0, r[0].1),
        (t::status::OPERATION_FAILED, Some(reason::PERMISSION_DENIED)),
        "{r:?}"
    );
    let r = answer(
        &lab,
        vs0,
        vec![(
            op::GET_ATTRIBUTE_LIST,
            vec![Item::text(t::UNIQUE_IDENTIFIER, &uid)],
        )],
    );
    let custom = r[0]
        .2
        .all(t::ATTRIBUTE_NAME)
        .filter(|n| n.as_text().is_some_and(|n| n.starts_with("x-")))
        .count();
    assert!(
        custom <= MAX_CLIENT_ATTRIBUTES,
        "{custom} custom attributes stored"
    );
}

#[test]
fn keys_are_bounded_per_owner_and_the_bound_is_per_owner() {
    let lab = lab(3);
    let (vs0, vs1) = (KeyOwner::Svm(VS0), KeyOwner::Svm(VS1));
    for _ in 0..3 {
        assert_eq!(
            answer(&lab, vs0, create_items(vec![]))[0].0,
            t::status::SUCCESS
        );
    }
    let r = answer(&lab, vs0, create_items(vec![]));
    assert_eq!(
        (r[0].0, r[0].1),
        (t::status::OPERATION_FAILED, Some(reason::PERMISSION_DENIED)),
        "{r:?}"
    );
    assert_eq!(keys_of(&lab, vs0), 3);
    // Through the engine's API (what REST calls): ONTAP's 65537504, naming the bound.
    let e = lab
        .engine
        .create_data_key(vs0, KeyTag::parse("more").unwrap())
        .unwrap_err();
    assert_eq!((e.kind(), e.code()), (ErrorKind::StoreFailed, 65_537_504));
    assert!(e.message().contains("at most 3"), "{}", e.message());
    // Another tenant is not held by it.
    assert_eq!(
        answer(&lab, vs1, create_items(vec![]))[0].0,
        t::status::SUCCESS
    );
    // A delete makes room again.
    let id = lab.engine.list_data_keys_of(vs0).unwrap()[0].key_id;
    lab.engine.delete_data_key(&id).unwrap();
    assert_eq!(
        answer(&lab, vs0, create_items(vec![]))[0].0,
        t::status::SUCCESS
    );
}

#[test]
fn a_locate_reads_only_the_owners_own_records() {
    let lab = lab(1_000);
    let (vs0, vs1) = (KeyOwner::Svm(VS0), KeyOwner::Svm(VS1));
    for i in 0..40 {
        let tag = KeyTag::parse(&format!("other{i}")).unwrap();
        lab.engine.create_data_key(vs1, tag).unwrap();
    }
    let mine = uid_of(&answer(&lab, vs0, create_items(vec![]))[0].2);
    let config = lab.engine.list_configs().unwrap()[0].uuid;
    lab.scans.lock().unwrap().clear();
    let r = answer(&lab, vs0, vec![(op::LOCATE, vec![])]);
    let found: Vec<String> = r[0]
        .2
        .all(t::UNIQUE_IDENTIFIER)
        .filter_map(|u| u.as_text().map(str::to_owned))
        .collect();
    assert_eq!(found, vec![mine]);
    let scans = lab.scans.lock().unwrap().clone();
    assert!(
        !scans.contains(&layout::records(config)),
        "the Locate scanned every owner's records: {scans:?}"
    );
    assert!(
        scans.contains(&layout::records_of(config, vs0)),
        "{scans:?}"
    );
}
