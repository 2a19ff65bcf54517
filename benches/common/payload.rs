//! The audit events both benchmarks use (`e2e` serves them from its fake
//! API, `hot` feeds them to the event path's functions).

use serde_json::{json, Value};

const ACTIONS: [&str; 5] = ["login", "logout", "user.role.update", "apikey.create", "report.export"];

/// A realistic audit event of about 700 bytes.
pub fn event(i: usize, ts: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "id": format!("evt-{i:012}"),
        "created_at": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "action": ACTIONS[i % ACTIONS.len()],
        "outcome": if i % 7 == 0 { "failure" } else { "success" },
        "actor": {"id": format!("u-{}", 1000 + i % 97), "name": format!("user{}", i % 97), "email": format!("user{}@corp.example.com", i % 97), "type": "human"},
        "ip": format!("198.51.{}.{}", (i / 256) % 256, i % 256),
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        "tenant": {"id": "t-42", "name": "Example Corp", "region": "eu-west-1"},
        "target": {"type": "user", "id": format!("u-{}", 2000 + i % 13), "name": format!("target{}", i % 13)},
        "request": {"method": "POST", "path": "/api/v2/users/roles", "id": format!("req-{:016x}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))},
        "details": {"old_role": "viewer", "new_role": "auditor", "reason": "quarterly access review", "ticket": format!("SEC-{}", 10000 + i % 5000)}
    })
}

/// Page `index` of the fake API: events `from..to` of `n`.
pub fn page_body(from: usize, to: usize, n: usize, index: usize) -> Vec<u8> {
    let start = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
    // Several events share each millisecond, as in real audit logs.
    let items: Vec<Value> =
        (from..to).map(|k| event(k, start + chrono::Duration::milliseconds((k / 3) as i64))).collect();
    let next = if to < n { json!((index + 1).to_string()) } else { Value::Null };
    serde_json::to_vec(&json!({"data": {"items": items}, "next_cursor": next})).unwrap()
}

/// A source block reading the fake API from the start.
pub fn source(name: &str, api: &str) -> String {
    format!(
        r#"[[source]]
name = "{name}"
type = "http_json"
url = "{api}/audit"
events = "/data/items"
id = "/id"
timestamp = "/created_at"
params = {{ since = "{{{{cursor}}}}", limit = "{{{{page_size}}}}" }}
pagination = {{ type = "next", next = "/next_cursor", param = "cursor" }}
page_size = 1000
start_at = "2024-12-31T00:00:00Z"
interval = "1s"
"#
    )
}
