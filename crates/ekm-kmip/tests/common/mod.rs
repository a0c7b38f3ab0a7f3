//! What the KMIP server tests share: a server over a real engine (redb store, fake backend,
//! a cluster configuration, SVMs vs0 and vs1) and request and response helpers.
#![allow(dead_code)]

use std::sync::Arc;

use ekm_core::{
    ClusterInfo, CreateRequest, Engine, EngineOptions, KeyOwner, Node, SvmInfo, Topology,
};
use ekm_kmip::Server;
use ekm_kmip::tags as t;
use ekm_kmip::ttlv::{self, Item, Value};
use uuid::Uuid;

pub struct Lab {
    pub _dir: tempfile::TempDir,
    pub engine: Arc<Engine>,
    pub server: Server,
    pub vs0: KeyOwner,
    pub vs1: KeyOwner,
}

pub fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let vs0 = Uuid::new_v4();
    let vs1 = Uuid::new_v4();
    let topo = Topology {
        cluster: ClusterInfo {
            name: "cluster1".into(),
            uuid: Uuid::new_v4(),
        },
        nodes: vec![Node {
            name: "node1".into(),
            uuid: Uuid::new_v4(),
        }],
        svms: vec![
            SvmInfo {
                name: "vs0".into(),
                uuid: vs0,
            },
            SvmInfo {
                name: "vs1".into(),
                uuid: vs1,
            },
        ],
    };
    let store = ekm_store::open(ekm_store::StoreKind::Redb, &dir.path().join("store")).unwrap();
    let fake = Arc::new(ekm_fake::FakeBackend::open(&dir.path().join("vault.json")).unwrap());
    let pk = ekm_store::protection_key::load_or_create(&dir.path().join("protection.key")).unwrap();
    let engine = Engine::open(EngineOptions::new(store, fake, topo, pk)).unwrap();
    engine
        .create_config(
            CreateRequest::from_json(
                br#"{"client_id":"c","tenant_id":"t","name":"https://v.vault.azure.net/","key_id":"https://v.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef","client_secret":"s"}"#,
            )
            .unwrap(),
        )
        .unwrap();
    Lab {
        _dir: dir,
        server: Server::new(engine.clone()),
        engine,
        vs0: KeyOwner::Svm(vs0),
        vs1: KeyOwner::Svm(vs1),
    }
}

pub fn request(version: (i32, i32), items: Vec<(u32, Vec<Item>)>) -> Vec<u8> {
    ekm_kmip::request_message(version, items).to_vec()
}

/// (status, reason, payload) of every batch item of a response.
pub fn results(resp: &[u8]) -> Vec<(u32, Option<u32>, Item)> {
    let msg = ttlv::decode(resp).expect("the response is TTLV");
    assert_eq!(msg.tag, t::RESPONSE_MESSAGE);
    msg.all(t::BATCH_ITEM)
        .map(|b| {
            (
                b.child(t::RESULT_STATUS).and_then(Item::as_enum).unwrap(),
                b.child(t::RESULT_REASON).and_then(Item::as_enum),
                b.child(t::RESPONSE_PAYLOAD)
                    .cloned()
                    .unwrap_or(Item::structure(t::RESPONSE_PAYLOAD, vec![])),
            )
        })
        .collect()
}

pub fn attribute(name: &str, value: Value) -> Item {
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

pub fn name(n: &str) -> Value {
    Value::Structure(vec![
        Item::text(t::NAME_VALUE, n),
        Item::enumeration(t::NAME_TYPE, t::NAME_TYPE_TEXT),
    ])
}

pub fn create_payload(extra: Vec<Item>) -> Vec<Item> {
    let mut attrs = vec![
        attribute(
            "Cryptographic Algorithm",
            Value::Enumeration(t::ALGORITHM_AES),
        ),
        attribute("Cryptographic Length", Value::Integer(256)),
        attribute("Cryptographic Usage Mask", Value::Integer(12)),
    ];
    attrs.extend(extra);
    vec![
        Item::enumeration(t::OBJECT_TYPE, t::OBJECT_SYMMETRIC_KEY),
        Item::structure(t::TEMPLATE_ATTRIBUTE, attrs),
    ]
}

pub fn uid_of(payload: &Item) -> String {
    payload
        .child(t::UNIQUE_IDENTIFIER)
        .and_then(Item::as_text)
        .unwrap()
        .to_owned()
}
