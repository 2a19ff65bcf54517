//! The `cloudflare` source against a fake Cloudflare API built from
//! Cloudflare's v1 audit log reference
//! (`GET /client/v4/accounts/{account_id}/audit_logs`, "Get account audit
//! logs") and Elastic's mock of it (elastic/integrations
//! `packages/cloudflare/_dev/deploy/docker/files/config.yml`):
//! `Authorization: Bearer <token>` (otherwise a 403 with error code 10000,
//! "Authentication error", as Cloudflare answers an invalid token),
//! `since`/`before` (RFC 3339, read here as *exclusive*, "newer than" and
//! "older than", the strict reading of the reference), `direction`
//! (`desc` unless `asc` is asked), `page` (from 1) and `per_page` (1–1000,
//! else a 400). The answer is the v4 envelope `{"result": [...],
//! "result_info": {...}, "success": true, "errors": [], "messages": []}`
//! with records shaped like the Elastic pipeline test input the unit tests
//! read (`packages/cloudflare/data_stream/audit/_dev/test/pipeline/test-audit.log`).
//!
//! Rate limits as Cloudflare's API reference ("Rate limits") gives them:
//! every answer has `Ratelimit: "default";r=REMAINING;t=SECONDS` and
//! `Ratelimit-Policy: "default";q=LIMIT;w=WINDOW`; a request over the
//! quota is a 429 with `Retry-After` (and error code 971, "Please wait and
//! consider throttling your request speed").

use crate::common;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use common::agent::{tail, TestDir};
use common::compliance::{deliver_to_file_logged, Fault};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "Yh5Xn6kSg3C0qVq1tB1xQm8pZrW7s2LdF4aE9uJc";
const ACCOUNT: &str = "4bb334f7c94c4a29a045f03944f072e5";

/// The account's quota: requests per window.
struct Quota {
    limit: u32,
    window: std::time::Duration,
    used: u32,
    resets: Option<DateTime<Utc>>,
    /// Answers that said no request remained.
    spent: usize,
}

struct Fake {
    logs: Vec<(DateTime<Utc>, Value)>,
    faults: VecDeque<Fault>,
    quota: Quota,
    /// Requests answered 429 because the quota was overrun (not injected).
    overruns: usize,
    /// Requests that came before a 429's `Retry-After` had passed.
    early_retries: usize,
    throttled_until: Option<DateTime<Utc>>,
    /// Read `before` an hour early: the guess the guard checks, gone wrong.
    before_misread: bool,
    next: u64,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeCloudflare {
    state: Shared,
    server: common::Server,
}

fn cf_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body =
        json!({ "success": false, "errors": [{ "code": code, "message": message }], "messages": [], "result": null });
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
        let t = ((resets - now).num_milliseconds() + 999) / 1000;
        let headers = vec![
            ("ratelimit", format!("\"default\";r={};t={}", self.limit - self.used, t.max(1))),
            ("ratelimit-policy", format!("\"default\";q={};w={}", self.limit, self.window.as_secs().max(1))),
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

/// A 429 as Cloudflare sends it, with `Retry-After` when given.
fn too_many(s: &mut Fake, now: DateTime<Utc>, retry_after: Option<u64>) -> Response {
    let mut r = cf_error(StatusCode::TOO_MANY_REQUESTS, 971, "Please wait and consider throttling your request speed");
    if let Some(n) = retry_after {
        s.throttled_until = Some(now + chrono::Duration::seconds(n as i64));
        r.headers_mut().insert("retry-after", n.to_string().parse().unwrap());
    }
    r
}

fn time(q: &HashMap<String, String>, k: &str) -> Result<Option<DateTime<Utc>>, ()> {
    match q.get(k) {
        None => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(v).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| ()),
    }
}

async fn audit_logs(
    State(st): State<Shared>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    let now = Utc::now();
    if s.throttled_until.is_some_and(|t| now < t) {
        s.early_retries += 1;
    }
    s.throttled_until = None;
    if let Some(f) = s.faults.pop_front() {
        return match f {
            Fault::TooManyRequests { retry_after } => too_many(&mut s, now, retry_after),
            // Cloudflare has no throttling 401/403; it says so with a 429.
            Fault::Throttle401 => too_many(&mut s, now, Some(1)),
            Fault::ServerError => cf_error(StatusCode::INTERNAL_SERVER_ERROR, 10001, "Internal server error"),
            Fault::Garbage => (
                [("content-type", "text/html")],
                "<!DOCTYPE html><html><title>Attention Required! | Cloudflare</title>",
            )
                .into_response(),
        };
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return cf_error(StatusCode::FORBIDDEN, 10000, "Authentication error");
    }
    if account != ACCOUNT {
        return cf_error(
            StatusCode::NOT_FOUND,
            7003,
            "Could not route to /accounts/x/audit_logs, perhaps your object identifier is invalid?",
        );
    }
    let (rate, over) = s.quota.take(now);
    if over {
        s.overruns += 1;
        let wait = s.quota.resets.map_or(1, |r| ((r - now).num_milliseconds() as u64).div_ceil(1000));
        return with_headers(too_many(&mut s, now, Some(wait.max(1))), &rate);
    }
    let per_page: usize = match q.get("per_page").map(|n| n.parse::<usize>()) {
        None => 25,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        _ => return cf_error(StatusCode::BAD_REQUEST, 1004, "per_page must be between 1 and 1000"),
    };
    let page: usize = match q.get("page").map(|n| n.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        _ => return cf_error(StatusCode::BAD_REQUEST, 1004, "page must be a positive number"),
    };
    let (Ok(since), Ok(before)) = (time(&q, "since"), time(&q, "before")) else {
        return cf_error(StatusCode::BAD_REQUEST, 1004, "since and before must be dates or RFC3339 timestamps");
    };
    let before = before.map(|b| if s.before_misread { b - chrono::Duration::hours(1) } else { b });
    let mut matching: Vec<Value> = s
        .logs
        .iter()
        .filter(|(t, _)| since.is_none_or(|f| *t > f) && before.is_none_or(|b| *t < b))
        .map(|(_, e)| e.clone())
        .collect();
    if q.get("direction").map(String::as_str) != Some("asc") {
        matching.reverse();
    }
    let result: Vec<Value> = matching.iter().skip((page - 1) * per_page).take(per_page).cloned().collect();
    let body = json!({
        "result": result,
        "result_info": { "page": page, "per_page": per_page, "count": result.len(), "total_count": matching.len() },
        "success": true, "errors": [], "messages": []
    });
    with_headers(Json(body).into_response(), &rate)
}

impl FakeCloudflare {
    fn start() -> FakeCloudflare {
        FakeCloudflare::with_quota(1000, std::time::Duration::from_secs(300))
    }

