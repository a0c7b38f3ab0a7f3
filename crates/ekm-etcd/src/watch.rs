//! Watches: every change under a prefix delivered to the engine in revision order, resumed
//! where it was after a broken stream, and a [`Change::Resync`] when etcd no longer holds
//! what the watch missed.
//!
//! Owns: the watch loop (its start revision, restarts through another member, progress
//! notifications for delete-only watches) and the cluster's current revision a new watch
//! starts after.
//! Must never: skip a change silently: a change the watch cannot replay (compacted history) is
//! announced as `Change::Resync`, and the engine rebuilds from the store.
//!
//! | what the stream says | what the watch does |
//! |---|---|
//! | events | delivers each (`Put`/`Delete`), `from` = last revision + 1 |
//! | a progress notification (delete-only watches) | `from` = its revision + 1 |
//! | cancelled, compacted past `from` | `Change::Resync`, resumes at the compact revision |
//! | cancelled otherwise, error, end | resumes at `from` through the next member after 200 ms |

use std::sync::Arc;
use std::time::Duration;

use ekm_core::store::{Change, ChangeCallback, StoreError};
use etcd_client::{EventType, GetOptions, WatchFilterType, WatchOptions};

use crate::client::Cluster;

/// The cluster's current revision (read under full key prefix `full`).
pub(crate) async fn current_revision(cluster: &Cluster, full: Vec<u8>) -> Result<i64, StoreError> {
    let resp = cluster
        .read(|mut c| {
            let full = full.clone();
            async move { c.get(full, Some(GetOptions::new().with_limit(1))).await }
        })
        .await?;
    Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
}

/// Watches full key prefix `prefix` from revision `from` on, for ever, handing each change
/// (its key without the first `strip` bytes) to `on_change`; `deletes_only`: puts filtered
/// out by etcd.
pub(crate) async fn watch_loop(
    cluster: Arc<Cluster>,
    prefix: Vec<u8>,
    strip: usize,
    mut from: i64,
    deletes_only: bool,
    on_change: ChangeCallback,
) {
    loop {
        let idx = cluster.current();
        let client = match cluster.client(idx).await {
            Ok(c) => c,
            Err(_) => {
                cluster.rotate(idx);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut client = client;
        let mut opts = WatchOptions::new().with_prefix().with_start_revision(from);
        if deletes_only {
            // Progress notifications move `from` on while only puts happen, so that a
            // restarted watch does not replay (or find compacted) the history they made.
            opts = opts
                .with_filters([WatchFilterType::NoPut])
                .with_progress_notify();
        }
        let Ok(mut stream) = client.watch(prefix.clone(), Some(opts)).await else {
            cluster.forget_client(idx).await;
            cluster.rotate(idx);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        loop {
            match stream.message().await {
                Ok(Some(resp)) => {
                    if resp.canceled() {
                        if resp.compact_revision() > from {
                            // Compacted past `from`: the changes in between are gone.
                            // The watcher rebuilds from the store; changes from the
                            // oldest revision still kept follow.
                            from = resp.compact_revision();
                            cluster.observe(|o| o.watch_restart("compacted"));
                            on_change(Change::Resync);
                        } else {
                            // Cancelled for another reason (the member is shutting
                            // down, ...): watch again, through another member, after a
                            // pause rather than in a tight loop.
                            cluster.forget_client(idx).await;
                            cluster.rotate(idx);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        break;
                    }
                    if resp.events().is_empty() && !resp.created() && deletes_only {
                        // A progress notification: every change up to its revision has
                        // been delivered.
                        if let Some(h) = resp.header() {
                            from = from.max(h.revision() + 1);
                        }
                        continue;
                    }
                    if let (Some(h), Some(last)) = (resp.header(), resp.events().last()) {
                        let behind = h.revision() - last.kv().map_or(0, |kv| kv.mod_revision());
                        cluster.observe(|o| o.watch_revisions_behind(behind.max(0) as u64));
                    }
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        if kv.key().len() < strip {
                            continue;
                        }
                        let key = kv.key()[strip..].to_vec();
                        from = from.max(kv.mod_revision() + 1);
                        on_change(match ev.event_type() {
                            EventType::Put => Change::Put(key, kv.value().to_vec()),
                            EventType::Delete => Change::Delete(key),
                        });
                    }
                }
                _ => {
                    cluster.observe(|o| o.watch_restart("error"));
                    cluster.forget_client(idx).await;
                    cluster.rotate(idx);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    }
}
