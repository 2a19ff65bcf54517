//! The `opencti` source against a fake OpenCTI GraphQL API built from the
//! research brief: `POST /graphql` with `Authorization: Bearer`, the
//! `audits` query with `types`, `first` (≤ 5000), `after` (an opaque
//! search-after cursor), `orderBy: timestamp, orderMode: asc` and a
//! `timestamp` `gte`/`lte` filter group; Relay `pageInfo`; GraphQL errors
//! in HTTP 200 (`AUTH_REQUIRED` for a bad token, `ForbiddenAccess` for an
//! account without the "Security activity" capability). Nodes carry
//! `raw_data`, the loaded document as pretty-printed JSON text (as
//! OpenCTI's `resolvers/log.js` writes it). Every call to
//! `add_events` also stores a `History` event, which only `include_history`
//! may deliver. Which types a token reads is OpenCTI's `computeAuditTypes`
//! (`opencti-graphql/src/domain/log.ts`): History needs a capability
//! containing `KNOWLEDGE`, Activity one containing
//! `SETTINGS_SECURITYACTIVITY` (`BYPASS` grants all); a type the token lacks
//! is dropped silently, and only when none is left is the answer
//! `ForbiddenAccess`. `me { capabilities { name } }` answers the token's
//! capabilities.

use crate::common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use common::agent::{file_output, tail, wait_until_or, TestDir, DEADLINE};
use common::compliance::{deliver_to_file, with_test_defaults, Fault};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "2b4c8f1e-5d6a-4e7b-9c0d-1f2e3a4b5c6d";
/// A valid token of an account without SETTINGS_SECURITYACTIVITY.
const NO_CAPABILITY: &str = "0a0a0a0a-0000-4000-8000-000000000000";

/// The capabilities of a valid token: the admin's `BYPASS`, and for
/// [`NO_CAPABILITY`] those of `orgAdmin` in OpenCTI's unit test of
/// `computeAuditTypes` (`tests/01-unit/domain/log-audit-types-test.ts`).
fn capabilities(auth: &str) -> Option<&'static [&'static str]> {
    if auth == format!("Bearer {TOKEN}") {
        Some(&["BYPASS"])
    } else if auth == format!("Bearer {NO_CAPABILITY}") {
        Some(&["KNOWLEDGE_KNUPDATE", "VIRTUAL_ORGANIZATION_ADMIN"])
    } else {
        None
    }
}

/// `computeAuditTypes`: the requested types the capabilities allow, or
/// `None` (ForbiddenAccess) when none is left.
fn audit_types<'a>(held: &[&str], requested: Vec<&'a str>) -> Option<Vec<&'a str>> {
    let has = |need: &str| held.iter().any(|h| *h == "BYPASS" || h.contains(need));
    let types: Vec<&str> = requested
        .into_iter()
        .filter(|t| *t != "History" || has("KNOWLEDGE"))
        .filter(|t| *t != "Activity" || has("SETTINGS_SECURITYACTIVITY"))
        .collect();
    (!types.is_empty()).then_some(types)
}

struct Log {
    ms: i64,
    seq: u64,
    history: bool,
    node: Value,
}

#[derive(Default)]
struct Fake {
    logs: Vec<Log>,
    faults: VecDeque<Fault>,
    seq: u64,
    /// The `timestamp` filter matches nothing (what a platform that does
    /// not filter audits on it as assumed would answer).
    timestamp_filter_matches_nothing: bool,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeOpencti {
    state: Shared,
    server: common::Server,
}

fn iso(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn graphql_error(message: &str, name: &str, code: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "name": name, "extensions": { "code": code } }], "data": { "audits": null } });
    Json(body).into_response()
}

