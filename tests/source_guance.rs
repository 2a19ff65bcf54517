//! The `guance` source against a fake Guance OpenAPI built from the
//! research brief: `POST /api/v1/df/query_data_v1` with `DF-API-KEY`
//! (403 `ft.InvalidAPIKey` otherwise), one `dql` query whose `q` must be
//! the audit DQL, a closed `timeRange` in epoch ms, `limit`, `orderby`
//! time asc and `search_after` (`[time, seq, docid]`, returned with every
//! non-empty page); rows as positional arrays under `columns`. Throttling
//! is HTTP 401 with `ft.TriggerApiAkCurrentLimiting`. The workspace also
//! holds non-audit events (`df_source` = `monitor`), which the DQL keeps
//! out. The 20-requests-a-minute limit is not enforced here (the test
//! source sets a faster `rate_limit`); only injected throttling is.

use crate::common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use common::agent::{file_ids, file_output, read_jsonl, tail, wait_until_or, TestDir, DEADLINE};
use common::compliance::{with_test_defaults, FakeVendor, Fault};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const KEY: &str = "e3b0c44298fc1c149afbf4c8996fb924";
const AUDIT_DQL: &str = "TAE::re(`.*`):(`*`){ `df_source` IN ['audit'] }";
/// The same query in the event namespace, where some tenants keep audit
/// events.
const EVENT_DQL: &str = "E::re(`.*`):(`*`){ `df_source` IN ['audit'] }";
const COLUMNS: [&str; 11] = [
    "time",
    "__docid",
    "df_event_id",
    "df_source",
    "df_status",
    "df_origin",
    "df_title",
    "df_message",
    "df_user_id",
    "df_user_name",
    "df_user_email",
];

#[derive(Default)]
struct Fake {
    /// `(time ms, seq, row)`, in time order.
    rows: Vec<(i64, u64, Vec<Value>)>,
    faults: VecDeque<Fault>,
    next: u64,
    /// The rows live under `E::` instead of `TAE::`.
    in_event_namespace: bool,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeGuance {
    state: Shared,
    server: common::Server,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "code": status.as_u16(), "content": null, "errorCode": code, "message": message, "success": false, "traceId": "t" });
    (status, Json(body)).into_response()
}

async fn query(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = st.lock().unwrap();
    if let Some(f) = s.faults.pop_front() {
        return match f {
            Fault::Throttle401 => {
                error(StatusCode::UNAUTHORIZED, "ft.TriggerApiAkCurrentLimiting", "API request limit")
            }
            Fault::TooManyRequests { retry_after } => {
                let mut r = (StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests").into_response();
                if let Some(secs) = retry_after {
                    r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
                }
                r
            }
            Fault::ServerError => error(StatusCode::INTERNAL_SERVER_ERROR, "ft.InternalError", "internal error"),
            Fault::Garbage => {
                Json(json!({ "code": 200, "content": null, "errorCode": "", "success": true })).into_response()
            }
        };
    }
    if headers.get("df-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return error(StatusCode::FORBIDDEN, "ft.InvalidAPIKey", "Invalid API Key");
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "ft.ParamError", "body");
    };
    let q = &req["queries"][0];
    if q["qtype"] != "dql" || (q["query"]["q"] != AUDIT_DQL && q["query"]["q"] != EVENT_DQL) {
        return error(StatusCode::BAD_REQUEST, "ft.QueryError", "this fake answers the audit DQL only");
    }
    let here = (q["query"]["q"] == EVENT_DQL) == s.in_event_namespace;
    let q = &q["query"];
    let (Some(from), Some(to)) = (q["timeRange"][0].as_i64(), q["timeRange"][1].as_i64()) else {
        return error(StatusCode::BAD_REQUEST, "ft.ParamError", "timeRange");
    };
    if q["orderby"] != json!([{ "time": "asc" }]) {
        return error(StatusCode::BAD_REQUEST, "ft.ParamError", "this fake sorts time asc only");
    }
    let limit = q["limit"].as_u64().unwrap_or(1000).clamp(1, 1000) as usize;
    let after = q["search_after"].as_array().map(|a| (a[0].as_i64().unwrap_or(0), a[1].as_u64().unwrap_or(0)));
    let page: Vec<&(i64, u64, Vec<Value>)> = s
        .rows
        .iter()
        .filter(|(t, seq, row)| {
            here && row[3] == "audit" && from <= *t && *t <= to && after.is_none_or(|a| (*t, *seq) > a)
        })
        .take(limit)
        .collect();
    let values: Vec<&Vec<Value>> = page.iter().map(|(_, _, r)| r).collect();
    let search_after = page.last().map_or(Value::Null, |(t, seq, r)| json!([t, seq, r[1]]));
    // The envelope of the query-data-v1 docs' example (guance-docs,
    // `docs/en/open-api/query-data/query-data-v1.md`), every key.
    let units: Vec<Value> = COLUMNS.iter().map(|_| Value::Null).collect();
    Json(json!({
        "code": 200,
        "content": {
            "data": [{
                "async_id": "", "column_names": COLUMNS, "complete": false, "cost": "3ms", "index_name": "",
                "index_names": "", "index_store_type": "", "interval": 0, "is_running": false, "max_point": 0,
                "next_cursor_time": -1, "points": null,
                "query_parse": { "fields": {}, "funcs": {}, "namespace": "audit_event", "sources": { "re(`.*`)": "re" } },
                "query_type": "guancedb", "sample": 1, "scan_completed": false, "scan_index": "",
                "search_after": search_after,
                "series": [{ "columns": COLUMNS, "name": "audit", "units": units, "values": values }],
                "window": 0
            }],
            "declaration": { "business": "", "organization": "" }
        },
        "errorCode": "", "message": "", "success": true, "traceId": "t"
    }))
    .into_response()
}

