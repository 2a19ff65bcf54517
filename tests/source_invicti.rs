//! The `invicti` source against a fake Invicti Enterprise API built from
//! the research brief: `GET /api/1.0/auditlogs/list` with HTTP Basic
//! (`USERID:API-TOKEN`), `page`, `pageSize` (1–200), and `startDate` /
//! `endDate` in `MM/dd/yyyy HH:mm:ss`, inclusive, second precision;
//! newest first; an `AuditLogPagedResultDto` answer with `List` and
//! `HasNextPage`. `CreatedAt` has no zone. The fake can read dates in
//! another zone than UTC, as an account set to local time might.

use crate::common;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDateTime, Utc};
use common::agent::{file_ids, file_output, tail, wait_until_or, TestDir, DEADLINE};
use common::compliance::{deliver_to_file, with_test_defaults, Fault};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const USER_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const TOKEN: &str = "k3yT0k3n+Sx9/abc==";
const TYPES: [&str; 5] = ["Signin", "UserCreated", "ScanStarted", "LoginAttemptFailed", "WebsiteDeleted"];

#[derive(Default)]
struct Fake {
    /// Oldest first, as stored; answered newest first.
    logs: Vec<(DateTime<Utc>, Value)>,
    faults: VecDeque<Fault>,
    next: u64,
    /// Hours the account's zone is ahead of UTC (how it reads query dates).
    zone_hours: i64,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeInvicti {
    state: Shared,
    server: common::Server,
}

fn basic(user: &str, token: &str) -> String {
    use std::fmt::Write;
    // Base64 by hand: the test crate has no base64 dependency.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{token}").into_bytes();
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let _ = out.write_char(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

fn too_many(secs: Option<u64>) -> Response {
    let mut r = (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "Message": "Too many requests" }))).into_response();
    if let Some(s) = secs {
        r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

async fn list(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = s.lock().unwrap();
    if let Some(f) = s.faults.pop_front() {
        return match f {
            Fault::TooManyRequests { retry_after } => too_many(retry_after),
            Fault::Throttle401 => too_many(Some(1)),
            Fault::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "An error has occurred.").into_response(),
            Fault::Garbage => {
                ([("content-type", "text/html")], "<html><h1>Service Unavailable</h1></html>").into_response()
            }
        };
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic(USER_ID, TOKEN).as_str()) {
        let body = json!({ "Message": "Authorization has been denied for this request." });
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let bad = |m: &str| (StatusCode::BAD_REQUEST, Json(json!({ "Message": m }))).into_response();
    let page: usize = q.get("page").map_or(Ok(1), |p| p.parse()).unwrap_or(0);
    let size: usize = q.get("pageSize").map_or(Ok(20), |p| p.parse()).unwrap_or(0);
    if page < 1 || !(1..=200).contains(&size) {
        return bad("pageSize must be any value between 1 and 200");
    }
    let zone = chrono::Duration::hours(s.zone_hours);
    let date =
        |k: &str| q.get(k).map(|v| NaiveDateTime::parse_from_str(v, "%m/%d/%Y %H:%M:%S").map(|t| t.and_utc() - zone));
    let (start, end) = match (date("startDate"), date("endDate")) {
        (Some(Err(_)), _) | (_, Some(Err(_))) => return bad("Format: MM/dd/yyyy HH:mm:ss"),
        (a, b) => (a.and_then(Result::ok), b.and_then(Result::ok)),
    };
    let matching: Vec<&Value> = s
        .logs
        .iter()
        .rev()
        .filter(|(t, _)| start.is_none_or(|st| *t >= st) && end.is_none_or(|e| *t <= e))
        .map(|(_, v)| v)
        .collect();
    let total = matching.len();
    let list: Vec<&Value> = matching.iter().skip((page - 1) * size).take(size).copied().collect();
    let pages = total.div_ceil(size);
    Json(json!({
        "FirstItemOnPage": (page - 1) * size + 1, "HasNextPage": page < pages, "HasPreviousPage": page > 1,
        "IsFirstPage": page == 1, "IsLastPage": page >= pages, "LastItemOnPage": (page - 1) * size + list.len(),
        "List": list, "PageCount": pages, "PageNumber": page, "PageSize": size, "TotalItemCount": total
    }))
    .into_response()
}

impl FakeInvicti {
    fn start() -> FakeInvicti {
        let state: Shared = Arc::default();
        let router = Router::new().route("/api/1.0/auditlogs/list", get(list)).with_state(state.clone());
        FakeInvicti { state, server: common::Server::start(router) }
    }

    /// `n` logs, three per millisecond, never in the past.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis() + 1).unwrap();
        let t0 = s.logs.last().map_or(now, |(t, _)| (*t).max(now));
        let mut ids = Vec::new();
        for i in 0..n {
            let t = t0 + chrono::Duration::milliseconds((i / 3) as i64);
            s.next += 1;
            let id = format!("6f1c2a0e-0000-4000-8000-{:012}", s.next);
            let kind = TYPES[s.next as usize % TYPES.len()];
            let log = json!({
                "Id": id, "AccountId": "5f0b1c8e-0000-4000-8000-00000000acc1",
                "CreatedAt": t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(), "EndpointType": "Api", "Type": kind,
                "UserEmail": "jane.doe@example.com", "UserId": USER_ID, "UserName": "Jane Doe",
                "Message": format!("{kind} by Jane Doe"), "RequestData": ""
            });
            ids.push(id);
            s.logs.push((t, log));
        }
        ids
    }

    fn block(&self, name: &str, token: &str) -> String {
        // A lookback makes every window overlap the last: ids taken must
        // not come back.
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"invicti\"\nurl = \"{}\"\nuser_id = \"{USER_ID}\"\ntoken = \"{token}\"\nlookback = \"5m\"\n",
            self.server.url()
        )
    }
}