fn fault_response(f: Fault) -> Response {
    let too_many = |secs: Option<u64>| {
        let mut r = (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
        if let Some(s) = secs {
            r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
        }
        r
    };
    match f {
        Fault::TooManyRequests { retry_after } => too_many(retry_after),
        // OpenCTI has no throttling of its own; a reverse proxy answers 429.
        Fault::Throttle401 => too_many(Some(1)),
        Fault::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
        Fault::Garbage => {
            ([("content-type", "text/html")], "<html><body>502 Bad Gateway</body></html>").into_response()
        }
    }
}

/// A time bound of the filter group, in epoch ms.
fn bound(filters: &Value, op: &str) -> Option<i64> {
    let f = filters["filters"].as_array()?.iter().find(|f| f["key"] == json!(["timestamp"]) && f["operator"] == op)?;
    let t = DateTime::parse_from_rfc3339(f["values"][0].as_str()?).ok()?;
    Some(t.timestamp_millis())
}

async fn graphql(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut s = s.lock().unwrap();
    if let Some(f) = s.faults.pop_front() {
        return fault_response(f);
    }
    let Some(held) = capabilities(&auth) else {
        return graphql_error("You must be logged in to do this.", "AuthRequired", "AUTH_REQUIRED");
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "POST body missing").into_response();
    };
    let query = req["query"].as_str().unwrap_or_default();
    if query.contains("me { capabilities { name } }") {
        let caps: Vec<Value> = held.iter().map(|n| json!({ "name": n })).collect();
        return Json(json!({ "data": { "me": { "capabilities": caps } } })).into_response();
    }
    let desc = query.contains("orderBy: timestamp, orderMode: desc");
    if !query.contains("audits(") || !(desc || query.contains("orderBy: timestamp, orderMode: asc")) {
        return graphql_error("this fake answers audits ordered by timestamp only", "UnsupportedError", "UNSUPPORTED");
    }
    let v = &req["variables"];
    let requested: Vec<&str> =
        v["types"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let Some(types) = audit_types(held, requested) else {
        return graphql_error("You are not allowed to do this.", "ForbiddenAccess", "FORBIDDEN_ACCESS");
    };
    let first = v["first"].as_u64().unwrap_or(25) as usize;
    if first > 5000 {
        return graphql_error("first must be at most 5000", "FunctionalError", "FUNCTIONAL_ERROR");
    }
    let after: Option<(i64, u64)> = match v["after"].as_str() {
        None => None,
        Some(c) => match hex_decode(c).and_then(|j| serde_json::from_str(&j).ok()) {
            Some(pos) => Some(pos),
            None => return graphql_error("invalid cursor", "ValidationError", "VALIDATION_ERROR"),
        },
    };
    let (gte, lte) = (bound(&v["filters"], "gte"), bound(&v["filters"], "lte"));
    let filtered = gte.is_some() || lte.is_some();
    let mut matching: Vec<&Log> = s
        .logs
        .iter()
        .filter(|l| types.contains(&if l.history { "History" } else { "Activity" }))
        .filter(|_| !(filtered && s.timestamp_filter_matches_nothing))
        .filter(|l| gte.is_none_or(|g| l.ms >= g) && lte.is_none_or(|t| l.ms <= t))
        .filter(|l| after.is_none_or(|a| (l.ms, l.seq) > a))
        .collect();
    if desc {
        matching.reverse();
    }
    let page: Vec<&&Log> = matching.iter().take(first).collect();
    let end = page.last().map(|l| hex_encode(&json!([l.ms, l.seq]).to_string()));
    let edges: Vec<Value> = page.iter().map(|l| json!({ "cursor": end, "node": l.node })).collect();
    let body = json!({ "data": { "audits": {
        "pageInfo": { "startCursor": null, "endCursor": end, "hasNextPage": matching.len() > first,
                      "hasPreviousPage": after.is_some(), "globalCount": matching.len() },
        "edges": edges } } });
    drop(s);
    Json(body).into_response()
}

fn hex_encode(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> =
        (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    String::from_utf8(bytes?).ok()
}

const USERS: [(&str, &str); 3] = [
    ("88ec0c6a-13ce-5e39-b486-354fe4a7084f", "admin"),
    ("6a4b11e1-90ca-4e42-ba42-db7bc7f7d505", "alice"),
    ("c1d2", "bob"),
];

impl FakeOpencti {
    fn start() -> FakeOpencti {
        let state: Shared = Arc::default();
        let router = Router::new().route("/graphql", post(graphql)).with_state(state.clone());
        FakeOpencti { state, server: common::Server::start(router) }
    }

    /// Add `n` Activity events (three per millisecond, never in the past)
    /// and one History event; return the Activity ids.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let now = Utc::now().timestamp_millis() + 1;
        let t0 = s.logs.last().map_or(now, |l| l.ms.max(now));
        let mut ids = Vec::new();
        for i in 0..=n {
            let ms = t0 + (i / 3) as i64;
            s.seq += 1;
            let seq = s.seq;
            let history = i == n;
            let (uid, name) = USERS[seq as usize % 3];
            let id = format!("{ms}-{seq}");
            let (kind, scope, message) = match seq % 3 {
                0 => ("authentication", "login", "login from provider `local`".to_owned()),
                1 => ("mutation", "update", format!("updates `Report {seq}` (Report)")),
                _ => ("read", "read", format!("reads `Malware {seq}` (Malware)")),
            };
            let entity_type = if history { "History" } else { "Activity" };
            // As `elDataConverter` loads it: `_index`, `_id`, `id` and the
            // search-after `sort` before the stored document.
            let doc = json!({
                "_index": "opencti_history-000001", "_id": id, "id": id, "sort": [ms, id],
                "internal_id": id, "base_type": "ENTITY", "created_at": iso(ms), "updated_at": iso(ms),
                "entity_type": entity_type, "event_type": kind, "event_status": "success",
                "event_access": if history { "extended" } else { "administration" }, "event_scope": scope,
                "user_id": uid, "group_ids": [], "organization_ids": [], "timestamp": iso(ms),
                "context_data": { "message": message }
            });
            let node = json!({
                "id": id, "entity_type": entity_type, "event_type": kind, "event_scope": scope, "event_status": "success",
                "timestamp": iso(ms), "user_id": uid, "user": { "id": uid, "name": name },
                "context_data": { "entity_id": null, "entity_type": null, "message": message },
                // `JSON.stringify(log, null, 2)` (resolvers/log.js).
                "raw_data": serde_json::to_string_pretty(&doc).unwrap()
            });
            if !history {
                ids.push(id);
            }
            s.logs.push(Log { ms, seq, history, node });
        }
        ids
    }

    /// Move every event `ms` milliseconds into the past.
    fn backdate(&self, ms: i64) {
        for l in &mut self.state.lock().unwrap().logs {
            l.ms -= ms;
            l.node["timestamp"] = json!(iso(l.ms));
            let mut doc: Value = serde_json::from_str(l.node["raw_data"].as_str().unwrap()).unwrap();
            for k in ["timestamp", "created_at", "updated_at"] {
                doc[k] = json!(iso(l.ms));
            }
            l.node["raw_data"] = json!(serde_json::to_string_pretty(&doc).unwrap());
        }
    }

    fn block(&self, name: &str, token: &str) -> String {
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"opencti\"\nurl = \"{}\"\ntoken = \"{token}\"\n",
            self.server.url()
        )
    }

    fn history_ids(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.logs.iter().filter(|l| l.history).map(|l| l.node["id"].as_str().unwrap().to_owned()).collect()
    }
}

