//! The `atlassian` source against a fake Atlassian Admin API built from
//! Atlassian's "Query audit log events" reference
//! (`GET /admin/v1/orgs/{orgId}/events`) and the admin SDKs' models of its
//! answer (MrRefactoring/jira.js `src/admin/models/eventPage.ts`,
//! `linkPageModel.ts`, `error.ts`): `Authorization: Bearer <API key>`
//! (otherwise a 401 `Error.Unauthenticated`), an organisation id the key
//! belongs to (otherwise a 404 `Error.OrgNotFound`), `from`/`to` (epoch
//! milliseconds, both inclusive here), `limit` (1–500, else a 400) and
//! `cursor` (opaque, carrying the filter it was opened with; an unknown one
//! is a 400 `Error.InvalidPageCursor`). The answer is `{"data": [...],
//! "links": {"next": URL}, "meta": {"page_size": n}}`, newest first, with
//! events shaped like the go-atlassian fixture the unit tests read
//! (ctreminiom/go-atlassian `admin/mocks/get-organization-audit-events.json`);
//! the last page has `"links": {}` as the fixture's does. `links.next` is
//! absolute, built from the request's `Host`.
//!
//! Rate limits as the Admin API's introduction gives them: every answer
//! has `X-RateLimit-Limit`, `-Remaining` and `-Reset` (an ISO 8601 time in
//! UTC); a request over the quota is a 429 `Error.RateLimited` without
//! `Retry-After` (none is documented). The blocks set `rate_limit =
//! "20/s"`: the connector's own default, 10 a minute (the reference's
//! limit on `/events`), would make the compliance kit take many minutes.

use crate::common;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use common::agent::{tail, wait_until_or, TestDir, DEADLINE};
use common::compliance::{deliver_to_file_logged, with_test_defaults, Fault};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "ATCTT3xFfGN0aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789";
const ORG: &str = "9a1jj823-jac8-123d-jj01-63315k059cb2";

/// The key's quota on `/events`: requests per window.
struct Quota {
    limit: u32,
    window: std::time::Duration,
    used: u32,
    resets: Option<DateTime<Utc>>,
    /// Answers that said no request remained.
    spent: usize,
}

