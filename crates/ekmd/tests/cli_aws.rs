//! `ekm aws ...` mirrors ONTAP's `security key-manager external aws`: enable (the secret access
//! key from a file or stdin only), show, modify, rekey-internal, rekey-external and restore with
//! `--wait`, disable (refused while keys exist, with the way out); the data-key commands act on
//! an AWS-protected scope as on an Azure one; no secret in any output or in ekmd's log.

mod common;

use common::cli::{ekm_trusted, outcome, start};

const SECRET: &str = "canary-cli-aws-secret-key-4d1e";

#[test]
fn the_aws_commands_configure_rekey_and_remove_an_aws_key_manager() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    std::fs::write(dir.path().join("sk.txt"), format!("{SECRET}\n")).unwrap();
    let mut seen = String::new();
    let mut run = |args: &[&str]| {
        let (code, out, err) = outcome(&ekm_trusted(dir.path(), &d, args));
        seen.push_str(&out);
        seen.push_str(&err);
        (code, out, err)
    };
    // Secrets never on the command line: there is no inline flag.
    let (code, _, err) = run(&[
        "aws",
        "enable",
        "--vserver",
        "vs0",
        "--region",
        "us-east-1",
        "--key-id",
        "alias/ekm",
        "--access-key-id",
        "AKIAEKM",
        "--secret-access-key",
        SECRET,
    ]);
    assert_eq!(code, Some(2), "{err}");
    let (code, out, err) = run(&[
        "aws",
        "enable",
        "--vserver",
        "vs0",
        "--region",
        "us-east-1",
        "--key-id",
        "alias/ekm",
        "--access-key-id",
        "AKIAEKM",
        "--secret-access-key-file",
        "sk.txt",
        "--encryption-context",
        "tenant=vs0",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("AWS KMS key manager") && out.contains("SVM vs0's key manager"),
        "{out}"
    );
    let (code, out, _) = run(&["aws", "show"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("vs0") && out.contains("us-east-1") && out.contains("alias/ekm"),
        "{out}"
    );

    let (code, out, err) = run(&["check", "--vserver", "vs0"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("service_reachability") && out.contains("OK"),
        "{out}"
    );
    let (code, id, err) = run(&["key", "create", "--vserver", "vs0", "--tag", "vol1"]);
    assert_eq!(code, Some(0), "{err}");
    let id = id.trim().to_owned();
    let (code, out, _) = run(&["key", "query", "--vserver", "vs0"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&id), "{out}");

    for args in [
        &["aws", "rekey-internal", "--vserver", "vs0", "--wait"][..],
        &[
            "aws",
            "rekey-external",
            "--vserver",
            "vs0",
            "--key-id",
            "alias/ekm-next",
            "--wait",
        ][..],
        &["aws", "restore", "--vserver", "vs0", "--wait"][..],
        &["aws", "modify", "--vserver", "vs0", "--timeout", "5"][..],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(0), "{args:?}: {out}{err}");
    }
    let (_, out, _) = run(&["--json", "aws", "show", "--vserver", "vs0"]);
    assert!(
        out.contains("alias/ekm-next") && out.contains("\"timeout\": 5"),
        "{out}"
    );

    let (code, _, err) = run(&["aws", "disable", "--vserver", "vs0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("65536867"), "{err}");
    let (code, _, err) = run(&["key", "delete", "--vserver", "vs0", "--key-id", &id]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&["aws", "disable", "--vserver", "vs0"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, _, err) = run(&["aws", "show", "--vserver", "vs0"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("AWS KMS is not configured") && err.contains("65537926"),
        "{err}"
    );

    drop(d);
    let log = std::fs::read_to_string(dir.path().join("ekmd.stderr")).unwrap_or_default();
    assert!(!seen.contains(SECRET), "a secret in ekm's output");
    assert!(!log.contains(SECRET), "a secret in ekmd's log");
}
