//! The advanced status fields of the seed — `state`, `azure_reachability`,
//! `ekmip_reachability` — computed only when asked for.
//!
//! `ekmip_reachability` is each node's embedded KMIP server: the node is up, holds the
//! configuration's active KEK and — where KMIP is on — its KMIP server answered its last
//! Discover Versions probe. The probe is the embedder's (ekmd's listener probes itself and
//! reports with [`Engine::set_kmip_server`]); a node's own report travels to the other nodes
//! in its liveness record when the store is shared.
//!
//! Owns: the status fields and the backend checks behind `azure_reachability` (the periodic
//! probe included).
//! Must never: change a key, a KEK or a configuration; count a node's stale backend check as
//! passed.
//!
//! | field | says |
//! |---|---|
//! | `state` | whether every node holds the configuration's active KEK; those lacking it, and why |
//! | `azure_reachability` | whether the configuration's vault answered each node's last check |
//! | `ekmip_reachability` | per node: up, holds the active KEK, and its KMIP server answered (or KMIP is off) |

use uuid::Uuid;

use super::Engine;
use super::helpers::{now_secs, store_failed};
use crate::backend::BackendCall;
use crate::config::{AwsKmsConfig, AzureKeyVault, AzureReachability, EkmipReachability, KekStatus};
use crate::error::{ErrorKind, Result};
use crate::stored::StoredConfig;
use crate::topology::Node;

/// Which advanced fields to compute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusFields {
    /// `state`: is the current KEK loaded on every node.
    pub state: bool,
    /// `azure_reachability`: does AKV answer from every managed node (one check per node).
    pub azure_reachability: bool,
    /// `ekmip_reachability`: per node, does its key table serve this configuration.
    pub ekmip_reachability: bool,
    /// `protectors` (ekm's extension): every root of trust of the scope.
    pub protectors: bool,
}

impl StatusFields {
    /// All three.
    pub fn all() -> Self {
        StatusFields {
            state: true,
            azure_reachability: true,
            ekmip_reachability: true,
            protectors: true,
        }
    }

    /// Whether any is asked for.
    pub fn any(&self) -> bool {
        self.state || self.azure_reachability || self.ekmip_reachability || self.protectors
    }
}

/// The KMIP server of the nodes this process manages, as its embedder last found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmipServerState {
    /// No KMIP listener (ekmd without `--kmip-listen`): the data path is the socket alone.
    Off,
    /// The listener answered its last Discover Versions probe.
    Answering,
    /// The listener did not answer its last probe: why.
    NotAnswering(String),
}

impl KmipServerState {
    /// The form kept in a liveness record.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            KmipServerState::Off => serde_json::json!({"state": "off"}),
            KmipServerState::Answering => serde_json::json!({"state": "answering"}),
            KmipServerState::NotAnswering(m) => {
                serde_json::json!({"state": "not_answering", "message": m})
            }
        }
    }

    /// Read back from a liveness record (`None` when the record has no KMIP state).
    pub(crate) fn from_json(v: &serde_json::Value) -> Option<KmipServerState> {
        Some(match v["state"].as_str()? {
            "off" => KmipServerState::Off,
            "answering" => KmipServerState::Answering,
            _ => KmipServerState::NotAnswering(
                v["message"]
                    .as_str()
                    .unwrap_or("no reason recorded")
                    .chars()
                    .take(512)
                    .collect(),
            ),
        })
    }
}

/// Message of a reachable node whose KMIP is off.
pub const KMIP_OFF_MESSAGE: &str = "KMIP is off on this node (ekmd runs without --kmip-listen): its data path is the unix socket alone.";

/// The advanced fields of one configuration, as computed.
#[derive(Default)]
struct Status {
    state: Option<KekStatus>,
    azure_reachability: Option<AzureReachability>,
    ekmip_reachability: Option<Vec<EkmipReachability>>,
    protectors: Option<Vec<crate::config::Protector>>,
}

/// Whether one node holds the current KEK, and why not.
struct NodeKekStatus {
    node: Node,
    reason: Option<String>,
    /// The mirror it unlocked the KEK through, when its primary's provider failed.
    via: Option<Uuid>,
}

