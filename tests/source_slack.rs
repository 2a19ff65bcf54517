//! The `slack` source against a fake Slack Audit Logs API built from
//! Slack's reference ("Audit Logs API methods & actions", and the SDKs'
//! parameter docs): `GET /audit/v1/logs` with `Authorization: Bearer
//! xoxp-…` (otherwise `{"ok": false, "error": "invalid_auth"}`; a token
//! without the scope gets `missing_scope` with `needed: auditlogs:read`),
//! `oldest`/`latest` (Unix seconds, both inclusive), `limit` (1–9999, else
//! `invalid_arguments`) and an opaque `cursor` from
//! `response_metadata.next_cursor`, empty on the last page. Entries are
//! shaped like the Elastic pipeline sample the unit tests read, newest
//! first, dated in whole seconds when they are published.
//!
//! Throttling as Slack does it: a 429 with `Retry-After` (seconds) and
//! `{"ok": false, "error": "ratelimited"}`.

use crate::common;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use common::agent::{file_ids, file_output, tail, wait_until_or, TestDir, DEADLINE};
use common::compliance::{with_test_defaults, Fault};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "xoxp-1234567890-0987654321-1234567890-0987654321";
/// A user token of the org whose app lacks `auditlogs:read`.
const NO_SCOPE: &str = "xoxp-1234567890-0987654321-1234567890-noscope";

struct Fake {
    /// `(date_create, entry)`, oldest first as published.
    logs: Vec<(i64, Value)>,
    faults: VecDeque<Fault>,
    /// When the last 429 said to come back (Unix ms).
    retry_at: Option<i64>,
    /// Requests that came before a 429's `Retry-After` had passed.
    early_retries: usize,
    /// Requests that carried a cursor, and those among them whose bounds
    /// differed from the first page's.
    cursor_requests: usize,
    moved_bounds: usize,
    /// The bounds each cursor was handed out with.
    cursors: HashMap<String, (String, String)>,
    /// Requests answered so far, and the one to throttle (1-based).
    requests: usize,
    throttle_at: Option<usize>,
    /// Read `oldest`/`latest` as milliseconds: the guess the connector's
    /// silent-empty guard checks, gone wrong.
    millis: bool,
    next: u64,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeSlack {
    state: Shared,
    server: common::Server,
}

fn slack_error(status: StatusCode, error: &str, extra: Value) -> Response {
    let mut body = json!({ "ok": false, "error": error });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    (status, Json(body)).into_response()
}

fn too_many(s: &mut Fake, retry_after: Option<u64>) -> Response {
    let mut r = slack_error(StatusCode::TOO_MANY_REQUESTS, "ratelimited", json!({}));
    if let Some(n) = retry_after {
        s.retry_at = Some(Utc::now().timestamp_millis() + n as i64 * 1000);
        r.headers_mut().insert("retry-after", n.to_string().parse().unwrap());
    }
    r
}

async fn logs(State(st): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = st.lock().unwrap();
    s.requests += 1;
    if s.retry_at.take().is_some_and(|t| Utc::now().timestamp_millis() < t) {
        s.early_retries += 1;
    }
    if s.throttle_at == Some(s.requests) {
        return too_many(&mut s, Some(2));
    }
    if let Some(f) = s.faults.pop_front() {
        return match f {
            Fault::TooManyRequests { retry_after } => too_many(&mut s, retry_after),
            // Slack has no throttling 401: it answers 429 as always.
            Fault::Throttle401 => too_many(&mut s, Some(1)),
            Fault::ServerError => slack_error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", json!({})),
            Fault::Garbage => {
                ([("content-type", "text/html")], "<!DOCTYPE html><html><title>Slack</title>").into_response()
            }
        };
    }
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(a) if a == format!("Bearer {TOKEN}") => {}
        Some(a) if a == format!("Bearer {NO_SCOPE}") => {
            let extra = json!({ "needed": "auditlogs:read", "provided": "identify" });
            return slack_error(StatusCode::FORBIDDEN, "missing_scope", extra);
        }
        _ => return slack_error(StatusCode::UNAUTHORIZED, "invalid_auth", json!({})),
    }
    let num = |k: &str| q.get(k).map(|v| v.parse::<i64>());
    let limit = match num("limit") {
        None => 100,
        Some(Ok(n)) if (1..=9999).contains(&n) => n as usize,
        _ => return slack_error(StatusCode::BAD_REQUEST, "invalid_arguments", json!({})),
    };
    let (oldest, latest) = match (num("oldest"), num("latest")) {
        (Some(Err(_)), _) | (_, Some(Err(_))) => {
            return slack_error(StatusCode::BAD_REQUEST, "invalid_arguments", json!({}))
        }
        (o, l) => (o.map(Result::unwrap), l.map(Result::unwrap)),
    };
    let unit = if s.millis { 1000 } else { 1 };
    let (oldest, latest) = (oldest.map(|o| o / unit), latest.map(|l| l / unit));
    let bounds = (q.get("oldest").cloned().unwrap_or_default(), q.get("latest").cloned().unwrap_or_default());
    // The cursor is opaque: here the offset into the newest-first list.
    let start = match q.get("cursor") {
        Some(c) => {
            s.cursor_requests += 1;
            match s.cursors.get(c) {
                Some(b) if *b == bounds => {}
                Some(_) => s.moved_bounds += 1,
                None => return slack_error(StatusCode::BAD_REQUEST, "invalid_cursor", json!({})),
            }
            c.strip_prefix("dXNlcjo").and_then(|n| n.parse::<usize>().ok()).unwrap_or(usize::MAX)
        }
        None => 0,
    };
    let matching: Vec<&Value> = s
        .logs
        .iter()
        .rev()
        .filter(|(t, _)| oldest.is_none_or(|o| *t >= o) && latest.is_none_or(|l| *t <= l))
        .map(|(_, e)| e)
        .collect();
    let page: Vec<Value> = matching.iter().skip(start).take(limit).map(|e| (*e).clone()).collect();
    let end = start.saturating_add(page.len());
    let next = if end < matching.len() { format!("dXNlcjo{end}") } else { String::new() };
    if !next.is_empty() {
        s.cursors.insert(next.clone(), bounds);
    }
    Json(json!({ "ok": true, "entries": page, "response_metadata": { "next_cursor": next } })).into_response()
}