impl FakeGuance {
    fn start() -> FakeGuance {
        let state: Shared = Arc::default();
        let router = Router::new().route("/api/v1/df/query_data_v1", post(query)).with_state(state.clone());
        FakeGuance { state, server: common::Server::start(router) }
    }

    /// `n` audit events, three per millisecond, never in the past, and one
    /// monitor event; returns the audit events' `df_event_id`s.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let now = Utc::now().timestamp_millis() + 1;
        let t0 = s.rows.last().map_or(now, |(t, _, _)| (*t).max(now));
        let mut ids = Vec::new();
        for i in 0..=n {
            let t = t0 + (i / 3) as i64;
            s.next += 1;
            let seq = s.next;
            let id = format!("event-audit-{seq:08}");
            let source = if i == n { "monitor" } else { "audit" };
            let title = ["Login", "Modify member role", "Delete notification target"][seq as usize % 3];
            let row = vec![
                json!(t),
                json!(format!("TAE_{t}_{seq}")),
                json!(id),
                json!(source),
                json!("info"),
                json!("front"),
                json!(title),
                json!(format!("admin@example.com {title}")),
                json!("acnt_8d1e"),
                json!("Admin"),
                json!("admin@example.com"),
            ];
            if i < n {
                ids.push(id);
            }
            s.rows.push((t, seq, row));
        }
        ids
    }

    fn block(&self, name: &str, key: &str) -> String {
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"guance\"\nurl = \"{}\"\ntoken = \"{key}\"\nrate_limit = \"20/s\"\n",
            self.server.url()
        )
    }
}

common::compliance::fake_vendor!(FakeGuance, KEY, "0000");

/// A run of rate-limit 401s is waited out: the source stays healthy, no
/// credentials error is reported, and every event arrives once, mapped.
#[test]
fn guance_rate_limit_401s_are_a_back_off_not_an_auth_failure() {
    let api = FakeGuance::start();
    let ids = api.add(12);
    for _ in 0..3 {
        api.inject(Fault::Throttle401);
    }
    let dir = TestDir::new();
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&api.block("gc", KEY)),
        file_output("out", &dir.file("out.jsonl"), 5)
    );
    let agent = dir.start_with(&cfg);
    let out = dir.file("out.jsonl");
    let delivered =
        || read_jsonl(&out).iter().map(|e| e["event"]["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    wait_until_or(
        "every event",
        DEADLINE,
        || common::missing(&delivered(), &ids).is_empty(),
        || tail(&agent.stderr(), 20),
    );
    let log = agent.stop();
    assert!(!log.contains("refused"), "{}", tail(&log, 20));
    assert!(log.lines().filter(|l| l.contains("gc") && l.contains("retrying")).count() >= 3, "{}", tail(&log, 20));
    common::assert_exactly_once(&delivered(), &ids, "after throttling");
    let e = &read_jsonl(&out)[0];
    assert_eq!(e["user"]["email"], "admin@example.com");
    assert_eq!(e["observer"]["vendor"], "Guance");
}

/// A tenant that keeps audit events under `E::`: the default `TAE::`
/// query finds nothing, which must not pass for a quiet workspace.
/// `check --connect` and the service both fail naming the `query` to set;
/// with it set, every event arrives.
#[test]
fn guance_audit_events_under_the_event_namespace_are_not_a_quiet_workspace() {
    let api = FakeGuance::start();
    api.state.lock().unwrap().in_event_namespace = true;
    let ids = api.add(5);
    let dir = TestDir::new();
    let out = dir.file("out.jsonl");
    let write = |extra: &str| {
        let block = format!("{}{extra}", api.block("gc", KEY));
        dir.write_config(&format!(
            "{}\n{}{}",
            dir.agent_section(),
            with_test_defaults(&block),
            file_output("out", &out, 5)
        ));
    };
    write("");
    let (code, text) = dir.check_connect();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains(&format!("set query = {EVENT_DQL:?}"))), "{text}");

    let agent = dir.start_with(&std::fs::read_to_string(dir.config_path()).unwrap());
    let named = || dir.last_error(0).contains("set query");
    wait_until_or("the namespace to be reported", DEADLINE, named, || tail(&agent.stderr(), 20));
    agent.stop();
    assert!(read_jsonl(&out).is_empty());

    write(&format!("query = {EVENT_DQL:?}\n"));
    let agent = dir.start_with(&std::fs::read_to_string(dir.config_path()).unwrap());
    let all = || common::missing(&file_ids(&out), &ids).is_empty();
    wait_until_or("every event", DEADLINE, all, || tail(&agent.stderr(), 20));
    agent.stop();
    common::assert_exactly_once(&file_ids(&out), &ids, "under E::");
}

common::compliance::compliance_tests!(FakeGuance::start());
