//! The `ekmd` and `ekm` processes as the command-line tests run them: `ekmd serve` (HTTPS,
//! fake backend) on a free loopback port in a temporary directory, and `ekm` against it from
//! that directory, logged in with `--password-file ekm-data/admin-password`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A running `ekmd serve`, killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub url: String,
    pub stderr: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ekmd serve` (HTTPS, fake backend) on a free loopback port with its data in
/// `dir/ekm-data`, plus `extra` flags.
pub fn start(dir: &Path, extra: &[&str]) -> Daemon {
    let stderr = dir.join("ekmd.stderr");
    let (child, line) = super::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ekmd"))
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.join("ekm-data"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("EKMD_ADMIN_USER")
            .env_remove("EKMD_ADMIN_PASSWORD")
            .stderr(std::fs::File::create(&stderr).unwrap()),
    );
    let url = super::announced_url(&line, "http");
    Daemon { child, url, stderr }
}

/// `ekm` run in `dir` against `url` with `args` after the login flags, `stdin` on its stdin,
/// and `env` set (EKM_PASSWORD is removed unless `env` sets it).
pub fn ekm_in(
    dir: &Path,
    url: &str,
    login: &[&str],
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ekm"));
    cmd.current_dir(dir)
        .env("EKM_URL", url)
        .env_remove("EKM_PASSWORD")
        .env_remove("EKM_USER")
        .args(login)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// `ekm --password-file ekm-data/admin-password ARGS` in `dir` against `d`.
pub fn ekm(dir: &Path, d: &Daemon, args: &[&str], stdin: Option<&str>) -> Output {
    ekm_in(
        dir,
        &d.url,
        &["--password-file", "ekm-data/admin-password"],
        args,
        stdin,
        &[],
    )
}

/// `ekm --ca-file ekm-data/tls-cert.pem --password-file ekm-data/admin-password ARGS`.
pub fn ekm_trusted(dir: &Path, d: &Daemon, args: &[&str]) -> Output {
    let all: Vec<&str> = ["--ca-file", "ekm-data/tls-cert.pem"]
        .iter()
        .chain(args)
        .copied()
        .collect();
    ekm(dir, d, &all, None)
}

/// A process's output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `out`'s exit code, stdout and stderr.
pub fn outcome(out: &Output) -> (Option<i32>, String, String) {
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// A versioned key id of the vault `https://myvault.vault.azure.net/`.
pub const KEY: &str = "https://myvault.vault.azure.net/keys/kek1/a8e619fd8f234db3b0b95c59540e2a74";

/// The `ekm enable` flags of a cluster (or, with `vserver`, an SVM) configuration with a
/// client secret.
pub fn enable_args(vserver: Option<&str>) -> Vec<String> {
    let mut a: Vec<String> = [
        "enable",
        "--client-id",
        "c",
        "--tenant-id",
        "t",
        "--name",
        "https://myvault.vault.azure.net/",
        "--key-id",
        KEY,
        "--client-secret",
        "s3cret",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(v) = vserver {
        a.extend(["--vserver".to_owned(), v.to_owned()]);
    }
    a
}