impl FakeSlack {
    fn start() -> FakeSlack {
        let state = Arc::new(Mutex::new(Fake {
            logs: Vec::new(),
            faults: VecDeque::new(),
            retry_at: None,
            early_retries: 0,
            cursor_requests: 0,
            moved_bounds: 0,
            cursors: HashMap::new(),
            requests: 0,
            throttle_at: None,
            millis: false,
            next: 0,
        }));
        let router = Router::new().route("/audit/v1/logs", get(logs)).with_state(state.clone());
        FakeSlack { state, server: common::Server::start(router) }
    }

    /// `n` entries shaped like the Elastic sample, dated this second.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let now = Utc::now().timestamp();
        let mut ids = Vec::new();
        for _ in 0..n {
            s.next += 1;
            let k = s.next;
            let id = format!("0123a45b-6c7d-8900-e12f-{k:012x}");
            let (action, entity) = [
                ("user_login", json!({ "type": "user", "user": { "id": "W123AB456", "name": "Charlie Parker", "email": "bird@slack.com" } })),
                ("user_login_failed", json!({ "type": "user", "user": { "id": "W123AB456", "name": "Charlie Parker", "email": "bird@slack.com" } })),
                ("file_downloaded", json!({ "type": "file", "file": { "filetype": "image/png", "id": "F7EDC4C42", "name": "image.png", "title": "image.png" } })),
                ("app_installed", json!({ "type": "app", "app": { "id": "A012345", "name": "Audit Reader", "is_distributed": false, "is_directory_approved": false, "scopes": ["auditlogs:read"] } })),
            ][k as usize % 4].clone();
            ids.push(id.clone());
            s.logs.push((now, json!({
                "id": id, "date_create": now, "action": action,
                "actor": { "type": "user", "user": { "id": "W123AB456", "name": "Charlie Parker", "email": "bird@slack.com", "team": "T234SAH2" } },
                "entity": entity,
                "context": { "location": { "type": "enterprise", "id": "E1701NCCA", "name": "Birdland", "domain": "birdland" },
                             "ua": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/64.0.3282.186 Safari/537.36",
                             "ip_address": "81.2.69.143", "session_id": 913888259765u64 },
                "details": { "url_private": "https://example.com/" }
            })));
        }
        ids
    }

    /// The block reading the fake: `lag = "2s"` because entries are dated
    /// in whole seconds (validation refuses a lag and lookback both under
    /// 1s; production defaults are 60s and 2min).
    fn block(&self, name: &str, token: &str) -> String {
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"slack\"\nurl = \"{}\"\ntoken = \"{token}\"\nlag = \"2s\"\n",
            self.server.url()
        )
    }
}

common::compliance::fake_vendor!(FakeSlack, TOKEN, "xoxp-not-the-token");

