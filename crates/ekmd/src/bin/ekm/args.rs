//! `ekm`'s command line: every flag and subcommand, with its one-line help.
//!
//! Owns: the flag names, their environment fallbacks, and which flags exclude or require
//! others; the shape a script depends on.
//! Must never: rename, drop or re-default a flag (scripts and the README walkthrough call
//! them), or do any work beyond parsing.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The exit codes, as `ekm --help` lists them.
const EXIT_CODES: &str = "Exit codes:
  0  success
  1  ekmd refused the request (its code and message are printed), or the entry named
     (--vserver, --uuid, --key-id, a job) does not exist: \"There are no entries matching your query.\"
  2  usage error (a flag, or a file a flag names)
  3  ekmd unreachable, or its certificate not trusted (pass --ca-file DATA_DIR/tls-cert.pem)
  4  a waited-for job failed
  5  ekm audit verify: the trail is NOT intact (a record edited, removed, reordered or cut)
  6  ekm audit verify: an audit file is missing or unreadable (nothing was verified)";

#[derive(Parser)]
#[command(
    name = "ekm",
    version,
    about = "Manage ekm key managers over ekmd's REST API (ONTAP's security key-manager external azure)",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// ekmd's URL.
    #[arg(
        long,
        env = "EKM_URL",
        hide_env_values = true,
        default_value = "https://127.0.0.1:8443",
        global = true,
        help_heading = GLOBAL
    )]
    pub url: String,
    /// Admin user.
    #[arg(
        long,
        env = "EKM_USER",
        hide_env_values = true,
        default_value = "admin",
        global = true,
        help_heading = GLOBAL
    )]
    pub user: String,
    /// Admin password (prefer EKM_PASSWORD or --password-file: argv is visible to other users).
    #[arg(
        long,
        env = "EKM_PASSWORD",
        hide_env_values = true,
        global = true,
        help_heading = GLOBAL
    )]
    pub password: Option<String>,
    /// File holding the admin password (e.g. ekm-data/admin-password); "-" reads it from stdin; wins over EKM_PASSWORD.
    #[arg(long, global = true, value_name = "FILE|-", help_heading = GLOBAL)]
    pub password_file: Option<PathBuf>,
    /// CA (PEM) to trust for ekmd's certificate (e.g. ekm-data/tls-cert.pem).
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (self-signed test set-ups only).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub insecure: bool,
    /// Print JSON instead of tables.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Where `password` came from: the environment (EKM_PASSWORD), not the command line. Set
    /// by `main` from clap's value source (an explicit --password-file wins over it).
    #[arg(skip)]
    pub password_from_env: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The help heading of the flags every subcommand takes.
const GLOBAL: &str = "Global options";

// Which key manager a subcommand acts on.
#[derive(Args, Clone)]
pub struct Target {
    /// The SVM whose key manager to act on; omit for the cluster's.
    #[arg(long)]
    pub vserver: Option<String>,
    /// The key manager's uuid (instead of --vserver).
    #[arg(long, conflicts_with = "vserver")]
    pub uuid: Option<String>,
}

// How ekmd authenticates to Azure: a client secret or a PKCS#12 certificate.
#[derive(Args, Clone, Default)]
pub struct Credentials {
    /// Client secret of the Azure application (prefer --client-secret-file).
    #[arg(long)]
    pub client_secret: Option<String>,
    /// File holding the client secret; "-" reads it from stdin.
    #[arg(long, value_name = "FILE|-", conflicts_with = "client_secret")]
    pub client_secret_file: Option<PathBuf>,
    /// PKCS#12 (.pfx) client certificate file, instead of a client secret.
    #[arg(long, conflicts_with_all = ["client_secret", "client_secret_file"])]
    pub client_certificate_file: Option<PathBuf>,
    /// Password of the PKCS#12 file (prefer --client-certificate-password-file).
    #[arg(long, requires = "client_certificate_file")]
    pub client_certificate_password: Option<String>,
    /// File holding the password of the PKCS#12 file; "-" reads it from stdin.
    #[arg(
        long,
        value_name = "FILE|-",
        requires = "client_certificate_file",
        conflicts_with = "client_certificate_password"
    )]
    pub client_certificate_password_file: Option<PathBuf>,
}

