//! A watch cut off from etcd while the cluster compacted its history past the watch's point
//! cannot replay what it missed; it must say so (`Change::Resync`), or a node would keep serving
//! a key deleted meanwhile from its table (crypto-erase broken on that node).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ekm_core::store::{Change, Store, Transaction};
use ekm_etcd::testing::EtcdCluster;
use ekm_etcd::{EtcdOptions, EtcdStore};
use parking_lot::Mutex;

fn store(endpoints: Vec<String>) -> Arc<EtcdStore> {
    let mut o = EtcdOptions::new(endpoints);
    o.prefix = b"/lost/".to_vec();
    EtcdStore::open(o).expect("store")
}

fn wait_for(seen: &Mutex<Vec<Change>>, what: impl Fn(&Change) -> bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if seen.lock().iter().any(&what) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_delete_missed_behind_a_compaction_is_reported_as_lost() {
    let cluster = EtcdCluster::start(3).expect("etcd cluster");
    let endpoints = cluster.endpoints();
    // The watcher talks to member 0 first; the writer never does.
    let watcher = store(endpoints.clone());
    let writer = store(endpoints[1..].to_vec());
    let seen: Arc<Mutex<Vec<Change>>> = Arc::default();
    let sink = seen.clone();
    watcher
        .watch(b"d/", Box::new(move |c| sink.lock().push(c)))
        .expect("watch");
    let mut t = Transaction::new();
    t.put(b"d/x".to_vec(), b"1".to_vec());
    writer.commit(t).expect("put");
    assert!(
        wait_for(
            &seen,
            |c| matches!(c, Change::Put(..)),
            Duration::from_secs(5)
        ),
        "the watch is live"
    );

    // Member 0 hangs; meanwhile the key is deleted and the history compacted past the delete.
    cluster.pause(0);
    let mut t = Transaction::new();
    t.delete(b"d/x".to_vec());
    writer.commit(t).expect("delete");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut c = etcd_client::Client::connect([endpoints[1].as_str()], None)
            .await
            .expect("client");
        let rev = c
            .put("/lost/bump", "", None)
            .await
            .expect("put")
            .header()
            .expect("header")
            .revision();
        c.compact(rev, None).await.expect("compact");
    });

    // The watch gives up on member 0 (keep-alive) and resumes on another member, where the
    // delete is no longer in the history: it must report the delete, or that it lost it.
    let told = wait_for(
        &seen,
        |c| matches!(c, Change::Delete(..) | Change::Resync),
        Duration::from_secs(20),
    );
    cluster.resume(0);
    assert!(
        told,
        "the watcher was told neither of the delete nor that it missed changes: {:?}",
        seen.lock()
    );
}
