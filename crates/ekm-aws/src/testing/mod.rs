//! Test harness (feature `testing`, hidden from the docs): moto's KMS server over HTTPS with a
//! test CA, plus fault servers for what moto cannot do.
//!
//! Owns: finding `moto_server` (`EKM_MOTO_SERVER`, else `target/venv-moto/bin/moto_server`
//! under the workspace root), starting it on 127.0.0.1 with a certificate of its own test CA,
//! creating, aliasing, disabling and scheduling the deletion of keys through the SDK, reading
//! moto's request recording (to count KMS calls), and killing it on drop.
//! Must never: be enabled in a production build, or reach anything but 127.0.0.1.

mod fault;
mod pki;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ekm_core::backend::BackendError;
use ekm_core::secret::SecretString;

pub use fault::{Answer, BlackHole, ConnectProxy, FaultServer, Received, Tunnel};
pub use pki::{TEST_HOSTS, TestPki};

use crate::errors::{self, Operation};
use crate::{AwsAccess, AwsKms, AwsOptions};

/// The region of every moto test.
pub const REGION: &str = "us-east-1";
/// The endpoint host of [`REGION`], pinned to moto by [`Moto::options`].
pub const HOST: &str = "kms.us-east-1.amazonaws.com";
/// The access key id of the test credentials.
pub const ACCESS_KEY_ID: &str = "AKIAEKMTESTACCESS001";
/// A canary secret access key: tests assert it never shows up anywhere.
pub const CANARY_SECRET: &str = "ekm-canary-SECRET-ACCESS-KEY-7f3a9c";
/// A canary proxy password.
pub const CANARY_PROXY_PASSWORD: &str = "ekm-canary-PROXY-PASSWORD-51d2";

/// The access every test starts from: [`REGION`], the canary credentials, AWS's endpoint
/// shape, a 2-second attempt timeout.
pub fn test_access(key_id: &str) -> AwsAccess {
    let mut a = AwsAccess::new(
        REGION,
        key_id,
        ACCESS_KEY_ID,
        SecretString::from(CANARY_SECRET.to_owned()),
    );
    a.timeout_secs = 2;
    a
}

/// Options trusting `pki`'s CA, pinning every test host to `addr`, with a small retry budget.
pub fn test_options(pki: &TestPki, addr: SocketAddr) -> AwsOptions {
    AwsOptions {
        extra_ca_pem: Some(pki.ca_pem.as_bytes().to_vec()),
        resolve: TEST_HOSTS.iter().map(|h| ((*h).to_owned(), addr)).collect(),
        connect_timeout: Duration::from_secs(2),
        max_retries: 2,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        max_call_time: Duration::from_secs(10),
    }
}

/// Whether the tests run under CI (`CI` set and not `false`/`0`).
pub fn under_ci() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "false" && v != "0")
        .unwrap_or(false)
}

/// Where `moto_server` is: `EKM_MOTO_SERVER`, else the venv `scripts/test` makes.
pub fn moto_server_path() -> PathBuf {
    if let Some(p) = std::env::var_os("EKM_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/venv-moto/bin/moto_server")
        .components()
        .collect()
}

/// How to start moto.
#[derive(Debug, Clone, Default)]
pub struct MotoSettings {
    /// Enforce credentials after this many actions (moto's `INITIAL_NO_AUTH_ACTION_COUNT`);
    /// `None`: never (moto's default).
    pub authenticate_after: Option<u32>,
}

/// A running `moto_server` on 127.0.0.1 over HTTPS; killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
    pki: TestPki,
    dir: tempfile::TempDir,
    admin: AwsKms,
}

impl Moto {
    /// Starts moto, or, when it is not installed: outside CI prints why and returns `None`;
    /// under CI panics. A moto that is installed but does not start panics.
    pub fn start_or_skip(test: &str) -> Option<Moto> {
        Self::start_with_or_skip(test, MotoSettings::default())
    }

    /// [`start_or_skip`](Self::start_or_skip) with `settings`.
    pub fn start_with_or_skip(test: &str, settings: MotoSettings) -> Option<Moto> {
        let path = moto_server_path();
        if !path.exists() {
            let why = format!(
                "{test}: moto_server not found at {} (set EKM_MOTO_SERVER, or run scripts/test \
                 once to make target/venv-moto)",
                path.display()
            );
            if under_ci() {
                panic!("{why}");
            }
            eprintln!("skipped: {why}");
            return None;
        }
        match Self::start_with(&path, settings) {
            Ok(m) => Some(m),
            Err(e) => panic!("{test}: moto did not start: {e}"),
        }
    }

