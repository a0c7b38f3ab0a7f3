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

use crate::Failure;
use crate::args::{Cli, Target};
use crate::output::cell;
use crate::progress::Progress;
use crate::secrets::{admin_password, read_file};

/// The key manager collection.
pub const BASE: &str = "/api/security/azure-key-vaults";

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
            let pem = read_file(ca)?;
            for c in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Failure::Usage(e.to_string()))?
            {
                b = b.add_root_certificate(c);
            }
        }
        if cli.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        Ok(Client {
            http: b.build().map_err(|e| Failure::Usage(e.to_string()))?,
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

    /// The uuid of the key manager `t` names: `--uuid` as given, else the one of `--vserver`,
    /// else the cluster's.
    pub fn uuid(&self, t: &Target) -> Result<String, Failure> {
        if let Some(u) = &t.uuid {
            return Ok(u.clone());
        }
        let list = self.call(Method::GET, &format!("{BASE}?fields=scope,svm"), None)?;
        let records = list["records"].as_array().cloned().unwrap_or_default();
        let found = records.iter().find(|r| match &t.vserver {
            Some(v) => r["svm"]["name"] == v.as_str(),
            None => r["scope"] == "cluster",
        });
        found
            .and_then(|r| r["uuid"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                let code = ekm_core::ErrorKind::NotConfigured.code();
                Failure::Api(match &t.vserver {
                    Some(v) => format!(
                        "Error: Azure Key Vault is not configured for SVM \"{v}\" (code {code})."
                    ),
                    None => format!(
                        "Error: Azure Key Vault is not configured for the cluster (code {code})."
                    ),
                })
            })
    }

    /// Polls the job a POST started until it ends, showing its progress on stderr; its final
    /// record on success.
    pub fn wait(&self, started: &Value) -> Result<Value, Failure> {
        let href = started["job"]["_links"]["self"]["href"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut progress = Progress::new(&cell(&started["job"]["uuid"]));
        loop {
            let j = self.call(Method::GET, &href, None)?;
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
