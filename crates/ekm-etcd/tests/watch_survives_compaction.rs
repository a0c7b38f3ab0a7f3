//! A watch that falls behind etcd's compaction (a long disconnection, a member that was
//! away) does not silently skip what it missed: it reports `Change::Resync`, so the engine
//! rebuilds from the store (evicts its key tables, forgets retired KEKs), and then follows
//! changes again.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use ekm_core::store::{Change, Store, Transaction};
use ekm_etcd::testing::EtcdCluster;

/// `etcdctl` against `endpoints`, returning its JSON output.
fn etcdctl(endpoints: &[String], args: &[&str]) -> serde_json::Value {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["-w", "json"])
        .args(args)
        .output()
        .expect("etcdctl runs");
    assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn revision(endpoints: &[String], key: &str) -> i64 {
    etcdctl(endpoints, &["get", key])["header"]["revision"]
        .as_i64()
        .expect("revision")
}

#[test]
fn a_watch_behind_a_compaction_reports_resync_then_follows() {
    let cluster = EtcdCluster::start(1).expect("etcd starts");
    let endpoints = cluster.endpoints();
    let mut opts = ekm_etcd::EtcdOptions::new(endpoints.clone());
    opts.prefix = b"/compaction/".to_vec();
    let store = ekm_etcd::EtcdStore::open(opts).expect("store opens");

    let commit = |put: Option<&[u8]>, delete: Option<&[u8]>| {
        let mut t = Transaction::new();
        if let Some(k) = put {
            t.put(k, b"v");
        }
        if let Some(k) = delete {
            t.delete(k.to_vec());
        }
        store.commit(t).unwrap();
    };
    commit(Some(b"d/a"), None);
    let seen_from = revision(&endpoints, "/compaction/d/a");
    // Changes the watcher would have had to see (a delete above all), then compacted away.
    commit(None, Some(b"d/a"));
    commit(Some(b"d/b"), None);
    let now = revision(&endpoints, "/compaction/d/b");
    etcdctl(&endpoints, &["compact", &now.to_string()]);

    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    store.watch_from_revision(
        b"d/",
        seen_from,
        Box::new(move |c| {
            let _ = tx.lock().unwrap().send(c);
        }),
    );
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the watch reports");
    assert_eq!(
        first,
        Change::Resync,
        "the lost delete of d/a must not pass unnoticed"
    );
    // Then it follows again.
    commit(Some(b"d/c"), None);
    let next = loop {
        let c = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the watch follows after the resync");
        if c != Change::Put(b"d/b".to_vec(), b"v".to_vec()) {
            break c;
        }
    };
    assert_eq!(next, Change::Put(b"d/c".to_vec(), b"v".to_vec()));
}
