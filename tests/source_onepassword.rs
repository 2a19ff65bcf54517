//! The `onepassword` source against a fake 1Password Events API built from
//! 1Password's Events API reference: `POST /api/v2/auditevents` with
//! `Authorization: Bearer <token>` (otherwise a 401), a JSON body that is
//! either a reset cursor `{"limit", "start_time", "end_time"}` (limit
//! 1–1000, RFC 3339 times) or `{"cursor": …}`, answered with
//! `{"cursor", "has_more", "items"}`. The cursor is opaque and carries the
//! bounds it was opened with. Items are shaped like the Elastic pipeline
//! sample the unit tests read, oldest first, dated when they are
//! published.
//!
//! Throttling as the reference gives it: a 429 with `Retry-After`.

use crate::common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use common::agent::{file_ids, file_output, tail, wait_until_or, TestDir, DEADLINE};
use common::compliance::{with_test_defaults, Fault};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6InRlc3QifQ.eyJ0ZXN0IjoidHJ1ZSJ9.c2lnbmF0dXJl";

struct Fake {
    /// `(timestamp, item)`, oldest first as published.
    events: Vec<(DateTime<Utc>, Value)>,
    faults: VecDeque<Fault>,
    /// Open cursors: the bounds and limit they were opened with, and the
    /// offset of the next item.
    cursors: HashMap<String, Open>,
    cursor_requests: usize,
    /// Requests answered so far, and the one to throttle (1-based).
    requests: usize,
    throttle_at: Option<usize>,
    /// Read `end_time` an hour early (as if in another zone): the guess
    /// the guard checks, gone wrong.
    end_misread: bool,
    next: u64,
}

type Shared = Arc<Mutex<Fake>>;

/// An open cursor: `start_time`, `end_time`, `limit`, the next item's offset.
type Open = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, usize, usize);

struct FakeOnepassword {
    state: Shared,
    server: common::Server,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "Error": { "Message": message } }))).into_response()
}

fn too_many(retry_after: Option<u64>) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    if let Some(n) = retry_after {
        r.headers_mut().insert("retry-after", n.to_string().parse().unwrap());
    }
    r
}

fn time(v: &Value) -> Result<Option<DateTime<Utc>>, ()> {
    match v.as_str() {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| ()),
    }
}

async fn audit_events(State(st): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut s = st.lock().unwrap();
    s.requests += 1;
    if s.throttle_at == Some(s.requests) {
        return too_many(Some(2));
    }
    if let Some(f) = s.faults.pop_front() {
        return match f {
            Fault::TooManyRequests { retry_after } => too_many(retry_after),
            Fault::Throttle401 => too_many(Some(1)),
            Fault::ServerError => error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            Fault::Garbage => ([("content-type", "text/html")], "<html><title>1Password</title>").into_response(),
        };
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let Ok(req) = serde_json::from_str::<Value>(&body) else { return error(StatusCode::BAD_REQUEST, "Bad Request") };
    let (from, to, limit, start) = match req.get("cursor").and_then(Value::as_str) {
        Some(c) => {
            s.cursor_requests += 1;
            match s.cursors.get(c) {
                Some(open) => *open,
                None => return error(StatusCode::BAD_REQUEST, "invalid cursor"),
            }
        }
        None => {
            let limit = req.get("limit").and_then(Value::as_u64).unwrap_or(100);
            let (Ok(from), Ok(to)) = (time(&req["start_time"]), time(&req["end_time"])) else {
                return error(StatusCode::BAD_REQUEST, "Bad Request");
            };
            if !(1..=1000).contains(&limit) {
                return error(StatusCode::BAD_REQUEST, "Bad Request");
            }
            let to = to.map(|t| if s.end_misread { t - chrono::Duration::hours(1) } else { t });
            (from, to, limit as usize, 0)
        }
    };
    let matching: Vec<Value> = s
        .events
        .iter()
        .filter(|(t, _)| from.is_none_or(|f| *t >= f) && to.is_none_or(|l| *t <= l))
        .map(|(_, e)| e.clone())
        .collect();
    let items: Vec<Value> = matching.iter().skip(start).take(limit).cloned().collect();
    let end = start + items.len();
    s.next += 1;
    let cursor = format!("cursor-{}", s.next);
    s.cursors.insert(cursor.clone(), (from, to, limit, end));
    Json(json!({ "cursor": cursor, "has_more": end < matching.len(), "items": items })).into_response()
}

impl FakeOnepassword {
    fn start() -> FakeOnepassword {
        let state = Arc::new(Mutex::new(Fake {
            events: Vec::new(),
            faults: VecDeque::new(),
            cursors: HashMap::new(),
            cursor_requests: 0,
            requests: 0,
            throttle_at: None,
            end_misread: false,
            next: 0,
        }));
        let router = Router::new().route("/api/v2/auditevents", post(audit_events)).with_state(state.clone());
        FakeOnepassword { state, server: common::Server::start(router) }
    }

    /// `n` items shaped like the Elastic sample, dated now.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let mut ids = Vec::new();
        for _ in 0..n {
            s.next += 1;
            let now = Utc::now();
            let id = format!("3UQOGUC7DVOCN4OZP2M{:07}", s.next);
            let (action, object_type) = [("suspend", "user"), ("create", "vault"), ("join", "gm")][s.next as usize % 3];
            ids.push(id.clone());
            s.events.push((now, json!({
                "uuid": id,
                "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                "actor_uuid": "GLF6WUEKS5CSNDJ2OG6TCZD3M4",
                "actor_details": { "uuid": "GLF6WUEKS5CSNDJ2OG6TCZD3M4", "name": "Test Actor", "email": "test.actor@domain.com" },
                "action": action, "object_type": object_type, "object_uuid": "ZRQCUD6A65AKHFETOUFO7NL4OM",
                "session": { "uuid": "ODOHXUYQCJBUJKRGZNNPBJURPE", "login_time": "2022-10-24T21:07:34.703106271Z",
                             "device_uuid": "rqtd557fn2husnstp5nc66w2xa", "ip": "89.160.20.156" },
                "location": { "country": "Canada", "region": "Ontario", "city": "Toronto", "latitude": 43.64, "longitude": -79.433 }
            })));
        }
        ids
    }

    fn block(&self, name: &str, token: &str) -> String {
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"onepassword\"\nurl = \"{}\"\ntoken = \"{token}\"\n",
            self.server.url()
        )
    }
}

