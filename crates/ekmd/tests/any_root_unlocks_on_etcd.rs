//! Several roots of trust in cluster mode: three ekmd on a real 3-member etcd cluster, each
//! with `--backend azure,aws`; vs0's primary on the AKV emulator and its mirror on moto, each
//! behind a relay. The three nodes agree on `protectors`; with the vault cut, every node
//! restarted serves every key through the mirror; with KMS cut instead, through the primary.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::providers::{Daemon, Relayed, call, protectors, socket_read};
use ekm_etcd::testing::EtcdCluster;
use serde_json::json;

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

/// Node `i` (1..=3) on `root/node{i}`; nodes 2 and 3 take node 1's protection key.
fn node(root: &Path, lab: &Relayed, etcd: &EtcdCluster, i: usize) -> Daemon {
    let dir = root.join(format!("node{i}"));
    std::fs::create_dir_all(dir.join("ekm-data")).unwrap();
    if i > 1 {
        let _ = std::fs::copy(
            root.join("node1/ekm-data/protection.key"),
            dir.join("ekm-data/protection.key"),
        );
    }
    let endpoints = etcd.endpoints().join(",");
    let name = format!("node{i}");
    lab.ekmd(
        &dir,
        Some(&topology_toml()),
        &[
            "--node",
            &name,
            "--store",
            "etcd",
            "--etcd-endpoints",
            &endpoints,
        ],
    )
}

fn roots(d: &Daemon, vs0: &str) -> Vec<(String, bool)> {
    protectors(d, vs0)
        .iter()
        .map(|p| {
            (
                p["uuid"].as_str().unwrap().to_owned(),
                p["fully_wrapped"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn three_nodes_agree_on_the_roots_and_each_unlocks_through_either() {
    let Some(lab) = Relayed::start_or_skip("any root on etcd") else {
        return;
    };
    let etcd = EtcdCluster::start(3).expect("etcd cluster");
    let dir = tempfile::tempdir().unwrap();
    let start_all =
        || -> Vec<Daemon> { (1..=3).map(|i| node(dir.path(), &lab, &etcd, i)).collect() };
    let nodes = start_all();
    let vs0 = lab.create_vs0(&nodes[0]);
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
        Some(lab.mirror_body(&vs0)),
    );
    assert_eq!(s, 201, "{v}");
    let mirror = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let expected = vec![(vs0.clone(), true), (mirror.clone(), true)];
    for n in &nodes {
        assert_eq!(roots(n, &vs0), expected, "every node lists the same roots");
    }

    // The vault cut: every node, restarted, serves every key through the mirror.
    drop(nodes);
    lab.vault.cut();
    let nodes = start_all();
    for n in &nodes {
        for (id, m) in &keys {
            assert_eq!(&socket_read(n, id), m, "through the mirror");
        }
    }
    // KMS cut instead: through the primary.
    drop(nodes);
    lab.vault.restore();
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
