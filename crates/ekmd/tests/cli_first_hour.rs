//! `ekm` and `ekmd` as an operator's first hour meets them (issue 21): `ekm audit verify` on a
//! data directory, which secret source wins, `ekm key delete` and the way out of a refused
//! `disable`, `ekm check` in ONTAP's layout, one answer for an entry that does not exist,
//! started jobs that say how to follow them, messages that name the flag, `--help`'s groups,
//! and `ekmd kmip-client-cert` refusing an owner the topology does not name.

use std::path::Path;

mod common;

use common::cli::{Daemon, ekm, ekm_in, ekm_trusted, enable_args, outcome, start};

const NO_ENTRIES: &str = "There are no entries matching your query.";

/// `ekm_trusted` with owned arguments.
fn run(dir: &Path, d: &Daemon, args: &[String]) -> (Option<i32>, String, String) {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    outcome(&ekm_trusted(dir, d, &a))
}

/// `ekm_trusted`, its exit code, stdout and stderr.
fn ok(dir: &Path, d: &Daemon, args: &[&str]) -> (Option<i32>, String, String) {
    outcome(&ekm_trusted(dir, d, args))
}

/// The two-node, two-SVM topology of `common` written to `dir/topology.toml`, as `--topology`.
fn two_nodes(dir: &Path) -> String {
    let f = dir.join("topology.toml");
    std::fs::write(&f, common::topology_toml()).unwrap();
    f.display().to_string()
}

/// `ekm audit verify ARGS` (offline) in `dir`.
fn verify(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    outcome(&ekm_in(
        dir,
        "http://127.0.0.1:1",
        &[],
        &[&["audit", "verify"], args].concat(),
        None,
        &[],
    ))
}

#[test]
fn audit_verify_takes_the_data_dir_and_a_missing_file_is_not_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = tempfile::tempdir().unwrap();
    // A fresh install: one audit.log, no rotated file, so the shell passes `audit.log.*` as is.
    let d = start(fresh.path(), &[]);
    drop(d);
    let (code, out, err) = verify(
        fresh.path(),
        &["ekm-data/audit.log.*", "ekm-data/audit.log"],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("audit trail intact"), "{out}");
    // A trail rotated several times.
    let d = start(dir.path(), &["--audit-max-bytes", "1500"]);
    assert_eq!(run(dir.path(), &d, &enable_args(None)).0, Some(0));
    for _ in 0..6 {
        assert_eq!(
            ok(dir.path(), &d, &["key", "create", "--tag", "v"]).0,
            Some(0)
        );
    }
    drop(d);
    let data = dir.path().join("ekm-data");
    let mut rotated: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("audit.log."))
        .map(|n| format!("ekm-data/{n}"))
        .collect();
    rotated.sort();
    assert!(rotated.len() >= 2, "{rotated:?}");
    let files = format!("in {} file(s)", rotated.len() + 1);
    for form in [vec!["ekm-data"], vec!["ekm-data/audit.log"]] {
        let (code, out, err) = verify(dir.path(), &form);
        assert_eq!(code, Some(0), "{form:?}: {out}{err}");
        assert!(out.contains(&files), "{form:?}: {out}");
        assert!(
            out.contains("records (1 to ") && out.contains(&format!("({} to ", rotated[0])),
            "{form:?}: {out}"
        );
    }
    let mut list: Vec<&str> = rotated.iter().map(String::as_str).collect();
    list.push("ekm-data/audit.log");
    let (code, out, err) = verify(dir.path(), &list);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&files), "{out}");
    // Missing or unreadable: exit 6, never the tamper code 5.
    for args in [
        vec!["ekm-data/audit.log.999999", "ekm-data/audit.log"],
        vec!["nowhere"],
        vec!["."],
    ] {
        let (code, out, err) = verify(dir.path(), &args);
        assert_eq!(code, Some(6), "{args:?}: {out}{err}");
        assert!(!err.contains("NOT intact"), "{err}");
    }
    // A rotated file removed from the middle is a broken chain: 5.
    std::fs::remove_file(dir.path().join(&rotated[1])).unwrap();
    let (code, _, err) = verify(dir.path(), &["ekm-data"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("NOT intact"), "{err}");
}