common::compliance::fake_vendor!(FakeOnepassword, TOKEN, "eyJub3QiOiJ0aGUgdG9rZW4ifQ");

/// 40 items in pages of 7, paged by the cursor in the body, a 429 with
/// `Retry-After: 2` mid-walk: every item arrives once.
#[test]
fn onepassword_pages_by_the_cursor_in_the_body_and_waits_out_a_429() {
    let api = FakeOnepassword::start();
    let ids = api.add(40);
    api.state.lock().unwrap().throttle_at = Some(3);
    let dir = TestDir::new();
    let out = dir.file("out.jsonl");
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&api.block("op", TOKEN)),
        file_output("out", &out, 5)
    );
    let agent = dir.start_with(&cfg);
    wait_until_or(
        "every item",
        DEADLINE,
        || common::missing(&file_ids(&out), &ids).is_empty(),
        || tail(&agent.stderr(), 20),
    );
    let log = agent.stop();
    common::assert_exactly_once(&file_ids(&out), &ids, "over body-cursor pages and a 429");
    assert!(log.lines().any(|l| l.contains("op") && l.contains("retrying")), "{}", tail(&log, 20));
    assert!(api.state.lock().unwrap().cursor_requests >= 5, "the walk paged by cursor");
    let docs: Vec<Value> =
        std::fs::read_to_string(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let suspended = docs.iter().find(|d| d["event"]["action"] == "suspend").expect("a suspension");
    assert_eq!(suspended["event"]["category"], json!(["iam"]));
    assert_eq!(suspended["user"]["email"], "test.actor@domain.com");
    assert_eq!(suspended["source"]["ip"], "89.160.20.156");
    assert_eq!(suspended["observer"]["vendor"], "1Password");
}

/// An `end_time` read an hour early makes every window look empty:
/// `check --connect` and every poll fail naming the bounds until they are
/// read as sent, and then every item arrives.
#[test]
fn onepassword_guards_an_empty_window_against_bounds_read_otherwise() {
    let api = FakeOnepassword::start();
    api.state.lock().unwrap().end_misread = true;
    let ids = api.add(3);
    let fix = || api.state.lock().unwrap().end_misread = false;
    let says = "1Password did not apply the bounds as sent";
    common::compliance::check_wrong_guess_is_loud(&api.block("op", TOKEN), says, fix, &ids);
}

common::compliance::compliance_tests!(FakeOnepassword::start());
