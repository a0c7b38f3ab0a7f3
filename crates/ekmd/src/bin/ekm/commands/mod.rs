//! One function per `ekm` subcommand, grouped as the REST API groups them.
//!
//! | file | subcommands |
//! |---|---|
//! | `configs.rs` | `enable`, `show`, `check`, `update-config`, `update-credentials`, `disable` |
//! | `jobs.rs` | `rekey-internal`, `rekey-external`, `restore` (each with `--wait`) |
//! | `keys.rs` | `key create`, `key query` |
//! | (here) | `audit verify` (offline) |
//!
//! Owns: which request each subcommand sends, in which order it reads secrets and asks ekmd,
//! and what it prints on success.
//! Must never: print a secret, or answer a failure with exit code 0.

mod configs;
mod jobs;
mod keys;

use serde_json::Value;

use crate::Failure;
use crate::args::{AuditCommand, Cli, Command, KeyCommand};
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
        return audit_verify(&a.files, cli.json);
    }
    let s = Session {
        client: Client::connect(&cli)?,
        json: cli.json,
    };
    match cli.command {
        Command::Enable(a) => configs::enable(&s, a),
        Command::Show(a) => configs::show(&s, a),
        Command::Check(a) => configs::check(&s, a),
        Command::UpdateConfig(a) => configs::update_config(&s, a),
        Command::UpdateCredentials(a) => configs::update_credentials(&s, a),
        Command::Disable(a) => configs::disable(&s, a),
        Command::RekeyInternal(a) => jobs::rekey_internal(&s, a),
        Command::RekeyExternal(a) => jobs::rekey_external(&s, a),
        Command::Restore(a) => jobs::restore(&s, a),
        Command::Key { command } => match command {
            KeyCommand::Create(a) => keys::create(&s, a),
            KeyCommand::Query(a) => keys::query(&s, a),
        },
        Command::Audit { .. } => Ok(()),
    }
}

/// `ekm audit verify FILE...`: the chain of the files, oldest first; exit 5 naming the first
/// bad record. Says where the kept part starts when retention removed older files, and which
/// changes have an intent but no outcome.
fn audit_verify(files: &[std::path::PathBuf], json: bool) -> Result<(), Failure> {
    match ekmd::audit::verify_files(files) {
        Ok(v) => {
            let last = v.first + v.records.saturating_sub(1);
            if json {
                print_json(&serde_json::json!({
                    "intact": true,
                    "records": v.records,
                    "first_seq": v.first,
                    "last_seq": last,
                    "last_hash": v.last_hash,
                    "unresolved_intents": v.unresolved_intents,
                }));
            } else {
                println!(
                    "audit trail intact: {} records in {} file(s); last hash {}",
                    v.records,
                    files.len(),
                    v.last_hash
                );
                if v.first > 1 {
                    println!(
                        "the kept part starts at record {} (records 1 to {} are not in these files: removed by retention, --audit-keep, or with whole older files; compare with a copy kept off the host); it runs to record {last}",
                        v.first,
                        v.first - 1
                    );
                }
                if !v.unresolved_intents.is_empty() {
                    println!(
                        "changes with an intent but no outcome recorded (ekmd stopped or could not write the outcome; look at the objects): records {:?}",
                        v.unresolved_intents
                    );
                }
            }
            Ok(())
        }
        Err(e) => Err(Failure::Tampered(e)),
    }
}