#[test]
fn an_explicit_flag_wins_over_the_environment_and_two_sources_of_a_secret_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    let ca = ["--ca-file", "ekm-data/tls-cert.pem"];
    let with = |login: &[&str], args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]| {
        let login: Vec<&str> = ca.iter().chain(login).copied().collect();
        outcome(&ekm_in(dir.path(), &d.url, &login, args, stdin, env))
    };
    let wrong = [("EKM_PASSWORD", "wrong-password")];
    // --password-file wins over EKM_PASSWORD.
    let (code, out, err) = with(
        &["--password-file", "ekm-data/admin-password"],
        &["show"],
        None,
        &wrong,
    );
    assert_eq!(code, Some(0), "{out}{err}");
    // --password and --password-file: refused, both named.
    let (code, _, err) = with(
        &[
            "--password",
            "x",
            "--password-file",
            "ekm-data/admin-password",
        ],
        &["show"],
        None,
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--password ") && err.contains("--password-file"),
        "{err}"
    );
    // Each inline secret flag with its -file twin (on a key manager that would take it).
    assert_eq!(run(dir.path(), &d, &enable_args(None)).0, Some(0));
    std::fs::write(dir.path().join("s"), "file-secret\n").unwrap();
    std::fs::write(dir.path().join("app.pfx"), "not really\n").unwrap();
    let login = ["--password-file", "ekm-data/admin-password"];
    for (inline, file, extra) in [
        ("--client-secret", "--client-secret-file", vec![]),
        (
            "--client-certificate-password",
            "--client-certificate-password-file",
            vec!["--client-certificate-file", "app.pfx"],
        ),
        ("--proxy-password", "--proxy-password-file", vec![]),
    ] {
        let cmd = if inline.starts_with("--proxy") {
            "update-config"
        } else {
            "update-credentials"
        };
        let args: Vec<&str> = [cmd, inline, "inline-secret", file, "s"]
            .into_iter()
            .chain(extra)
            .collect();
        let (code, _, err) = with(&login, &args, None, &[]);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains(inline) && err.contains(file),
            "{args:?}: {err}"
        );
    }
    // With EKM_PASSWORD set, --password-file - still reads stdin, so a second "-" is refused.
    let right = std::fs::read_to_string(dir.path().join("ekm-data/admin-password")).unwrap();
    let (code, _, err) = with(
        &["--password-file", "-"],
        &["update-credentials", "--client-secret-file", "-"],
        Some(&right),
        &wrong,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("only one secret can be read from stdin"),
        "{err}"
    );
}

