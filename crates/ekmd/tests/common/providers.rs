//! One ekmd serving both providers at once (`--backend azure,aws`) over the AKV emulator and
//! moto, through the official SDKs over HTTPS with test CAs and host pins, and what tests do
//! with it: REST calls, data-path socket reads, KMIP Create and Get.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

pub const TENANT: &str = "tenant-two";
pub const APP: &str = "app-two";
pub const SECRET: &str = "canary-two-roots-client-secret";

/// One ekmd serving `--backend azure,aws`.
pub struct Daemon {
    child: Child,
    /// Its REST URL (plain HTTP).
    pub url: String,
    /// Its KMIP listener.
    pub kmip: SocketAddr,
    /// Its data directory.
    pub data: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ekmd on `dir` with `--backend azure,aws`: Azure through the emulator's CA at `azure_addr`
/// (the emulator, or a relay to it), AWS through moto's CA at `aws_addr`; `extra` arguments
/// appended.
pub fn start(
    dir: &Path,
    emu: &akv_emulator::Emulator,
    azure_addr: &str,
    moto: &ekm_aws::testing::Moto,
    aws_addr: &str,
    extra: &[&str],
) -> Daemon {
    start_with(
        dir,
        &super::topology_toml(),
        emu,
        azure_addr,
        moto,
        aws_addr,
        extra,
    )
}

/// [`start`] with the topology `topology_toml` (written to `dir/topology.toml`).
pub fn start_with(
    dir: &Path,
    topology_toml: &str,
    emu: &akv_emulator::Emulator,
    azure_addr: &str,
    moto: &ekm_aws::testing::Moto,
    aws_addr: &str,
    extra: &[&str],
) -> Daemon {
    let data = dir.join("ekm-data");
    let topology = dir.join("topology.toml");
    std::fs::write(&topology, topology_toml).unwrap();
    let vault_ca = dir.join("vault-ca.pem");
    std::fs::write(&vault_ca, emu.ca_pem()).unwrap();
    let port = super::free_port();
    let kmip: SocketAddr = format!("127.0.0.1:{}", super::free_port()).parse().unwrap();
    let addr = azure_addr;
    let log = std::fs::File::create(dir.join(format!("ekmd-{port}.log"))).unwrap();
    let (child, line) = super::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ekmd"))
            .args(["serve", "--plain-http", "--backend", "azure,aws"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--topology")
            .arg(&topology)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--kmip-listen", &kmip.to_string()])
            .arg("--azure-ca-file")
            .arg(&vault_ca)
            .args(["--azure-authority-host", &emu.authority()])
            .args([
                "--azure-resolve",
                &format!("{}={addr}", akv_emulator::LOGIN_HOST),
            ])
            .args([
                "--azure-resolve",
                &format!("myvault.vault.localhost={addr}"),
            ])
            .arg("--aws-ca-file")
            .arg(moto.ca_file())
            .args([
                "--aws-resolve",
                &format!("{}={aws_addr}", ekm_aws::testing::HOST),
            ])
            .args(extra)
            .env("EKMD_ADMIN_USER", "admin")
            .env("EKMD_ADMIN_PASSWORD", "admin-pw")
            .stderr(log),
    );
    assert!(line.contains("listening"), "{line}");
    Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
        kmip,
        data,
    }
}

/// One REST call as admin: status and JSON body.
pub fn call(d: &Daemon, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut r = client
        .request(method.parse().unwrap(), format!("{}{path}", d.url))
        .basic_auth("admin", Some("admin-pw"));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// `GET /keys/{id}` over the data-path socket: the material.
pub fn socket_read(d: &Daemon, id: &str) -> Vec<u8> {
    let mut s = UnixStream::connect(d.data.join("ekmd.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /keys/{id} HTTP/1.1\r\nHost: ekmd\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: Value = serde_json::from_str(body).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(v["key"].as_str().unwrap())
        .unwrap()
}

/// A KMIP Create by a client of `owner`: the new key's uid.
pub fn kmip_create(d: &Daemon, owner: &str) -> String {
    let r = super::kmip::results(&super::kmip::call(
        &d.data,
        d.kmip,
        owner,
        &super::kmip::create_aes256(),
    ));
    assert_eq!(r[0].0, ekm_kmip::tags::status::SUCCESS, "{r:?}");
    r[0].1.clone().unwrap()
}

/// The material a KMIP Get by a client of `owner` answers for `uid`.
pub fn kmip_get(d: &Daemon, owner: &str, uid: &str) -> Vec<u8> {
    let answer = super::kmip::call(&d.data, d.kmip, owner, &super::kmip::get(uid));
    super::kmip::material(&answer).unwrap_or_else(|| panic!("no key in {answer:?}"))
}
