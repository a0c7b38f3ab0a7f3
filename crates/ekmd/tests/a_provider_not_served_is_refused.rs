//! `ekmd serve --backend` takes `fake` or a comma-separated list of real providers; a
//! configuration of a provider the daemon does not serve is refused with 65537604, naming the
//! `--backend` value that serves it, and nothing is made; bad lists and pins are refused at
//! start, naming the flag.

mod common;

use common::cli::{ekm_trusted, enable_args, outcome, start, text};

#[test]
fn an_azure_configuration_on_an_aws_only_ekmd_is_65537604_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &["--backend", "aws"]);
    let args: Vec<String> = enable_args(None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = outcome(&ekm_trusted(dir.path(), &d, &args));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("(code 65537604") && err.contains("--backend azure"),
        "{err}"
    );
    let (code, out, _) = outcome(&ekm_trusted(dir.path(), &d, &["show"]));
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), "There are no entries matching your query.");
}

#[test]
fn both_real_providers_serve_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &["--backend", "azure,aws"]);
    let (code, _, err) = outcome(&ekm_trusted(dir.path(), &d, &["show"]));
    assert_eq!(code, Some(0), "{err}");
    let log = std::fs::read_to_string(&d.stderr).unwrap();
    assert!(!log.contains("--backend fake"), "{log}");
}

#[test]
fn bad_backend_lists_and_pins_are_refused_at_start_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (&["--backend", "fake,aws"][..], "fake fakes every provider"),
        (&["--backend", "gcp"][..], "\"gcp\" is not a backend"),
        (
            &["--backend", "aws", "--aws-resolve", "kms.example"][..],
            "--aws-resolve kms.example: expected HOST=IP:PORT",
        ),
        (
            &["--backend", "aws", "--aws-ca-file", "/nonexistent.pem"][..],
            "--aws-ca-file /nonexistent.pem",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ekmd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("ekm-data"))
            .args(args)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
