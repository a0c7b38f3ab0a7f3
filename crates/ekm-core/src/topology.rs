//! The cluster topology given by the embedder: the cluster, its nodes and its SVMs (tenants).
//!
//! Owns: name/uuid lookup of SVMs and nodes, and the [`SvmRef`] type that only a lookup makes.
//! Must never: invent an SVM or node that the embedder did not declare.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};

/// The cluster itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Cluster name.
    pub name: String,
    /// Cluster uuid.
    pub uuid: Uuid,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    /// Node name.
    pub name: String,
    /// Node uuid.
    pub uuid: Uuid,
}

/// One SVM (tenant) as the embedder declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvmInfo {
    /// SVM name.
    pub name: String,
    /// SVM uuid.
    pub uuid: Uuid,
}

/// A reference to an SVM that exists in the topology. Only [`Topology::resolve_svm`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SvmRef {
    uuid: Uuid,
    name: String,
}

impl SvmRef {
    /// The SVM uuid.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The SVM name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Rebuilds a reference from a stored record; the engine re-checks it against the topology.
    pub(crate) fn from_stored(uuid: Uuid, name: String) -> Self {
        SvmRef { uuid, name }
    }
}

/// Which SVM a request names: by uuid, by name, or both (then they must agree).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SvmSelector {
    /// The SVM uuid as given.
    #[serde(default)]
    pub uuid: Option<String>,
    /// The SVM name as given.
    #[serde(default)]
    pub name: Option<String>,
    /// HAL links sent back by clients; ignored.
    #[serde(default, rename = "_links")]
    pub links: Option<serde_json::Value>,
}

/// The whole topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The cluster.
    pub cluster: ClusterInfo,
    /// Its nodes; the first is the default local node.
    pub nodes: Vec<Node>,
    /// Its SVMs.
    #[serde(default)]
    pub svms: Vec<SvmInfo>,
}

impl Topology {
    /// Checks the topology is usable: at least one node, no duplicate names or uuids, and no
    /// SVM named like the cluster.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: &str| Err(Error::invalid_value("topology", why));
        if self.nodes.is_empty() {
            return bad("at least one node is required.");
        }
        let mut uuids = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        uuids.insert(self.cluster.uuid);
        for n in &self.nodes {
            if !uuids.insert(n.uuid) || !names.insert(("node", n.name.as_str())) {
                return bad("node names and uuids must be unique.");
            }
        }
        for s in &self.svms {
            if !uuids.insert(s.uuid) || !names.insert(("svm", s.name.as_str())) {
                return bad("SVM names and uuids must be unique.");
            }
            // A KMIP client certificate names its owner by CN: a CN that is both the cluster's
            // and an SVM's name would be ambiguous (and was mapped to the cluster's keys).
            if s.name == self.cluster.name {
                return Err(Error::invalid_value(
                    "topology",
                    &format!(
                        "SVM \"{}\" has the cluster's name; KMIP client certificates name their owner by that name, so it must be the cluster's or one SVM's: rename the SVM or the cluster.",
                        s.name.escape_debug()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Finds the SVM a selector names. An unknown SVM is [`ErrorKind::SvmNotFound`] with a
    /// message naming it; a uuid and a name that belong to different SVMs are refused too.
    pub fn resolve_svm(&self, sel: &SvmSelector) -> Result<SvmRef> {
        let not_found = |what: &str| {
            Error::new(ErrorKind::SvmNotFound)
                .with_detail(format!("SVM {what} does not exist in this cluster."))
                .with_target("svm")
        };
        let by_uuid = match &sel.uuid {
            Some(u) => {
                let parsed = Uuid::parse_str(u)
                    .map_err(|_| Error::invalid_value("svm.uuid", "expected a uuid."))?;
                Some(
                    self.svms
                        .iter()
                        .find(|s| s.uuid == parsed)
                        .ok_or_else(|| not_found(&format!("with uuid \"{parsed}\"")))?,
                )
            }
            None => None,
        };
        let by_name = match &sel.name {
            Some(n) => Some(
                self.svms
                    .iter()
                    .find(|s| &s.name == n)
                    .ok_or_else(|| not_found(&format!("\"{}\"", n.escape_debug())))?,
            ),
            None => None,
        };
        let svm = match (by_uuid, by_name) {
            (Some(a), Some(b)) if a.uuid != b.uuid => {
                return Err(Error::invalid_value(
                    "svm",
                    "svm.uuid and svm.name refer to different SVMs.",
                ));
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => {
                return Err(Error::invalid_value("svm", "give svm.uuid or svm.name."));
            }
        };
        Ok(SvmRef {
            uuid: svm.uuid,
            name: svm.name.clone(),
        })
    }

    /// The SVM with `uuid`, if declared.
    pub fn svm_by_uuid(&self, uuid: Uuid) -> Option<SvmRef> {
        self.svms.iter().find(|s| s.uuid == uuid).map(|s| SvmRef {
            uuid: s.uuid,
            name: s.name.clone(),
        })
    }

    /// The node with `uuid`, if declared.
    pub fn node(&self, uuid: Uuid) -> Option<&Node> {
        self.nodes.iter().find(|n| n.uuid == uuid)
    }

    /// The node called `name`, if declared.
    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        Topology {
            cluster: ClusterInfo {
                name: "c".into(),
                uuid: Uuid::new_v4(),
            },
            nodes: vec![Node {
                name: "n1".into(),
                uuid: Uuid::new_v4(),
            }],
            svms: vec![
                SvmInfo {
                    name: "vs0".into(),
                    uuid: Uuid::new_v4(),
                },
                SvmInfo {
                    name: "vs1".into(),
                    uuid: Uuid::new_v4(),
                },
            ],
        }
    }

    #[test]
    fn resolves_by_name_uuid_and_both() {
        let t = topo();
        let u = t.svms[0].uuid.to_string();
        let by_name = SvmSelector {
            name: Some("vs0".into()),
            ..Default::default()
        };
        let by_uuid = SvmSelector {
            uuid: Some(u.clone()),
            ..Default::default()
        };
        assert_eq!(
            t.resolve_svm(&by_name).unwrap(),
            t.resolve_svm(&by_uuid).unwrap()
        );
        let mixed = SvmSelector {
            uuid: Some(u),
            name: Some("vs1".into()),
            links: None,
        };
        assert_eq!(t.resolve_svm(&mixed).unwrap_err().code(), 262_197);
    }

    #[test]
    fn unknown_svm_is_named() {
        let e = topo()
            .resolve_svm(&SvmSelector {
                name: Some("vs9".into()),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SvmNotFound);
        assert!(e.message().contains("\"vs9\""));
    }

    #[test]
    fn an_svm_named_like_the_cluster_is_refused() {
        let mut t = topo();
        t.svms[1].name = t.cluster.name.clone();
        let e = t.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert!(e.message().contains("cluster's name"), "{}", e.message());
    }

    #[test]
    fn duplicate_nodes_refused() {
        let mut t = topo();
        t.nodes.push(t.nodes[0].clone());
        assert!(t.validate().is_err());
    }
}
