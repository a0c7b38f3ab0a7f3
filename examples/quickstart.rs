//! Quick start: an ekm key hierarchy on the embedded default (fake backend, redb store) in
//! `./ekm-data`. Creates a cluster configuration and an SVM configuration, creates data keys,
//! reopens the store as a restarted node would, reads every key back, and prints the
//! configurations and the key lists. Safe to run again: it reuses the configurations and adds
//! six more keys (it says so). Run it while ekmd is stopped: they share DATA_DIR's store.
//!
//! ```text
//! cargo run --release --example quickstart [-- DATA_DIR]
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use ekm::core::{
    CreateRequest, Engine, EngineOptions, ErrorKind, KeyOwner, KeyTag, StatusFields, Topology,
};
use ekm::fake::FakeBackend;
use ekm::store::{StoreKind, protection_key};

/// The same topology ekmd uses: `DATA_DIR/topology.toml`, written with defaults (cluster1,
/// node1, vs0) on first use.
fn topology(dir: &std::path::Path) -> Result<Topology, Box<dyn std::error::Error>> {
    use ekm::store::topology_file;
    Ok(topology_file::load_or_create(
        &topology_file::default_path(dir),
    )?)
}

fn open(
    dir: &std::path::Path,
) -> Result<(Arc<Engine>, Arc<FakeBackend>), Box<dyn std::error::Error>> {
    let store = ekm::store::open(StoreKind::Redb, &dir.join("store")).map_err(|e| {
        let e = e.to_string();
        if e.contains("already open") || e.contains("lock") {
            format!(
                "the store {} is in use by another process, most likely an ekmd serving --data-dir {}: stop it (Ctrl-C or SIGTERM) and run the quick start again, or give the quick start another directory (cargo run --example quickstart -- DIR)",
                dir.join("store").display(),
                dir.display()
            )
        } else {
            format!("cannot open the store in {}: {e}", dir.display())
        }
    })?;
    let fake = Arc::new(FakeBackend::open(&dir.join("fake-vault.json"))?);
    let protection_key = protection_key::load_or_create(&dir.join("protection.key"))?;
    let engine = Engine::open(EngineOptions::new(
        store,
        fake.clone(),
        topology(dir)?,
        protection_key,
    ))?;
    Ok((engine, fake))
}