#[test]
fn ekm_key_delete_deletes_and_a_refused_disable_says_how_to_delete_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    assert_eq!(run(dir.path(), &d, &enable_args(Some("vs0"))).0, Some(0));
    let mut ids = Vec::new();
    for tag in ["a", "b"] {
        let (code, out, err) = ok(
            dir.path(),
            &d,
            &["key", "create", "--vserver", "vs0", "--tag", tag],
        );
        assert_eq!(code, Some(0), "{err}");
        ids.push(out.trim().to_owned());
    }
    let (code, _, err) = ok(dir.path(), &d, &["disable", "--vserver", "vs0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("65536867"), "{err}");
    assert!(err.contains("ekm key query --vserver vs0"), "{err}");
    assert!(
        err.contains("ekm key delete --vserver vs0 --key-id"),
        "{err}"
    );
    for id in &ids {
        let (code, out, err) = ok(
            dir.path(),
            &d,
            &["key", "delete", "--vserver", "vs0", "--key-id", id],
        );
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains(&format!("Key {id} deleted")), "{out}");
    }
    let (code, out, _) = ok(dir.path(), &d, &["key", "query", "--vserver", "vs0"]);
    assert_eq!((code, out.trim()), (Some(0), NO_ENTRIES));
    // Deleted already: nothing matches, exit 1.
    let (code, _, err) = ok(
        dir.path(),
        &d,
        &["key", "delete", "--vserver", "vs0", "--key-id", &ids[0]],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.starts_with(&format!("ekm: {NO_ENTRIES}")), "{err}");
    let (code, _, err) = ok(dir.path(), &d, &["disable", "--vserver", "vs0"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_key_delete_answered_with_an_erase_job_says_so_and_wait_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = canned::Server::start();
    let ekm = |args: &[&str]| {
        outcome(&ekm_in(
            dir.path(),
            &server.url,
            &["--password", "pw"],
            args,
            None,
            &[],
        ))
    };
    let (code, out, err) = ekm(&["key", "delete", "--key-id", canned::K1]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("erase job"), "{out}");
    assert!(
        out.contains(&format!("Job j1 started: erase of key {}", canned::K1)),
        "{out}"
    );
    assert!(out.contains("ekm job show j1 --wait"), "{out}");
    let (code, out, err) = ekm(&["key", "delete", "--key-id", canned::K1, "--wait"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("Job j1 succeeded: erase of key {}", canned::K1)),
        "{out}"
    );
    assert!(err.contains("job j1: success 1/1"), "{err}");
    let (code, _, err) = ekm(&["key", "delete", "--key-id", canned::K2, "--wait"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains(&format!(
            "ekm: job j2 (erase of key {}) failed: node2 is down",
            canned::K2
        )),
        "{err}"
    );
}

#[test]
fn check_shows_ontap_categories_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let topo = two_nodes(dir.path());
    let d = start(dir.path(), &["--topology", &topo]);
    assert_eq!(run(dir.path(), &d, &enable_args(None)).0, Some(0));
    let (code, out, err) = ok(dir.path(), &d, &["check"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains("false"), "{out}");
    assert!(
        out.lines().all(|l| !l.ends_with(' ')),
        "trailing space:\n{out}"
    );
    let header = out
        .lines()
        .find(|l| l.starts_with("Node"))
        .unwrap_or_default();
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(cols, ["Node", "Category", "Status", "Message"], "{out}");
    let row = |out: &str, node: &str, category: &str| -> Vec<String> {
        let line = out
            .lines()
            .find(|l| l.starts_with(node) && l.contains(category))
            .unwrap_or_else(|| panic!("no {node} {category} row in\n{out}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    for node in ["node1", "node2"] {
        assert_eq!(row(&out, node, "service_reachability")[2], "OK", "{out}");
        let kek = row(&out, node, "kms_wrapped_key_status");
        assert_eq!(kek[2], "UNKNOWN", "{out}");
        assert!(kek.join(" ").contains("No data keys yet"), "{out}");
        // KMIP is off (no --kmip-listen), keys or not: said so, not "unavailable on node".
        let kmip = row(&out, node, "ekmip_server");
        assert_eq!(kmip[2], "OK", "{out}");
        assert!(kmip.join(" ").contains("KMIP is off"), "{out}");
        assert!(!kmip.join(" ").contains("unavailable"), "{out}");
    }
    assert_eq!(ok(dir.path(), &d, &["key", "create"]).0, Some(0));
    let (_, out, _) = ok(dir.path(), &d, &["check"]);
    for node in ["node1", "node2"] {
        let kmip = row(&out, node, "ekmip_server");
        assert_eq!(kmip[2], "OK", "{out}");
        assert!(kmip.join(" ").contains("KMIP is off"), "{out}");
        assert_eq!(
            row(&out, node, "kms_wrapped_key_status")[2..],
            ["OK"],
            "{out}"
        );
    }
}

#[test]
fn an_entry_named_that_does_not_exist_is_no_entries_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    // Nothing named, nothing configured: the message, exit 0.
    let (code, out, _) = ok(dir.path(), &d, &["show"]);
    assert_eq!((code, out.trim()), (Some(0), NO_ENTRIES));
    assert_eq!(run(dir.path(), &d, &enable_args(None)).0, Some(0));
    let unknown = "6f1b4c43-5a0e-4a77-9a3e-8a3f1d1f0c00";
    for args in [
        vec!["show", "--vserver", "vs0"],
        vec!["show", "--uuid", unknown],
        vec!["check", "--uuid", unknown],
        vec!["check", "--vserver", "nosuch"],
        vec!["disable", "--uuid", unknown],
        vec!["key", "query", "--vserver", "vs0"],
        vec!["rekey-internal", "--uuid", unknown],
        vec!["job", "show", unknown],
    ] {
        let (code, out, err) = ok(dir.path(), &d, &args);
        assert_eq!(code, Some(1), "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(
            err.starts_with(&format!("ekm: {NO_ENTRIES}")),
            "{args:?}: {err}"
        );
    }
    // An SVM that does not exist is not "an SVM without a key manager".
    let (_, _, err) = ok(dir.path(), &d, &["show", "--vserver", "nosuch"]);
    assert!(
        err.contains("SVM \"nosuch\" does not exist") && err.contains("vs0"),
        "{err}"
    );
    assert!(!err.contains("has no key manager"), "{err}");
    let (_, _, err) = ok(dir.path(), &d, &["show", "--vserver", "vs0"]);
    assert!(err.contains("SVM \"vs0\" has no key manager"), "{err}");
}

#[test]
fn a_started_job_says_how_to_follow_it_and_wait_says_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    assert_eq!(run(dir.path(), &d, &enable_args(None)).0, Some(0));
    assert_eq!(ok(dir.path(), &d, &["key", "create"]).0, Some(0));
    let (code, out, err) = ok(dir.path(), &d, &["rekey-internal"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("Job ")
            && out.contains(" started: rekey-internal of the cluster's key manager"),
        "{out}"
    );
    let job = out.split_whitespace().nth(1).unwrap().to_owned();
    assert!(out.contains(&format!("ekm job show {job} --wait")), "{out}");
    let (code, out, err) = ok(dir.path(), &d, &["job", "show", &job, "--wait"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("success"), "{out}");
    let (code, out, err) = ok(dir.path(), &d, &["restore", "--wait"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("succeeded: restore of the cluster's key manager"),
        "{out}"
    );
}

#[test]
fn messages_name_the_flag_and_start_with_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &[]);
    let (code, _, err) = outcome(&ekm(
        dir.path(),
        &d,
        &["--ca-file", "/nonexistent", "show"],
        None,
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.starts_with("ekm: --ca-file /nonexistent: "), "{err}");
    // A refusal by ekmd: `ekm: ` too, not `Error: `.
    let mut bad = enable_args(None);
    bad[8] = "https://myvault.vault.azure.net/keys/kek1".into();
    let (code, _, err) = run(dir.path(), &d, &bad);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with("ekm: ") && err.contains("(code 65537523"),
        "{err}"
    );
    // clap's usage errors: `ekm: ` too, exit 2, and ids are checked before they reach a URL.
    for (args, says) in [
        (&["show", "--no-such-flag"][..], "--no-such-flag"),
        (
            &["key", "delete", "--key-id", "../../configs"][..],
            "64 hex digits",
        ),
        (&["job", "show", "x/../y"][..], "job uuid"),
    ] {
        let (code, _, err) = ok(dir.path(), &d, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("ekm: ") && err.contains(says),
            "{args:?}: {err}"
        );
    }
    drop(d);
    // ekmd: a node the topology does not have is named with the nodes it has.
    let topo = two_nodes(dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ekmd"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--node",
            "node7",
            "--topology",
            &topo,
            "--data-dir",
        ])
        .arg(dir.path().join("ekm-data"))
        .output()
        .unwrap();
    let err = common::cli::text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("ekmd: --node node7: ") && err.contains("node1, node2"),
        "{err}"
    );
}

#[test]
fn help_groups_the_global_options_and_shows_no_empty_env_value() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ekm"))
            .args(args)
            .env_remove("EKM_URL")
            .output()
            .unwrap();
        common::cli::text(&out.stdout)
    };
    let h = help(&["show", "--help"]);
    assert!(!h.contains("EKM_URL="), "{h}");
    assert!(h.contains("[env: EKM_URL]"), "{h}");
    let global = h.find("Global options:").expect("a Global options heading");
    assert!(h.find("--vserver").unwrap() < global, "{h}");
    assert!(h.find("--url").unwrap() > global, "{h}");
    assert!(h.find("--password-file").unwrap() > global, "{h}");
    let top = help(&["--help"]);
    assert!(
        top.contains("Exit codes:") && top.contains("  6  ekm audit verify"),
        "{top}"
    );
}