impl Engine {
    /// An Azure configuration with the advanced fields asked for.
    pub fn get_config_with_status(
        &self,
        uuid: Uuid,
        fields: StatusFields,
    ) -> Result<AzureKeyVault> {
        let (cfg, _) = self.load_config(uuid)?;
        let mut view = cfg.view()?;
        let status = self.status_of(&cfg, fields)?;
        view.state = status.state;
        view.azure_reachability = status.azure_reachability;
        view.ekmip_reachability = status.ekmip_reachability;
        view.protectors = status.protectors;
        Ok(view)
    }

    /// An AWS KMS configuration with the advanced fields asked for (`fields.azure_reachability`
    /// asks for `amazon_reachability`: the same check, of the configuration's own provider).
    pub fn get_aws_config_with_status(
        &self,
        uuid: Uuid,
        fields: StatusFields,
    ) -> Result<AwsKmsConfig> {
        let (cfg, _) = self.load_config(uuid)?;
        let mut view = cfg.aws_view()?;
        let status = self.status_of(&cfg, fields)?;
        view.state = status.state;
        view.amazon_reachability = status.azure_reachability;
        view.ekmip_reachability = status.ekmip_reachability;
        view.protectors = status.protectors;
        Ok(view)
    }

    /// The advanced fields of any configuration: the KEK on every node, the provider's
    /// reachability from every managed node, and each node's key table.
    fn status_of(&self, cfg: &StoredConfig, fields: StatusFields) -> Result<Status> {
        let cfg = cfg.clone();
        let mut view = Status::default();
        if !fields.any() {
            return Ok(view);
        }
        if fields.protectors {
            // A mirror shows its scope's roots too, as its primary does.
            view.protectors = Some(self.protectors(cfg.mirror_of().unwrap_or(cfg.uuid))?);
            if !(fields.state || fields.azure_reachability || fields.ekmip_reachability) {
                return Ok(view);
            }
        }
        let nodes = self.node_kek_status(&cfg)?;
        if fields.state {
            let lacking: Vec<String> = nodes
                .iter()
                .filter_map(|n| {
                    n.reason
                        .as_ref()
                        .map(|r| format!("Node: {}. Reason: {r}", n.node.name))
                })
                .collect();
            let through: Vec<String> = nodes
                .iter()
                .filter_map(|n| {
                    n.via.map(|m| {
                        format!(
                            "Node: {}. Unlocked through mirror {m}: the primary's {} did not answer.",
                            n.node.name,
                            cfg.provider().title()
                        )
                    })
                })
                .collect();
            view.state = Some(if lacking.is_empty() {
                KekStatus {
                    available: true,
                    cluster_state: true,
                    code: "0".into(),
                    message: through.join(" "),
                }
            } else {
                KekStatus {
                    available: false,
                    cluster_state: false,
                    code: ErrorKind::AkvUnavailable.code().to_string(),
                    message: format!(
                        "Top-level internal key protection key (KEK) is unavailable on the following nodes with the associated reasons: {}",
                        lacking.join(" ")
                    ),
                }
            });
        }
        if fields.ekmip_reachability {
            let mut out = Vec::new();
            for n in &nodes {
                out.push(match &n.reason {
                    // Before the first key there is no KEK to lack: a node whose KMIP is off
                    // says so, and is not failing.
                    Some(_)
                        if cfg.active_generation.is_none()
                            && self.kmip_reported_off(n.node.uuid)? =>
                    {
                        EkmipReachability {
                            node: n.node.clone(),
                            reachable: true,
                            code: "0".into(),
                            message: KMIP_OFF_MESSAGE.into(),
                        }
                    }
                    // A KEK that exists but is not loaded on the node: the node cannot serve
                    // keys, whatever its KMIP server is (ONTAP's 346758).
                    Some(r) => EkmipReachability {
                        node: n.node.clone(),
                        reachable: false,
                        code: ErrorKind::AkvUnavailable.code().to_string(),
                        message: if self.kmip_reported_off(n.node.uuid)? {
                            format!("{KMIP_OFF_MESSAGE} The KEK is unavailable on this node: {r}")
                        } else {
                            format!("embedded KMIP server status unavailable on node. {r}")
                        },
                    },
                    None => match self.kmip_server_of(n.node.uuid)? {
                        KmipServerState::Answering => EkmipReachability {
                            node: n.node.clone(),
                            reachable: true,
                            code: "0".into(),
                            message: String::new(),
                        },
                        KmipServerState::Off => EkmipReachability {
                            node: n.node.clone(),
                            reachable: true,
                            code: "0".into(),
                            message: KMIP_OFF_MESSAGE.into(),
                        },
                        KmipServerState::NotAnswering(why) => EkmipReachability {
                            node: n.node.clone(),
                            reachable: false,
                            code: ErrorKind::AkvUnavailable.code().to_string(),
                            message: format!(
                                "embedded KMIP server status unavailable on node. Its KMIP server did not answer a Discover Versions probe: {why}"
                            ),
                        },
                    },
                });
            }
            view.ekmip_reachability = Some(out);
        }
        if fields.azure_reachability {
            view.azure_reachability = Some(self.reachability_of(&cfg)?);
        }
        Ok(view)
    }

