//! ONTAP collection queries over rendered records: `fields`, filters on any field (with `|`
//! alternatives, `!` negation, `*` wildcards and `<`/`>` comparisons), `order_by`,
//! `max_records` with `start.<id>` paging, `return_records`, `return_timeout`; for every
//! collection whose records a [`Shape`] describes.

use ekm_core::{Error, ErrorKind, StatusFields};
use serde_json::{Map, Value};

/// Every field of the `azure_key_vault` record, as filter and `fields` paths.
pub const RECORD_FIELDS: &[&str] = &[
    "uuid",
    "scope",
    "svm.uuid",
    "svm.name",
    "client_id",
    "tenant_id",
    "name",
    "key_id",
    "authentication_method",
    "proxy_type",
    "proxy_host",
    "proxy_port",
    "proxy_username",
    "state.available",
    "state.cluster_state",
    "state.code",
    "state.message",
    "azure_reachability.reachable",
    "azure_reachability.code",
    "azure_reachability.message",
    "ekmip_reachability.node.uuid",
    "ekmip_reachability.node.name",
    "ekmip_reachability.reachable",
    "ekmip_reachability.code",
    "ekmip_reachability.message",
    "mirror_of.uuid",
    "protectors.uuid",
    "protectors.kind",
    "protectors.fully_wrapped",
    "protectors.reachable",
    "protectors.message",
];

/// The advanced fields, computed only when named.
pub const ADVANCED: &[&str] = &[
    "state",
    "azure_reachability",
    "ekmip_reachability",
    "protectors",
];

/// Top-level fields a plain `fields=*` returns.
pub const DEFAULT_FIELDS: &[&str] = &[
    "uuid",
    "scope",
    "svm",
    "client_id",
    "tenant_id",
    "name",
    "key_id",
    "authentication_method",
    "proxy_type",
    "proxy_host",
    "proxy_port",
    "proxy_username",
    "mirror_of",
];

/// What the records of one collection look like: their fields (the paths that filters,
/// `fields` and `order_by` take), the top-level fields `fields=*` returns, and the field that
/// names a record (kept by every projection, the last sort key, and the paging cursor
/// `start.<id>`).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Every field, as filter and `fields` paths.
    pub fields: &'static [&'static str],
    /// Top-level fields a plain `fields=*` returns.
    pub defaults: &'static [&'static str],
    /// The field that names a record.
    pub id: &'static str,
}

/// The configuration records (`azure_key_vault`).
pub const CONFIGS: Shape = Shape {
    fields: RECORD_FIELDS,
    defaults: DEFAULT_FIELDS,
    id: "uuid",
};

impl Default for Shape {
    fn default() -> Self {
        CONFIGS
    }
}

/// An invalid query parameter value (ONTAP's 262197).
pub fn invalid(field: &str, value: &str) -> Error {
    Error::new(ErrorKind::InvalidValue)
        .with_detail(format!(
            "The value \"{}\" is invalid for field \"{field}\".",
            value.escape_debug()
        ))
        .with_target(field)
}

/// An unexpected query parameter (ONTAP's 262179).
pub fn unexpected(name: &str) -> Error {
    Error::new(ErrorKind::UnexpectedArgument)
        .with_detail(format!(
            "Query parameter \"{}\" is not accepted here.",
            name.escape_debug()
        ))
        .with_target(name)
}

/// A parsed query.
#[derive(Debug, Default, Clone)]
pub struct Query {
    /// Requested fields (`None`: the endpoint's default).
    pub fields: Option<Vec<String>>,
    /// Filters: path → pattern.
    pub filters: Vec<(String, String)>,
    /// Sort keys with direction (true: descending).
    pub order_by: Vec<(String, bool)>,
    /// Page size.
    pub max_records: Option<usize>,
    /// Paging cursor: the id of the first record of the page (`start.<id>`).
    pub start: Option<String>,
    /// The records queried.
    pub shape: Shape,
    /// `return_records` (default true for GET, false for POST).
    pub return_records: Option<bool>,
    /// `return_timeout` in seconds (0 to 120).
    pub return_timeout: Option<u64>,
    /// Every pair as given, for `_links`.
    pub raw: Vec<(String, String)>,
}

/// A boolean query parameter: `true`, `True`, `1`, `false`, `False` or `0` (NetApp's Python
/// client sends Python's `True`/`False`).
pub fn parse_bool(name: &str, v: &str) -> Result<bool, Error> {
    match v {
        "true" | "True" | "1" => Ok(true),
        "false" | "False" | "0" => Ok(false),
        _ => Err(invalid(name, v)),
    }
}

