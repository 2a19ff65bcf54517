//! The `keepnet` source against a fake Keepnet Labs API built from the
//! research brief: `POST /connect/token` (form-encoded client credentials,
//! `scope=api1`; a JSON body is a 500, wrong credentials a 400
//! `invalid_client`; tokens live `expires_in` seconds and can be revoked),
//! and `POST /api/audit-logs/search` with a bearer token (401 otherwise),
//! rejecting null `filter`/`orderBy`/`searchInputTextValue` or a missing
//! `ascending` with `INPUT_ERROR`, filtering on `LogDate` `>=`/`<=` and
//! sorting on `orderBy`. Answers alternate between the two envelopes the
//! docs show (`data`/`status`/`validationMessages` and
//! `isSuccess`/`data`/`messages`). A reseller's call with
//! `X-KEEPNET-Company-Id` (Keepnet's quickstart) reads that customer's log
//! instead of the reseller's own.

use crate::common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use common::agent::{file_ids, file_output, tail, wait_until_or, TestDir, DEADLINE};
use common::compliance::{deliver_to_file, with_test_defaults, Fault};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const CLIENT_ID: &str = "b7c1d2e3-client";
const SECRET: &str = "Zm9vYmFyLXNlY3JldC0xMjM0NTY3ODkw";
/// The reseller's customer, in `X-KEEPNET-Company-Id`.
const CUSTOMER: &str = "f3a1c2d4-customer-company";

struct Fake {
    logs: Vec<(DateTime<Utc>, Value)>,
    /// The log of [`CUSTOMER`].
    customer_logs: Vec<(DateTime<Utc>, Value)>,
    /// A `LogDate` filter item matches nothing (the real field could be
    /// named otherwise: it is not documented).
    log_date_matches_nothing: bool,
    faults: VecDeque<Fault>,
    tokens: HashMap<String, std::time::Instant>,
    issued: usize,
    expires_in: u64,
    answers: usize,
    next: u64,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeKeepnet {
    state: Shared,
    server: common::Server,
}

async fn token(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !form.starts_with("application/x-www-form-urlencoded") {
        return (StatusCode::INTERNAL_SERVER_ERROR, "").into_response();
    }
    let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| fields.get(k).map(String::as_str);
    let err = |e: &str| (StatusCode::BAD_REQUEST, Json(json!({ "error": e }))).into_response();
    if field("grant_type") != Some("client_credentials") {
        return err("unsupported_grant_type");
    }
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(SECRET) {
        return err("invalid_client");
    }
    if field("scope") != Some("api1") {
        return err("invalid_scope");
    }
    let mut s = st.lock().unwrap();
    s.issued += 1;
    let tok = format!("eyJhbGciOiJSUzI1NiJ9.tok{}.sig", s.issued);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(s.expires_in);
    s.tokens.insert(tok.clone(), until);
    Json(json!({ "access_token": tok, "expires_in": s.expires_in, "token_type": "Bearer", "scope": "api1",
                 "permissions": ["audit-logs/search|POST"] }))
    .into_response()
}

fn fault_response(f: Fault) -> Response {
    let limited =
        (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "isSuccess": false, "messages": ["Rate limit exceeded"] })));
    match f {
        Fault::TooManyRequests { retry_after: Some(s) } => {
            let mut r = limited.into_response();
            r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
            r
        }
        Fault::TooManyRequests { retry_after: None } | Fault::Throttle401 => limited.into_response(),
        Fault::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "").into_response(),
        Fault::Garbage => ([("content-type", "application/json")], "{\"isSuccess\":true,\"data\":{\"results\":[{\"res")
            .into_response(),
    }
}

fn input_error(m: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "isSuccess": false, "data": null, "messages": [format!("INPUT_ERROR: {m}")] })),
    )
        .into_response()
}