common::compliance::fake_vendor!(FakeInvicti, TOKEN, "wrong-token");

/// An account that reads query dates in another zone answers the wrong
/// range, which misses the logs of the last minutes that the undated
/// newest page shows: the poll fails saying so, nothing is delivered or
/// skipped, and once the zone matches everything arrives once. (Logs the
/// shifted range brings from outside the window fail it too: unit tests.)
#[test]
fn invicti_detects_dates_read_in_another_time_zone() {
    for zone_hours in [-2, 2] {
        let api = FakeInvicti::start();
        api.state.lock().unwrap().zone_hours = zone_hours;
        let ids = api.add(4);
        {
            let mut s = api.state.lock().unwrap();
            let back = chrono::Duration::minutes(2);
            for (t, v) in s.logs.iter_mut() {
                *t -= back;
                v["CreatedAt"] = json!(t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string());
            }
        }
        let dir = TestDir::new();
        let block = api.block("inv", TOKEN).replace("lookback = \"5m\"\n", "");
        let cfg = format!(
            "{}\n{}{}",
            dir.agent_section(),
            with_test_defaults(&block),
            file_output("out", &dir.file("out.jsonl"), 5)
        );
        let agent = dir.start_with(&cfg);
        wait_until_or(
            &format!("the time-zone mismatch (UTC{zone_hours:+}) to be reported"),
            DEADLINE,
            || agent.stderr().lines().any(|l| l.contains("inv") && l.contains("another time zone")),
            || tail(&agent.stderr(), 20),
        );
        assert!(file_ids(&dir.file("out.jsonl")).is_empty(), "nothing is delivered while the zone is wrong");
        api.state.lock().unwrap().zone_hours = 0;
        let out = dir.file("out.jsonl");
        wait_until_or(
            "delivery once the zone matches",
            DEADLINE,
            || common::missing(&file_ids(&out), &ids).is_empty(),
            || tail(&agent.stderr(), 20),
        );
        agent.stop();
        common::assert_exactly_once(&file_ids(&out), &ids, "after the zone mismatch");
    }
}

/// Page by page, newest first, all sharing a handful of timestamps: every
/// log arrives once, mapped to ECS.
#[test]
fn invicti_reads_a_newest_first_backlog_across_pages() {
    let api = FakeInvicti::start();
    let ids = api.add(45);
    let dir = TestDir::new();
    let block = api.block("inv", TOKEN).replace("lookback = \"5m\"\n", "page_size = 4\n");
    let out = deliver_to_file(&dir, &block, 50, &ids, "newest-first backlog");
    let first: Value =
        common::agent::read_jsonl(&out).into_iter().find(|e| e["event"]["action"] == "LoginAttemptFailed").unwrap();
    assert_eq!(first["event"]["outcome"], "failure");
    assert_eq!(first["user"]["email"], "jane.doe@example.com");
    assert_eq!(first["observer"]["vendor"], "Invicti");
}

common::compliance::compliance_tests!(FakeInvicti::start());