struct Fake {
    /// `(time, event)`, oldest first as published.
    events: Vec<(DateTime<Utc>, Value)>,
    faults: VecDeque<Fault>,
    quota: Quota,
    /// Requests answered 429 because the quota was overrun (not injected).
    overruns: usize,
    /// Open cursors: `from`, `to`, `limit` and the offset of the next event.
    cursors: HashMap<String, (Option<i64>, Option<i64>, usize, usize)>,
    cursor_requests: usize,
    /// Read `from`/`to` as seconds (as one SDK sends them): the guess the
    /// guard checks, gone wrong.
    seconds: bool,
    /// Hand out `links.next` on `localhost` instead of the asked host.
    foreign_next: bool,
    /// Requests that reached the fake under another `Host`.
    foreign_requests: usize,
    next: u64,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeAtlassian {
    state: Shared,
    server: common::Server,
}

fn error(status: StatusCode, code: &str, title: &str) -> Response {
    let body = json!({ "errors": [{ "id": "7d6f5e4c", "status": status.as_u16().to_string(), "code": code,
                                    "title": title, "detail": title }] });
    (status, Json(body)).into_response()
}

impl Quota {
    /// Count a request; the headers to send and whether it is over.
    fn take(&mut self, now: DateTime<Utc>) -> (Vec<(&'static str, String)>, bool) {
        let resets = match self.resets {
            Some(r) if r > now => r,
            _ => {
                self.used = 0;
                let r = now + chrono::Duration::from_std(self.window).unwrap();
                self.resets = Some(r);
                r
            }
        };
        let over = self.used >= self.limit;
        if !over {
            self.used += 1;
            self.spent += usize::from(self.used == self.limit);
        }
        let headers = vec![
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", (self.limit - self.used).to_string()),
            ("x-ratelimit-reset", resets.to_rfc3339_opts(SecondsFormat::Millis, true)),
        ];
        (headers, over)
    }
}

fn with_headers(mut r: Response, headers: &[(&'static str, String)]) -> Response {
    for (k, v) in headers {
        r.headers_mut().insert(*k, v.parse().unwrap());
    }
    r
}

fn too_many(retry_after: Option<u64>) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Error.RateLimited", "Too many requests");
    if let Some(n) = retry_after {
        r.headers_mut().insert("retry-after", n.to_string().parse().unwrap());
    }
    r
}

async fn events(
    State(st): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1").to_owned();
    if !host.starts_with("127.0.0.1") {
        s.foreign_requests += 1;
    }
    if let Some(f) = s.faults.pop_front() {
        return match f {
            Fault::TooManyRequests { retry_after } => too_many(retry_after),
            // The Admin API has no throttling 401/403: a 429 as always.
            Fault::Throttle401 => too_many(Some(1)),
            Fault::ServerError => error(StatusCode::INTERNAL_SERVER_ERROR, "Error.Internal", "Internal server error"),
            Fault::Garbage => {
                ([("content-type", "text/html")], "<!DOCTYPE html><html><title>Atlassian</title>").into_response()
            }
        };
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return error(StatusCode::UNAUTHORIZED, "Error.Unauthenticated", "Unauthorized");
    }
    if org != ORG {
        return error(StatusCode::NOT_FOUND, "Error.OrgNotFound", "Org not found");
    }
    let now = Utc::now();
    let (rate, over) = s.quota.take(now);
    if over {
        s.overruns += 1;
        return with_headers(too_many(None), &rate);
    }
    let (from, to, limit, start) = match q.get("cursor") {
        Some(c) => {
            s.cursor_requests += 1;
            match s.cursors.get(c) {
                Some(open) => *open,
                None => return error(StatusCode::BAD_REQUEST, "Error.InvalidPageCursor", "Invalid page cursor"),
            }
        }
        None => {
            let ms = |k: &str| q.get(k).map(|v| v.parse::<i64>());
            let (from, to) = match (ms("from"), ms("to")) {
                (Some(Err(_)), _) | (_, Some(Err(_))) => {
                    return error(StatusCode::BAD_REQUEST, "Error.InvalidParameter", "from and to are epoch millis")
                }
                (f, t) => (f.map(Result::unwrap), t.map(Result::unwrap)),
            };
            let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
                None => 100,
                Some(Ok(n)) if (1..=500).contains(&n) => n,
                _ => return error(StatusCode::BAD_REQUEST, "Error.InvalidParameter", "limit"),
            };
            let scale = if s.seconds { 1000 } else { 1 };
            (from.map(|f| f.saturating_mul(scale)), to.map(|t| t.saturating_mul(scale)), limit, 0)
        }
    };
    let matching: Vec<Value> = s
        .events
        .iter()
        .rev()
        .filter(|(t, _)| {
            let ms = t.timestamp_millis();
            from.is_none_or(|f| ms >= f) && to.is_none_or(|l| ms <= l)
        })
        .map(|(_, e)| e.clone())
        .collect();
    let data: Vec<Value> = matching.iter().skip(start).take(limit).cloned().collect();
    let end = start + data.len();
    let links = if end < matching.len() {
        s.next += 1;
        let cursor = format!("ZXZlbnRz{}", s.next);
        s.cursors.insert(cursor.clone(), (from, to, limit, end));
        let port = host.rsplit(':').next().unwrap_or_default();
        let host = if s.foreign_next { format!("localhost:{port}") } else { host.clone() };
        json!({ "next": format!("http://{host}/admin/v1/orgs/{ORG}/events?cursor={cursor}") })
    } else {
        json!({})
    };
    let body = json!({ "data": data, "links": links, "meta": { "page_size": limit } });
    with_headers(Json(body).into_response(), &rate)
}

impl FakeAtlassian {
    fn start() -> FakeAtlassian {
        FakeAtlassian::with_quota(1000, std::time::Duration::from_secs(60))
    }

