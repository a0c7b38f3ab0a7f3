//! One ekmd with `--backend azure,aws`: SVM vs0 on Azure Key Vault (the AKV emulator) and SVM
//! vs1 on AWS KMS (moto) at the same time, through the official SDKs over HTTPS with test CAs
//! and host pins (`--azure-*`, `--aws-ca-file`, `--aws-resolve`). Keys of both are served over
//! the data-path socket and KMIP; each rekey-internal touches only its own provider; after a
//! restart each scope unlocks through its own root of trust; a migrate moves vs0's keys from its
//! Azure configuration to the cluster's AWS one, after which vs0's Azure configuration can go
//! and every key still reads back.

use serde_json::json;

mod common;

use common::providers::{APP, Daemon, SECRET, TENANT, call, kmip_create, kmip_get, socket_read};

/// The ids of the keys `GET /api/security/{base}/{uuid}/keys` lists, sorted.
fn listed(d: &Daemon, base: &str, uuid: &str) -> Vec<String> {
    let (_, v) = call(d, "GET", &format!("/api/security/{base}/{uuid}/keys"), None);
    let mut ids: Vec<String> = v["records"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| r["key_id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn start(
    dir: &std::path::Path,
    emu: &akv_emulator::Emulator,
    moto: &ekm_aws::testing::Moto,
) -> Daemon {
    let (azure, aws) = (emu.addr().to_string(), moto.addr().to_string());
    common::providers::start(dir, emu, &azure, moto, &aws, &[])
}

#[test]
fn vs0_on_azure_and_vs1_on_aws_in_one_ekmd() {
    let Some(moto) = ekm_aws::testing::Moto::start_or_skip("two roots of trust") else {
        return;
    };
    let emu = akv_emulator::Emulator::start().unwrap();
    emu.add_secret_app(TENANT, APP, SECRET);
    let version = emu.add_key("key1", 2048).unwrap();
    let akv_key = emu.key_id("myvault", "key1", &version);
    let (aws_key, aws_arn) = moto.create_key().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &emu, &moto);

    let (s, v) = call(
        &d,
        "POST",
        "/api/security/azure-key-vaults?return_records=true",
        Some(
            json!({"svm": {"name": "vs0"}, "client_id": APP, "tenant_id": TENANT,
                    "name": format!("{}/", emu.vault_url("myvault")), "key_id": akv_key,
                    "client_secret": SECRET}),
        ),
    );
    assert_eq!(s, 201, "{v}");
    let vs0 = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let (s, v) = call(
        &d,
        "POST",
        "/api/security/aws-kms?return_records=true",
        Some(
            json!({"svm": {"name": "vs1"}, "region": ekm_aws::testing::REGION, "key_id": aws_key,
                    "access_key_id": ekm_aws::testing::ACCESS_KEY_ID,
                    "secret_access_key": ekm_aws::testing::CANARY_SECRET,
                    "encryption_context": "tenant=vs1", "timeout": 5}),
        ),
    );
    assert_eq!(s, 201, "{v}");
    let vs1 = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        v["records"][0]["key_id"],
        aws_arn.as_str(),
        "the key id resolved to its ARN"
    );
    let (_, v) = call(&d, "GET", "/api/security/key-managers", None);
    let mut kinds: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["aws_kms", "azure_key_vault"], "{v}");

    let key_of = |base: &str, u: &str| {
        let (s, v) = call(
            &d,
            "POST",
            &format!("/api/security/{base}/{u}/keys"),
            Some(json!({"key_tag": "vol1"})),
        );
        assert_eq!(s, 201, "{v}");
        v["key_id"].as_str().unwrap().to_owned()
    };
    let k0 = key_of("azure-key-vaults", &vs0);
    let k1 = key_of("aws-kms", &vs1);
    let (m0, m1) = (socket_read(&d, &k0), socket_read(&d, &k1));
    assert_ne!(m0, m1);
    // KMIP clients of each SVM create keys under their SVM's own root of trust.
    let (u0, u1) = (kmip_create(&d, "vs0"), kmip_create(&d, "vs1"));
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        listed(&d, "azure-key-vaults", &vs0),
        sorted(vec![k0.clone(), u0.clone()])
    );
    assert_eq!(
        listed(&d, "aws-kms", &vs1),
        sorted(vec![k1.clone(), u1.clone()])
    );
    let (n0, n1) = (socket_read(&d, &u0), socket_read(&d, &u1));
    assert_eq!(
        (kmip_get(&d, "vs0", &u0), kmip_get(&d, "vs1", &u1)),
        (n0.clone(), n1.clone())
    );
    assert_eq!(
        kmip_get(&d, "vs0", &k0),
        m0,
        "a REST-made key is served over KMIP too"
    );

    // Each rekey touches its own provider only.
    let kms_before = moto.kms_calls().len();
    let (s, v) = call(
        &d,
        "POST",
        &format!("/api/security/azure-key-vaults/{vs0}/rekey-internal?return_timeout=60"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        moto.kms_calls().len(),
        kms_before,
        "an Azure rekey never calls KMS"
    );
    let akv_before = emu.counters();
    let (s, v) = call(
        &d,
        "POST",
        &format!("/api/security/aws-kms/{vs1}/rekey-internal?return_timeout=60"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    let akv_after = emu.counters();
    assert_eq!(
        (akv_after.wraps, akv_after.gets),
        (akv_before.wraps, akv_before.gets),
        "an AWS rekey never calls the vault"
    );
    assert!(
        moto.kms_calls()[kms_before..]
            .iter()
            .any(|c| c == "Encrypt"),
        "the new AWS KEK was wrapped by KMS"
    );
    assert_eq!(
        (socket_read(&d, &k0), socket_read(&d, &k1)),
        (m0.clone(), m1.clone())
    );

    // After a restart, each scope unlocks through its own root of trust.
    drop(d);
    let d = start(dir.path(), &emu, &moto);
    assert_eq!(
        (socket_read(&d, &k0), socket_read(&d, &k1)),
        (m0.clone(), m1.clone())
    );
    assert_eq!(
        (kmip_get(&d, "vs0", &u0), kmip_get(&d, "vs1", &u1)),
        (n0.clone(), n1.clone())
    );
    let (_, v) = call(
        &d,
        "GET",
        &format!("/api/security/aws-kms/{vs1}?fields=amazon_reachability"),
        None,
    );
    assert_eq!(v["amazon_reachability"]["reachable"], true, "{v}");
    let (_, v) = call(
        &d,
        "GET",
        &format!("/api/security/azure-key-vaults/{vs0}?fields=azure_reachability"),
        None,
    );
    assert_eq!(v["azure_reachability"]["reachable"], true, "{v}");

    // A migrate between kinds: vs0's keys leave its Azure configuration for the cluster's AWS
    // KMS one; vs0's Azure configuration, left without keys, can then be deleted, and after a
    // restart every key of vs0 reads back through AWS KMS.
    let (aws_cluster_key, _) = moto.create_key().unwrap();
    let (s, v) = call(
        &d,
        "POST",
        "/api/security/aws-kms?return_records=true",
        Some(
            json!({"region": ekm_aws::testing::REGION, "key_id": aws_cluster_key,
                    "access_key_id": ekm_aws::testing::ACCESS_KEY_ID,
                    "secret_access_key": ekm_aws::testing::CANARY_SECRET}),
        ),
    );
    assert_eq!(s, 201, "{v}");
    let cluster = v["records"][0]["uuid"].as_str().unwrap().to_owned();
    let (s, v) = call(
        &d,
        "POST",
        &format!("/api/security/key-managers/{vs0}/migrate?return_timeout=60"),
        Some(json!({"uuid": cluster})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        listed(&d, "aws-kms", &cluster),
        sorted(vec![k0.clone(), u0.clone()])
    );
    assert!(listed(&d, "azure-key-vaults", &vs0).is_empty());
    let (s, v) = call(
        &d,
        "DELETE",
        &format!("/api/security/azure-key-vaults/{vs0}"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    drop(d);
    let d = start(dir.path(), &emu, &moto);
    let akv_before = emu.counters();
    assert_eq!((socket_read(&d, &k0), kmip_get(&d, "vs0", &u0)), (m0, n0));
    assert_eq!(
        emu.counters().gets,
        akv_before.gets,
        "vs0's keys no longer need the vault"
    );
}