#[test]
fn kmip_client_cert_refuses_an_owner_the_topology_does_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let topo = two_nodes(dir.path());
    // A first start with --kmip-listen makes the KMIP CA (before the REST listener's line).
    let port = common::free_port();
    let (mut d, line) = common::spawn_listening(
        std::process::Command::new(env!("CARGO_BIN_EXE_ekmd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--topology", &topo])
            .args(["--kmip-listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.path().join("ekm-data"))
            .stderr(std::process::Stdio::null()),
    );
    d.kill().unwrap();
    d.wait().unwrap();
    assert!(line.starts_with("ekmd listening on"), "{line}");
    assert!(
        dir.path().join("ekm-data/kmip/ca.pem").exists(),
        "the KMIP CA is made"
    );
    // With the topology named, and without it: the KMIP server recorded the one it served
    // (serve's --topology is outside the data dir here).
    for named in [true, false] {
        let issue = |owner: &str| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ekmd"));
            cmd.args(["kmip-client-cert", "--owner", owner, "--data-dir"])
                .arg(dir.path().join("ekm-data"))
                .arg("--out")
                .arg(dir.path().join(format!("{owner}-{named}")));
            if named {
                cmd.args(["--topology", &topo]);
            }
            cmd.output().unwrap()
        };
        let out = issue("nosuch");
        let err = common::cli::text(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("--owner nosuch") && err.contains("cluster1 (the cluster), vs0, vs1"),
            "{err}"
        );
        assert!(!dir.path().join(format!("nosuch-{named}")).exists());
        for owner in ["vs1", "cluster1"] {
            let out = issue(owner);
            assert!(out.status.success(), "{}", common::cli::text(&out.stderr));
            assert!(
                dir.path()
                    .join(format!("{owner}-{named}"))
                    .join("client.pem")
                    .exists()
            );
        }
    }
}