    fn with_quota(limit: u32, window: std::time::Duration) -> FakeAtlassian {
        let state = Arc::new(Mutex::new(Fake {
            events: Vec::new(),
            faults: VecDeque::new(),
            quota: Quota { limit, window, used: 0, resets: None, spent: 0 },
            overruns: 0,
            cursors: HashMap::new(),
            cursor_requests: 0,
            seconds: false,
            foreign_next: false,
            foreign_requests: 0,
            next: 0,
        }));
        let router = Router::new().route("/admin/v1/orgs/{org}/events", get(events)).with_state(state.clone());
        FakeAtlassian { state, server: common::Server::start(router) }
    }

    /// `n` events shaped like the go-atlassian fixture, dated now.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let mut ids = Vec::new();
        for _ in 0..n {
            s.next += 1;
            let k = s.next;
            let now = Utc::now();
            let id = format!("25e4c3e7-7f0d-4b84-8028-{k:012x}");
            let (action, ty, target, content) = [
                ("group_created", "groups", json!({ "name": "jira-users-2", "groupName": "jira-users-2" }), "Created jira-users-2 group"),
                ("user_removed_from_site", "users", json!({ "name": "example@equifax.com", "email": "example@equifax.com", "accountType": "atlassian" }), "Removed example@equifax.com from site"),
                ("policy_deleted", "org-policy", json!({ "name": "global-realm-policy", "type": "data-residency", "status": "enabled" }), ""),
            ][k as usize % 3].clone();
            ids.push(id.clone());
            s.events.push((now, json!({
                "id": id, "type": "events",
                "attributes": {
                    "actor": { "name": "Carlos Treminio", "email": "ctreminiom079@gmail.com", "id": "5b86be50b8e3cb5895860d6d",
                               "links": { "self": "https://api.atlassian.com/users/5b86be50b8e3cb5895860d6d/manage/profile" } },
                    "container": [{ "id": ORG, "type": "orgs", "attributes": { "name": "ctreminiom" } }],
                    "context": [{ "id": "8cfb8956-6559-441e-94e9-f08955a61696", "type": ty, "attributes": target, "links": { "alt": null, "self": null } }],
                    "action": action,
                    "location": { "ip": "201.202.14.26", "countryName": "Costa Rica", "regionName": "Provincia de Cartago", "city": "Cartago" },
                    "time": now.to_rfc3339_opts(SecondsFormat::Micros, true)
                },
                "links": { "self": format!("https://api.atlassian.com/admin/v1/orgs/{ORG}/events/{id}") },
                "message": { "content": content, "format": "simple" }
            })));
        }
        ids
    }

    fn block(&self, name: &str, token: &str) -> String {
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"atlassian\"\nurl = \"{}\"\norg_id = \"{ORG}\"\ntoken = \"{token}\"\nrate_limit = \"20/s\"\n",
            self.server.url()
        )
    }
}

common::compliance::fake_vendor!(FakeAtlassian, TOKEN, "ATCTT3x-not-the-key");