// The proxy ekmd goes through towards Azure.
#[derive(Args, Clone, Default)]
pub struct Proxy {
    /// Proxy type towards Azure: http or https.
    #[arg(long)]
    pub proxy_type: Option<String>,
    /// Proxy host ("" removes the proxy).
    #[arg(long)]
    pub proxy_host: Option<String>,
    /// Proxy port.
    #[arg(long)]
    pub proxy_port: Option<u16>,
    /// Proxy user name.
    #[arg(long)]
    pub proxy_username: Option<String>,
    /// Proxy password (prefer --proxy-password-file).
    #[arg(long)]
    pub proxy_password: Option<String>,
    /// File holding the proxy password; "-" reads it from stdin.
    #[arg(long, value_name = "FILE|-", conflicts_with = "proxy_password")]
    pub proxy_password_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Configure AKV for the cluster or an SVM.
    Enable(Enable),
    /// Show key manager configurations.
    Show(TargetOnly),
    /// Per node: AKV reachability, the KMIP server and the wrapped KEK (ONTAP's check).
    Check(TargetOnly),
    /// Change proxy settings.
    UpdateConfig(UpdateConfig),
    /// Change the client id, tenant id, secret or certificate.
    UpdateCredentials(UpdateCredentials),
    /// New KEK generation; rewrap every data key.
    RekeyInternal(Waited),
    /// Rewrap the KEK with another AKV key.
    RekeyExternal(RekeyExternal),
    /// Load the KEK and keys on nodes that lack them.
    Restore(Waited),
    /// Remove a key manager configuration (refused while it protects keys).
    Disable(TargetOnly),
    /// Data keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Jobs (rekeys, restore, erases): their state and progress.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// The audit trail (offline: reads the files, not ekmd).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// AWS KMS key managers (ONTAP's `security key-manager external aws`).
    Aws {
        #[command(subcommand)]
        command: AwsCommand,
    },
}

/// `ekm aws ...`: the AWS KMS key managers. Secrets come from a file or stdin only.
#[derive(Subcommand)]
pub enum AwsCommand {
    /// Configure AWS KMS for the cluster or an SVM (proven with a wrap and an unwrap).
    Enable(AwsEnable),
    /// Show AWS KMS key managers.
    Show(TargetOnly),
    /// Change the access key, endpoint, timeout, encryption context or proxy.
    Modify(AwsModify),
    /// New KEK generation; rewrap every data key.
    RekeyInternal(Waited),
    /// Rewrap the KEK with another AWS KMS key (key id, ARN or alias in the region).
    RekeyExternal(RekeyExternal),
    /// Load the KEK and keys on nodes that lack them.
    Restore(Waited),
    /// Remove an AWS KMS key manager (refused while it protects keys).
    Disable(TargetOnly),
}

// The endpoint and request settings of an AWS KMS key manager.
#[derive(Args, Clone, Default)]
pub struct AwsSettings {
    /// Endpoint service name (default kms).
    #[arg(long)]
    pub service: Option<String>,
    /// Endpoint domain (default amazonaws.com).
    #[arg(long)]
    pub default_domain: Option<String>,
    /// Endpoint host, instead of SERVICE.REGION.DOMAIN.
    #[arg(long)]
    pub host: Option<String>,
    /// Endpoint port (default 443).
    #[arg(long)]
    pub port: Option<u16>,
    /// Sent as the KMS encryption context of every wrap ("" clears it on modify).
    #[arg(long)]
    pub encryption_context: Option<String>,
    /// Per-request timeout in seconds (default 10).
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Proxy type towards AWS: http or https.
    #[arg(long)]
    pub proxy_type: Option<String>,
    /// Proxy host ("" removes the proxy).
    #[arg(long)]
    pub proxy_host: Option<String>,
    /// Proxy port.
    #[arg(long)]
    pub proxy_port: Option<u16>,
    /// Proxy user name.
    #[arg(long)]
    pub proxy_username: Option<String>,
    /// File holding the proxy password; "-" reads it from stdin.
    #[arg(long, value_name = "FILE|-")]
    pub proxy_password_file: Option<PathBuf>,
}

// `ekm aws enable`.
#[derive(Args)]
pub struct AwsEnable {
    #[command(flatten)]
    pub target: Target,
    /// AWS region, e.g. us-east-1.
    #[arg(long)]
    pub region: String,
    /// The KMS key: key id, key ARN or alias (recorded as the key's ARN).
    #[arg(long)]
    pub key_id: String,
    /// Access key id.
    #[arg(long)]
    pub access_key_id: String,
    /// File holding the secret access key; "-" reads it from stdin.
    #[arg(long, value_name = "FILE|-")]
    pub secret_access_key_file: PathBuf,
    #[command(flatten)]
    pub settings: AwsSettings,
}

// `ekm aws modify`.
#[derive(Args)]
pub struct AwsModify {
    #[command(flatten)]
    pub target: Target,
    /// New access key id (with --secret-access-key-file).
    #[arg(long, requires = "secret_access_key_file")]
    pub access_key_id: Option<String>,
    /// File holding the new secret access key; "-" reads it from stdin.
    #[arg(long, value_name = "FILE|-")]
    pub secret_access_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub settings: AwsSettings,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the audit trail: DATA_DIR (its audit.log and rotated
    /// audit.log.NNNNNN), one log FILE (with FILE.NNNNNN beside it), or files in order.
    #[command(
        after_help = "Exit codes: 0 intact; 5 NOT intact (the first bad record is named); 6 a file is missing or unreadable (nothing was verified)."
    )]
    Verify(AuditVerify),
}