common::compliance::fake_vendor!(FakeOpencti, TOKEN, "not-a-token");

/// The account lacks the capability: the error (stderr and status) says
/// which capability and that Enterprise Edition is needed.
#[test]
fn opencti_names_the_missing_capability() {
    let api = FakeOpencti::start();
    api.add(3);
    let dir = TestDir::new();
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&api.block("octi", NO_CAPABILITY)),
        file_output("out", &dir.file("out.jsonl"), 5)
    );
    let agent = dir.start_with(&cfg);
    wait_until_or(
        "the capability to be named",
        DEADLINE,
        || agent.stderr().lines().any(|l| l.contains("octi") && l.contains("SETTINGS_SECURITYACTIVITY")),
        || tail(&agent.stderr(), 20),
    );
    let err = || dir.status_json()["sources"][0]["last_error"].as_str().unwrap_or_default().to_owned();
    wait_until_or("status to show the error", DEADLINE, || err().contains("Enterprise Edition"), err);
    agent.stop();
}

/// `include_history = true` asks for History too: Activity and History
/// events all arrive, each once, raw_data forwarded as the raw event.
#[test]
fn opencti_include_history_delivers_knowledge_events_too() {
    let api = FakeOpencti::start();
    let mut expected = api.add(10);
    let dir = TestDir::new();
    let block = format!("{}include_history = true\n", api.block("octi", TOKEN));
    expected.extend(api.history_ids());
    let out = deliver_to_file(&dir, &block, 5, &expected, "Activity and History events with include_history");
    let lines = common::agent::read_jsonl(&out);
    let original: Value = serde_json::from_str(lines[0]["event"]["original"].as_str().unwrap()).unwrap();
    assert!(original.get("internal_id").is_some(), "raw_data is the raw event: {original}");
    assert_eq!(lines[0]["observer"]["product"], "OpenCTI");
}