/// A quota of 3 requests per 2 s and 40 events in pages of 7: every
/// answer's `X-RateLimit-Remaining` is read, and at 0 the next request
/// waits for the ISO 8601 `X-RateLimit-Reset`. Nothing is lost or
/// repeated, the walk follows `links.next`, and the quota is never overrun.
#[test]
fn atlassian_waits_for_the_iso_8601_rate_limit_reset_and_follows_links_next() {
    let api = FakeAtlassian::with_quota(3, std::time::Duration::from_secs(2));
    let ids = api.add(40);
    let dir = TestDir::new();
    let (out, log) = deliver_to_file_logged(&dir, &api.block("atl", TOKEN), 5, &ids, "under Atlassian's quota");
    let s = api.state.lock().unwrap();
    assert!(s.quota.spent >= 2, "the quota ran out (more than once) while the walk went on");
    assert_eq!(s.overruns, 0, "the quota was overrun: {}", tail(&log, 20));
    assert!(s.cursor_requests >= 4, "the walk followed links.next");
    let docs: Vec<Value> =
        std::fs::read_to_string(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let removed = docs.iter().find(|d| d["event"]["action"] == "user_removed_from_site").expect("a user removed");
    assert_eq!(removed["event"]["category"], json!(["iam"]));
    assert_eq!(removed["event"]["type"], json!(["user", "deletion"]));
    assert_eq!(removed["user"]["target"]["name"], "example@equifax.com");
    assert_eq!(removed["user"]["name"], "Carlos Treminio");
    assert_eq!(removed["source"]["ip"], "201.202.14.26");
    assert_eq!(removed["observer"]["vendor"], "Atlassian");
    let group = docs.iter().find(|d| d["event"]["action"] == "group_created").expect("a group created");
    assert_eq!(group["group"]["name"], "jira-users-2");
}

/// A 429 without `Retry-After` (none is documented) waits for its
/// `X-RateLimit-Reset`, then everything arrives.
#[test]
fn atlassian_retries_a_429_at_its_rate_limit_reset() {
    let api = FakeAtlassian::with_quota(2, std::time::Duration::from_secs(2));
    let ids = api.add(5);
    // Two requests spend the quota before the agent starts: its first is a 429.
    {
        let mut s = api.state.lock().unwrap();
        let now = Utc::now();
        s.quota.take(now);
        s.quota.take(now);
    }
    let dir = TestDir::new();
    let (_, log) = deliver_to_file_logged(&dir, &api.block("atl", TOKEN), 5, &ids, "after the 429");
    assert!(log.lines().any(|l| l.contains("atl") && l.contains("retrying")), "{}", tail(&log, 20));
}

/// A `links.next` on another origin (`localhost` for `127.0.0.1`) is
/// refused before the API key goes there: the poll fails naming the
/// origin, and no request reaches it.
#[test]
fn atlassian_refuses_a_links_next_on_another_origin() {
    let api = FakeAtlassian::start();
    api.state.lock().unwrap().foreign_next = true;
    api.add(10);
    let dir = TestDir::new();
    let out = dir.file("out.jsonl");
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&api.block("atl", TOKEN)),
        common::agent::file_output("out", &out, 5)
    );
    let agent = dir.start_with(&cfg);
    wait_until_or(
        "the foreign origin to be refused",
        DEADLINE,
        || dir.last_error(0).contains("refused to send a request to http://localhost:"),
        || tail(&agent.stderr(), 20),
    );
    agent.stop();
    assert_eq!(api.state.lock().unwrap().foreign_requests, 0, "the key went to another origin");
}

/// `from`/`to` read as seconds make every window look empty: `check
/// --connect` and every poll fail naming the filter until it is read as
/// sent, and then every event arrives.
#[test]
fn atlassian_guards_an_empty_window_against_a_filter_read_otherwise() {
    let api = FakeAtlassian::start();
    api.state.lock().unwrap().seconds = true;
    let ids = api.add(3);
    let fix = || api.state.lock().unwrap().seconds = false;
    let says = "Atlassian did not filter by time in epoch milliseconds as sent";
    common::compliance::check_wrong_guess_is_loud(&api.block("atl", TOKEN), says, fix, &ids);
}

/// An `org_id` the key does not belong to is refused credentials naming
/// `org_id` in `check --connect`.
#[test]
fn atlassian_check_connect_names_a_wrong_org_id() {
    let api = FakeAtlassian::start();
    let dir = TestDir::new();
    let block = api.block("atl", TOKEN).replace(ORG, "0a1bb234-cde5-678f-gh90-12345i678jk9");
    dir.write_config(&format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&block),
        common::agent::file_output("out", &dir.file("out.jsonl"), 5)
    ));
    let (code, text) = dir.check_connect();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("Error.OrgNotFound") && text.contains("org_id"), "{text}");
}

common::compliance::compliance_tests!(FakeAtlassian::start());
