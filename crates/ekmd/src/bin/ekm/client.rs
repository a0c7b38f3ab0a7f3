//! `ekm`'s HTTP client of ekmd: one authenticated request, finding a key manager's uuid, and
//! waiting for a job.
//!
//! Owns: the TLS trust set-up (`--ca-file`, `--insecure`), and turning transport failures and
//! ONTAP error bodies into [`Failure`]s with ekmd's code and message.
//! Must never: follow a proxy from the environment (ekmd is reached directly), or print a
//! password or a request body.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::args::{Cli, Target};
use crate::output::cell;
use crate::progress::Progress;
use crate::secrets::{admin_password, read_file};
use crate::{Failure, NO_ENTRIES, Refusal};

/// The key manager collection.
pub const BASE: &str = "/api/security/azure-key-vaults";

/// The job collection.
pub const JOBS: &str = "/api/cluster/jobs";

/// Which kind of key manager a subcommand acts on: its collection and how messages name it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ekm ...`: Azure Key Vault (`/api/security/azure-key-vaults`).
    Azure,
    /// `ekm aws ...`: AWS KMS (`/api/security/aws-kms`).
    Aws,
}

impl Kind {
    /// The REST collection.
    pub fn base(self) -> &'static str {
        match self {
            Kind::Azure => BASE,
            Kind::Aws => "/api/security/aws-kms",
        }
    }

    /// The product, as messages name it.
    fn title(self) -> &'static str {
        match self {
            Kind::Azure => "Azure Key Vault",
            Kind::Aws => "AWS KMS",
        }
    }

    /// The code of "not configured for the SVM".
    fn not_configured(self) -> u32 {
        match self {
            Kind::Azure => ekm_core::ErrorKind::NotConfigured.code(),
            Kind::Aws => ekm_core::ErrorKind::AwsNotConfigured.code(),
        }
    }

    /// The command prefix: `ekm` or `ekm aws`.
    pub fn cli(self) -> &'static str {
        match self {
            Kind::Azure => "ekm",
            Kind::Aws => "ekm aws",
        }
    }
}

/// The key manager a `--vserver`/`--uuid` (or neither: the cluster's) names, found.
pub struct KeyManager {
    pub uuid: String,
    /// How messages name it: `the cluster's key manager` or `SVM vs0's key manager`.
    pub label: String,
    /// The target flags that name it again, for the commands a message suggests.
    pub flags: String,
}

pub struct Client {
    http: reqwest::blocking::Client,
    url: String,
    user: String,
    password: String,
}