/// 40 entries in pages of 7 (six cursor requests per walk), a 429 with
/// `Retry-After: 2` in the middle of the paging: every entry arrives once,
/// the retry comes after `Retry-After`, and every cursor request carries
/// the bounds its cursor was handed out with.
#[test]
fn slack_pages_by_cursor_and_waits_out_a_429() {
    let api = FakeSlack::start();
    let ids = api.add(40);
    // The third request: the walk's third page, after two cursors.
    api.state.lock().unwrap().throttle_at = Some(3);
    let dir = TestDir::new();
    let out = dir.file("out.jsonl");
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&api.block("slack", TOKEN)),
        file_output("out", &out, 5)
    );
    let agent = dir.start_with(&cfg);
    wait_until_or(
        "every entry",
        DEADLINE,
        || common::missing(&file_ids(&out), &ids).is_empty(),
        || tail(&agent.stderr(), 20),
    );
    let log = agent.stop();
    common::assert_exactly_once(&file_ids(&out), &ids, "over cursor pages and a 429");
    assert!(log.lines().any(|l| l.contains("slack") && l.contains("retrying")), "{}", tail(&log, 20));
    let s = api.state.lock().unwrap();
    assert_eq!(s.early_retries, 0, "retried before Retry-After: {}", tail(&log, 20));
    assert!(s.cursor_requests >= 5, "the walk paged by cursor ({} cursor requests)", s.cursor_requests);
    assert_eq!(s.moved_bounds, 0, "a cursor was sent with other bounds than it was given with");
}

/// Entries arrive mapped as the unit tests' recorded shape says, through
/// the real binary.
#[test]
fn slack_entries_arrive_mapped_to_ecs() {
    let api = FakeSlack::start();
    let ids = api.add(4);
    let dir = TestDir::new();
    let out = common::compliance::deliver_to_file(&dir, &api.block("slack", TOKEN), 5, &ids, "four entries");
    let docs: Vec<Value> =
        std::fs::read_to_string(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let failed = docs.iter().find(|d| d["event"]["action"] == "user_login_failed").expect("a failed login");
    assert_eq!(failed["event"]["outcome"], "failure");
    assert_eq!(failed["event"]["category"], json!(["authentication"]));
    assert_eq!(failed["user"]["email"], "bird@slack.com");
    assert_eq!(failed["user"]["name"], "Charlie Parker");
    assert_eq!(failed["source"]["ip"], "81.2.69.143");
    assert_eq!(failed["slack"]["context"]["session_id"], "913888259765");
    assert_eq!(failed["observer"]["vendor"], "Slack");
    let app = docs.iter().find(|d| d["event"]["action"] == "app_installed").expect("an app install");
    assert_eq!(app["event"]["category"], json!(["configuration"]));
    assert_eq!(app["slack"]["entity"]["app"]["name"], "Audit Reader");
}

/// A token without `auditlogs:read` fails `check --connect` naming the
/// scope, and a bot token is refused before any request.
#[test]
fn slack_names_the_missing_scope_and_refuses_a_bot_token() {
    let api = FakeSlack::start();
    api.add(2);
    let dir = TestDir::new();
    let cfg = |token: &str| {
        format!(
            "{}\n{}{}",
            dir.agent_section(),
            with_test_defaults(&api.block("slack", token)),
            file_output("out", &dir.file("out.jsonl"), 5)
        )
    };
    dir.write_config(&cfg(NO_SCOPE));
    let (code, text) = dir.check_connect();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("FAIL") && l.contains("slack") && l.contains("auditlogs:read")),
        "{text}"
    );
    let before = api.state.lock().unwrap().requests;
    dir.write_config(&cfg("xoxb-1234567890-0987654321-bot"));
    let (code, text) = dir.check_connect();
    assert_eq!(code, Some(2), "a problem of the config, before any request: {text}");
    assert!(text.contains("source[0].token") && text.contains("xoxp-"), "{text}");
    assert_eq!(api.state.lock().unwrap().requests, before, "a bot token is never sent");
}

/// An org with no entries passes `check --connect` (the guard's newest
/// entry is none); one whose API read the bounds in another unit fails it
/// and every poll, naming the filter, until the bounds are read as sent.
#[test]
fn slack_guards_an_empty_window_against_a_filter_read_otherwise() {
    let api = FakeSlack::start();
    let dir = TestDir::new();
    dir.write_config(&format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&api.block("slack", TOKEN)),
        file_output("out", &dir.file("out.jsonl"), 5)
    ));
    let (code, text) = dir.check_connect();
    assert_eq!(code, Some(0), "an empty org: {text}");

    let api = FakeSlack::start();
    api.state.lock().unwrap().millis = true;
    let ids = api.add(3);
    let fix = || api.state.lock().unwrap().millis = false;
    let says = "did not filter by date_create in Unix seconds";
    common::compliance::check_wrong_guess_is_loud(&api.block("slack", TOKEN), says, fix, &ids);
}

common::compliance::compliance_tests!(FakeSlack::start());