/// Which query parameters an endpoint takes.
#[derive(Debug, Clone, Copy)]
pub struct Accepts {
    /// `fields`.
    pub fields: bool,
    /// Filters, `order_by`, `max_records`, `start.<id>`.
    pub collection: bool,
    /// `return_records`.
    pub return_records: bool,
    /// `return_timeout`.
    pub return_timeout: bool,
}

impl Accepts {
    /// A configuration collection GET: everything.
    pub const COLLECTION: Accepts = Accepts {
        fields: true,
        collection: true,
        return_records: true,
        return_timeout: true,
    };
    /// The job collection GET: everything but `return_timeout`.
    pub const JOB_COLLECTION: Accepts = Accepts {
        return_timeout: false,
        ..Accepts::COLLECTION
    };
    /// A GET of one record: `fields` and `return_timeout`.
    pub const RECORD: Accepts = Accepts {
        fields: true,
        collection: false,
        return_records: false,
        return_timeout: true,
    };
    /// A POST (create or job-starting action): `return_records` and `return_timeout`.
    pub const POST: Accepts = Accepts {
        fields: false,
        collection: false,
        return_records: true,
        return_timeout: true,
    };
    /// A PATCH or DELETE: `return_timeout` only.
    pub const CHANGE: Accepts = Accepts {
        fields: false,
        collection: false,
        return_records: false,
        return_timeout: true,
    };
}

/// Longest filter pattern accepted (longer: 262197). With [`crate::MAX_URI`] this bounds the
/// work of matching one request.
pub const MAX_PATTERN: usize = 1024;

fn known_field(known: &[&str], path: &str) -> bool {
    path == "*"
        || path == "**"
        || known.contains(&path)
        || known.iter().any(|f| f.starts_with(&format!("{path}.")))
        || path == "_links"
}

impl Query {
    /// Parses a raw query string for an `azure-key-vaults` endpoint that accepts `accepts`.
    pub fn parse(raw: Option<&str>, accepts: Accepts) -> Result<Query, Error> {
        Self::parse_for(raw, accepts, CONFIGS)
    }