impl Client {
    /// A client for the global flags: the admin password first (a usage error before anything
    /// else), then the trusted CAs.
    pub fn connect(cli: &Cli) -> Result<Client, Failure> {
        let password = admin_password(cli)?;
        let mut b = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(150))
            .no_proxy();
        if let Some(ca) = &cli.ca_file {
            let pem = read_file("--ca-file", ca)?;
            let bad = |why: String| Failure::Usage(format!("--ca-file {}: {why}", ca.display()));
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad(
                    "no PEM certificate in it (expected e.g. DATA_DIR/tls-cert.pem)".into(),
                ));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if cli.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        Ok(Client {
            http: b
                .build()
                .map_err(|e| Failure::Usage(format!("the HTTP client: {e}")))?,
            url: cli.url.clone(),
            user: cli.user.clone(),
            password,
        })
    }

    /// One request; a success's JSON body (null if none), else ekmd's error as a failure.
    pub fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, Failure> {
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
        Err(Failure::Refused(Refusal {
            code: match &v["error"]["code"] {
                Value::Null => "?".into(),
                c => cell(c),
            },
            message: v["error"]["message"]
                .as_str()
                .unwrap_or(status.as_str())
                .to_owned(),
            status: status.as_u16(),
        }))
    }

    /// The key manager `t` names: the one of `--uuid`, else of `--vserver`, else the
    /// cluster's; none is "There are no entries matching your query." (exit 1).
    pub fn key_manager(&self, t: &Target) -> Result<KeyManager, Failure> {
        self.key_manager_of(Kind::Azure, t)
    }

    /// The key manager `t` names, of either kind (Azure first): the data-key commands act on
    /// whichever protects the scope.
    pub fn key_manager_any(&self, t: &Target) -> Result<(Kind, KeyManager), Failure> {
        match self.key_manager_of(Kind::Azure, t) {
            Ok(km) => Ok((Kind::Azure, km)),
            Err(Failure::Api(azure)) => match self.key_manager_of(Kind::Aws, t) {
                Ok(km) => Ok((Kind::Aws, km)),
                Err(Failure::Api(_)) => Err(Failure::Api(azure)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// [`Client::key_manager`] among the configurations of `kind`.
    pub fn key_manager_of(&self, kind: Kind, t: &Target) -> Result<KeyManager, Failure> {
        let base = kind.base();
        let (title, cli) = (kind.title(), kind.cli());
        let list = self.call(Method::GET, &format!("{base}?fields=scope,svm"), None)?;
        let records = list["records"].as_array().cloned().unwrap_or_default();
        let found = records.iter().find(|r| match (&t.uuid, &t.vserver) {
            (Some(u), _) => r["uuid"] == u.as_str(),
            (None, Some(v)) => r["svm"]["name"] == v.as_str(),
            (None, None) => r["scope"] == "cluster",
        });
        let Some(r) = found else {
            let not_configured = kind.not_configured();
            let what = match (&t.uuid, &t.vserver) {
                (Some(u), _) => format!(
                    "No {title} key manager has uuid {u} (code {}): {cli} show lists them.",
                    ekm_core::ErrorKind::EntryNotFound.code()
                ),
                (None, Some(v)) => match self.svm_names()? {
                    known if !known.iter().any(|n| n == v) => format!(
                        "SVM \"{v}\" does not exist: the cluster's SVMs are {} (the topology file names them).",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                    _ => format!(
                        "SVM \"{v}\" has no key manager ({title} is not configured for it, code {not_configured}): {cli} enable --vserver {v} configures one; {cli} show lists them."
                    ),
                },
                (None, None) => format!(
                    "The cluster has no key manager ({title} is not configured for it, code {not_configured}): {cli} enable configures one; {cli} show lists them."
                ),
            };
            return Err(Failure::Api(format!("{NO_ENTRIES} {what}")));
        };
        let uuid = cell(&r["uuid"]);
        let (label, flags) = match (&t.uuid, r["scope"] == "svm") {
            (Some(u), true) => (
                format!("SVM {}'s key manager", cell(&r["svm"]["name"])),
                format!(" --uuid {u}"),
            ),
            (Some(u), false) => ("the cluster's key manager".into(), format!(" --uuid {u}")),
            (None, true) => (
                format!("SVM {}'s key manager", cell(&r["svm"]["name"])),
                format!(" --vserver {}", cell(&r["svm"]["name"])),
            ),
            (None, false) => ("the cluster's key manager".into(), String::new()),
        };
        Ok(KeyManager { uuid, label, flags })
    }

    /// The names of the cluster's SVMs (ONTAP's `GET /api/svm/svms`).
    fn svm_names(&self) -> Result<Vec<String>, Failure> {
        let list = self.call(Method::GET, "/api/svm/svms?fields=name", None)?;
        Ok(list["records"]
            .as_array()
            .map(|r| r.iter().map(|s| cell(&s["name"])).collect())
            .unwrap_or_default())
    }

    /// The uuid of the key manager `t` names (see [`Client::key_manager`]).
    pub fn uuid(&self, t: &Target) -> Result<String, Failure> {
        Ok(self.key_manager(t)?.uuid)
    }

    /// Polls job `uuid` until it ends, showing its progress on stderr; its final record on
    /// success, else exit 4 naming the job (`what` it does) and why it failed.
    pub fn wait(&self, uuid: &str, what: &str) -> Result<Value, Failure> {
        let href = format!("{JOBS}/{uuid}");
        let mut progress = Progress::new(uuid);
        loop {
            let j = match self.call(Method::GET, &href, None) {
                Err(Failure::Refused(r)) if r.status == 404 => {
                    progress.finish();
                    return Err(Failure::Api(format!(
                        "{NO_ENTRIES} No job has uuid {uuid}."
                    )));
                }
                other => other?,
            };
            progress.show(&j);
            match j["state"].as_str() {
                Some("success") => {
                    progress.finish();
                    return Ok(j);
                }
                Some("failure") => {
                    progress.finish();
                    return Err(Failure::Job(format!(
                        "job {uuid} ({what}) failed: {} (code {})",
                        j["message"].as_str().unwrap_or(""),
                        cell(&j["code"])
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
