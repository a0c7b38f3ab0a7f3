//! Leases and liveness: this process's lease, and the ephemeral records bound to it (a node's
//! liveness record), which vanish when the process dies or is cut off for longer than the TTL.
//!
//! Owns: granting the lease, keeping it alive at a third of its TTL, granting a new one when it
//! expired, and putting every ephemeral record again under the lease held now.
//! Must never: keep an ephemeral record alive for a process that cannot reach etcd for longer
//! than the TTL; lose an ephemeral record put while no lease was held (it is put as soon as one
//! is).
//!
//! ```text
//!   grant(ttl) ──► put every ephemeral record under it
//!       ▲              │
//!       │              ▼ every ttl/3: keep-alive
//!       │         ok ──► again
//!       └── expired, or failing for longer than the ttl ──► (records vanish in etcd)
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ekm_core::store::StoreError;
use etcd_client::PutOptions;
use parking_lot::Mutex;

use crate::client::Cluster;

/// This process's lease and the ephemeral records bound to it.
pub(crate) struct Leases {
    /// The lease held now, if any.
    lease: Mutex<Option<i64>>,
    /// Full key → value of every ephemeral record this process put.
    ephemeral: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
}

fn lease_ttl_secs(cluster: &Cluster) -> i64 {
    cluster.opts.lease_ttl.as_secs().max(2) as i64
}

/// Grants a lease of the configured TTL: its id.
pub(crate) async fn grant(cluster: &Cluster) -> Result<i64, StoreError> {
    let ttl = lease_ttl_secs(cluster);
    cluster
        .read(|mut c| async move { c.lease_grant(ttl, None).await })
        .await
        .map(|lease| lease.id())
}

impl Leases {
    /// Leases holding lease `id` (granted by [`grant`]), with no ephemeral record yet.
    pub(crate) fn holding(id: i64) -> Leases {
        Leases {
            lease: Mutex::new(Some(id)),
            ephemeral: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps the lease held (`held`, or a new one) alive for ever, granting a new one when it
    /// expired or failed for longer than its TTL; runs on the store's runtime.
    pub(crate) async fn keep_alive(self: Arc<Self>, cluster: Arc<Cluster>, mut held: Option<i64>) {
        let ttl = lease_ttl_secs(&cluster);
        loop {
            let id = match held.take() {
                Some(id) => id,
                None => {
                    let granted = cluster
                        .read(|mut c| async move { c.lease_grant(ttl, None).await })
                        .await;
                    let Ok(lease) = granted else {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    };
                    lease.id()
                }
            };
            *self.lease.lock() = Some(id);
            // Records put while no lease was held (or under an expired one) go under this one.
            let records: Vec<_> = self
                .ephemeral
                .lock()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (k, v) in records {
                let _ = put_leased(&cluster, &k, &v, id).await;
            }
            // Keep it alive at a third of its TTL until a keep-alive fails for longer than it.
            let mut failing_since: Option<tokio::time::Instant> = None;
            loop {
                tokio::time::sleep(Duration::from_secs((ttl / 3).max(1) as u64)).await;
                let alive = cluster
                    .read(|mut c| async move {
                        let (mut keeper, mut stream) = c.lease_keep_alive(id).await?;
                        keeper.keep_alive().await?;
                        Ok(stream.message().await?.map(|m| m.ttl()).unwrap_or(0))
                    })
                    .await;
                match alive {
                    Ok(t) if t > 0 => failing_since = None,
                    Ok(_) => break, // expired: grant a new one
                    Err(_) => {
                        let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() > cluster.opts.lease_ttl {
                            break;
                        }
                    }
                }
            }
            *self.lease.lock() = None;
        }
    }

    /// `Store::put_ephemeral` of full key `key`: remembered, and put under the lease held now
    /// (or by the keeper as soon as it holds one).
    pub(crate) async fn put(
        &self,
        cluster: &Cluster,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.ephemeral.lock().insert(key.clone(), value.clone());
        let lease = *self.lease.lock();
        match lease {
            // The keeper puts it as soon as it holds a lease.
            None => Ok(()),
            Some(id) => put_leased(cluster, &key, &value, id).await,
        }
    }
}

async fn put_leased(
    cluster: &Cluster,
    key: &[u8],
    value: &[u8],
    lease: i64,
) -> Result<(), StoreError> {
    let (key, value) = (key.to_vec(), value.to_vec());
    cluster
        .read(|mut c| {
            let (key, value) = (key.clone(), value.clone());
            async move {
                c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                    .await
            }
        })
        .await
        .map(drop)
}
