//! The `ekmd` and `ekm` processes as a first-time user meets them: refusals of unsafe start-up
//! flags, the fake-backend warning, the data-path socket's mode, `ekm`'s message for an
//! untrusted certificate, secrets read from files and stdin, and job progress lines.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::cli::{KEY, ekm, start, text};

/// Runs `cmd` to its end, or kills it after 20 s (then None: it kept running).
fn finish(cmd: &mut Command) -> Option<Output> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn plain_http_refuses_a_non_loopback_address_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let out = finish(
        Command::new(env!("CARGO_BIN_EXE_ekmd"))
            .args([
                "serve",
                "--plain-http",
                "--listen",
                "0.0.0.0:0",
                "--data-dir",
            ])
            .arg(dir.path().join("ekm-data")),
    )
    .expect("ekmd served plain HTTP on 0.0.0.0");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--plain-http-on-non-loopback"), "{err}");
    // Loopback is fine; so is the explicit override.
    let d = start(dir.path(), &["--plain-http"]);
    assert!(d.url.starts_with("http://127.0.0.1:"), "{}", d.url);
    drop(d);
    let out = finish(
        Command::new(env!("CARGO_BIN_EXE_ekmd"))
            .args([
                "serve",
                "--plain-http-on-non-loopback",
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("ekm-data")),
    )
    .expect("the override alone was accepted");
    assert!(
        !out.status.success(),
        "the override alone needs --plain-http"
    );
}

#[test]
fn the_fake_backend_warns_that_there_is_no_root_of_trust() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    let err = std::fs::read_to_string(&d.stderr).unwrap();
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("no external root of trust"))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
}

#[tokio::test]
async fn the_socket_never_appears_with_a_wider_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ekmd.sock");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(m) = std::fs::symlink_metadata(&path) {
                    seen.insert(m.permissions().mode() & 0o777);
                }
            }
            seen
        })
    };
    for _ in 0..300 {
        let l = ekmd::socket::bind(&path).unwrap();
        drop(l);
        std::fs::remove_file(&path).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert!(!seen.is_empty(), "the watcher never saw the socket");
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec![0o600],
        "modes seen at the socket's path"
    );
    // Nothing left behind but the socket itself.
    let _l = ekmd::socket::bind(&path).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("ekmd.sock")]);
}

#[test]
fn ekm_without_ca_file_says_the_certificate_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    let out = ekm(dir.path(), &d, &["show"], None);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains("certificate not trusted: pass --ca-file DATA_DIR/tls-cert.pem"),
        "{err}"
    );
    assert!(!err.contains("cannot reach ekmd"), "{err}");
    let out = ekm(
        dir.path(),
        &d,
        &["--ca-file", "ekm-data/tls-cert.pem", "show"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn ekm_reads_secrets_from_files_and_stdin_and_shows_job_progress() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    let ca = ["--ca-file", "ekm-data/tls-cert.pem"];
    let run = |args: &[&str], stdin: Option<&str>| {
        let all: Vec<&str> = ca.iter().chain(args).copied().collect();
        ekm(dir.path(), &d, &all, stdin)
    };
    let enable = |secret_file: &str, stdin: Option<&str>| {
        run(
            &[
                "enable",
                "--client-id",
                "c",
                "--tenant-id",
                "t",
                "--name",
                "https://myvault.vault.azure.net/",
                "--key-id",
                KEY,
                "--client-secret-file",
                secret_file,
            ],
            stdin,
        )
    };
    // An empty secret from stdin is what ekmd sees (and refuses): the file is really read.
    let out = enable("-", Some("\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("65537540"),
        "{}",
        text(&out.stderr)
    );
    let out = enable("-", Some("from-stdin\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(dir.path().join("secret"), "from-a-file\n").unwrap();
    let out = run(
        &["update-credentials", "--client-secret-file", "secret"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(
        &["update-credentials", "--client-secret-file", "missing"],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // Two secrets cannot both come from stdin.
    let out = run(
        &[
            "update-config",
            "--proxy-type",
            "http",
            "--proxy-host",
            "proxy.example",
            "--proxy-port",
            "3128",
            "--proxy-username",
            "u",
            "--proxy-password-file",
            "-",
        ],
        Some("proxy-secret"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Job progress: plain lines on stderr when it is not a terminal.
    for _ in 0..5 {
        assert!(run(&["key", "create", "--tag", "v"], None).status.success());
    }
    let started = Instant::now();
    let out = run(&["rekey-internal", "--wait"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(60));
    let err = text(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("job ") && l.ends_with("success 5/5")),
        "{err}"
    );
    assert!(text(&out.stdout).contains("succeeded"));
}