    /// Records what this process's KMIP server is now (after each self-probe of its
    /// listener); other processes sharing the store read it from this process's liveness
    /// record, rewritten when the state changes.
    pub fn set_kmip_server(&self, state: KmipServerState) {
        let changed = {
            let mut cur = self.kmip.write();
            let changed = *cur != state;
            *cur = state;
            changed
        };
        if changed && self.store.is_shared() {
            self.write_liveness();
        }
    }

    /// This process's KMIP server as last recorded.
    pub fn kmip_server(&self) -> KmipServerState {
        self.kmip.read().clone()
    }

    /// The KMIP server of `node`: this process's own for the nodes it manages; another
    /// process's from its liveness record (absent: that process reports no KMIP state, so
    /// its KMIP is off).
    /// Whether `node`'s KMIP server is known to be off: this process's own nodes, or another
    /// process's liveness record saying so (a node without a record is down, not "off").
    fn kmip_reported_off(&self, node: Uuid) -> Result<bool> {
        if self.nodes.iter().any(|n| n.node.uuid == node) || !self.store.is_shared() {
            return Ok(self.kmip_server() == KmipServerState::Off);
        }
        let rec = self
            .store
            .get(&crate::layout::liveness(node))
            .map_err(store_failed)?;
        Ok(rec
            .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
            .and_then(|v| KmipServerState::from_json(&v["kmip"]))
            == Some(KmipServerState::Off))
    }

    fn kmip_server_of(&self, node: Uuid) -> Result<KmipServerState> {
        if self.nodes.iter().any(|n| n.node.uuid == node) || !self.store.is_shared() {
            return Ok(self.kmip_server());
        }
        let rec = self
            .store
            .get(&crate::layout::liveness(node))
            .map_err(store_failed)?;
        Ok(rec
            .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
            .and_then(|v| KmipServerState::from_json(&v["kmip"]))
            .unwrap_or(KmipServerState::Off))
    }

    /// Per node of the topology: `None` when it is up and holds the active KEK of
    /// configuration `uuid`, else why not (what readiness and the KEK availability metric
    /// report, without the KMIP server's state).
    pub fn kek_availability(&self, uuid: Uuid) -> Result<Vec<(Node, Option<String>)>> {
        let (cfg, _) = self.load_config(uuid)?;
        Ok(self
            .node_kek_status(&cfg)?
            .into_iter()
            .map(|n| (n.node, n.reason))
            .collect())
    }