    /// Parses a raw query string for an endpoint whose records `shape` describes.
    pub fn parse_for(raw: Option<&str>, accepts: Accepts, shape: Shape) -> Result<Query, Error> {
        let known = shape.fields;
        let mut q = Query {
            shape,
            ..Query::default()
        };
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        for (k, v) in &pairs {
            match k.as_str() {
                "fields" if accepts.fields => {
                    let list = q.fields.get_or_insert_with(Vec::new);
                    for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                        if !known_field(known, f) {
                            return Err(invalid("fields", f));
                        }
                        list.push(f.to_owned());
                    }
                }
                "max_records" if accepts.collection => {
                    q.max_records = Some(v.parse().map_err(|_| invalid("max_records", v))?);
                }
                s if accepts.collection && s.strip_prefix("start.") == Some(shape.id) => {
                    q.start = Some(v.clone());
                }
                "order_by" if accepts.collection => {
                    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        let mut it = part.split_whitespace();
                        let field = it.next().unwrap_or_default();
                        let desc = match it.next() {
                            None | Some("asc") => false,
                            Some("desc") => true,
                            Some(_) => return Err(invalid("order_by", part)),
                        };
                        if it.next().is_some() || !known.contains(&field) {
                            return Err(invalid("order_by", part));
                        }
                        q.order_by.push((field.to_owned(), desc));
                    }
                }
                "return_records" if accepts.return_records => {
                    q.return_records = Some(parse_bool("return_records", v)?);
                }
                "return_timeout" if accepts.return_timeout => {
                    let t: u64 = v.parse().map_err(|_| invalid("return_timeout", v))?;
                    if t > 120 {
                        return Err(invalid("return_timeout", v));
                    }
                    q.return_timeout = Some(t);
                }
                f if accepts.collection && known.contains(&f) => {
                    if v.chars().count() > MAX_PATTERN {
                        return Err(Error::new(ErrorKind::InvalidValue)
                            .with_detail(format!(
                                "The filter on \"{f}\" is longer than {MAX_PATTERN} characters."
                            ))
                            .with_target(f));
                    }
                    q.filters.push((f.to_owned(), v.clone()));
                }
                other => return Err(unexpected(other)),
            }
        }
        q.raw = pairs;
        Ok(q)
    }

    /// Whether the advanced field `adv` is named: in `fields` (or `**`), a filter or
    /// `order_by`.
    pub fn names(&self, adv: &str) -> bool {
        let in_fields = self.fields.as_ref().is_some_and(|f| {
            f.iter()
                .any(|x| x == "**" || x == adv || x.starts_with(&format!("{adv}.")))
        });
        let in_filters = self
            .filters
            .iter()
            .any(|(k, _)| k.starts_with(&format!("{adv}.")));
        let in_order = self
            .order_by
            .iter()
            .any(|(k, _)| k.starts_with(&format!("{adv}.")));
        in_fields || in_filters || in_order
    }

    /// Which advanced fields must be computed: those named in `fields` or filtered on.
    pub fn status_fields(&self) -> StatusFields {
        StatusFields {
            state: self.names("state"),
            azure_reachability: self.names("azure_reachability"),
            ekmip_reachability: self.names("ekmip_reachability"),
            protectors: self.names("protectors"),
        }
    }

    /// Whether a rendered record passes every filter.
    pub fn matches(&self, record: &Value) -> bool {
        self.filters.iter().all(|(path, pattern)| {
            let values = lookup(record, path);
            values.iter().any(|v| pattern_matches(pattern, v))
        })
    }

    /// Sorts records by `order_by` (then by uuid, so paging is stable).
    pub fn sort(&self, records: &mut [Value]) {
        records.sort_by(|a, b| {
            for (field, desc) in &self.order_by {
                let (x, y) = (
                    lookup(a, field).into_iter().next(),
                    lookup(b, field).into_iter().next(),
                );
                let ord = compare(x.as_ref(), y.as_ref());
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            let id = self.shape.id;
            compare(lookup(a, id).first(), lookup(b, id).first())
        });
    }

    /// The query string for the next page, starting at the record whose id is `next`.
    pub fn next_link(&self, base: &str, next: &str) -> String {
        let cursor = format!("start.{}", self.shape.id);
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.raw {
            if *k != cursor {
                s.append_pair(k, v);
            }
        }
        s.append_pair(&cursor, next);
        format!("{base}?{}", s.finish())
    }

    /// The query string as given.
    pub fn self_link(&self, base: &str) -> String {
        if self.raw.is_empty() {
            return base.to_owned();
        }
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.raw {
            s.append_pair(k, v);
        }
        format!("{base}?{}", s.finish())
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p.partial_cmp(&q).unwrap_or(Ordering::Equal),
            _ => scalar(x).cmp(&scalar(y)),
        },
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every value at a dotted path; arrays fan out.
pub fn lookup(v: &Value, path: &str) -> Vec<Value> {
    let mut cur = vec![v.clone()];
    for part in path.split('.') {
        let mut next = Vec::new();
        for c in cur {
            match c {
                Value::Array(items) => {
                    for i in items {
                        if let Some(x) = i.get(part) {
                            next.push(x.clone());
                        }
                    }
                }
                Value::Object(m) => {
                    if let Some(x) = m.get(part) {
                        next.push(x.clone());
                    }
                }
                _ => {}
            }
        }
        cur = next;
    }
    cur.into_iter()
        .flat_map(|v| match v {
            Value::Array(a) => a,
            other => vec![other],
        })
        .collect()
}

fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == t[ti] || p[pi].eq_ignore_ascii_case(&t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// ONTAP filter semantics on one scalar value.
pub fn pattern_matches(pattern: &str, value: &Value) -> bool {
    let text = scalar(value);
    pattern.split('|').any(|alt| {
        // Any number of leading `!`, counted rather than recursed into (a long run of them
        // must not grow the stack): an odd count negates.
        let inner = alt.trim_start_matches('!');
        let negated = (alt.len() - inner.len()) % 2 == 1;
        negated != matches_one(inner, value, &text)
    })
}

/// One alternative without negation: a comparison or a wildcard pattern.
fn matches_one(alt: &str, value: &Value, text: &str) -> bool {
    for (op, f) in [
        ("<=", (|a: f64, b: f64| a <= b) as fn(f64, f64) -> bool),
        (">=", |a, b| a >= b),
        ("<", |a, b| a < b),
        (">", |a, b| a > b),
    ] {
        if let Some(rhs) = alt.strip_prefix(op) {
            return match (value.as_f64(), rhs.parse::<f64>()) {
                (Some(a), Ok(b)) => f(a, b),
                _ => false,
            };
        }
    }
    glob(alt, text)
}

/// Keeps only `fields` (dotted paths; `*` the defaults, `**` everything) plus uuid, name and
/// `_links`.
pub fn project(record: &Value, fields: &[String]) -> Value {
    project_with(record, fields, &CONFIGS)
}

/// [`project`] for records that `shape` describes (its id is kept too).
pub fn project_with(record: &Value, fields: &[String], shape: &Shape) -> Value {
    let defaults = shape.defaults;
    let Value::Object(src) = record else {
        return record.clone();
    };
    if fields.iter().any(|f| f == "**") {
        return record.clone();
    }
    let mut out = Map::new();
    for key in ["uuid", "name", "_links", shape.id] {
        if let Some(v) = src.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    for f in fields {
        if f == "*" {
            for k in defaults {
                if let Some(v) = src.get(*k) {
                    out.insert((*k).to_owned(), v.clone());
                }
            }
            continue;
        }
        let mut parts = f.splitn(2, '.');
        let top = parts.next().unwrap_or_default();
        let Some(v) = src.get(top) else { continue };
        match parts.next() {
            None => {
                out.insert(top.to_owned(), v.clone());
            }
            Some(rest) => {
                let sub = project_path(v, rest);
                merge(out.entry(top.to_owned()).or_insert(Value::Null), sub);
            }
        }
    }
    Value::Object(out)
}

fn project_path(v: &Value, path: &str) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| project_path(i, path)).collect()),
        Value::Object(m) => {
            let mut parts = path.splitn(2, '.');
            let top = parts.next().unwrap_or_default();
            let mut out = Map::new();
            if let Some(x) = m.get(top) {
                out.insert(
                    top.to_owned(),
                    match parts.next() {
                        None => x.clone(),
                        Some(rest) => project_path(x, rest),
                    },
                );
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (x, y) in a.iter_mut().zip(b) {
                merge(x, y);
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns() {
        assert!(pattern_matches("vs*", &json!("vs0")));
        assert!(pattern_matches("VS0", &json!("vs0")));
        assert!(pattern_matches("a|vs0", &json!("vs0")));
        assert!(!pattern_matches("!vs0", &json!("vs0")));
        assert!(pattern_matches(">1000", &json!(1234)));
        assert!(pattern_matches("<=1234", &json!(1234)));
        assert!(pattern_matches("true", &json!(true)));
        assert!(!pattern_matches("x*z", &json!("xyy")));
    }

    #[test]
    fn long_runs_of_negation_do_not_recurse() {
        // Used to recurse once per `!` and overflow the stack (a crash of the whole daemon).
        let many = "!".repeat(200_000);
        assert!(pattern_matches(&format!("{many}vs0"), &json!("vs0")));
        assert!(!pattern_matches(&format!("!{many}vs0"), &json!("vs0")));
        assert!(pattern_matches(&format!("{many}x|!{many}y"), &json!("vs0")));
    }

    #[test]
    fn booleans_take_every_spelling() {
        for t in ["true", "True", "1"] {
            assert!(parse_bool("b", t).unwrap());
        }
        for f in ["false", "False", "0"] {
            assert!(!parse_bool("b", f).unwrap());
        }
        assert_eq!(parse_bool("b", "yes").unwrap_err().code(), 262_197);
    }

    #[test]
    fn projection_keeps_keys_and_nested_paths() {
        let r = json!({"uuid": "u", "name": "n", "svm": {"uuid": "s", "name": "vs0"}, "client_id": "c",
                       "ekmip_reachability": [{"node": {"name": "n1", "uuid": "x"}, "reachable": true}]});
        let p = project(
            &r,
            &["svm.name".into(), "ekmip_reachability.node.name".into()],
        );
        assert_eq!(
            p,
            json!({"uuid": "u", "name": "n", "svm": {"name": "vs0"},
                              "ekmip_reachability": [{"node": {"name": "n1"}}]})
        );
    }

    #[test]
    fn unknown_parameters_and_fields_are_refused() {
        let all = Accepts::COLLECTION;
        assert_eq!(
            Query::parse(Some("colour=blue"), all).unwrap_err().code(),
            262_179
        );
        assert_eq!(
            Query::parse(Some("fields=colour"), all).unwrap_err().code(),
            262_197
        );
        assert_eq!(
            Query::parse(Some("return_timeout=121"), all)
                .unwrap_err()
                .code(),
            262_197
        );
        assert_eq!(
            Query::parse(Some("order_by=name%20up"), all)
                .unwrap_err()
                .code(),
            262_197
        );
        let q = Query::parse(Some("svm.name=vs*&order_by=name%20desc&max_records=1"), all).unwrap();
        assert_eq!(q.filters, vec![("svm.name".to_owned(), "vs*".to_owned())]);
        assert_eq!(q.order_by, vec![("name".to_owned(), true)]);
    }
}
