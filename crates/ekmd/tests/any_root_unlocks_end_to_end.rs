//! vs0's KEK under two roots of trust through one ekmd with `--backend azure,aws`: its primary
//! on Azure Key Vault (the AKV emulator) and a mirror on AWS KMS (moto), each reached through
//! a relay this test can cut. With the vault cut, a restarted ekmd serves every key through
//! the mirror; a rekey-internal while KMS is cut succeeds, names the mirror, and `protectors`
//! shows it not fully wrapped until KMS is back, when it catches up by itself (no restart);
//! after that the vault cut again still leaves every key servable after a restart.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::providers::{Daemon, Relayed, call, protectors, socket_read};
use serde_json::json;

#[test]
fn either_root_unlocks_vs0_and_a_root_away_catches_up() {
    let Some(lab) = Relayed::start_or_skip("any root unlocks") else {
        return;
    };
    let (vault, kms) = (&lab.vault, &lab.kms);
    let dir = tempfile::tempdir().unwrap();
    let d = lab.ekmd(dir.path(), None, &[]);
    let vs0 = lab.create_vs0(&d);
    let mut keys = HashMap::new();
    for i in 0..5 {
        let (s, v) = call(
            &d,
            "POST",
            &format!("/api/security/azure-key-vaults/{vs0}/keys"),
            Some(json!({"key_tag": format!("vol{i}")})),
        );
        assert_eq!(s, 201, "{v}");
        let id = v["key_id"].as_str().unwrap().to_owned();
        keys.insert(id.clone(), socket_read(&d, &id));
    }
    // The mirror: an AWS configuration attached to vs0's scope (svm left out).
    let (s, v) = call(
        &d,
        "POST",
        "/api/security/aws-kms?return_records=true",
        Some(lab.mirror_body(&vs0)),
    );
    assert_eq!(s, 201, "{v}");
    let mirror = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(v["records"][0]["mirror_of"]["uuid"], vs0.as_str(), "{v}");
    assert_eq!(
        v["records"][0]["svm"]["name"], "vs0",
        "the primary's scope: {v}"
    );
    let p = protectors(&d, &vs0);
    let rows: Vec<(&str, &str, bool)> = p
        .iter()
        .map(|p| {
            (
                p["uuid"].as_str().unwrap(),
                p["kind"].as_str().unwrap(),
                p["fully_wrapped"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (vs0.as_str(), "azure_key_vault", true),
            (mirror.as_str(), "aws_kms", true)
        ],
        "{p:?}"
    );
    // A mirror owns no data keys; the key-managers list says what it is.
    let (s, v) = call(
        &d,
        "POST",
        &format!("/api/security/aws-kms/{mirror}/keys"),
        Some(json!({"key_tag": "x"})),
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("262197")),
        "{v}"
    );
    let (_, v) = call(&d, "GET", "/api/security/key-managers", None);
    let listed = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["uuid"] == mirror.as_str())
        .cloned()
        .unwrap();
    assert_eq!(listed["mirror_of"]["uuid"], vs0.as_str(), "{v}");
    // Advanced: not there unless named.
    let (_, v) = call(
        &d,
        "GET",
        &format!("/api/security/azure-key-vaults/{vs0}"),
        None,
    );
    assert!(v.get("protectors").is_none(), "{v}");

    // The vault cut: a restarted ekmd serves every key through the mirror.
    drop(d);
    vault.cut();
    let d = lab.ekmd(dir.path(), None, &[]);
    for (id, m) in &keys {
        assert_eq!(&socket_read(&d, id), m, "served through the mirror");
    }

    // The vault back, KMS cut: rekey-internal succeeds, naming the mirror.
    vault.restore();
    kms.cut();
    let (s, v) = call(
        &d,
        "POST",
        &format!("/api/security/azure-key-vaults/{vs0}/rekey-internal?return_timeout=120"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    let (_, jobs) = call(&d, "GET", "/api/cluster/jobs?fields=message,state", None);
    let msg = jobs["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["message"].as_str())
        .find(|m| m.starts_with("Rekey-internal completed"))
        .unwrap_or_default()
        .to_owned();
    assert!(msg.contains(&mirror), "the job names the mirror: {jobs}");
    let p = protectors(&d, &vs0);
    assert_eq!(p[1]["fully_wrapped"], false, "{p:?}");
    assert_eq!(p[0]["fully_wrapped"], true, "{p:?}");
    let metric = |d: &Daemon, root: &str| {
        let text = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{}/metrics", d.url))
            .basic_auth("admin", Some("admin-pw"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find(|l| l.starts_with("ekm_root_fully_wrapped{") && l.contains(root))
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no ekm_root_fully_wrapped for {root}: {text}"))
    };
    assert_eq!(
        metric(&d, "root=\"mirror1\""),
        "0.0",
        "the metric says the same"
    );
    assert_eq!(metric(&d, "root=\"primary\""), "1.0");

    // KMS back: the mirror catches up by itself, within the probe interval.
    kms.restore();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = protectors(&d, &vs0);
        if p.iter().all(|p| p["fully_wrapped"] == true) {
            break;
        }
        assert!(Instant::now() < deadline, "never caught up: {p:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(metric(&d, "root=\"mirror1\""), "1.0");

    // And now the mirror alone unlocks the new generation.
    drop(d);
    vault.cut();
    let d = lab.ekmd(dir.path(), None, &[]);
    for (id, m) in &keys {
        assert_eq!(&socket_read(&d, id), m, "generation 2 through the mirror");
    }
    vault.restore();
}

/// ekmd SIGKILLed at several points of an attach (the POST under way): after the restart the
/// mirror is whole (listed, fully wrapped, unlocking alone) or absent, and every key reads.
#[test]
fn an_attach_killed_part_way_leaves_the_mirror_whole_or_absent() {
    let Some(lab) = Relayed::start_or_skip("attach killed") else {
        return;
    };
    let vault = &lab.vault;
    let dir = tempfile::tempdir().unwrap();
    let mut d = lab.ekmd(dir.path(), None, &[]);
    let vs0 = lab.create_vs0(&d);
    let (_, v) = call(
        &d,
        "POST",
        &format!("/api/security/azure-key-vaults/{vs0}/keys"),
        Some(json!({"key_tag": "vol"})),
    );
    let id = v["key_id"].as_str().unwrap().to_owned();
    let material = socket_read(&d, &id);
    let body = lab.mirror_body(&vs0);
    let mut outcomes = Vec::new();
    for delay_ms in [0u64, 5, 20, 60, 150, 400] {
        let url = format!("{}/api/security/aws-kms", d.url);
        let b = body.clone();
        let post = std::thread::spawn(move || {
            reqwest::blocking::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .post(url)
                .basic_auth("admin", Some("admin-pw"))
                .json(&b)
                .send()
                .map(|r| r.status().as_u16())
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        drop(d); // SIGKILL
        let _ = post.join();
        d = lab.ekmd(dir.path(), None, &[]);
        let p = protectors(&d, &vs0);
        assert!(
            p.iter().all(|p| p["fully_wrapped"] == true),
            "after a kill at {delay_ms} ms: {p:?}"
        );
        assert_eq!(socket_read(&d, &id), material);
        outcomes.push(p.len());
        if p.len() == 2 {
            // Whole: it unlocks alone; then detached for the next round.
            let mirror = p[1]["uuid"].as_str().unwrap().to_owned();
            drop(d);
            vault.cut();
            d = lab.ekmd(dir.path(), None, &[]);
            assert_eq!(socket_read(&d, &id), material, "through the mirror alone");
            vault.restore();
            let (s, v) = call(
                &d,
                "DELETE",
                &format!("/api/security/aws-kms/{mirror}"),
                None,
            );
            assert_eq!(s, 200, "{v}");
        }
        let (_, v) = call(&d, "GET", "/api/security/aws-kms", None);
        assert_eq!(
            v["num_records"], 0,
            "no half-attached mirror is listed: {v}"
        );
    }
    eprintln!("roots after each kill: {outcomes:?}");
}
