//! A waited-for job's progress on stderr: on a terminal a spinner until the job knows its
//! total, then a progress bar (done/total and a rounded rate); else one line whenever the
//! state or count changes.
//!
//! Owns: how progress looks. Must never: write to stdout (scripts read it), show a full bar
//! before the total is known, or end the job.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde_json::Value;

use crate::output::cell;

/// A waited-for job's progress on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Whether the bar shows the bar style (the total is known), not the spinner.
    counting: bool,
    uuid: String,
    last: Option<(String, u64, u64)>,
}

/// The spinner shown until the job knows how many units it has.
fn spinner() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} job {prefix}: {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// The bar shown once the total is known: done/total and the rate, rounded.
fn bar() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} job {prefix} [{bar:30}] {pos}/{len} ({rate}, {elapsed}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = w.write_str(&rate(s.per_sec()));
    })
    .progress_chars("=> ")
}

/// Units a second as people read them: `30/s`, `2.5/s`, `0.25/s`.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "0/s".into()
    } else if per_sec >= 10.0 {
        format!("{per_sec:.0}/s")
    } else if per_sec >= 1.0 {
        format!("{per_sec:.1}/s")
    } else {
        format!("{per_sec:.2}/s")
    }
}

impl Progress {
    pub fn new(uuid: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner();
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Self::with_bar(bar, uuid)
    }

    /// Progress drawn on `bar` (a spinner until the total is known), or plain lines without.
    fn with_bar(bar: Option<ProgressBar>, uuid: &str) -> Self {
        if let Some(b) = &bar {
            b.set_style(spinner());
            b.set_prefix(uuid.to_owned());
            b.set_message("starting");
        }
        Progress {
            bar,
            counting: false,
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
                if total > 0 {
                    if !self.counting {
                        b.set_style(bar());
                        b.reset_eta();
                        self.counting = true;
                    }
                    b.set_length(total);
                    b.set_position(done);
                }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// A job record with `done` of `total` units.
    fn job(done: u64, total: u64) -> serde_json::Value {
        json!({"state": "running", "progress": {"processed": done, "total": total}})
    }

    #[test]
    fn no_bar_is_drawn_before_the_total_is_known() {
        let mut p = super::Progress::with_bar(Some(indicatif::ProgressBar::hidden()), "j");
        p.show(&job(0, 0));
        let b = p.bar.clone().unwrap();
        assert_eq!(b.length(), None, "a bar of 0/0 draws full");
        p.show(&job(2, 6));
        assert_eq!((b.position(), b.length()), (2, Some(6)));
    }

    #[test]
    fn the_rate_is_rounded() {
        assert_eq!(super::rate(29.7575), "30/s");
        assert_eq!(super::rate(2.4649), "2.5/s");
        assert_eq!(super::rate(0.254), "0.25/s");
        assert_eq!(super::rate(0.0), "0/s");
        assert_eq!(super::rate(f64::NAN), "0/s");
    }
}