    /// For every node of the topology: does it hold the active KEK? Managed nodes answer from
    /// memory; other nodes from their availability records in the store.
    fn node_kek_status(&self, cfg: &StoredConfig) -> Result<Vec<NodeKekStatus>> {
        let mut out = Vec::new();
        for node in &self.topology.nodes {
            let mut via = None;
            let reason = match cfg.active_generation {
                None => Some(
                    "No data keys created yet for this key manager. Wrapped KEK status will be available after creating encrypted volumes."
                        .to_owned(),
                ),
                Some(g) => {
                    let record = self.node_record(node.uuid, cfg.uuid)?;
                    let recorded_error = record
                        .as_ref()
                        .and_then(|r| r.last_error.as_ref().map(|e| e.message.clone()));
                    let managed = self.nodes.iter().find(|n| n.node.uuid == node.uuid);
                    let loaded = match managed {
                        Some(rt) => rt.kek(cfg.uuid, g).is_some(),
                        None => record.as_ref().is_some_and(|r| r.loaded == Some(g)),
                    };
                    via = match managed {
                        Some(rt) => rt.unlocked_via.read().get(&(cfg.uuid, g)).copied(),
                        None => record.as_ref().and_then(|r| r.unlocked_via),
                    };
                    if !self.node_alive(node.uuid)? {
                        Some(
                            "The node is down: its ekmd has no liveness record in the cluster store (stopped, or cut off from it)."
                                .to_owned(),
                        )
                    } else if loaded {
                        None
                    } else {
                        Some(recorded_error.unwrap_or_else(|| {
                            format!(
                                "KEK generation {g} is not loaded on this node; it loads on first use, at start-up, or by restore."
                            )
                        }))
                    }
                }
            };
            out.push(NodeKekStatus {
                node: node.clone(),
                via: via.filter(|_| reason.is_none()),
                reason,
            });
        }
        Ok(out)
    }

    /// One backend check per managed node with the configuration's credentials and key; in a
    /// cluster store, every other live node's own last check, from its liveness record (see
    /// [`Engine::probe_backend`]). A node that is down is not counted (`state` names it).
    pub(crate) fn reachability_of(&self, cfg: &StoredConfig) -> Result<AzureReachability> {
        let mut failures = Vec::new();
        for (node, failure) in self.check_backend_here(cfg)? {
            if let Some(f) = failure {
                failures.push(format!("{}: {f}", node.name));
            }
        }
        if self.store.is_shared() {
            for node in &self.topology.nodes {
                if self.nodes.iter().any(|n| n.node.uuid == node.uuid) {
                    continue;
                }
                if let Some(f) = self.reported_backend_failure(node.uuid, cfg.uuid)? {
                    failures.push(format!("{}: {f}", node.name));
                }
            }
        }
        Ok(if failures.is_empty() {
            AzureReachability {
                reachable: true,
                code: "0".into(),
                message: String::new(),
            }
        } else {
            AzureReachability {
                reachable: false,
                code: ErrorKind::AkvUnavailable.code().to_string(),
                message: format!(
                    "{} is not reachable from all nodes - {}.",
                    match cfg.provider() {
                        crate::provider::Provider::AzureKeyVault => "AKV service",
                        crate::provider::Provider::AwsKms => "AWS KMS",
                    },
                    failures.join("; ")
                ),
            }
        })
    }

    /// Checks the backend of `cfg` from every node this process manages, and remembers each
    /// result for this process's liveness record. `None`: reachable.
    fn check_backend_here(&self, cfg: &StoredConfig) -> Result<Vec<(Node, Option<String>)>> {
        let parts = cfg.unseal(&self.protection)?;
        let access = parts.access();
        let mut out = Vec::new();
        for rt in &self.nodes {
            let call = BackendCall {
                node: &rt.node,
                access: &access,
            };
            let failure = self
                .backend
                .check(&call, &parts.external_key())
                .err()
                .map(|e| e.to_string());
            self.backend_checks.lock().insert(
                (rt.node.uuid, cfg.uuid),
                BackendCheck {
                    failure: failure.clone(),
                    checked: now_secs(),
                    revision: cfg.revision,
                },
            );
            out.push((rt.node.clone(), failure));
        }
        Ok(out)
    }

    /// Checks every configuration's backend from every node of this process and publishes the
    /// results in its liveness record, where the other nodes' `azure_reachability` reads them.
    /// A cluster store's engine runs it every 30 s by default (`BACKEND_PROBE_INTERVAL`)
    /// ([`crate::EngineOptions::backend_probe_interval`]).
    pub fn probe_backend(&self) {
        let Ok(configs) = self.scan_all(crate::layout::CONFIG) else {
            return;
        };
        for (_, bytes) in configs {
            if let Ok(cfg) = StoredConfig::decode(&bytes, &self.protection) {
                let _ = self.check_backend_here(&cfg);
            }
        }
        // A root of trust that was away makes its missing copies now (those it still cannot
        // make show in the primary's `protectors`).
        let _ = self.catch_up_mirrors();
        self.write_liveness();
    }

