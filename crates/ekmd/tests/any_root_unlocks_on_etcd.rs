//! Several roots of trust in cluster mode: three ekmd on a real 3-member etcd cluster, each
//! with `--backend azure,aws`; vs0's primary on the AKV emulator and its mirror on moto, each
//! behind a relay. The three nodes agree on `protectors`; with the vault cut, every node
//! restarted serves every key through the mirror; with KMS cut instead, through the primary.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::providers::{APP, Daemon, SECRET, TENANT, call, socket_read};
use common::relay::Relay;
use ekm_etcd::testing::EtcdCluster;
use serde_json::{Value, json};

fn topology_toml() -> String {
    let mut s = "[cluster]\nname = \"cluster1\"\nuuid = \"00000000-0000-0000-0000-000000000001\"\n"
        .to_owned();
    for i in 1..=3 {
        s.push_str(&format!(
            "[[nodes]]\nname = \"node{i}\"\nuuid = \"00000000-0000-0000-0000-00000000001{i}\"\n"
        ));
    }
    s.push_str("[[svms]]\nname = \"vs0\"\nuuid = \"00000000-0000-0000-0000-000000000021\"\n");
    s
}

struct Lab {
    emu: akv_emulator::Emulator,
    moto: ekm_aws::testing::Moto,
    kms: Relay,
    etcd: EtcdCluster,
}

/// Node `i` (1..=3) on `root/node{i}`; nodes 2 and 3 take node 1's protection key.
fn node(root: &Path, lab: &Lab, i: usize) -> Daemon {
    let dir = root.join(format!("node{i}"));
    std::fs::create_dir_all(dir.join("ekm-data")).unwrap();
    if i > 1 {
        let _ = std::fs::copy(
            root.join("node1/ekm-data/protection.key"),
            dir.join("ekm-data/protection.key"),
        );
    }
    let endpoints = lab.etcd.endpoints().join(",");
    let name = format!("node{i}");
    common::providers::start_with(
        &dir,
        &topology_toml(),
        &lab.emu,
        &lab.emu.addr().to_string(),
        &lab.moto,
        &format!("127.0.0.1:{}", lab.kms.port),
        &[
            "--node",
            &name,
            "--store",
            "etcd",
            "--etcd-endpoints",
            &endpoints,
            "--backend-probe-interval",
            "1",
        ],
    )
}

fn roots(d: &Daemon, vs0: &str) -> Vec<(String, bool)> {
    let (s, v) = call(
        d,
        "GET",
        &format!("/api/security/azure-key-vaults/{vs0}?fields=protectors"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    v["protectors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|p: &Value| {
            (
                p["uuid"].as_str().unwrap().to_owned(),
                p["fully_wrapped"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn three_nodes_agree_on_the_roots_and_each_unlocks_through_either() {
    let Some(moto) = ekm_aws::testing::Moto::start_or_skip("any root on etcd") else {
        return;
    };
    let emu = akv_emulator::Emulator::start().unwrap();
    emu.add_secret_app(TENANT, APP, SECRET);
    let version = emu.add_key("key1", 2048).unwrap();
    let (aws_key, _) = moto.create_key().unwrap();
    let vault = Relay::start(emu.addr().to_string());
    // The vault's URL names the relay's port (the SDK connects to the URL's port).
    let through =
        |url: String| url.replace(&format!(":{}", emu.port()), &format!(":{}", vault.port));
    let akv_key = through(emu.key_id("myvault", "key1", &version));
    let vault_url = through(emu.vault_url("myvault"));
    let kms = Relay::start(moto.addr().to_string());
    let etcd = EtcdCluster::start(3).expect("etcd cluster");
    let lab = Lab {
        emu,
        moto,
        kms,
        etcd,
    };
    let dir = tempfile::tempdir().unwrap();
    let start_all = || -> Vec<Daemon> { (1..=3).map(|i| node(dir.path(), &lab, i)).collect() };
    let nodes = start_all();

    let (s, v) = call(
        &nodes[0],
        "POST",
        "/api/security/azure-key-vaults?return_records=true",
        Some(
            json!({"svm": {"name": "vs0"}, "client_id": APP, "tenant_id": TENANT,
                    "name": format!("{vault_url}/"), "key_id": akv_key, "client_secret": SECRET}),
        ),
    );
    assert_eq!(s, 201, "{v}");
    let vs0 = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let mut keys = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let (s, v) = call(
            n,
            "POST",
            &format!("/api/security/azure-key-vaults/{vs0}/keys"),
            Some(json!({"key_tag": format!("vol{i}")})),
        );
        assert_eq!(s, 201, "{v}");
        let id = v["key_id"].as_str().unwrap().to_owned();
        keys.insert(id.clone(), socket_read(n, &id));
    }
    let (s, v) = call(
        &nodes[1],
        "POST",
        "/api/security/aws-kms?return_records=true",
        Some(
            json!({"region": ekm_aws::testing::REGION, "key_id": aws_key,
                    "access_key_id": ekm_aws::testing::ACCESS_KEY_ID,
                    "secret_access_key": ekm_aws::testing::CANARY_SECRET,
                    "mirror_of": {"uuid": vs0}}),
        ),
    );
    assert_eq!(s, 201, "{v}");
    let mirror = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let expected = vec![(vs0.clone(), true), (mirror.clone(), true)];
    for n in &nodes {
        assert_eq!(roots(n, &vs0), expected, "every node lists the same roots");
    }

    // The vault cut: every node, restarted, serves every key through the mirror.
    drop(nodes);
    vault.cut();
    let nodes = start_all();
    for n in &nodes {
        for (id, m) in &keys {
            assert_eq!(&socket_read(n, id), m, "through the mirror");
        }
    }
    // KMS cut instead: through the primary.
    drop(nodes);
    vault.restore();
    lab.kms.cut();
    let nodes = start_all();
    for n in &nodes {
        for (id, m) in &keys {
            assert_eq!(&socket_read(n, id), m, "through the primary");
        }
    }
    lab.kms.restore();
    drop(nodes);
}
