//! REST query strings (fields, order_by, filters, max_records, paging) into a parsed query,
//! then applied to sample records: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ekmd::query::{Accepts, Query, project};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let all = Accepts { fields: true, collection: true, return_records: true, return_timeout: true };
    let Ok(q) = Query::parse(Some(s), all) else { return };
    let mut records = vec![
        serde_json::json!({"uuid": "a", "name": "https://v/", "scope": "cluster", "proxy_port": 3128,
            "state": {"available": true, "code": "0", "message": ""},
            "ekmip_reachability": [{"node": {"name": "n1", "uuid": "x"}, "reachable": false}]}),
        serde_json::json!({"uuid": "b", "scope": "svm", "svm": {"name": "vs0", "uuid": "s"}}),
    ];
    q.sort(&mut records);
    for r in &records {
        let _ = q.matches(r);
        if let Some(f) = &q.fields {
            let _ = project(r, f);
        }
    }
    let _ = q.next_link("/api/x", "b");
    let _ = q.status_fields();
});
