//! A configuration as callers see it, with the advanced status fields.

use serde::Serialize;
use uuid::Uuid;

use super::model::*;
use crate::ids::{KeyId, VaultUrl};
use crate::topology::SvmRef;

/// `state`: whether the wrapped KEK is available on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KekStatus {
    /// True when every node holds the current KEK.
    pub available: bool,
    /// The same, as the seed's example spells it: true only when every node of the cluster
    /// holds the current KEK.
    pub cluster_state: bool,
    /// "0" when available.
    pub code: String,
    /// Which nodes lack the KEK and why.
    pub message: String,
}

/// `azure_reachability`: whether AKV answers from every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AzureReachability {
    /// True when reachable.
    pub reachable: bool,
    /// "0" when reachable.
    pub code: String,
    /// Why not, when not.
    pub message: String,
}

/// One entry of `ekmip_reachability`: the node's key table status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EkmipReachability {
    /// The node.
    pub node: crate::topology::Node,
    /// True when the node serves this configuration's keys.
    pub reachable: bool,
    /// "0" when reachable.
    pub code: String,
    /// Why not, when not.
    pub message: String,
}

/// One root of trust of a scope, as the primary's `protectors` field lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Protector {
    /// The root's configuration.
    pub uuid: Uuid,
    /// `azure_key_vault` or `aws_kms`.
    pub kind: &'static str,
    /// Whether this root holds a copy of every KEK generation in use.
    pub fully_wrapped: bool,
    /// Whether the root's provider answered this process's check.
    pub reachable: bool,
    /// Why not, when it is not fully wrapped or not reachable.
    pub message: String,
}

/// `mirror_of` of a mirror's record: the configuration whose scope it also protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MirrorOf {
    /// The primary configuration.
    pub uuid: Uuid,
}

/// A configuration as callers see it: every field of the seed's record except the write-only
/// secrets. Advanced fields are `None` unless asked for.
#[derive(Debug, Clone, Serialize)]
pub struct AzureKeyVault {
    /// Configuration uuid.
    pub uuid: Uuid,
    /// "cluster" or "svm".
    pub scope: Scope,
    /// The SVM, for the svm scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svm: Option<SvmRef>,
    /// Application (client) id.
    pub client_id: String,
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Vault URI.
    pub name: VaultUrl,
    /// Current external key.
    pub key_id: KeyId,
    /// "client_secret" or "certificate".
    pub authentication_method: AuthenticationMethod,
    /// Proxy type, when a proxy is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_type: Option<ProxyType>,
    /// Proxy host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_host: Option<String>,
    /// Proxy port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_port: Option<u16>,
    /// Proxy user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_username: Option<String>,
    /// Advanced: KEK availability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<KekStatus>,
    /// Advanced: AKV reachability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure_reachability: Option<AzureReachability>,
    /// Advanced: per-node key table status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ekmip_reachability: Option<Vec<EkmipReachability>>,
    /// ekm's extension: for a mirror, the configuration whose scope it also protects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_of: Option<MirrorOf>,
    /// Advanced (ekm's extension): every root of trust of the scope, primary first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protectors: Option<Vec<Protector>>,
}
