//! `ekm`: the command line of ekmd, mirroring ONTAP's `security key-manager external azure`
//! commands. Tables for people, `--json` for scripts.
//!
//! Exit codes (listed by `ekm --help`): 0 success; 1 ekmd refused the request (its ONTAP code
//! and message are printed) or the entry named does not exist ("There are no entries matching
//! your query."); 2 usage error; 3 ekmd unreachable; 4 a waited-for job failed; 5 `ekm audit
//! verify` found a bad record; 6 `ekm audit verify` could not read a file.
//! Every failure is one `ekm: ...` line (or more, the way out last) on stderr.
//!
//! | file | holds |
//! |---|---|
//! | `args.rs` | every flag and subcommand (clap) |
//! | `commands/` | one function per subcommand: `configs.rs`, `check.rs`, `jobs.rs`, `keys.rs`, `audit.rs` |
//! | `client.rs` | the HTTP client of ekmd: a request, a key manager's uuid, waiting for a job |
//! | `progress.rs` | a waited-for job's progress on stderr |
//! | `secrets.rs` | secrets from flags, files and stdin |
//! | `output.rs` | JSON, tables and cells on stdout |
//!
//! Owns: the exit codes and how each failure is printed on stderr.
//! Must never: exit 0 on a failure, or print a secret.

mod args;
mod client;
mod commands;
mod output;
mod progress;
mod secrets;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use args::Cli;

/// Why `ekm` failed; each kind has its exit code.
enum Failure {
    /// ekmd refused the request: exit 1, with its ONTAP code and HTTP status.
    Refused(Refusal),
    /// The entry named does not exist, or ekmd refused with a way out: exit 1, the message.
    Api(String),
    /// ekmd could not be reached (or its certificate is not trusted): exit 3.
    Unreachable(String),
    /// The command line or a file it names is wrong: exit 2.
    Usage(String),
    /// A waited-for job failed: exit 4, its message as is.
    Job(String),
    /// `ekm audit verify` found a bad record: exit 5, naming it.
    Tampered(String),
    /// `ekm audit verify` could not read a file it was given or looked for: exit 6.
    Missing(String),
}

/// An ONTAP error answer: `{"error": {"code", "message"}}` and its HTTP status.
struct Refusal {
    code: String,
    message: String,
    status: u16,
}

/// The message of "no such entry", as ONTAP words it.
const NO_ENTRIES: &str = "There are no entries matching your query.";

fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    cli.password_from_env =
        matches.value_source("password") == Some(clap::parser::ValueSource::EnvVariable);
    let Err(failure) = commands::run(cli) else {
        return ExitCode::SUCCESS;
    };
    let (code, line) = match failure {
        Failure::Refused(r) => (
            1,
            format!("{} (code {}, HTTP {})", r.message, r.code, r.status),
        ),
        Failure::Api(m) => (1, m),
        Failure::Usage(m) => (2, m),
        Failure::Unreachable(m) => (3, m),
        Failure::Job(m) => (4, m),
        Failure::Tampered(m) => (5, format!("audit trail NOT intact: {m}")),
        Failure::Missing(m) => (6, m),
    };
    eprintln!("ekm: {line}");
    ExitCode::from(code)
}

/// A command line clap refused: `--help` and `--version` print as clap prints them (exit 0);
/// a usage error is one `ekm: ...` line like every other error, then clap's usage hint, exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    eprint!("ekm: {text}");
    ExitCode::from(2)
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
