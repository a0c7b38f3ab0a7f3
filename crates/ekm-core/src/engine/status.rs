//! The advanced status fields of the seed — `state`, `azure_reachability`,
//! `ekmip_reachability` — computed only when asked for.

use uuid::Uuid;

use super::Engine;
use crate::backend::BackendCall;
use crate::config::{AzureKeyVault, AzureReachability, EkmipReachability, KekStatus};
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
}

impl StatusFields {
    /// All three.
    pub fn all() -> Self {
        StatusFields {
            state: true,
            azure_reachability: true,
            ekmip_reachability: true,
        }
    }

    /// Whether any is asked for.
    pub fn any(&self) -> bool {
        self.state || self.azure_reachability || self.ekmip_reachability
    }
}

/// Whether one node holds the current KEK, and why not.
struct NodeKekStatus {
    node: Node,
    reason: Option<String>,
}

impl Engine {
    /// A configuration with the advanced fields asked for.
    pub fn get_config_with_status(
        &self,
        uuid: Uuid,
        fields: StatusFields,
    ) -> Result<AzureKeyVault> {
        let (cfg, _) = self.load_config(uuid)?;
        let mut view = cfg.view()?;
        if !fields.any() {
            return Ok(view);
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
            view.state = Some(if lacking.is_empty() {
                KekStatus {
                    available: true,
                    code: "0".into(),
                    message: String::new(),
                }
            } else {
                KekStatus {
                    available: false,
                    code: ErrorKind::AkvUnavailable.code().to_string(),
                    message: format!(
                        "Top-level internal key protection key (KEK) is unavailable on the following nodes with the associated reasons: {}",
                        lacking.join(" ")
                    ),
                }
            });
        }
        if fields.ekmip_reachability {
            view.ekmip_reachability = Some(
                nodes
                    .iter()
                    .map(|n| match &n.reason {
                        None => EkmipReachability {
                            node: n.node.clone(),
                            reachable: true,
                            code: "0".into(),
                            message: String::new(),
                        },
                        Some(r) => EkmipReachability {
                            node: n.node.clone(),
                            reachable: false,
                            code: ErrorKind::AkvUnavailable.code().to_string(),
                            message: format!(
                                "embedded KMIP server status unavailable on node. {r}"
                            ),
                        },
                    })
                    .collect(),
            );
        }
        if fields.azure_reachability {
            view.azure_reachability = Some(self.azure_reachability(&cfg)?);
        }
        Ok(view)
    }

    /// For every node of the topology: does it hold the active KEK? Managed nodes answer from
    /// memory; other nodes from their availability records in the store.
    fn node_kek_status(&self, cfg: &StoredConfig) -> Result<Vec<NodeKekStatus>> {
        let mut out = Vec::new();
        for node in &self.topology.nodes {
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
                    if loaded {
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
                reason,
            });
        }
        Ok(out)
    }

    /// One backend check per managed node with the configuration's credentials and key.
    fn azure_reachability(&self, cfg: &StoredConfig) -> Result<AzureReachability> {
        let parts = cfg.unseal(&self.protection)?;
        let access = parts.access();
        let mut failures = Vec::new();
        for rt in &self.nodes {
            let call = BackendCall {
                node: &rt.node,
                access: &access,
            };
            if let Err(e) = self.backend.check(&call, &parts.key_id) {
                failures.push(format!("{}: {e}", rt.node.name));
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
                    "AKV service is not reachable from all nodes - {}.",
                    failures.join("; ")
                ),
            }
        })
    }
}