// `ekm audit verify DATA_DIR | FILE | FILE...`.
#[derive(Args)]
pub struct AuditVerify {
    /// A data directory, the audit log (its rotated FILE.NNNNNN are found beside it), or several files oldest first.
    #[arg(required = true, value_name = "DATA_DIR|FILE")]
    pub paths: Vec<PathBuf>,
}

#[derive(Subcommand)]
pub enum JobCommand {
    /// One job's state and progress (the uuid a job-starting command printed).
    Show(JobShow),
}

// `ekm job show JOB_UUID`.
#[derive(Args)]
pub struct JobShow {
    /// The job's uuid.
    #[arg(value_name = "JOB_UUID", value_parser = job_uuid)]
    pub uuid: String,
    /// Wait for the job to end, showing its progress.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a data key.
    Create(KeyCreate),
    /// List data keys (never material).
    Query(TargetOnly),
    /// Delete a data key (crypto-erase: what it encrypted can no longer be read).
    Delete(KeyDelete),
}

// `ekm show`, `check`, `disable`, `key query`: only the target.
#[derive(Args)]
pub struct TargetOnly {
    #[command(flatten)]
    pub target: Target,
}

// `ekm enable`.
#[derive(Args)]
pub struct Enable {
    #[command(flatten)]
    pub target: Target,
    /// Application (client) id of the Azure application.
    #[arg(long)]
    pub client_id: String,
    /// Directory (tenant) id of the Azure application.
    #[arg(long)]
    pub tenant_id: String,
    /// Vault URI, e.g. https://myvault.vault.azure.net/.
    #[arg(long)]
    pub name: String,
    /// Versioned key id: https://VAULT/keys/NAME/VERSION.
    #[arg(long)]
    pub key_id: String,
    #[command(flatten)]
    pub credentials: Credentials,
    #[command(flatten)]
    pub proxy: Proxy,
}

// `ekm update-config`.
#[derive(Args)]
pub struct UpdateConfig {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub proxy: Proxy,
}

// `ekm update-credentials`.
#[derive(Args)]
pub struct UpdateCredentials {
    #[command(flatten)]
    pub target: Target,
    /// New application (client) id.
    #[arg(long)]
    pub client_id: Option<String>,
    /// New directory (tenant) id.
    #[arg(long)]
    pub tenant_id: Option<String>,
    #[command(flatten)]
    pub credentials: Credentials,
}

// `ekm rekey-internal` and `ekm restore`: a job on the target.
#[derive(Args)]
pub struct Waited {
    #[command(flatten)]
    pub target: Target,
    /// Wait for the job to end, showing its progress.
    #[arg(long)]
    pub wait: bool,
}

// `ekm rekey-external`.
#[derive(Args)]
pub struct RekeyExternal {
    #[command(flatten)]
    pub target: Target,
    /// The new versioned key id.
    #[arg(long)]
    pub key_id: String,
    /// Wait for the job to end, showing its progress.
    #[arg(long)]
    pub wait: bool,
}

// `ekm key create`.
#[derive(Args)]
pub struct KeyCreate {
    #[command(flatten)]
    pub target: Target,
    /// Key tag (e.g. the volume's name).
    #[arg(long, default_value = "")]
    pub tag: String,
    /// For an SVM without its own key manager, on the cluster's.
    #[arg(long)]
    pub svm: Option<String>,
}

// `ekm key delete`.
#[derive(Args)]
pub struct KeyDelete {
    #[command(flatten)]
    pub target: Target,
    /// The key's id (64 hex digits, as `ekm key query` lists it).
    #[arg(long, value_parser = data_key_id)]
    pub key_id: String,
    /// Wait for the erase job (started when a node still holds the key) to end.
    #[arg(long)]
    pub wait: bool,
}

/// `--key-id` of `ekm key delete`: 64 hex digits, checked before it goes into a URL.
fn data_key_id(s: &str) -> Result<String, String> {
    ekm_core::DataKeyId::parse(s)
        .map(|id| id.to_string())
        .map_err(|_| "expected a data key id of 64 hex digits, as `ekm key query` lists it".into())
}

/// `ekm job show JOB_UUID`: a uuid, checked before it goes into a URL.
fn job_uuid(s: &str) -> Result<String, String> {
    uuid::Uuid::parse_str(s)
        .map(|u| u.to_string())
        .map_err(|e| format!("expected a job uuid as a job-starting command printed it ({e})"))
}