/// A canned ekmd for the answers a single-process ekmd never gives: a key delete answered 202
/// with an erase job (K1: the job succeeds, K2: it fails).
mod canned {
    /// A key whose erase job succeeds.
    pub const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    /// A key whose erase job fails.
    pub const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    pub struct Server {
        pub url: String,
    }

    impl Server {
        pub fn start() -> Server {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", l.local_addr().unwrap());
            std::thread::spawn(move || {
                let mut polls = std::collections::HashMap::<String, u32>::new();
                for conn in l.incoming() {
                    let Ok(mut conn) = conn else { continue };
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        continue;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let mut parts = line.split_whitespace();
                    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let (status, body) = answer(method, path, &mut polls);
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
            Server { url }
        }
    }

    fn answer(
        method: &str,
        path: &str,
        polls: &mut std::collections::HashMap<String, u32>,
    ) -> (&'static str, String) {
        let base = "/api/security/azure-key-vaults";
        let job = |j: &str| {
            format!(
                r#"{{"job": {{"uuid": "{j}", "_links": {{"self": {{"href": "/api/cluster/jobs/{j}"}}}}}}}}"#
            )
        };
        match (method, path) {
            ("GET", p) if p.starts_with(&format!("{base}?")) => (
                "200 OK",
                r#"{"num_records": 1, "records": [{"uuid": "u1", "scope": "cluster"}]}"#.into(),
            ),
            ("DELETE", p) if p == format!("{base}/u1/keys/{K1}") => ("202 Accepted", job("j1")),
            ("DELETE", p) if p == format!("{base}/u1/keys/{K2}") => ("202 Accepted", job("j2")),
            ("GET", p) if p.starts_with("/api/cluster/jobs/") => {
                let j = p.trim_start_matches("/api/cluster/jobs/").to_owned();
                let n = polls.entry(j.clone()).or_default();
                *n += 1;
                let (state, msg, code) = match (*n, j.as_str()) {
                    (1, _) => ("running", "", 0),
                    (_, "j1") => ("success", "erased on every node", 0),
                    _ => ("failure", "node2 is down", 65537547),
                };
                let done = u32::from(state != "running");
                (
                    "200 OK",
                    format!(
                        r#"{{"uuid": "{j}", "state": "{state}", "message": "{msg}", "code": {code}, "progress": {{"processed": {done}, "total": 1}}}}"#
                    ),
                )
            }
            _ => (
                "404 Not Found",
                r#"{"error": {"code": "4", "message": "entry doesn't exist"}}"#.into(),
            ),
        }
    }
}
