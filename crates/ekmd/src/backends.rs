//! `ekmd serve --backend`: which roots of trust this process serves, built from its flags.
//!
//! Owns: the `--backend` list (`fake`, or real providers comma-separated: `azure`, `aws`,
//! `azure,aws`), and the endpoint flags of each provider (`--azure-*`, `--aws-*`).
//! Must never: mix the fake with a real provider (the fake fakes every provider).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ekm_core::{Backend, Backends, Provider};

/// What `--backend` chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The fake, for every provider (no account needed; not a root of trust).
    Fake,
    /// Real providers, each through its official SDK, in the order given.
    Real(Vec<Provider>),
}

/// Parses `--backend`: `fake`, or a comma-separated list of `azure` and `aws`.
pub fn parse(list: &str) -> Result<Choice, String> {
    let words: Vec<&str> = list.split(',').map(str::trim).collect();
    if words == ["fake"] {
        return Ok(Choice::Fake);
    }
    let mut providers = Vec::new();
    for w in words {
        let p = match (w, Provider::from_name(w)) {
            ("fake", _) => {
                return Err(
                    "fake fakes every provider and cannot be listed with a real one".into(),
                );
            }
            (_, Some(p)) => p,
            (_, None) => {
                return Err(format!(
                    "\"{w}\" is not a backend: fake, or a comma-separated list of {}",
                    Provider::ALL.map(|p| p.name()).join(", ")
                ));
            }
        };
        if providers.contains(&p) {
            return Err(format!("{w} is listed twice"));
        }
        providers.push(p);
    }
    Ok(Choice::Real(providers))
}

/// The endpoint flags of every provider (used only for the providers chosen).
#[derive(Debug, Default, Clone)]
pub struct Endpoints {
    /// `--azure-ca-file`: extra trust roots for Azure endpoints.
    pub azure_ca_file: Option<PathBuf>,
    /// `--azure-authority-host`.
    pub azure_authority_host: Option<String>,
    /// `--azure-resolve HOST=IP:PORT`, repeatable.
    pub azure_resolve: Vec<String>,
    /// `--aws-ca-file`: extra trust roots for AWS endpoints.
    pub aws_ca_file: Option<PathBuf>,
    /// `--aws-resolve HOST=IP:PORT`, repeatable.
    pub aws_resolve: Vec<String>,
}

/// The backend `choice` names: the fake on `fake_vault`, or the real providers' backends as
/// one [`Backends`].
pub fn build(
    choice: &Choice,
    endpoints: &Endpoints,
    fake_vault: &Path,
) -> Result<Arc<dyn Backend>, String> {
    let providers = match choice {
        Choice::Fake => {
            return Ok(Arc::new(
                ekm_fake::FakeBackend::open(fake_vault)
                    .map_err(|e| format!("{}: {e}", fake_vault.display()))?,
            ));
        }
        Choice::Real(p) => p,
    };
    let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
    for p in providers {
        backends.push(match p {
            Provider::AzureKeyVault => Arc::new(azure(endpoints)?),
            Provider::AwsKms => Arc::new(aws(endpoints)?),
        });
    }
    Ok(Arc::new(Backends::new(backends)))
}

fn azure(e: &Endpoints) -> Result<ekm_azure::AzureBackend, String> {
    let mut o = ekm_azure::AzureOptions::default();
    if let Some(a) = &e.azure_authority_host {
        o.authority_host = a.clone();
    }
    if let Some(f) = &e.azure_ca_file {
        o.extra_ca_pem = Some(
            std::fs::read(f).map_err(|err| format!("--azure-ca-file {}: {err}", f.display()))?,
        );
    }
    for r in &e.azure_resolve {
        o.resolve.push(pin("--azure-resolve", r)?);
    }
    ekm_azure::AzureBackend::new(o)
}

fn aws(e: &Endpoints) -> Result<ekm_aws::AwsKms, String> {
    let mut o = ekm_aws::AwsOptions::default();
    if let Some(f) = &e.aws_ca_file {
        o = o
            .with_ca_file(f)
            .map_err(|err| format!("--aws-ca-file {}: {err}", f.display()))?;
    }
    for r in &e.aws_resolve {
        o.resolve.push(pin("--aws-resolve", r)?);
    }
    ekm_aws::AwsKms::new(o).map_err(|err| format!("--backend aws: {err}"))
}

/// One `HOST=IP:PORT` pin of `flag`.
fn pin(flag: &str, r: &str) -> Result<(String, SocketAddr), String> {
    let (host, addr) = r
        .split_once('=')
        .ok_or_else(|| format!("{flag} {r}: expected HOST=IP:PORT"))?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("{flag} {r}: \"{addr}\" is not IP:PORT"))?;
    if host.is_empty() {
        return Err(format!("{flag} {r}: expected HOST=IP:PORT"));
    }
    Ok((host.to_owned(), addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_list_takes_fake_or_real_providers() {
        assert_eq!(parse("fake"), Ok(Choice::Fake));
        assert_eq!(
            parse("azure"),
            Ok(Choice::Real(vec![Provider::AzureKeyVault]))
        );
        assert_eq!(
            parse("azure,aws"),
            Ok(Choice::Real(vec![
                Provider::AzureKeyVault,
                Provider::AwsKms
            ]))
        );
        assert_eq!(
            parse("aws, azure"),
            Ok(Choice::Real(vec![
                Provider::AwsKms,
                Provider::AzureKeyVault
            ]))
        );
        for bad in ["", "gcp", "azure,azure", "fake,aws", "azure,"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pin_is_host_equals_ip_port() {
        assert_eq!(
            pin(
                "--aws-resolve",
                "kms.us-east-1.amazonaws.com=127.0.0.1:4566"
            ),
            Ok((
                "kms.us-east-1.amazonaws.com".into(),
                "127.0.0.1:4566".parse().unwrap()
            ))
        );
        for bad in ["kms", "=127.0.0.1:1", "h=127.0.0.1", "h=localhost:1"] {
            let e = pin("--aws-resolve", bad).unwrap_err();
            assert!(e.starts_with("--aws-resolve "), "{e}");
        }
    }
}
