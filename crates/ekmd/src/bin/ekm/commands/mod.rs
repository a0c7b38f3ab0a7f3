//! One function per `ekm` subcommand, grouped as the REST API groups them.
//!
//! | file | subcommands |
//! |---|---|
//! | `configs.rs` | `enable`, `show`, `update-config`, `update-credentials`, `disable` |
//! | `check.rs` | `check`: ONTAP's Category / Status / Message per node |
//! | `jobs.rs` | `rekey-internal`, `rekey-external`, `restore` (each with `--wait`), `job show` |
//! | `keys.rs` | `key create`, `key query`, `key delete` |
//! | `audit.rs` | `audit verify` (offline: which files, in which order) |
//! | `aws.rs` | `aws enable`, `aws show`, `aws modify`, `aws rekey-internal`, `aws rekey-external`, `aws restore`, `aws disable` |
//!
//! Owns: which request each subcommand sends, in which order it reads secrets and asks ekmd,
//! and what it prints on success.
//! Must never: print a secret, or answer a failure with exit code 0.

mod audit;
mod aws;
mod check;
mod configs;
mod jobs;
mod keys;

use serde_json::Value;

use crate::Failure;
use crate::args::{AuditCommand, Cli, Command, JobCommand, KeyCommand};
use crate::client::Client;
use crate::output::print_json;

/// What every subcommand works with: the client and whether to print JSON.
pub struct Session {
    pub client: Client,
    pub json: bool,
}

impl Session {
    /// Prints ekmd's answer `v`: as JSON with `--json`, else as `text` prints it.
    pub fn answer(&self, v: &Value, text: impl FnOnce(&Value)) {
        if self.json {
            print_json(v);
        } else {
            text(v);
        }
    }
}

/// Runs the subcommand `cli` names.
pub fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Audit { command } = &cli.command {
        let AuditCommand::Verify(a) = command;
        return audit::verify(&a.paths, cli.json);
    }
    let s = Session {
        client: Client::connect(&cli)?,
        json: cli.json,
    };
    match cli.command {
        Command::Enable(a) => configs::enable(&s, a),
        Command::Show(a) => configs::show(&s, a),
        Command::Check(a) => check::check(&s, a),
        Command::UpdateConfig(a) => configs::update_config(&s, a),
        Command::UpdateCredentials(a) => configs::update_credentials(&s, a),
        Command::Disable(a) => configs::disable(&s, a),
        Command::RekeyInternal(a) => jobs::rekey_internal(&s, a),
        Command::RekeyExternal(a) => jobs::rekey_external(&s, a),
        Command::Restore(a) => jobs::restore(&s, a),
        Command::Key { command } => match command {
            KeyCommand::Create(a) => keys::create(&s, a),
            KeyCommand::Query(a) => keys::query(&s, a),
            KeyCommand::Delete(a) => keys::delete(&s, a),
        },
        Command::Job { command } => match command {
            JobCommand::Show(a) => jobs::show(&s, a),
        },
        Command::Aws { command } => aws::run(&s, command),
        Command::Audit { .. } => Ok(()),
    }
}