/// `include_history = true` with a token that may read History but not
/// Activity (`orgAdmin`'s capabilities): OpenCTI answers History alone, so
/// the logins and admin actions would be missing without a word. Both
/// `check --connect` and the agent fail naming SETTINGS_SECURITYACTIVITY,
/// and nothing is forwarded.
#[test]
fn opencti_include_history_with_a_token_lacking_security_activity_fails_naming_it() {
    let api = FakeOpencti::start();
    api.add(3);
    let dir = TestDir::new();
    let out = dir.file("out.jsonl");
    let block = format!("{}include_history = true\n", api.block("octi", NO_CAPABILITY));
    let cfg = format!("{}\n{}{}", dir.agent_section(), with_test_defaults(&block), file_output("out", &out, 5));
    dir.write_config(&cfg);
    let (code, text) = dir.check_connect();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("FAIL") && l.contains("SETTINGS_SECURITYACTIVITY (for Activity)")),
        "{text}"
    );
    let agent = dir.start_with(&cfg);
    let named = || dir.last_error(0).contains("lacks the capability SETTINGS_SECURITYACTIVITY");
    wait_until_or("the missing capability to be named", DEADLINE, named, || tail(&agent.stderr(), 20));
    std::thread::sleep(common::compliance::MORE_POLLS); // more polls (interval 1s): none may pass
    agent.stop();
    assert!(common::agent::file_ids(&out).is_empty(), "no History-only delivery");
}

/// A `timestamp` filter that matches nothing must not pass for a quiet
/// platform: `check --connect` and every poll fail naming the filter while
/// the newest unfiltered audits show one inside the window, and the cursor
/// stays, so once the filter works every event arrives.
#[test]
fn opencti_a_timestamp_filter_that_matches_nothing_is_not_a_quiet_platform() {
    let api = FakeOpencti::start();
    api.state.lock().unwrap().timestamp_filter_matches_nothing = true;
    let ids = api.add(5);
    // Older than the activity manager's indexing delay, inside the hour
    // `check --connect` and the first poll (start_at 1h) look at.
    api.backdate(120_000);
    let block = format!("{}start_at = \"1h\"\n", api.block("octi", TOKEN));
    let fix = || api.state.lock().unwrap().timestamp_filter_matches_nothing = false;
    common::compliance::check_wrong_guess_is_loud(&block, "does not filter audits on `timestamp`", fix, &ids);
}

/// A catch-up longer than one window (`max_window = "1h"`, `start_at`
/// three hours back) with more audits since than the guard's first page
/// holds: with a `timestamp` filter that matches nothing, the window 2.5 h
/// back, which holds audits, must not pass for quiet because the newest
/// 100 audits all lie after it. The poll fails naming the filter, the
/// cursor stays, and once the filter works the old audits arrive too.
#[test]
fn opencti_a_catch_up_window_whose_audits_the_filter_misses_is_not_skipped() {
    let api = FakeOpencti::start();
    api.state.lock().unwrap().timestamp_filter_matches_nothing = true;
    let mut ids = api.add(5);
    api.backdate(150 * 60_000);
    ids.extend(api.add(150));
    let block = format!("{}start_at = \"3h\"\nmax_window = \"1h\"\n", api.block("octi", TOKEN));
    let fix = || api.state.lock().unwrap().timestamp_filter_matches_nothing = false;
    common::compliance::check_wrong_guess_is_loud(&block, "does not filter audits on `timestamp`", fix, &ids);
}

common::compliance::compliance_tests!(FakeOpencti::start());
