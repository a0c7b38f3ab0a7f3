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

/// The AKV emulator and moto, each behind a relay a test can cut (`vault`, `kms`), with one
/// vault key (`akv_key` in `vault_url`) and one KMS key (`aws_key`), for vs0's roots of trust.
pub struct Relayed {
    pub emu: akv_emulator::Emulator,
    pub moto: ekm_aws::testing::Moto,
    pub vault: super::relay::Relay,
    pub kms: super::relay::Relay,
    pub akv_key: String,
    pub vault_url: String,
    pub aws_key: String,
}

impl Relayed {
    /// Both services and their relays, or `None` where moto is not installed (outside CI).
    pub fn start_or_skip(test: &str) -> Option<Relayed> {
        let moto = ekm_aws::testing::Moto::start_or_skip(test)?;
        let emu = akv_emulator::Emulator::start().unwrap();
        emu.add_secret_app(TENANT, APP, SECRET);
        let version = emu.add_key("key1", 2048).unwrap();
        let (aws_key, _) = moto.create_key().unwrap();
        let vault = super::relay::Relay::start(emu.addr().to_string());
        let kms = super::relay::Relay::start(moto.addr().to_string());
        // The vault's URL names the relay's port: the SDK connects to the URL's port, and the
        // host pin gives only the address.
        let through =
            |url: String| url.replace(&format!(":{}", emu.port()), &format!(":{}", vault.port));
        let akv_key = through(emu.key_id("myvault", "key1", &version));
        let vault_url = through(emu.vault_url("myvault"));
        Some(Relayed {
            emu,
            moto,
            vault,
            kms,
            akv_key,
            vault_url,
            aws_key,
        })
    }

    /// ekmd on `dir` (with `topology_toml`, else the shared one) reaching the vault and KMS
    /// through their relays, checking for missing mirror copies every second.
    pub fn ekmd(&self, dir: &Path, topology_toml: Option<&str>, extra: &[&str]) -> Daemon {
        let mut args = vec!["--backend-probe-interval", "1"];
        args.extend_from_slice(extra);
        start_with(
            dir,
            &topology_toml.map_or_else(super::topology_toml, str::to_owned),
            &self.emu,
            &self.emu.addr().to_string(),
            &self.moto,
            &format!("127.0.0.1:{}", self.kms.port),
            &args,
        )
    }

    /// vs0's Azure configuration on the relayed vault, created through `d`: its uuid.
    pub fn create_vs0(&self, d: &Daemon) -> String {
        let (s, v) = call(
            d,
            "POST",
            "/api/security/azure-key-vaults?return_records=true",
            Some(serde_json::json!({"svm": {"name": "vs0"}, "client_id": APP,
                "tenant_id": TENANT, "name": format!("{}/", self.vault_url),
                "key_id": self.akv_key, "client_secret": SECRET})),
        );
        assert_eq!(s, 201, "{v}");
        v["records"][0]["uuid"].as_str().unwrap().to_owned()
    }

    /// The body that attaches the KMS key as a mirror of `primary`.
    pub fn mirror_body(&self, primary: &str) -> Value {
        serde_json::json!({"region": ekm_aws::testing::REGION, "key_id": self.aws_key,
            "access_key_id": ekm_aws::testing::ACCESS_KEY_ID,
            "secret_access_key": ekm_aws::testing::CANARY_SECRET,
            "mirror_of": {"uuid": primary}})
    }
}

/// The `protectors` of configuration `primary` (an Azure one) as `d` answers them.
pub fn protectors(d: &Daemon, primary: &str) -> Vec<Value> {
    let (s, v) = call(
        d,
        "GET",
        &format!("/api/security/azure-key-vaults/{primary}?fields=protectors"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    v["protectors"].as_array().cloned().unwrap_or_default()
}