async fn search(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = st.lock().unwrap();
    if let Some(f) = s.faults.pop_front() {
        return fault_response(f);
    }
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let valid = bearer.and_then(|b| s.tokens.get(b)).is_some_and(|until| *until > std::time::Instant::now());
    if !valid {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else { return input_error("body") };
    let (Some(page), Some(size)) = (req["pageNumber"].as_u64(), req["pageSize"].as_u64()) else {
        return input_error("pageNumber and pageSize");
    };
    let Some(ascending) = req["ascending"].as_bool() else { return input_error("ascending") };
    let (Some(order_by), Some(filter)) = (req["orderBy"].as_str(), req["filter"].as_object()) else {
        return input_error("orderBy and filter must not be null");
    };
    if filter.get("searchInputTextValue").is_none_or(Value::is_null) || page == 0 || size == 0 {
        return input_error("searchInputTextValue");
    }
    let mut bounds: Vec<(String, DateTime<Utc>)> = Vec::new();
    for group in filter.get("filterGroups").and_then(Value::as_array).into_iter().flatten() {
        for item in group["filterItems"].as_array().into_iter().flatten() {
            if item["fieldName"] != "LogDate" {
                return input_error("unknown fieldName");
            }
            let Some(t) = item["value"].as_str().and_then(|v| DateTime::parse_from_rfc3339(v).ok()) else {
                return input_error("LogDate value");
            };
            bounds.push((item["operator"].as_str().unwrap_or_default().to_owned(), t.with_timezone(&Utc)));
        }
    }
    let nothing = s.log_date_matches_nothing && !bounds.is_empty();
    let inside = |t: &DateTime<Utc>| {
        !nothing
            && bounds.iter().all(|(op, b)| match op.as_str() {
                ">=" => t >= b,
                "<=" => t <= b,
                _ => true,
            })
    };
    let company = headers.get("x-keepnet-company-id").and_then(|v| v.to_str().ok());
    let logs = match company {
        None => &s.logs,
        Some(CUSTOMER) => &s.customer_logs,
        Some(_) => {
            return (StatusCode::FORBIDDEN, Json(json!({ "isSuccess": false, "messages": ["not your customer"] })))
                .into_response()
        }
    };
    let mut rows: Vec<&(DateTime<Utc>, Value)> = logs.iter().filter(|(t, _)| inside(t)).collect();
    if order_by.eq_ignore_ascii_case("LogDate") && !ascending {
        rows.reverse();
    }
    let total = rows.len() as u64;
    let results: Vec<Value> =
        rows.iter().skip(((page - 1) * size) as usize).take(size as usize).map(|(_, v)| v.clone()).collect();
    let paged = json!({ "pageNumber": page, "pageSize": size, "totalNumberOfPages": total.div_ceil(size),
                        "totalNumberOfRecords": total, "results": results });
    s.answers += 1;
    if s.answers % 2 == 0 {
        Json(json!({ "isSuccess": true, "data": paged, "messages": [] })).into_response()
    } else {
        Json(json!({ "data": paged, "status": "Success", "message": null, "validationMessages": [] })).into_response()
    }
}

impl FakeKeepnet {
    fn start() -> FakeKeepnet {
        let state = Arc::new(Mutex::new(Fake {
            logs: Vec::new(),
            customer_logs: Vec::new(),
            log_date_matches_nothing: false,
            faults: VecDeque::new(),
            tokens: HashMap::new(),
            issued: 0,
            expires_in: 3600,
            answers: 0,
            next: 0,
        }));
        let router = Router::new()
            .route("/connect/token", post(token))
            .route("/api/audit-logs/search", post(search))
            .with_state(state.clone());
        FakeKeepnet { state, server: common::Server::start(router) }
    }

    /// `n` audit logs, three per millisecond, never in the past.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis() + 1).unwrap();
        let t0 = s.logs.last().map_or(now, |(t, _)| (*t).max(now));
        let mut ids = Vec::new();
        for i in 0..n {
            let t = t0 + chrono::Duration::milliseconds((i / 3) as i64);
            s.next += 1;
            let k = s.next;
            let id = format!("6c1d0f3e-aaaa-4bbb-8ccc-{k:012}");
            let op = ["Create", "Update", "Delete"][k as usize % 3];
            ids.push(id.clone());
            s.logs.push((t, json!({
                "resourceId": id, "userName": "Harold Finch", "entityResourceId": format!("cmp-{k}"),
                "entityName": "PhishingCampaign", "oldValue": "{}", "newValue": "{\"Name\":\"Q2\"}", "operation": op,
                "ip": "198.51.100.7", "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0",
                "auditDescription": format!("{op} PhishingCampaign"),
                "logDate": t.to_rfc3339_opts(SecondsFormat::Millis, true)
            })));
        }
        ids
    }

    /// Move every log `by` into the past.
    fn backdate(&self, by: chrono::Duration) {
        for (t, v) in &mut self.state.lock().unwrap().logs {
            *t -= by;
            v["logDate"] = json!(t.to_rfc3339_opts(SecondsFormat::Millis, true));
        }
    }

    fn block(&self, name: &str, secret: &str) -> String {
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"keepnet\"\nurl = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{secret}\"\n",
            self.server.url()
        )
    }
}

common::compliance::fake_vendor!(FakeKeepnet, SECRET, "not-the-secret");