    fn with_quota(limit: u32, window: std::time::Duration) -> FakeCloudflare {
        let state = Arc::new(Mutex::new(Fake {
            logs: Vec::new(),
            faults: VecDeque::new(),
            quota: Quota { limit, window, used: 0, resets: None, spent: 0 },
            overruns: 0,
            early_retries: 0,
            throttled_until: None,
            before_misread: false,
            next: 0,
        }));
        let router =
            Router::new().route("/client/v4/accounts/{account}/audit_logs", get(audit_logs)).with_state(state.clone());
        FakeCloudflare { state, server: common::Server::start(router) }
    }

    /// `n` records shaped like the Elastic sample, dated now.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let mut ids = Vec::new();
        for _ in 0..n {
            s.next += 1;
            let k = s.next;
            let now = Utc::now();
            let id = format!("73fd39ed-5aab-4a2a-b93c-{k:012x}");
            let (action, result, resource) = [
                ("login", true, "account"),
                ("login", false, "account"),
                ("token_create", true, "account"),
                ("rec_del", true, "DNS_record"),
            ][k as usize % 4];
            ids.push(id.clone());
            s.logs.push((now, json!({
                "action": { "result": result, "type": action },
                "actor": { "email": "user@example.com", "id": "enl3j9du8rnx2swwd9l32qots7l54t9s", "ip": "89.160.20.156", "type": "user" },
                "id": id, "interface": "UI",
                "metadata": { "zone_name": "example.com" },
                "newValue": "", "oldValue": "",
                "owner": { "id": "eojhfbg334i88zs2pr2rd7wr82jf2h95" },
                "resource": { "id": "10715065315", "type": resource },
                "when": now.to_rfc3339_opts(SecondsFormat::Micros, true)
            })));
        }
        ids
    }

    fn block(&self, name: &str, token: &str) -> String {
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"cloudflare\"\nurl = \"{}\"\naccount_id = \"{ACCOUNT}\"\ntoken = \"{token}\"\n",
            self.server.url()
        )
    }
}

