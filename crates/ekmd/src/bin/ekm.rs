//! `ekm`: the command line of ekmd, mirroring ONTAP's `security key-manager external azure`
//! commands. Tables for people, `--json` for scripts.
//!
//! Exit codes: 0 success; 1 ekmd refused the request (its ONTAP code and message are printed);
//! 2 usage error; 3 ekmd unreachable; 4 a waited-for job failed.

use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "ekm",
    version,
    about = "Manage ekm key managers over ekmd's REST API"
)]
struct Cli {
    /// ekmd's URL.
    #[arg(
        long,
        env = "EKM_URL",
        default_value = "https://127.0.0.1:8443",
        global = true
    )]
    url: String,
    /// Admin user.
    #[arg(long, env = "EKM_USER", default_value = "admin", global = true)]
    user: String,
    /// Admin password (prefer EKM_PASSWORD or --password-file: argv is visible to other users).
    #[arg(long, env = "EKM_PASSWORD", hide_env_values = true, global = true)]
    password: Option<String>,
    /// File holding the admin password (e.g. ekm-data/admin-password); "-" reads it from stdin.
    #[arg(long, global = true, value_name = "FILE|-")]
    password_file: Option<std::path::PathBuf>,
    /// CA (PEM) to trust for ekmd's certificate (e.g. ekm-data/tls-cert.pem).
    #[arg(long, global = true)]
    ca_file: Option<std::path::PathBuf>,
    /// Accept any certificate (self-signed test set-ups only).
    #[arg(long, global = true)]
    insecure: bool,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Target {
    /// The SVM whose key manager to act on; omit for the cluster's.
    #[arg(long)]
    vserver: Option<String>,
    /// The key manager's uuid (instead of --vserver).
    #[arg(long, conflicts_with = "vserver")]
    uuid: Option<String>,
}

#[derive(Args, Clone, Default)]
struct Credentials {
    /// Client secret of the Azure application (prefer --client-secret-file).
    #[arg(long)]
    client_secret: Option<String>,
    /// File holding the client secret; "-" reads it from stdin.
    #[arg(long, value_name = "FILE|-", conflicts_with = "client_secret")]
    client_secret_file: Option<std::path::PathBuf>,
    /// PKCS#12 (.pfx) client certificate file, instead of a client secret.
    #[arg(long, conflicts_with_all = ["client_secret", "client_secret_file"])]
    client_certificate_file: Option<std::path::PathBuf>,
    /// Password of the PKCS#12 file (prefer --client-certificate-password-file).
    #[arg(long, requires = "client_certificate_file")]
    client_certificate_password: Option<String>,
    /// File holding the password of the PKCS#12 file; "-" reads it from stdin.
    #[arg(
        long,
        value_name = "FILE|-",
        requires = "client_certificate_file",
        conflicts_with = "client_certificate_password"
    )]
    client_certificate_password_file: Option<std::path::PathBuf>,
}