/// Wrong client credentials: the token endpoint's `invalid_client` is
/// reported naming the source, in stderr and in status, and the agent
/// keeps running.
#[test]
fn keepnet_names_the_refused_client() {
    let api = FakeKeepnet::start();
    api.add(3);
    let dir = TestDir::new();
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&api.block("kn", "not-the-secret")),
        file_output("out", &dir.file("out.jsonl"), 5)
    );
    let mut agent = dir.start_with(&cfg);
    wait_until_or(
        "the refused client to be reported",
        DEADLINE,
        || agent.stderr().lines().any(|l| l.contains("source kn") && l.contains("invalid_client")),
        || tail(&agent.stderr(), 20),
    );
    let err = || dir.status_json()["sources"][0]["last_error"].as_str().unwrap_or_default().to_owned();
    wait_until_or("status to show it", DEADLINE, || err().contains("invalid_client"), err);
    assert!(agent.is_running());
    agent.stop();
    assert!(file_ids(&dir.file("out.jsonl")).is_empty());
}

/// Tokens that expire within the minute are fetched again before they
/// expire; a revoked token (401) is replaced once and the poll goes on.
/// Nothing is lost or repeated.
#[test]
fn keepnet_renews_expiring_and_revoked_tokens() {
    let api = FakeKeepnet::start();
    api.state.lock().unwrap().expires_in = 62;
    let mut expected = api.add(10);
    let dir = TestDir::new();
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&api.block("kn", SECRET)),
        file_output("out", &dir.file("out.jsonl"), 5)
    );
    let agent = dir.start_with(&cfg);
    let out = dir.file("out.jsonl");
    let all_in = |want: &[String]| common::missing(&file_ids(&out), want).is_empty();
    wait_until_or("the first events", DEADLINE, || all_in(&expected), || tail(&agent.stderr(), 20));
    wait_until_or(
        "a token renewed before expiry",
        DEADLINE,
        || api.state.lock().unwrap().issued >= 2,
        || tail(&agent.stderr(), 20),
    );
    let issued = {
        let mut s = api.state.lock().unwrap();
        s.expires_in = 3600;
        s.tokens.clear();
        s.issued
    };
    expected.extend(api.add(8));
    wait_until_or("events after the revocation", DEADLINE, || all_in(&expected), || tail(&agent.stderr(), 20));
    assert!(api.state.lock().unwrap().issued > issued, "a new token after the 401");
    let log = agent.stop();
    assert!(!log.contains("refused"), "one 401 is renewed, not reported: {}", tail(&log, 20));
    common::assert_exactly_once(&file_ids(&out), &expected, "across token renewals");
}

/// A reseller's `headers = { "X-KEEPNET-Company-Id" = … }` goes on every
/// API request: the customer's log arrives, not the reseller's own.
#[test]
fn keepnet_sends_the_configured_company_header() {
    let api = FakeKeepnet::start();
    let own = api.add(4);
    let customer = api.add(6);
    {
        let mut s = api.state.lock().unwrap();
        let n = s.logs.len();
        let moved = s.logs.split_off(n - customer.len());
        s.customer_logs = moved;
    }
    let dir = TestDir::new();
    let block = format!("{}headers = {{ \"X-KEEPNET-Company-Id\" = \"{CUSTOMER}\" }}\n", api.block("kn", SECRET));
    let out = deliver_to_file(&dir, &block, 5, &customer, "the customer's log");
    assert!(common::missing(&file_ids(&out), &own).len() == own.len(), "none of the reseller's own logs");
}

/// A `LogDate` filter that matches nothing must not pass for a quiet
/// tenant: `check --connect` and every poll fail naming the filter while
/// the newest unfiltered log lies inside the window, and the cursor stays,
/// so once the filter works every log arrives.
#[test]
fn keepnet_a_log_date_filter_that_matches_nothing_is_not_a_quiet_tenant() {
    let api = FakeKeepnet::start();
    api.state.lock().unwrap().log_date_matches_nothing = true;
    let ids = api.add(5);
    let fix = || api.state.lock().unwrap().log_date_matches_nothing = false;
    common::compliance::check_wrong_guess_is_loud(&api.block("kn", SECRET), "does not filter on `LogDate`", fix, &ids);
}

/// A catch-up longer than one window (Keepnet's windows are a day; here
/// `start_at` three days back): with a `LogDate` filter that matches
/// nothing, the window 2.5 days back, which holds logs, must not pass for
/// quiet because the newest log overall (today's) lies after it. The poll
/// fails naming the filter, the cursor stays, and once the filter works
/// the old logs arrive too.
#[test]
fn keepnet_a_catch_up_window_whose_logs_the_filter_misses_is_not_skipped() {
    let api = FakeKeepnet::start();
    api.state.lock().unwrap().log_date_matches_nothing = true;
    let mut ids = api.add(4);
    api.backdate(chrono::Duration::hours(60));
    ids.extend(api.add(2));
    let block = format!("{}start_at = \"3d\"\n", api.block("kn", SECRET));
    let fix = || api.state.lock().unwrap().log_date_matches_nothing = false;
    common::compliance::check_wrong_guess_is_loud(&block, "does not filter on `LogDate`", fix, &ids);
}

common::compliance::compliance_tests!(FakeKeepnet::start());