common::compliance::fake_vendor!(FakeCloudflare, TOKEN, "not-the-cloudflare-token");

/// A quota of 3 requests per 2 s and 40 records in pages of 7: every
/// answer's `Ratelimit` header is read, and at `r=0` the next request
/// waits its `t` seconds. Nothing is lost or repeated, and the quota is
/// never overrun (on the real API an overrun locks the account's API out
/// for five minutes).
#[test]
fn cloudflare_waits_for_the_ratelimit_reset_instead_of_overrunning_it() {
    let api = FakeCloudflare::with_quota(3, std::time::Duration::from_secs(2));
    let ids = api.add(40);
    let dir = TestDir::new();
    let (_, log) = deliver_to_file_logged(&dir, &api.block("cf", TOKEN), 5, &ids, "under Cloudflare's quota");
    let s = api.state.lock().unwrap();
    assert!(s.quota.spent >= 2, "the quota ran out (more than once) while the walk went on");
    assert_eq!(s.overruns, 0, "the quota was overrun: {}", tail(&log, 20));
}

/// A 429 is retried once its `Retry-After` has passed, not before.
#[test]
fn cloudflare_retries_a_429_after_its_retry_after() {
    let api = FakeCloudflare::start();
    let ids = api.add(5);
    api.state.lock().unwrap().faults.push_back(Fault::TooManyRequests { retry_after: Some(2) });
    let dir = TestDir::new();
    let (_, log) = deliver_to_file_logged(&dir, &api.block("cf", TOKEN), 5, &ids, "after the 429");
    assert!(log.lines().any(|l| l.contains("cf") && l.contains("retrying")), "{}", tail(&log, 20));
    assert_eq!(api.state.lock().unwrap().early_retries, 0, "retried before Retry-After: {}", tail(&log, 20));
}

/// Records arrive mapped as the unit tests' recorded shape says, through
/// the real binary, across exclusive bounds and page numbers.
#[test]
fn cloudflare_records_arrive_mapped_to_ecs() {
    let api = FakeCloudflare::start();
    let ids = api.add(8);
    let dir = TestDir::new();
    let out = common::compliance::deliver_to_file(&dir, &api.block("cf", TOKEN), 5, &ids, "eight records");
    let docs: Vec<Value> =
        std::fs::read_to_string(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let failed = docs
        .iter()
        .find(|d| d["event"]["action"] == "login" && d["event"]["outcome"] == "failure")
        .expect("a failed login");
    assert_eq!(failed["event"]["category"], json!(["authentication"]));
    assert_eq!(failed["user"]["email"], "user@example.com");
    assert_eq!(failed["source"]["ip"], "89.160.20.156");
    assert_eq!(failed["organization"]["id"], ACCOUNT);
    assert_eq!(failed["observer"]["vendor"], "Cloudflare");
    let deleted = docs.iter().find(|d| d["event"]["action"] == "rec_del").expect("a DNS record deleted");
    assert_eq!(deleted["event"]["type"], json!(["deletion"]));
    assert_eq!(deleted["cloudflare"]["resource"]["type"], "DNS_record");
}

/// A `before` read an hour early makes every window look empty: `check
/// --connect` and every poll fail naming the filter until it is read as
/// sent, and then every record arrives.
#[test]
fn cloudflare_guards_an_empty_window_against_a_filter_read_otherwise() {
    let api = FakeCloudflare::start();
    api.state.lock().unwrap().before_misread = true;
    let ids = api.add(3);
    let fix = || api.state.lock().unwrap().before_misread = false;
    let says = "Cloudflare did not filter by when as sent";
    common::compliance::check_wrong_guess_is_loud(&api.block("cf", TOKEN), says, fix, &ids);
}

/// The wrong account id: the 404 names the account, and no token is
/// misreported as refused.
#[test]
fn cloudflare_check_connect_names_a_wrong_account() {
    let api = FakeCloudflare::start();
    let dir = TestDir::new();
    let block = api.block("cf", TOKEN).replace(ACCOUNT, "0123456789abcdef0123456789abcdef");
    dir.write_config(&format!(
        "{}\n{}{}",
        dir.agent_section(),
        common::compliance::with_test_defaults(&block),
        common::agent::file_output("out", &dir.file("out.jsonl"), 5)
    ));
    let (code, text) = dir.check_connect();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("404") && text.contains("7003"), "{text}");
}

common::compliance::compliance_tests!(FakeCloudflare::start());
