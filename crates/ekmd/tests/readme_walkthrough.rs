//! The README cannot rot: its walk-through blocks (the curl session of "ekmd: the REST API, a
//! walk-through", the `ekm` session of "The `ekm` command line" and the PyKMIP session of
//! "KMIP") run exactly as printed, with `bash -euo pipefail`, against a fresh ekmd on free ports
//! in a temporary directory — in the README's order and in the reverse one, since each section
//! must stand alone and leave nothing behind: no configuration in ekmd, no file beside
//! `ekm-data`. The test only provides what the README names as the environment: ekmd running
//! with its data in `./ekm-data` (and `--kmip-listen`), `EKM_URL` / `EKM_KMIP_PORT` pointing at
//! it, `ekm` and `ekmd` on the PATH, and a `python3` with PyKMIP (the test command's venv,
//! `target/venv-python-tests`; without it the KMIP block is skipped with a message, except under
//! `CI`, where that fails). It needs curl, openssl and python3 (the README's prerequisites).
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

/// The walk-through's three sections, by heading.
const SECTIONS: [&str; 3] = [
    "## ekmd: the REST API, a walk-through",
    "### The `ekm` command line",
    "## KMIP: the node's embedded KMIP server",
];

/// The bin directory of a Python with PyKMIP (the test command's venv), if there is one.
fn pykmip_bin() -> Option<std::path::PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/venv-python-tests/bin");
    let ok = Command::new(bin.join("python3"))
        .args(["-c", "import kmip"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: the KMIP walk-through needs PyKMIP in {} (bash scripts/test makes that venv first)",
        bin.display()
    );
    eprintln!(
        "skipping the README's KMIP block: no PyKMIP venv at {} (bash scripts/test makes it)",
        bin.display()
    );
    None
}

/// Runs the README sections `order` (indexes into [`SECTIONS`]) one after the other against a
/// fresh ekmd, then checks that nothing was left behind.
fn run_sections(order: [usize; 3]) {
    let text = readme();
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
    let python = pykmip_bin();
    let blocks: Vec<String> = order
        .iter()
        .filter(|&&i| i != 2 || python.is_some())
        .map(|&i| block_after(&text, SECTIONS[i]))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let kmip_port = common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ekmd"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--kmip-listen"])
        .arg(format!("127.0.0.1:{kmip_port}"))
        .env_remove("EKMD_ADMIN_USER")
        .env_remove("EKMD_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Both listeners announce themselves once bound (KMIP first, then REST); the rest of
    // stdout is drained so that ekmd never writes into a closed pipe.
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ekmd listening on") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "ekmd exited before it listened"
        );
    }
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let url = common::announced_url(&line, "https://");

    let bin_dir = Path::new(env!("CARGO_BIN_EXE_ekm")).parent().unwrap();
    let mut path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    if let Some(py) = &python {
        path = format!("{}:{path}", py.display());
    }
    // Each section in its own shell, as a reader would paste it into a new one; after the
    // last, ekmd must hold no configuration.
    let mut script = String::from("set -euo pipefail\nset -x\n");
    for (n, block) in blocks.iter().enumerate() {
        script += &format!("( {block}\n)\necho SECTION-{n}-DONE\n");
    }
    script += "curl -sS --fail-with-body --cacert ekm-data/tls-cert.pem -u admin:$(cat ekm-data/admin-password) \"$EKM_URL/api/security/azure-key-vaults\" | grep -q '\"num_records\": *0'\necho WALKTHROUGH-DONE\n";
    // The script lives outside the working directory, which must end up holding ekm-data alone.
    let script_file = tempfile::Builder::new()
        .suffix(".sh")
        .tempfile()
        .unwrap()
        .into_temp_path();
    std::fs::write(&script_file, &script).unwrap();
    let out = Command::new("bash")
        .arg(&*script_file)
        .current_dir(dir.path())
        .env("EKM_URL", &url)
        .env("EKM_KMIP_PORT", kmip_port.to_string())
        .env("PATH", path)
        .env_remove("EKM_PASSWORD")
        .env_remove("EKM_USER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("WALKTHROUGH-DONE"),
        "the README walk-through (sections {order:?}) failed ({}):\n--- stdout\n{stdout}\n--- stderr (the last command traced is the one that failed)\n{stderr}",
        out.status
    );
    println!("{stdout}");
    if order.contains(&0) {
        // What the walk-through claims happened, happened.
        assert!(stdout.contains("\"65536867\""), "the refusal was shown");
    }
    // Nothing but ekmd's own data directory is left in the working directory.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["ekm-data"], "the README's steps left files behind");
}

#[test]
fn the_readme_sections_run_as_printed_in_their_order() {
    run_sections([0, 1, 2]);
}

#[test]
fn the_readme_sections_run_as_printed_in_the_reverse_order() {
    run_sections([2, 1, 0]);
}