    /// Checks the backend of one stored configuration record from this process's nodes and
    /// publishes the result (a configuration created or changed by any process).
    /// Only when its credentials, proxy or key changed since this process last checked it
    /// (a rekey-internal's switch rewrites the record too, and is not worth a vault call).
    pub(crate) fn probe_backend_of(&self, record: &[u8]) {
        let Ok(cfg) = StoredConfig::decode(record, &self.protection) else {
            return;
        };
        let checked = {
            let checks = self.backend_checks.lock();
            self.nodes.iter().all(|rt| {
                checks
                    .get(&(rt.node.uuid, cfg.uuid))
                    .is_some_and(|c| c.revision == cfg.revision)
            })
        };
        if !checked {
            let _ = self.check_backend_here(&cfg);
            self.write_liveness();
        }
    }

    /// What another node last reported of its own check of `config`'s backend: `None` when
    /// it is down (not counted) or its check passed within [`BACKEND_CHECK_STALE`].
    fn reported_backend_failure(&self, node: Uuid, config: Uuid) -> Result<Option<String>> {
        let Some(raw) = self
            .store
            .get(&crate::layout::liveness(node))
            .map_err(store_failed)?
        else {
            return Ok(None);
        };
        let rec: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
        let entry = rec["akv"].as_array().and_then(|checks| {
            checks
                .iter()
                .find(|c| c[0].as_str() == Some(config.to_string().as_str()))
        });
        let Some(entry) = entry else {
            return Ok(Some(
                "the node has not checked this key vault yet (it checks at start and whenever the configuration's credentials or key change)".to_owned(),
            ));
        };
        // A result older than four of the node's own check intervals (at least 120 s) means
        // its prober is stuck; a node that checks only on changes publishes 0 and never ages.
        let every = rec["akv_every"]
            .as_u64()
            .unwrap_or(BACKEND_PROBE_INTERVAL.as_secs());
        let age = now_secs().saturating_sub(entry[2].as_u64().unwrap_or(0));
        if every > 0 && age > BACKEND_CHECK_STALE.as_secs().max(every.saturating_mul(4)) {
            return Ok(Some(format!(
                "the node's last check of this key vault is {age} s old"
            )));
        }
        Ok(entry[1].as_str().map(str::to_owned))
    }

    /// This process's last backend check results, for its liveness record:
    /// `[config, failure or null, checked]` per configuration of `node`.
    pub(crate) fn backend_checks_of(&self, node: Uuid) -> Vec<serde_json::Value> {
        self.backend_checks
            .lock()
            .iter()
            .filter(|((n, _), _)| *n == node)
            .map(|((_, config), c)| serde_json::json!([config, c.failure, c.checked]))
            .collect()
    }
}

/// How often a process in a cluster checks its backends for the other nodes to see, by
/// default.
pub const BACKEND_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// A node's reported check older than this counts as failed (its prober is stuck).
const BACKEND_CHECK_STALE: std::time::Duration = std::time::Duration::from_secs(120);

/// One backend check from one node.
#[derive(Debug, Clone)]
pub(crate) struct BackendCheck {
    /// Why it failed; `None` when the backend answered.
    failure: Option<String>,
    /// Unix seconds.
    checked: u64,
    /// The configuration's revision (credentials, proxy, key) when it was checked.
    revision: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kmip_state_survives_the_liveness_record() {
        for s in [
            KmipServerState::Off,
            KmipServerState::Answering,
            KmipServerState::NotAnswering("127.0.0.1:5696 did not answer within 5 s".into()),
        ] {
            let record = serde_json::json!({"v": 1, "keks": [], "kmip": s.to_json()});
            let back: serde_json::Value =
                serde_json::from_slice(record.to_string().as_bytes()).unwrap();
            assert_eq!(KmipServerState::from_json(&back["kmip"]), Some(s));
        }
        // A record written without a KMIP state (an older ekmd) says nothing about it.
        assert_eq!(KmipServerState::from_json(&serde_json::Value::Null), None);
    }
}
