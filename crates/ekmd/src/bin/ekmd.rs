//! `ekmd serve`: the ekm daemon. See `ekmd serve --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use ekm_core::{Backend, Engine, EngineOptions};
use ekmd::setup::CredentialSource;
use ekmd::{AppState, setup, socket, tls};

#[derive(Parser)]
#[command(
    name = "ekmd",
    version,
    about = "ekm daemon: ONTAP-compatible key manager REST API and data-path socket"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// A local redb file in DATA_DIR/store (one process holds every node of the topology).
    Redb,
    /// A local sled directory in DATA_DIR/store.
    Sled,
    /// A shared etcd cluster: one ekmd per node (--node required), every node given the same
    /// topology and a copy of the protection key.
    Etcd,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up
enum Command {
    /// Serve the REST API (HTTPS by default) and the data-path socket DATA_DIR/ekmd.sock.
    Serve(Box<ServeArgs>),
    /// Issue a KMIP client certificate from the CA under DATA_DIR/kmip/: OUT/client.pem and
    /// OUT/client.key. Its subject CN is OWNER: an SVM name (that SVM's keys) or the cluster's
    /// name (cluster-scope keys), as the topology declares them (any other is refused).
    KmipClientCert {
        /// Data directory of the ekmd whose KMIP CA issues the certificate.
        #[arg(long, default_value = "ekm-data")]
        data_dir: PathBuf,
        /// SVM or cluster name (of the topology).
        #[arg(long)]
        owner: String,
        /// The topology naming the owners (default: the one the KMIP server of DATA_DIR last
        /// started with, DATA_DIR/kmip/topology.toml, else DATA_DIR/topology.toml).
        #[arg(long)]
        topology: Option<PathBuf>,
        /// Directory to write client.pem and client.key into.
        #[arg(long)]
        out: PathBuf,
        /// Validity in days from now (default: without end); negative makes an expired one (tests).
        #[arg(long, hide = true, allow_hyphen_values = true)]
        days: Option<i64>,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Data directory (store, keys, certificates, socket).
    #[arg(long, default_value = "ekm-data")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Topology file (TOML); default: DATA_DIR/topology.toml, written on first start.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Roots of trust served: `fake` (every provider faked, its vault in DATA_DIR/fake-vault.json;
    /// not a root of trust), or real providers comma-separated: `azure`, `aws`, `azure,aws`.
    #[arg(long, default_value = "fake", value_parser = ekmd::backends::parse, value_name = "fake|azure|aws|azure,aws")]
    backend: ekmd::backends::Choice,
    /// Which node this process is (default: the first node of the topology).
    #[arg(long)]
    node: Option<String>,
    /// TLS certificate (PEM); with --tls-key. Default: a self-signed one in DATA_DIR.
    #[arg(long, requires = "tls_key", conflicts_with = "plain_http")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert", conflicts_with = "plain_http")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP (tests, or behind a TLS-terminating proxy on the same host); loopback addresses only.
    #[arg(long)]
    plain_http: bool,
    /// Allow --plain-http on a non-loopback address (passwords then cross the network in clear).
    #[arg(long, requires = "plain_http")]
    plain_http_on_non_loopback: bool,
    /// Admin credentials file (`user:password`); default: EKMD_ADMIN_USER/EKMD_ADMIN_PASSWORD,
    /// else a password generated into DATA_DIR/admin-password for user `admin`.
    #[arg(long)]
    admin_credentials_file: Option<PathBuf>,
    /// Extra CA (PEM) trusted for Azure.
    #[arg(long)]
    azure_ca_file: Option<PathBuf>,
    /// Login authority host for Azure (sovereign clouds, emulators).
    #[arg(long)]
    azure_authority_host: Option<String>,
    /// Pin a host name to an address for Azure traffic, like curl's --resolve.
    #[arg(long, value_name = "HOST=ADDR:PORT")]
    azure_resolve: Vec<String>,
    /// Extra CA (PEM) trusted for AWS endpoints.
    #[arg(long)]
    aws_ca_file: Option<PathBuf>,
    /// Pin a host name to an address for AWS traffic, like curl's --resolve (repeatable).
    #[arg(long, value_name = "HOST=ADDR:PORT")]
    aws_resolve: Vec<String>,
    /// Where the cluster's state lives.
    #[arg(long, value_enum, default_value = "redb")]
    store: StoreKind,
    /// etcd client URLs, comma-separated (with --store etcd).
    #[arg(long, value_delimiter = ',', required_if_eq("store", "etcd"))]
    etcd_endpoints: Vec<String>,
    /// Prefix of every key ekm writes in etcd.
    #[arg(long, default_value = "/ekm/")]
    etcd_prefix: String,
    /// CA (PEM) of the etcd members' certificates (mTLS to etcd, with --etcd-cert and --etcd-key).
    #[arg(long, requires_all = ["etcd_cert", "etcd_key"])]
    etcd_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for etcd.
    #[arg(long, requires_all = ["etcd_ca_file", "etcd_key"])]
    etcd_cert: Option<PathBuf>,
    /// Client key (PEM) for etcd.
    #[arg(long, requires_all = ["etcd_ca_file", "etcd_cert"])]
    etcd_key: Option<PathBuf>,
    /// The key that seals configuration secrets (default DATA_DIR/protection.key, created if
    /// absent). Every node of a cluster is given a copy of the first node's.
    #[arg(long)]
    protection_key_file: Option<PathBuf>,
    /// The fake backend's vault file (default DATA_DIR/fake-vault.json); several nodes on one
    /// machine share one by naming the same file.
    #[arg(long)]
    fake_vault: Option<PathBuf>,
    /// With --store etcd: how often this node checks every configuration's vault (a token, a
    /// key read and a wrap/unwrap probe) for the other nodes' azure_reachability; 0 checks
    /// only at start and when a configuration's credentials, proxy or key change. With any
    /// store: how often a root of trust that missed a KEK generation (mirror_of) catches up.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    backend_probe_interval: u64,
    /// Keys rewrapped per transaction by rekey-internal and migrate (default: the engine's).
    /// Hidden: a tuning knob the process tests use to get many durable steps per job.
    #[arg(long, hide = true, value_name = "N")]
    rekey_batch: Option<usize>,
    /// Most data keys one owner (the cluster, or one SVM) may have; a create past it is refused (REST 65537504, KMIP Permission Denied).
    #[arg(long, value_name = "N", default_value_t = ekm_core::DEFAULT_MAX_KEYS_PER_OWNER)]
    max_keys_per_owner: u64,
    /// Serve KMIP (binary TTLV over mutual TLS) on this address; off without it.
    #[arg(long, value_name = "HOST:PORT")]
    kmip_listen: Option<SocketAddr>,
    /// KMIP server certificate (PEM); with --kmip-server-key and --kmip-client-ca.
    /// Default: a CA and server certificate made under DATA_DIR/kmip/ on first start.
    #[arg(long, requires_all = ["kmip_server_key", "kmip_client_ca", "kmip_listen"])]
    kmip_server_cert: Option<PathBuf>,
    /// KMIP server key (PEM).
    #[arg(long, requires_all = ["kmip_server_cert", "kmip_client_ca"])]
    kmip_server_key: Option<PathBuf>,
    /// CA (PEM) that KMIP client certificates must chain to.
    #[arg(long, requires_all = ["kmip_server_cert", "kmip_server_key"])]
    kmip_client_ca: Option<PathBuf>,
    /// Also serve /metrics over plain HTTP, without authentication, on this address (for a scraper on loopback).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// Audit trail (JSON lines, hash-chained); default: DATA_DIR/audit.log.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Size at which the audit trail rotates to FILE.000001, FILE.000002, ... (the chain continues).
    #[arg(long, default_value_t = ekmd::audit::DEFAULT_MAX_BYTES)]
    audit_max_bytes: u64,
    /// Rotated audit files kept; older ones are deleted at rotation, so the trail takes at most (N + 1) x --audit-max-bytes.
    #[arg(long, value_name = "N", default_value_t = ekmd::audit::DEFAULT_KEEP)]
    audit_keep: usize,
    #[command(flatten)]
    connections: ConnectionFlags,
}

/// The bounds of the TCP listeners (see `crates/ekmd/src/connections.rs`): the defaults keep
/// ekmd's descriptors under a 1,024 open-file limit whatever clients do.
#[derive(clap::Args, Clone, Copy)]
struct ConnectionFlags {
    /// Most REST connections open; when full, the one idle the longest is closed for a new one.
    #[arg(long, value_name = "N", default_value_t = ekmd::connections::DEFAULT_MAX_CONNECTIONS)]
    rest_max_connections: usize,
    /// Seconds a REST connection may stay without a byte moved before it is closed (above the 130 s request timeout).
    #[arg(long, value_name = "SECS", default_value_t = 150)]
    rest_idle_timeout: u64,
    /// Seconds a REST client has to complete its TLS handshake.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    rest_handshake_timeout: u64,
    /// Most KMIP connections open; when full, the one idle the longest is closed for a new one.
    #[arg(long, value_name = "N", default_value_t = ekmd::connections::DEFAULT_MAX_CONNECTIONS)]
    kmip_max_connections: usize,
    /// Most KMIP connections open with one client certificate (its subject CN).
    #[arg(long, value_name = "N", default_value_t = ekmd::kmip::DEFAULT_MAX_PER_CLIENT)]
    kmip_max_connections_per_client: usize,
    /// Seconds a KMIP connection may stay without a byte moved before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = ekmd::kmip::DEFAULT_IDLE_TIMEOUT.as_secs())]
    kmip_idle_timeout: u64,
    /// Seconds a KMIP client has to complete its TLS handshake.
    #[arg(long, value_name = "SECS", default_value_t = ekmd::kmip::DEFAULT_HANDSHAKE_TIMEOUT.as_secs())]
    kmip_handshake_timeout: u64,
}

fn main() -> std::process::ExitCode {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("EKMD_LOG").unwrap_or_else(|_| "info".into());
    // EKMD_LOG_FORMAT=json: one JSON object a line; anything else: human-readable lines.
    if std::env::var("EKMD_LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let command = Cli::parse().command;
    if let Command::KmipClientCert {
        data_dir,
        owner,
        topology,
        out,
        days,
    } = &command
    {
        return match known_owner(
            ekmd::kmip::owners_topology(data_dir, topology.as_deref()),
            owner,
        )
        .and_then(|()| ekmd::kmip::write_client_cert(data_dir, owner, out, *days))
        {
            Ok(()) => {
                println!(
                    "wrote {} and {}",
                    out.join("client.pem").display(),
                    out.join("client.key").display()
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ekmd: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let Command::Serve(args) = command else {
        return std::process::ExitCode::FAILURE;
    };
    let ServeArgs {
        data_dir,
        listen,
        topology,
        backend,
        node,
        tls_cert,
        tls_key,
        plain_http,
        plain_http_on_non_loopback,
        admin_credentials_file,
        azure_ca_file,
        azure_authority_host,
        azure_resolve,
        aws_ca_file,
        aws_resolve,
        store: store_kind,
        etcd_endpoints,
        etcd_prefix,
        etcd_ca_file,
        etcd_cert,
        etcd_key,
        protection_key_file,
        fake_vault,
        backend_probe_interval,
        rekey_batch,
        max_keys_per_owner,
        kmip_listen,
        kmip_server_cert,
        kmip_server_key,
        kmip_client_ca,
        metrics_listen,
        audit_log,
        audit_max_bytes,
        audit_keep,
        connections,
    } = *args;
    let result = (|| -> Result<(), String> {
        if plain_http && !listen.ip().is_loopback() && !plain_http_on_non_loopback {
            return Err(format!(
                "--plain-http on {listen}, which is not a loopback address: the admin password would cross the network in clear. Listen on 127.0.0.1 or ::1, use HTTPS, or add --plain-http-on-non-loopback"
            ));
        }
        setup::data_dir(&data_dir)?;
        let topology_file = topology;
        let topology = setup::topology(&data_dir, topology_file.as_deref())?;
        if store_kind == StoreKind::Etcd && node.is_none() {
            return Err(
                "--store etcd needs --node NAME: which node of the topology this process is".into(),
            );
        }
        let local = match &node {
            Some(name) => topology
                .node_by_name(name)
                .ok_or_else(|| {
                    let known: Vec<&str> = topology.nodes.iter().map(|n| n.name.as_str()).collect();
                    format!(
                        "--node {name}: not a node of the topology ({}); its nodes: {}",
                        topology_path(&data_dir, topology_file.as_deref()).display(),
                        known.join(", ")
                    )
                })?
                .clone(),
            None => topology.nodes[0].clone(),
        };
        let (user, password, source) =
            setup::admin_credentials(&data_dir, admin_credentials_file.as_deref())?;
        let vault = fake_vault.unwrap_or_else(|| data_dir.join("fake-vault.json"));
        if backend == ekmd::backends::Choice::Fake {
            eprintln!(
                "ekmd: warning: --backend fake: no external root of trust is in use (the fake vault's keys sit in {}); for tests and trials only",
                vault.display()
            );
        }
        let endpoints = ekmd::backends::Endpoints {
            azure_ca_file,
            azure_authority_host,
            azure_resolve,
            aws_ca_file,
            aws_resolve,
        };
        let backend = ekmd::backends::build(&backend, &endpoints, &vault)?;
        let metrics = ekmd::metrics::Metrics::new();
        let backend: Arc<dyn Backend> =
            Arc::new(ekmd::metrics::MeteredBackend::new(backend, metrics.clone()));
        let audit_path = audit_log.unwrap_or_else(|| data_dir.join("audit.log"));
        let audit = Arc::new(
            ekmd::audit::AuditLog::open(&audit_path, &local.name, audit_max_bytes)?
                .with_keep(audit_keep)
                .with_metrics(metrics.clone()),
        );
        audit.summarize_logins_every(std::time::Duration::from_secs(5));
        let store: Arc<dyn ekm_core::Store> = match store_kind {
            StoreKind::Redb | StoreKind::Sled => {
                let kind = if store_kind == StoreKind::Redb {
                    ekm_store::StoreKind::Redb
                } else {
                    ekm_store::StoreKind::Sled
                };
                ekm_store::open(kind, &data_dir.join("store")).map_err(|e| e.to_string())?
            }
            StoreKind::Etcd => {
                let mut o = ekm_etcd::EtcdOptions::new(etcd_endpoints.clone());
                o.prefix = etcd_prefix.clone().into_bytes();
                o.observer = Some(metrics.etcd_observer());
                if let (Some(ca), Some(cert), Some(key)) = (etcd_ca_file, etcd_cert, etcd_key) {
                    o.tls = Some(ekm_etcd::EtcdTls { ca, cert, key });
                }
                ekm_etcd::EtcdStore::open(o)
                    .map_err(|e| format!("etcd {}: {e}", etcd_endpoints.join(",")))?
            }
        };
        let pk_file = protection_key_file.unwrap_or_else(|| data_dir.join("protection.key"));
        let pk = ekm_store::protection_key::load_or_create(&pk_file)
            .map_err(|e| format!("protection key {}: {e}", pk_file.display()))?;
        let mut options = EngineOptions::new(store, backend, topology.clone(), pk)
            .local_node(local.uuid)
            .job_retry_budget(std::time::Duration::from_secs(300))
            .max_keys_per_owner(max_keys_per_owner);
        if let Some(n) = rekey_batch {
            options = options.rekey_batch(n);
        }
        options =
            options.backend_probe_interval(std::time::Duration::from_secs(backend_probe_interval));
        if store_kind == StoreKind::Etcd {
            // One process per node: this one holds its own node's key table only.
            options = options.managed_nodes(vec![local.uuid]);
        }
        let engine = Engine::open(options).map_err(|e| {
            if e.kind() == ekm_core::ErrorKind::CorruptRecord
                && e.message().contains("protection key file does not match")
            {
                format!("{}: {e}", pk_file.display())
            } else {
                e.to_string()
            }
        })?;
        let state = AppState::with_metrics(engine.clone(), user.clone(), password, metrics)
            .with_audit(audit.clone());
        ekmd::audit::watch_unfinished_jobs(&engine, &audit);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(serve(
            state,
            &data_dir,
            listen,
            plain_http,
            tls_cert.zip(tls_key),
            metrics_listen,
            &local.name,
            &user,
            source,
            kmip_listen.map(|addr| {
                let given = match (kmip_server_cert, kmip_server_key, kmip_client_ca) {
                    (Some(server_cert), Some(server_key), Some(client_ca)) => {
                        Some(ekmd::kmip::PkiFiles {
                            server_cert,
                            server_key,
                            client_ca,
                        })
                    }
                    _ => None,
                };
                (addr, given)
            }),
            connections,
        ))?;
        engine.shutdown();
        tracing::info!("stopped; running jobs resume at the next start");
        Ok(())
    })();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ekmd: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The topology file ekmd reads: `--topology`, else DATA_DIR/topology.toml.
fn topology_path(data_dir: &std::path::Path, file: Option<&std::path::Path>) -> PathBuf {
    file.map_or_else(|| data_dir.join("topology.toml"), PathBuf::from)
}

/// Refuses a KMIP client certificate for an `owner` the topology at `path` does not name (the
/// cluster or an SVM; any other is refused at first use), listing the valid owners.
fn known_owner(path: PathBuf, owner: &str) -> Result<(), String> {
    let t = ekm_store::topology_file::load(&path)
        .map_err(|e| format!("--owner {owner}: {e} (the topology names the owners: pass --topology FILE as ekmd serve has it, or start ekmd serve --kmip-listen once)"))?;
    if t.cluster.name == owner || t.svms.iter().any(|s| s.name == owner) {
        return Ok(());
    }
    let svms: String = t.svms.iter().map(|s| format!(", {}", s.name)).collect();
    Err(format!(
        "--owner {owner}: not the cluster's name or an SVM of the topology ({}); valid owners: {} (the cluster){svms}",
        path.display(),
        t.cluster.name
    ))
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    state: AppState,
    data_dir: &std::path::Path,
    listen: SocketAddr,
    plain_http: bool,
    tls_files: Option<(PathBuf, PathBuf)>,
    metrics_listen: Option<SocketAddr>,
    node: &str,
    user: &str,
    source: CredentialSource,
    kmip: Option<(SocketAddr, Option<ekmd::kmip::PkiFiles>)>,
    bounds: ConnectionFlags,
) -> Result<(), String> {
    let secs = std::time::Duration::from_secs;
    let engine = state.engine.clone();
    let kmip_task = match kmip {
        None => None,
        Some((addr, given)) => {
            let files = ekmd::kmip::ensure_pki(data_dir, given, &addr.ip().to_string())?;
            ekmd::kmip::record_served_topology(data_dir, engine.topology())?;
            let probe = Arc::new(ekmd::kmip::ProbeIdentity::new()?);
            let config = ekmd::kmip::server_config(&files, Some(&probe))?;
            let own_cert = ekmd::kmip::own_certificate(&files)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("--kmip-listen {addr}: {e}"))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            announce(&format!(
                "ekmd KMIP listening on {bound} (mutual TLS; client CA {})",
                files.client_ca.display()
            ));
            let server = ekm_kmip::Server::new(state.engine.clone());
            let reporting = ekmd::kmip::Reporting {
                metrics: state.metrics.clone(),
                audit: state.audit.clone(),
            };
            // Not answering until the first probe says otherwise.
            state
                .engine
                .set_kmip_server(ekm_core::KmipServerState::NotAnswering(
                    "not probed yet (the listener is starting)".into(),
                ));
            let limits = ekmd::kmip::Limits {
                connections: ekmd::connections::Limiter::new(
                    "kmip",
                    bounds.kmip_max_connections,
                    secs(bounds.kmip_idle_timeout),
                    Some(state.metrics.clone()),
                ),
                per_client: bounds.kmip_max_connections_per_client.max(1),
                handshake: secs(bounds.kmip_handshake_timeout),
            };
            let serving = tokio::spawn(ekmd::kmip::serve(
                listener, config, server, reporting, limits,
            ));
            let watching = tokio::spawn(ekmd::kmip::watch(
                state.engine.clone(),
                ekmd::kmip::probe_address(bound),
                own_cert,
                probe,
            ));
            Some((serving, watching))
        }
    };
    // Unlock every node's KEKs in the background, as a rebooted node does; failures show in status.
    tokio::task::spawn_blocking(move || {
        for (node, err) in engine.unlock_all() {
            tracing::warn!(
                node,
                code = err.code(),
                "KEK not unlocked: {}",
                err.message()
            );
        }
    });
    let handle = axum_server::Handle::new();
    let app = ekmd::router(state.clone());
    let scheme = if plain_http { "http" } else { "https" };
    let rest_limit = ekmd::connections::Limiter::new(
        "rest",
        bounds.rest_max_connections,
        secs(bounds.rest_idle_timeout),
        Some(state.metrics.clone()),
    );
    rest_limit.start_sweeper();
    let limit = ekmd::connections::LimitAcceptor::new(rest_limit);
    let server = if plain_http {
        tokio::spawn(
            axum_server::bind(listen)
                .acceptor(limit)
                .handle(handle.clone())
                .serve(app.into_make_service_with_connect_info::<SocketAddr>()),
        )
    } else {
        let (cert, key) = tls::ensure_cert(data_dir, tls_files, &listen.ip().to_string())?;
        let config = tls::server_config(&cert, &key)?;
        let tls = axum_server::tls_rustls::RustlsAcceptor::new(
            axum_server::tls_rustls::RustlsConfig::from_config(config),
        )
        .handshake_timeout(secs(bounds.rest_handshake_timeout))
        .acceptor(limit);
        tokio::spawn(
            axum_server::bind(listen)
                .acceptor(tls)
                .handle(handle.clone())
                .serve(app.into_make_service_with_connect_info::<SocketAddr>()),
        )
    };
    let bound = handle
        .listening()
        .await
        .ok_or("the REST listener did not start (address in use?)")?;
    let metrics_url = match metrics_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("--metrics-listen {addr}: {e}"))?;
            let bound = l.local_addr().map_err(|e| e.to_string())?;
            let app = ekmd::metrics::router(state.clone());
            tokio::spawn(async move { axum::serve(l, app).await });
            format!("; metrics on http://{bound}/metrics")
        }
        None => String::new(),
    };
    let sock_path = data_dir.join("ekmd.sock");
    let sock = socket::bind(&sock_path).map_err(|e| format!("{}: {e}", sock_path.display()))?;
    let sock_app = socket::router(state);
    let sock_task = tokio::spawn(async move { axum::serve(sock, sock_app).await });
    let login = match source {
        CredentialSource::Environment => {
            "the credentials in EKMD_ADMIN_USER / EKMD_ADMIN_PASSWORD".to_owned()
        }
        CredentialSource::File(f) => format!("the credentials in {}", f.display()),
        CredentialSource::Generated(f) => {
            format!("user {user} with the password in {}", f.display())
        }
    };
    announce(&format!(
        "ekmd listening on {scheme}://{bound} as node {node}; log in with {login}; data-path socket {}{metrics_url}",
        sock_path.display()
    ));
    tracing::info!(%bound, node, "ekmd started");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    handle.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    let _ = server.await;
    sock_task.abort();
    if let Some((serving, watching)) = kmip_task {
        watching.abort();
        serving.abort();
    }
    let _ = std::fs::remove_file(&sock_path);
    Ok(())
}

/// Prints a start-up line on stdout. A supervisor that read the line it waited for and closed
/// the pipe must not bring the daemon down: a failed write is ignored (`println!` would panic).
fn announce(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