#[derive(Args, Clone, Default)]
struct Proxy {
    /// Proxy type towards Azure: http or https.
    #[arg(long)]
    proxy_type: Option<String>,
    /// Proxy host ("" removes the proxy).
    #[arg(long)]
    proxy_host: Option<String>,
    /// Proxy port.
    #[arg(long)]
    proxy_port: Option<u16>,
    /// Proxy user name.
    #[arg(long)]
    proxy_username: Option<String>,
    /// Proxy password (prefer --proxy-password-file).
    #[arg(long)]
    proxy_password: Option<String>,
    /// File holding the proxy password; "-" reads it from stdin.
    #[arg(long, value_name = "FILE|-", conflicts_with = "proxy_password")]
    proxy_password_file: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Configure AKV for the cluster or an SVM.
    Enable {
        #[command(flatten)]
        target: Target,
        /// Application (client) id of the Azure application.
        #[arg(long)]
        client_id: String,
        /// Directory (tenant) id of the Azure application.
        #[arg(long)]
        tenant_id: String,
        /// Vault URI, e.g. https://myvault.vault.azure.net/.
        #[arg(long)]
        name: String,
        /// Versioned key id: https://VAULT/keys/NAME/VERSION.
        #[arg(long)]
        key_id: String,
        #[command(flatten)]
        credentials: Credentials,
        #[command(flatten)]
        proxy: Proxy,
    },
    /// Show key manager configurations.
    Show {
        #[command(flatten)]
        target: Target,
    },
    /// Show KEK availability, AKV reachability and per-node status.
    Check {
        #[command(flatten)]
        target: Target,
    },
    /// Change proxy settings.
    UpdateConfig {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        proxy: Proxy,
    },
    /// Change the client id, tenant id, secret or certificate.
    UpdateCredentials {
        #[command(flatten)]
        target: Target,
        /// New application (client) id.
        #[arg(long)]
        client_id: Option<String>,
        /// New directory (tenant) id.
        #[arg(long)]
        tenant_id: Option<String>,
        #[command(flatten)]
        credentials: Credentials,
    },
    /// New KEK generation; rewrap every data key.
    RekeyInternal {
        #[command(flatten)]
        target: Target,
        /// Wait for the job to end, showing its progress.
        #[arg(long)]
        wait: bool,
    },
    /// Rewrap the KEK with another AKV key.
    RekeyExternal {
        #[command(flatten)]
        target: Target,
        /// The new versioned key id.
        #[arg(long)]
        key_id: String,
        /// Wait for the job to end, showing its progress.
        #[arg(long)]
        wait: bool,
    },
    /// Load the KEK and keys on nodes that lack them.
    Restore {
        #[command(flatten)]
        target: Target,
        /// Wait for the job to end, showing its progress.
        #[arg(long)]
        wait: bool,
    },
    /// Remove a key manager configuration (refused while it protects keys).
    Disable {
        #[command(flatten)]
        target: Target,
    },
    /// Data keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a data key.
    Create {
        #[command(flatten)]
        target: Target,
        /// Key tag (e.g. the volume's name).
        #[arg(long, default_value = "")]
        tag: String,
        /// For an SVM without its own key manager, on the cluster's.
        #[arg(long)]
        svm: Option<String>,
    },
    /// List data keys (never material).
    Query {
        #[command(flatten)]
        target: Target,
    },
}

enum Failure {
    Api(String),
    Unreachable(String),
    Usage(String),
    Job(String),
}

struct Client {
    http: reqwest::blocking::Client,
    url: String,
    user: String,
    password: String,
}

