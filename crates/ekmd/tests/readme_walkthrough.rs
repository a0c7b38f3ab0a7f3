//! The README cannot rot: its walk-through blocks (the curl session of "ekmd: the REST API, a
//! walk-through" and the `ekm` session of "The `ekm` command line") run top to bottom, exactly
//! as printed, with `bash -euo pipefail` against a fresh ekmd on a free port in a temporary
//! directory. The test only provides what the README names as the environment: ekmd running
//! with its data in `./ekm-data`, `EKM_URL` pointing at it, and `ekm` on the PATH. It needs
//! curl, openssl and python3 (the README's prerequisites).
//!
//! It also checks that the README's run command names a package with a default binary, and
//! that the Rust version it names is the workspace's.

use std::path::Path;
use std::process::{Command, Stdio};

mod common;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap()
}

/// The first ```bash block after the heading line `heading`.
fn block_after(text: &str, heading: &str) -> String {
    let start = text
        .lines()
        .position(|l| l.trim_end() == heading)
        .unwrap_or_else(|| panic!("README has no heading {heading:?}"));
    let mut lines = text.lines().skip(start + 1);
    lines
        .by_ref()
        .find(|l| l.trim_end() == "```bash")
        .unwrap_or_else(|| panic!("no ```bash block after {heading:?}"));
    let body: Vec<&str> = lines.take_while(|l| l.trim_end() != "```").collect();
    assert!(!body.is_empty());
    body.join("\n") + "\n"
}

#[test]
fn the_run_command_has_a_default_binary_and_the_prerequisites_are_true() {
    let text = readme();
    assert!(text.contains("\ncargo run --release -p ekmd -- serve\n"));
    // `cargo run -p ekmd` needs `default-run` (ekmd has two binaries).
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ekmd = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "ekmd")
        .unwrap();
    assert_eq!(ekmd["default_run"], "ekmd");
    let rust = ekmd["rust_version"].as_str().unwrap();
    assert!(
        text.contains(&format!("Rust {rust} or newer")),
        "the README's prerequisites should name Rust {rust}"
    );
}

#[test]
fn the_readme_walkthrough_runs_as_printed() {
    let text = readme();
    let curl = block_after(&text, "## ekmd: the REST API, a walk-through");
    let cli = block_after(&text, "### The `ekm` command line");
    for tool in ["curl", "openssl", "python3"] {
        let ok = Command::new(tool)
            .arg(if tool == "openssl" {
                "version"
            } else {
                "--version"
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{tool} is a prerequisite of the README walk-through");
    }

    let dir = tempfile::tempdir().unwrap();
    let (mut ekmd, line) = common::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ekmd"))
            .current_dir(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("EKMD_ADMIN_USER")
            .env_remove("EKMD_ADMIN_PASSWORD")
            .stderr(Stdio::null()),
    );
    let url = common::announced_url(&line, "https://");

    let bin_dir = Path::new(env!("CARGO_BIN_EXE_ekm")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!("set -euo pipefail\nset -x\n{curl}\n{cli}\necho WALKTHROUGH-DONE\n");
    std::fs::write(dir.path().join("walkthrough.sh"), &script).unwrap();
    let out = Command::new("bash")
        .arg("walkthrough.sh")
        .current_dir(dir.path())
        .env("EKM_URL", &url)
        .env("PATH", path)
        .env_remove("EKM_PASSWORD")
        .env_remove("EKM_USER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = ekmd.kill();
    let _ = ekmd.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("WALKTHROUGH-DONE"),
        "the README walk-through failed ({}):\n--- stdout\n{stdout}\n--- stderr (the last command traced is the one that failed)\n{stderr}",
        out.status
    );
    println!("{stdout}");
    // What the walk-through claims happened, happened.
    assert!(stdout.contains("\"65536867\""), "the refusal was shown");
    assert!(stdout.contains("Key manager") && stdout.contains("removed."));
}
