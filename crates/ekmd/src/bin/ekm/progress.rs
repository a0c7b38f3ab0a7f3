//! A waited-for job's progress on stderr: a progress bar (done/total and rate) on a terminal,
//! else one line whenever the state or count changes.
//!
//! Owns: how progress looks. Must never: write to stdout (scripts read it), or end the job.

use std::io::IsTerminal;

use serde_json::Value;

use crate::output::cell;

/// A waited-for job's progress on stderr.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    uuid: String,
    last: Option<(String, u64, u64)>,
}

impl Progress {
    pub fn new(uuid: &str) -> Self {
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

    /// Shows job record `j` (as `GET /api/cluster/jobs/{uuid}` answers it).
    pub fn show(&mut self, j: &Value) {
        let state = cell(&j["state"]);
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

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