    /// Starts the `moto_server` at `path`.
    pub fn start_with(path: &Path, settings: MotoSettings) -> Result<Moto, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let pki = TestPki::new(dir.path())?;
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let log =
                std::fs::File::create(dir.path().join("moto.log")).map_err(|e| e.to_string())?;
            let mut cmd = Command::new(path);
            cmd.arg("-H")
                .arg("127.0.0.1")
                .arg("-p")
                .arg(port.to_string())
                .arg("--ssl-cert")
                .arg(&pki.cert_file)
                .arg("--ssl-key")
                .arg(&pki.key_file)
                .env("MOTO_ENABLE_RECORDING", "True")
                .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log);
            if let Some(n) = settings.authenticate_after {
                cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
            }
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
            let admin = AwsKms::new(test_options(&pki, (Ipv4Addr::LOCALHOST, port).into()))?;
            match wait_ready(
                &mut child,
                port,
                &pki.ca_pem,
                &admin,
                Duration::from_secs(30),
            ) {
                Ok(()) => {
                    return Ok(Moto {
                        child,
                        port,
                        pki,
                        dir,
                        admin,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log =
                        std::fs::read_to_string(dir.path().join("moto.log")).unwrap_or_default();
                    last = format!("{e}; its log: {log}");
                }
            }
        }
        Err(last)
    }

    /// moto's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// Where moto listens.
    pub fn addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    /// The test CA (PEM) moto's certificate chains to.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// The test CA's file.
    pub fn ca_file(&self) -> &Path {
        &self.pki.ca_file
    }

    /// The test PKI (to give a fault server the same CA).
    pub fn pki(&self) -> &TestPki {
        &self.pki
    }

    /// Options that trust the test CA and pin [`HOST`] (and the other test hosts) to moto.
    pub fn options(&self) -> AwsOptions {
        test_options(&self.pki, self.addr())
    }

    /// [`test_access`] for `key_id`: AWS's own endpoint shape, pinned to moto by
    /// [`options`](Self::options).
    pub fn access(&self, key_id: &str) -> AwsAccess {
        test_access(key_id)
    }

    fn admin_call<T: Send + 'static, F>(
        &self,
        f: impl FnOnce(aws_sdk_kms::Client) -> F,
    ) -> Result<T, BackendError>
    where
        F: std::future::Future<Output = Result<T, BackendError>> + Send + 'static,
    {
        let access = test_access("admin");
        let client = self.admin.client(&access)?;
        self.admin.run(&access, f(client))
    }

    /// Creates a symmetric encryption key; returns its (id, ARN).
    pub fn create_key(&self) -> Result<(String, String), BackendError> {
        let op = Operation::Other("CreateKey");
        self.admin_call(|c| async move {
            let out = c
                .create_key()
                .description("ekm-aws test key")
                .send()
                .await
                .map_err(|e| errors::classify(op, HOST, Duration::from_secs(2), &e))?;
            let m = out.key_metadata.ok_or_else(|| {
                BackendError::new(
                    ekm_core::backend::BackendErrorKind::InvalidResponse,
                    "no metadata",
                )
            })?;
            Ok((m.key_id, m.arn.unwrap_or_default()))
        })
    }

    /// Names `key_id` with `alias` (`alias/...`).
    pub fn create_alias(&self, alias: &str, key_id: &str) -> Result<(), BackendError> {
        let (alias, key_id) = (alias.to_owned(), key_id.to_owned());
        let op = Operation::Other("CreateAlias");
        self.admin_call(|c| async move {
            c.create_alias()
                .alias_name(alias)
                .target_key_id(key_id)
                .send()
                .await
                .map_err(|e| errors::classify(op, HOST, Duration::from_secs(2), &e))?;
            Ok(())
        })
    }

    /// Disables `key_id`.
    pub fn disable_key(&self, key_id: &str) -> Result<(), BackendError> {
        let key_id = key_id.to_owned();
        let op = Operation::Other("DisableKey");
        self.admin_call(|c| async move {
            c.disable_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| errors::classify(op, HOST, Duration::from_secs(2), &e))?;
            Ok(())
        })
    }

    /// Enables `key_id` again.
    pub fn enable_key(&self, key_id: &str) -> Result<(), BackendError> {
        let key_id = key_id.to_owned();
        let op = Operation::Other("EnableKey");
        self.admin_call(|c| async move {
            c.enable_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| errors::classify(op, HOST, Duration::from_secs(2), &e))?;
            Ok(())
        })
    }

    /// Schedules the deletion of `key_id` (state `PendingDeletion`).
    pub fn schedule_key_deletion(&self, key_id: &str) -> Result<(), BackendError> {
        let key_id = key_id.to_owned();
        let op = Operation::Other("ScheduleKeyDeletion");
        self.admin_call(|c| async move {
            c.schedule_key_deletion()
                .key_id(key_id)
                .pending_window_in_days(7)
                .send()
                .await
                .map_err(|e| errors::classify(op, HOST, Duration::from_secs(2), &e))?;
            Ok(())
        })
    }

    /// The KMS operations moto has received so far, in order (`Encrypt`, `Decrypt`, ...), from
    /// its request recording.
    pub fn kms_calls(&self) -> Vec<String> {
        let text =
            std::fs::read_to_string(self.dir.path().join("recording.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                let headers = v.get("headers")?.as_object()?;
                headers.iter().find_map(|(k, v)| {
                    if k.eq_ignore_ascii_case("x-amz-target") {
                        v.as_str()
                            .map(|t| t.trim_start_matches("TrentService.").to_owned())
                    } else {
                        None
                    }
                })
            })
            .collect()
    }

    /// The raw recording (every request moto got: headers and bodies), for leak checks.
    pub fn recording(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("recording.jsonl")).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until moto answers over TLS (with the test CA) on `port`.
fn wait_ready(
    child: &mut Child,
    port: u16,
    ca_pem: &str,
    admin: &AwsKms,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let url = format!("https://localhost:{port}/moto-api/data.json");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("moto_server exited with {status}"));
        }
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            let (url, ca) = (url.clone(), ca_pem.to_owned());
            let probe = admin.runtime.block_on(async move {
                let cert = reqwest::Certificate::from_pem(ca.as_bytes()).ok()?;
                let c = reqwest::Client::builder()
                    .add_root_certificate(cert)
                    .no_proxy()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .ok()?;
                c.get(&url).send().await.ok().map(|r| r.status().as_u16())
            });
            if probe == Some(200) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no answer on port {port} within {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A port free on 127.0.0.1 right now.
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}
