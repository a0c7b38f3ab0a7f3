//! The cluster topology given by the embedder: the cluster, its nodes and its SVMs (tenants).
//!
//! Owns: the topology file's TOML form ([`Topology::from_toml`], [`Topology::to_toml`]), the
//! name/uuid lookup of SVMs and nodes, and the [`SvmRef`] type that only a lookup makes.
//! Must never: invent an SVM or node that the embedder did not declare, or accept a key it does
//! not know (a `[[node]]` typo is named, never silently dropped).
//!
//! ```toml
//! [cluster]
//! name = "cluster1"
//! uuid = "00000000-0000-0000-0000-000000000001"
//! [[nodes]]                      # one table per node; the first is the default local node
//! name = "node1"
//! uuid = "00000000-0000-0000-0000-000000000011"
//! [[svms]]                       # optional: the SVMs (tenants)
//! name = "vs0"
//! uuid = "00000000-0000-0000-0000-000000000021"
//! ```

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};

/// The cluster itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterInfo {
    /// Cluster name.
    pub name: String,
    /// Cluster uuid.
    pub uuid: Uuid,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Node name.
    pub name: String,
    /// Node uuid.
    pub uuid: Uuid,
}

/// One SVM (tenant) as the embedder declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
    /// Parses and validates a topology file's text (the TOML of the module doc). A key the
    /// format does not have is refused by name (`unknown field `node`, expected one of
    /// `cluster`, `nodes`, `svms``), with its line and column.
    ///
    /// ```
    /// let t = ekm_core::Topology::from_toml(
    ///     "[cluster]\nname = \"c1\"\nuuid = \"00000000-0000-0000-0000-000000000001\"\n\
    ///      [[nodes]]\nname = \"n1\"\nuuid = \"00000000-0000-0000-0000-000000000011\"\n",
    /// )?;
    /// assert_eq!(t.nodes[0].name, "n1");
    /// let typo = ekm_core::Topology::from_toml("[[node]]\nname = \"n1\"\n").unwrap_err();
    /// assert!(typo.message().contains("unknown field `node`"));
    /// # Ok::<(), ekm_core::Error>(())
    /// ```
    pub fn from_toml(text: &str) -> Result<Topology> {
        let topology: Topology = toml::from_str(text).map_err(|e| {
            Error::new(ErrorKind::InvalidValue)
                .with_detail(format!("topology: {}", e.to_string().trim_end()))
                .with_target("topology")
        })?;
        topology.validate()?;
        Ok(topology)
    }

    /// The topology as the TOML text [`Topology::from_toml`] reads.
    pub fn to_toml(&self) -> String {
        // A struct of strings, uuids and arrays of tables always has a TOML form.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// A one-node topology with fresh uuids: cluster `cluster1`, node `node1`, SVM `vs0` (what
    /// ekmd writes on first start).
    pub fn single_node() -> Topology {
        Topology {
            cluster: ClusterInfo {
                name: "cluster1".into(),
                uuid: Uuid::new_v4(),
            },
            nodes: vec![Node {
                name: "node1".into(),
                uuid: Uuid::new_v4(),
            }],
            svms: vec![SvmInfo {
                name: "vs0".into(),
                uuid: Uuid::new_v4(),
            }],
        }
    }

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
    fn the_toml_form_round_trips_and_names_unknown_keys() {
        let t = topo();
        assert_eq!(Topology::from_toml(&t.to_toml()).unwrap(), t);
        let mut text = t.to_toml().replace("[[nodes]]", "[[node]]");
        let e = Topology::from_toml(&text).unwrap_err();
        assert!(
            e.message().contains("unknown field `node`"),
            "{}",
            e.message()
        );
        assert!(e.message().contains("line "), "{}", e.message());
        text = t.to_toml().replacen("name = \"n1\"", "nmae = \"n1\"", 1);
        let e = Topology::from_toml(&text).unwrap_err();
        assert!(
            e.message().contains("unknown field `nmae`"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn duplicate_nodes_refused() {
        let mut t = topo();
        t.nodes.push(t.nodes[0].clone());
        assert!(t.validate().is_err());
    }
}
