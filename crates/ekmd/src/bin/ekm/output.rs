//! What `ekm` prints on stdout: pretty JSON with `--json`, else aligned tables and one-line
//! messages.
//!
//! Owns: the table layout and how a JSON value shows in a cell (`-` for null).
//! Must never: print anything but the answer on stdout (errors and progress go to stderr).

use serde_json::Value;

/// Prints `v` as pretty JSON.
pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// A JSON value as a table cell: strings bare, null as `-`, anything else as JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// One row per element of the JSON array `list` (none if it is not an array).
pub fn rows(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array()
        .map(|a| a.iter().map(row).collect())
        .unwrap_or_default()
}

/// Prints `rows` under `headers`, each column as wide as its widest cell, with a rule of
/// dashes under the headers.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
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
