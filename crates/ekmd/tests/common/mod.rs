//! The fixture every ekmd test shares: one cluster topology (two nodes, two SVMs), ekmd's
//! state over a temporary store with an in-memory fake vault, the admin credentials, key ids.
//! (A module of each test binary that says `mod common;`, not a test of its own.)
//!
//! Owns: the topology and credentials the tests assume.
//! Must never: touch anything outside its temporary directory, or depend on the test that
//! uses it (each binary uses a part; the rest is allowed dead).

#![allow(dead_code)]

/// `ekmd serve` and `ekm` as processes (the command-line tests).
pub mod cli;
/// A KMIP client of a running ekmd (mutual TLS with `ekmd kmip-client-cert`).
pub mod kmip;
/// One ekmd serving Azure (the AKV emulator) and AWS (moto) at once.
pub mod providers;
/// A TCP relay that can be cut.
pub mod relay;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use ekm_core::{ClusterInfo, Engine, EngineOptions, Node, ProtectionKey, SvmInfo, Topology};
use ekmd::AppState;
use uuid::Uuid;

/// The configuration collection.
pub const BASE: &str = "/api/security/azure-key-vaults";
/// A versioned AKV key id.
pub const KEY: &str =
    "https://keyvault-test.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74";
/// Another one, for rekey-external.
pub const KEY2: &str =
    "https://keyvault-test.vault.azure.net/keys/key2/0123456789abcdef0123456789abcdef";

/// The admin user of [`app_state`].
pub const ADMIN_USER: &str = "admin";
/// The admin password of [`app_state`].
pub const ADMIN_PASSWORD: &str = "pw";

/// SVM `vs0`.
pub const VS0: Uuid = Uuid::from_u128(21);

/// Cluster `cluster1` with nodes `node1`, `node2` and SVMs `vs0`, `vs1`.
pub fn topology() -> Topology {
    Topology {
        cluster: ClusterInfo {
            name: "cluster1".into(),
            uuid: Uuid::from_u128(1),
        },
        nodes: vec![
            Node {
                name: "node1".into(),
                uuid: Uuid::from_u128(11),
            },
            Node {
                name: "node2".into(),
                uuid: Uuid::from_u128(12),
            },
        ],
        svms: vec![
            SvmInfo {
                name: "vs0".into(),
                uuid: VS0,
            },
            SvmInfo {
                name: "vs1".into(),
                uuid: Uuid::from_u128(22),
            },
        ],
    }
}

/// [`topology`] as `ekmd serve --topology` reads it.
pub fn topology_toml() -> String {
    let t = topology();
    let mut s = format!(
        "[cluster]\nname = \"{}\"\nuuid = \"{}\"\n",
        t.cluster.name, t.cluster.uuid
    );
    for n in &t.nodes {
        s.push_str(&format!(
            "[[nodes]]\nname = \"{}\"\nuuid = \"{}\"\n",
            n.name, n.uuid
        ));
    }
    for v in &t.svms {
        s.push_str(&format!(
            "[[svms]]\nname = \"{}\"\nuuid = \"{}\"\n",
            v.name, v.uuid
        ));
    }
    s
}

/// ekmd's state: an engine over a redb store in a fresh temporary directory (kept alive by
/// the returned handle) and an in-memory fake vault, with [`ADMIN_USER`]/[`ADMIN_PASSWORD`].
pub fn app_state() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let store = ekm_store::open(ekm_store::StoreKind::Redb, dir.path()).unwrap();
    let engine = Engine::open(EngineOptions::new(
        store,
        Arc::new(ekm_fake::FakeBackend::in_memory()),
        topology(),
        ProtectionKey::generate(),
    ))
    .unwrap();
    let state = AppState::new(engine, ADMIN_USER.into(), ADMIN_PASSWORD.to_owned().into());
    (dir, state)
}

/// A basic `Authorization` header value.
pub fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

/// The `Authorization` header of the admin of [`app_state`].
pub fn admin_auth() -> String {
    basic(ADMIN_USER, ADMIN_PASSWORD)
}

/// Spawns ekmd as `cmd` sets it up, with stdout piped, and returns it with its REST line
/// (`ekmd listening on URL ...`), read once ekmd is listening. With KMIP on, ekmd prints the
/// KMIP listener's line first: lines before the REST one are skipped, and stdout is drained
/// after it (a closed pipe would fail ekmd's next print).
pub fn spawn_listening(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 || line.starts_with("ekmd listening on") {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, line)
}

/// The URL starting with `scheme` in ekmd's first line.
pub fn announced_url(line: &str, scheme: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with(scheme))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned()
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