/// Creates the configuration unless the scope has one already.
fn ensure(engine: &Engine, body: &str) -> Result<(), Box<dyn std::error::Error>> {
    match engine.create_config(CreateRequest::from_json(body.as_bytes())?) {
        Ok(cfg) => println!("created {} configuration {}", cfg.scope.as_str(), cfg.uuid),
        Err(e) if e.kind() == ErrorKind::AlreadyConfigured => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Prints a failure as one sentence (`quickstart: ...`), not as Rust's debug form.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The data keys of every configuration.
fn key_count(engine: &Engine) -> Result<usize, Box<dyn std::error::Error>> {
    let mut n = 0;
    for cfg in engine.list_configs()? {
        n += engine.list_data_keys(cfg.uuid)?.len();
    }
    Ok(n)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "ekm-data".into());
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let key_id = "https://myvault.vault.azure.net/keys/kek1/a8e619fd8f234db3b0b95c59540e2a74";
    let mut created = Vec::new();
    {
        let (engine, fake) = open(&dir)?;
        let before = key_count(&engine)?;
        if before > 0 {
            println!(
                "re-run: the store in {} already had {before} data keys; adding 6 more (tags are not unique: each run adds root-vol-0..2 and vs0-vol1-0..2 again)",
                dir.display()
            );
        }
        ensure(
            &engine,
            &format!(
                r#"{{"client_id":"client1","tenant_id":"tenant1","name":"https://myvault.vault.azure.net/","key_id":"{key_id}","client_secret":"quickstart-secret"}}"#
            ),
        )?;
        ensure(
            &engine,
            &format!(
                r#"{{"svm":{{"name":"vs0"}},"client_id":"client1","tenant_id":"tenant1","name":"https://myvault.vault.azure.net/","key_id":"{key_id}","client_secret":"quickstart-secret"}}"#
            ),
        )?;
        for (owner, tag) in [
            (KeyOwner::Cluster, "root-vol"),
            (KeyOwner::Svm(topology(&dir)?.svms[0].uuid), "vs0-vol1"),
        ] {
            for i in 0..3 {
                let id = engine.create_data_key(owner, KeyTag::parse(&format!("{tag}-{i}"))?)?;
                created.push((id, engine.read_data_key(&id)?));
            }
        }
        let c = fake.counters();
        println!(
            "created {} data keys; backend calls so far: {} wraps, {} unwraps, {} checks",
            created.len(),
            c.wraps,
            c.unwraps,
            c.checks
        );
    }
    // Reopen, as a rebooted node would: one backend unwrap per scope, then reads from memory.
    let (engine, fake) = open(&dir)?;
    for (id, material) in &created {
        if &engine.read_data_key(id)? != material {
            return Err(format!("key {id} did not read back bit-identical").into());
        }
    }
    let c = fake.counters();
    println!(
        "reopened {}: all {} new keys read back bit-identical; backend calls after reopen: {} wraps, {} unwraps",
        dir.display(),
        created.len(),
        c.wraps,
        c.unwraps
    );
    // A restarted node unlocks its KEKs (one backend unwrap per scope), then reports status.
    for (node, err) in engine.unlock_all() {
        println!("node {node} could not unlock a KEK: {err}");
    }
    for cfg in engine.list_configs()? {
        let cfg = engine.get_config_with_status(cfg.uuid, StatusFields::all())?;
        let scope = match &cfg.svm {
            Some(svm) => format!("SVM {}", svm.name()),
            None => "the cluster".to_owned(),
        };
        println!("\nkey manager {} for {scope}", cfg.uuid);
        println!("  vault       {}", cfg.name.as_str());
        println!("  key id      {}", cfg.key_id);
        println!("  auth        {}", cfg.authentication_method.as_str());
        if let Some(st) = &cfg.state {
            println!(
                "  KEK         {}",
                if st.available {
                    "available on every node".to_owned()
                } else {
                    format!("not available ({}): {}", st.code, st.message)
                }
            );
        }
        if let Some(r) = &cfg.azure_reachability {
            println!(
                "  backend     {}",
                if r.reachable {
                    "reachable".to_owned()
                } else {
                    format!("unreachable ({}): {}", r.code, r.message)
                }
            );
        }
        for n in cfg.ekmip_reachability.iter().flatten() {
            println!(
                "  node {:<6} {}",
                n.node.name,
                if n.reachable {
                    "keys served".to_owned()
                } else {
                    format!("not serving ({}): {}", n.code, n.message)
                }
            );
        }
        for usage in engine.kek_usage(cfg.uuid)? {
            println!(
                "  KEK g{} ({}): {} seals (data keys wrapped under this generation; an upper bound, counted in steps of 64) of the 2^31 = {} advised before a rekey-internal{}",
                usage.generation,
                usage.state,
                usage.seals,
                usage.seal_limit,
                if usage.rekey_advised {
                    ": rekey-internal now"
                } else {
                    ""
                }
            );
        }
        let keys = engine.list_data_keys(cfg.uuid)?;
        println!("  data keys   {}", keys.len());
        println!("    {:<64}  {:<12}  {:<6}  KEK", "KEY ID", "TAG", "SVM");
        for k in keys.iter().take(5) {
            let svm = k
                .svm_uuid
                .and_then(|u| {
                    engine
                        .topology()
                        .svm_by_uuid(u)
                        .map(|s| s.name().to_owned())
                })
                .unwrap_or_else(|| "-".to_owned());
            println!(
                "    {:<64}  {:<12}  {:<6}  g{}",
                k.key_id.to_hex(),
                k.key_tag.as_str(),
                svm,
                k.kek_generation
            );
        }
        if keys.len() > 5 {
            println!("    ... and {} more", keys.len() - 5);
        }
    }
    Ok(())
}