impl Client {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url.trim_end_matches('/')))
            .basic_auth(&self.user, Some(&self.password));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().map_err(|e| {
            if certificate_not_trusted(&e) {
                Failure::Unreachable(format!(
                    "certificate not trusted: pass --ca-file DATA_DIR/tls-cert.pem (ekmd at {} presented a certificate no trusted CA signed)",
                    self.url
                ))
            } else {
                Failure::Unreachable(format!("cannot reach ekmd at {}: {e}", self.url))
            }
        })?;
        let status = resp.status();
        let v: Value = resp.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        let code = v["error"]["code"].as_str().unwrap_or("?").to_owned();
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or(status.as_str())
            .to_owned();
        Err(Failure::Api(format!(
            "Error: {msg} (code {code}, HTTP {})",
            status.as_u16()
        )))
    }

    fn uuid(&self, t: &Target) -> Result<String, Failure> {
        if let Some(u) = &t.uuid {
            return Ok(u.clone());
        }
        let list = self.call(
            reqwest::Method::GET,
            "/api/security/azure-key-vaults?fields=scope,svm",
            None,
        )?;
        let records = list["records"].as_array().cloned().unwrap_or_default();
        let found = records.iter().find(|r| match &t.vserver {
            Some(v) => r["svm"]["name"] == v.as_str(),
            None => r["scope"] == "cluster",
        });
        found
            .and_then(|r| r["uuid"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                Failure::Api(match &t.vserver {
                    Some(v) => format!(
                        "Error: Azure Key Vault is not configured for SVM \"{v}\" (code 65537120)."
                    ),
                    None => {
                        "Error: Azure Key Vault is not configured for the cluster (code 65537120)."
                            .into()
                    }
                })
            })
    }

    /// Polls the job until it ends, showing its progress on stderr: a progress bar (done/total
    /// and rate) on a terminal, else one line whenever the state or count changes.
    fn wait(&self, job: &Value) -> Result<Value, Failure> {
        let href = job["job"]["_links"]["self"]["href"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let uuid = s(&job["job"]["uuid"]);
        let mut progress = Progress::new(&uuid);
        loop {
            let j = self.call(reqwest::Method::GET, &href, None)?;
            progress.show(&j);
            match j["state"].as_str() {
                Some("success") => {
                    progress.finish();
                    return Ok(j);
                }
                Some("failure") => {
                    progress.finish();
                    return Err(Failure::Job(format!(
                        "Job failed: {} (code {})",
                        j["message"].as_str().unwrap_or(""),
                        j["code"]
                    )));
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

/// Whether a request failed because ekmd's certificate is not trusted (self-signed without
/// --ca-file, or another CA).
fn certificate_not_trusted(e: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(rustls::Error::InvalidCertificate(_)) = err.downcast_ref::<rustls::Error>() {
            return true;
        }
        // An io::Error's source() skips the error it wraps: step into it instead.
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|i| i as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

/// A waited-for job's progress on stderr.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    uuid: String,
    last: Option<(String, u64, u64)>,
}

impl Progress {
    fn new(uuid: &str) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} job {prefix} [{bar:30}] {pos}/{len} ({per_sec}, {elapsed}) {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(uuid.to_owned());
            b
        });
        Progress {
            bar,
            uuid: uuid.to_owned(),
            last: None,
        }
    }

    fn show(&mut self, j: &Value) {
        let state = s(&j["state"]);
        let done = j["progress"]["processed"].as_u64().unwrap_or(0);
        let total = j["progress"]["total"].as_u64().unwrap_or(0);
        match &self.bar {
            Some(b) => {
                b.set_length(total);
                b.set_position(done);
                b.set_message(state);
            }
            None => {
                let now = (state, done, total);
                if self.last.as_ref() != Some(&now) {
                    eprintln!("job {}: {} {}/{}", self.uuid, now.0, now.1, now.2);
                    self.last = Some(now);
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

static STDIN_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A secret from a `--...-file` flag: the file's content, or stdin's for `-`, without its
/// trailing newline. Only one flag may read stdin.
fn read_secret(path: &std::path::Path) -> Result<String, Failure> {
    use std::io::Read;
    let mut text = if path.as_os_str() == "-" {
        if STDIN_TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(Failure::Usage(
                "only one secret can be read from stdin (\"-\")".into(),
            ));
        }
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .map_err(|e| Failure::Usage(format!("stdin: {e}")))?;
        t
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?
    };
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// A secret given on the command line or, through its `--...-file` flag, in a file or stdin.
fn secret(
    inline: &Option<String>,
    file: &Option<std::path::PathBuf>,
) -> Result<Option<String>, Failure> {
    match (inline, file) {
        (Some(s), _) => Ok(Some(s.clone())),
        (None, Some(f)) => read_secret(f).map(Some),
        (None, None) => Ok(None),
    }
}

fn credentials_json(c: &Credentials, body: &mut Value) -> Result<(), Failure> {
    if let Some(s) = secret(&c.client_secret, &c.client_secret_file)? {
        body["client_secret"] = json!(s);
    }
    if let Some(f) = &c.client_certificate_file {
        let der = std::fs::read(f).map_err(|e| Failure::Usage(format!("{}: {e}", f.display())))?;
        body["client_certificate"] = json!(base64::engine::general_purpose::STANDARD.encode(der));
    }
    if let Some(p) = secret(
        &c.client_certificate_password,
        &c.client_certificate_password_file,
    )? {
        body["client_certificate_password"] = json!(p);
    }
    Ok(())
}

fn proxy_json(p: &Proxy, body: &mut Value) -> Result<(), Failure> {
    for (k, v) in [
        ("proxy_type", &p.proxy_type),
        ("proxy_host", &p.proxy_host),
        ("proxy_username", &p.proxy_username),
    ] {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    if let Some(v) = secret(&p.proxy_password, &p.proxy_password_file)? {
        body["proxy_password"] = json!(v);
    }
    if let Some(port) = p.proxy_port {
        body["proxy_port"] = json!(port);
    }
    Ok(())
}

fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:w$}", c, w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        line(r.clone());
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let password = match (&cli.password, &cli.password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => read_secret(f)?.trim().to_owned(),
        (None, None) => {
            return Err(Failure::Usage(
                "give --password, EKM_PASSWORD or --password-file".into(),
            ));
        }
    };
    let mut b = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(150))
        .no_proxy();
    if let Some(ca) = &cli.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| Failure::Usage(format!("{}: {e}", ca.display())))?;
        for c in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Failure::Usage(e.to_string()))?
        {
            b = b.add_root_certificate(c);
        }
    }
    if cli.insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    let c = Client {
        http: b.build().map_err(|e| Failure::Usage(e.to_string()))?,
        url: cli.url.clone(),
        user: cli.user.clone(),
        password,
    };
    let json_out = cli.json;
    let print = |v: &Value| println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    use reqwest::Method as M;
    let base = "/api/security/azure-key-vaults";
    match cli.command {
        Command::Enable {
            target,
            client_id,
            tenant_id,
            name,
            key_id,
            credentials,
            proxy,
        } => {
            let mut body = json!({"client_id": client_id, "tenant_id": tenant_id, "name": name, "key_id": key_id});
            if let Some(v) = &target.vserver {
                body["svm"] = json!({"name": v});
            }
            credentials_json(&credentials, &mut body)?;
            proxy_json(&proxy, &mut body)?;
            let r = c.call(M::POST, &format!("{base}?return_records=true"), Some(body))?;
            if json_out {
                print(&r)
            } else {
                println!("Key manager {} configured.", s(&r["records"][0]["uuid"]))
            }
        }
        Command::Show { target } => {
            let list = c.call(M::GET, &format!("{base}?fields=*"), None)?;
            let mut records = list["records"].as_array().cloned().unwrap_or_default();
            if target.vserver.is_some() || target.uuid.is_some() {
                let u = c.uuid(&target)?;
                records.retain(|r| r["uuid"] == u.as_str());
            }
            if json_out {
                print(&json!({"records": records, "num_records": records.len()}));
            } else {
                let rows: Vec<Vec<String>> = records
                    .iter()
                    .map(|r| {
                        vec![
                            if r["scope"] == "svm" {
                                s(&r["svm"]["name"])
                            } else {
                                "(cluster)".into()
                            },
                            s(&r["uuid"]),
                            s(&r["client_id"]),
                            s(&r["tenant_id"]),
                            s(&r["name"]),
                            s(&r["key_id"]),
                            s(&r["authentication_method"]),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "Vserver",
                        "UUID",
                        "Client ID",
                        "Tenant ID",
                        "Vault",
                        "Key ID",
                        "Auth",
                    ],
                    &rows,
                );
            }
        }
        Command::Check { target } => {
            let u = c.uuid(&target)?;
            let r = c.call(
                M::GET,
                &format!("{base}/{u}?fields=state,azure_reachability,ekmip_reachability"),
                None,
            )?;
            if json_out {
                print(&r);
            } else {
                println!(
                    "KEK available on all nodes: {} {}",
                    s(&r["state"]["available"]),
                    s(&r["state"]["message"])
                );
                println!(
                    "AKV reachable: {} {}",
                    s(&r["azure_reachability"]["reachable"]),
                    s(&r["azure_reachability"]["message"])
                );
                let rows: Vec<Vec<String>> = r["ekmip_reachability"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|n| {
                        vec![
                            s(&n["node"]["name"]),
                            s(&n["reachable"]),
                            s(&n["code"]),
                            s(&n["message"]),
                        ]
                    })
                    .collect();
                table(&["Node", "Reachable", "Code", "Message"], &rows);
            }
        }
        Command::UpdateConfig { target, proxy } => {
            let u = c.uuid(&target)?;
            let mut body = json!({});
            proxy_json(&proxy, &mut body)?;
            let r = c.call(M::PATCH, &format!("{base}/{u}"), Some(body))?;
            if json_out {
                print(&r)
            } else {
                println!("Key manager {u} updated.")
            }
        }
        Command::UpdateCredentials {
            target,
            client_id,
            tenant_id,
            credentials,
        } => {
            let u = c.uuid(&target)?;
            let mut body = json!({});
            if let Some(v) = client_id {
                body["client_id"] = json!(v);
            }
            if let Some(v) = tenant_id {
                body["tenant_id"] = json!(v);
            }
            credentials_json(&credentials, &mut body)?;
            let r = c.call(M::PATCH, &format!("{base}/{u}"), Some(body))?;
            if json_out {
                print(&r)
            } else {
                println!("Credentials of key manager {u} updated.")
            }
        }
        Command::RekeyInternal { target, wait } => job(
            &c,
            &format!("{base}/{}/rekey-internal", c.uuid(&target)?),
            None,
            wait,
            json_out,
        )?,
        Command::Restore { target, wait } => job(
            &c,
            &format!("{base}/{}/restore", c.uuid(&target)?),
            None,
            wait,
            json_out,
        )?,
        Command::RekeyExternal {
            target,
            key_id,
            wait,
        } => job(
            &c,
            &format!("{base}/{}/rekey-external", c.uuid(&target)?),
            Some(json!({"key_id": key_id})),
            wait,
            json_out,
        )?,
        Command::Disable { target } => {
            let u = c.uuid(&target)?;
            let r = c.call(M::DELETE, &format!("{base}/{u}"), None)?;
            if json_out {
                print(&r)
            } else {
                println!("Key manager {u} removed.")
            }
        }
        Command::Key {
            command: KeyCommand::Create { target, tag, svm },
        } => {
            let u = c.uuid(&target)?;
            let mut body = json!({"key_tag": tag});
            if let Some(v) = svm {
                body["svm"] = json!({"name": v});
            }
            let r = c.call(M::POST, &format!("{base}/{u}/keys"), Some(body))?;
            if json_out {
                print(&r)
            } else {
                println!("{}", s(&r["key_id"]))
            }
        }
        Command::Key {
            command: KeyCommand::Query { target },
        } => {
            let u = c.uuid(&target)?;
            let r = c.call(M::GET, &format!("{base}/{u}/keys"), None)?;
            if json_out {
                print(&r);
            } else {
                let rows: Vec<Vec<String>> = r["records"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|k| {
                        vec![
                            s(&k["key_id"]),
                            s(&k["key_tag"]),
                            s(&k["svm"]["name"]),
                            s(&k["kek_generation"]),
                        ]
                    })
                    .collect();
                table(&["Key ID", "Key Tag", "SVM", "KEK Generation"], &rows);
            }
        }
    }
    Ok(())
}

fn job(
    c: &Client,
    path: &str,
    body: Option<Value>,
    wait: bool,
    json_out: bool,
) -> Result<(), Failure> {
    let started = c.call(reqwest::Method::POST, path, body)?;
    let shown = if wait { c.wait(&started)? } else { started };
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&shown).unwrap_or_default()
        );
    } else if wait {
        println!(
            "Job {} succeeded: {}",
            s(&shown["uuid"]),
            s(&shown["message"])
        );
    } else {
        println!(
            "Job {} started; ekm ... --wait waits for it.",
            s(&shown["job"]["uuid"])
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Api(m)) => {
            eprintln!("{m}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(m)) => {
            eprintln!("ekm: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Unreachable(m)) => {
            eprintln!("ekm: {m}");
            ExitCode::from(3)
        }
        Err(Failure::Job(m)) => {
            eprintln!("{m}");
            ExitCode::from(4)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag of every subcommand says in one line what it is.
    #[test]
    fn every_flag_has_a_one_line_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                match arg.get_help() {
                    Some(h)
                        if !h.to_string().trim().is_empty() && !h.to_string().contains('\n') => {}
                    _ => missing.push(format!("{path} --{id}")),
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "ekm", &mut missing);
        assert!(missing.is_empty(), "flags without help: {missing:?}");
    }

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
