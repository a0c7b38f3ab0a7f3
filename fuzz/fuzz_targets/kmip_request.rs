//! A whole KMIP request message through the dispatcher (`Server::handle_with_outcomes`) over
//! a real engine: the fake backend and a redb store in a temporary directory (on /dev/shm
//! when there is one), with a cluster and an SVM configuration and one seeded data key of
//! SVM vs0. Any Unique Identifier of 64 zeros in the input is replaced by the seeded key's
//! id (same length), so the seeds reach Get, the attribute operations, Revoke and Destroy on
//! a key that exists. The input's length picks the client: vs0, the cluster, vs1, or a
//! certificate naming no owner.
//!
//! Checked: never a panic; the answer is a Response Message in TTLV; one outcome per
//! answered batch item; no key material of the seeded key in any outcome.
#![no_main]
use std::sync::{Arc, Mutex, OnceLock};

use ekm_core::{
    ClusterInfo, CreateRequest, DataKeyId, Engine, EngineOptions, KeyOwner, KeyTag, Node,
    SvmInfo, Topology,
};
use ekm_kmip::{Server, tags, ttlv};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

struct Lab {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    server: Server,
    vs0: Uuid,
    vs1: Uuid,
    /// The seeded key (made again when an input destroyed it) and its material.
    seeded: Mutex<(DataKeyId, Vec<u8>)>,
}

/// Most keys kept between inputs: the rest are deleted, so Locate's cost stays bounded.
const MAX_KEYS: usize = 64;

fn config(svm: Option<&str>, vault: &str) -> CreateRequest {
    let svm = svm.map(|s| format!(r#","svm":{{"name":"{s}"}}"#)).unwrap_or_default();
    CreateRequest::from_json(
        format!(
            r#"{{"client_id":"c","tenant_id":"t","name":"https://{vault}.vault.azure.net/","key_id":"https://{vault}.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef","client_secret":"s"{svm}}}"#
        )
        .as_bytes(),
    )
    .expect("a valid configuration")
}

fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            tempfile::tempdir_in("/dev/shm")
        } else {
            tempfile::tempdir()
        }
        .expect("a temporary directory");
        let (vs0, vs1) = (Uuid::new_v4(), Uuid::new_v4());
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
                SvmInfo { name: "vs0".into(), uuid: vs0 },
                SvmInfo { name: "vs1".into(), uuid: vs1 },
            ],
        };
        let store = ekm_store::open(ekm_store::StoreKind::Redb, &dir.path().join("store"))
            .expect("store");
        let fake = Arc::new(
            ekm_fake::FakeBackend::open(&dir.path().join("vault.json")).expect("fake vault"),
        );
        let pk = ekm_store::protection_key::load_or_create(&dir.path().join("protection.key"))
            .expect("protection key");
        let engine = Engine::open(EngineOptions::new(store, fake, topo, pk)).expect("engine");
        engine.create_config(config(None, "cluster")).expect("cluster configuration");
        engine.create_config(config(Some("vs0"), "svm")).expect("vs0 configuration");
        let seeded = Mutex::new(seed_key(&engine, vs0));
        Lab {
            _dir: dir,
            server: Server::new(engine.clone()),
            engine,
            vs0,
            vs1,
            seeded,
        }
    })
}

fn seed_key(engine: &Engine, vs0: Uuid) -> (DataKeyId, Vec<u8>) {
    let id = engine
        .create_data_key(KeyOwner::Svm(vs0), KeyTag::parse("seeded").expect("tag"))
        .expect("seeded key");
    let material = engine.read_data_key(&id).expect("seeded key readable");
    (id, material.expose_secret().to_vec())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let lab = lab();
    let mut msg = data.to_vec();
    let zeros = [b'0'; 64];
    let mut seeded = lab.seeded.lock().unwrap_or_else(|e| e.into_inner());
    if lab.engine.read_data_key(&seeded.0).is_err() {
        *seeded = seed_key(&lab.engine, lab.vs0);
    }
    let seeded_hex = seeded.0.to_hex();
    let mut at = 0;
    while let Some(p) = msg[at..].windows(64).position(|w| w == zeros) {
        msg[at + p..at + p + 64].copy_from_slice(seeded_hex.as_bytes());
        at += p + 64;
    }
    let owner = match data.len() % 4 {
        0 | 1 => Some(KeyOwner::Svm(lab.vs0)),
        2 => Some(KeyOwner::Cluster),
        _ if data.len() % 8 == 3 => Some(KeyOwner::Svm(lab.vs1)),
        _ => None,
    };
    let mut outcomes = Vec::new();
    let resp = lab.server.handle_with_outcomes(owner, &msg, &mut outcomes);
    let resp = ttlv::decode(&resp).expect("the answer is TTLV");
    assert_eq!(resp.tag, tags::RESPONSE_MESSAGE);
    let answered = resp.all(tags::BATCH_ITEM).count();
    assert!(outcomes.is_empty() || outcomes.len() == answered);
    for o in &outcomes {
        let _ = (o.operation_name(), o.result_name());
        if let Some(u) = &o.uid {
            assert!(!contains(u.as_bytes(), &seeded.1));
        }
    }
    // Keep the store small: drop keys beyond MAX_KEYS (never the seeded one).
    if let Ok(configs) = lab.engine.list_configs() {
        for c in configs {
            let keys = lab.engine.list_data_keys(c.uuid).unwrap_or_default();
            if keys.len() > MAX_KEYS {
                for k in keys.iter().filter(|k| k.key_id != seeded.0) {
                    let _ = lab.engine.delete_data_key(&k.key_id);
                }
            }
        }
    }
});
