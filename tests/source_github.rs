//! The `github` source against a fake GitHub REST API serving the audit
//! log as GitHub does: `GET /orgs/{org}/audit-log` with
//! `Authorization: Bearer` (401 `Bad credentials` otherwise), a wrong
//! organisation a 404 `Not Found`; `phrase` read for its `created:>=` and
//! `created:<=` qualifiers (ISO 8601 with an offset), `order` (GitHub's
//! default `desc`), `per_page` (default 30, at most 100); events shaped as
//! the REST reference's example (`@timestamp`, `_document_id`, `action`,
//! `actor`, `org`, `created_at`, plus `actor_ip` and `operation_type`), and
//! pages chained by `Link: <…&after=CURSOR>; rel="next"`. Throttling as
//! GitHub's docs describe it: the secondary limits answer 403 or 429 with
//! "You have exceeded a secondary rate limit" and `Retry-After`, a spent
//! quota 403 with `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset`.

use crate::common;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use common::compliance::{check_wrong_guess_is_loud, with_test_defaults, Fault};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
const ORG: &str = "octo-corp";

struct Fake {
    events: Vec<(DateTime<Utc>, Value)>,
    faults: VecDeque<Fault>,
    /// The `created` qualifier is not understood: a phrase with it matches
    /// nothing (the guess the connector's guard checks).
    created_matches_nothing: bool,
    next: u64,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeGithub {
    state: Shared,
    server: common::Server,
}

fn message(status: StatusCode, text: &str) -> Response {
    let body = json!({ "message": text, "documentation_url": "https://docs.github.com/rest" });
    (status, Json(body)).into_response()
}

fn fault_response(f: Fault) -> Response {
    let secondary = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.";
    let mut r = match f {
        Fault::TooManyRequests { retry_after } => {
            let mut r = message(StatusCode::TOO_MANY_REQUESTS, secondary);
            if let Some(s) = retry_after {
                r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
            }
            r
        }
        // A spent primary quota: 403, Remaining 0, Reset the next second.
        Fault::Throttle401 => {
            let mut r = message(StatusCode::FORBIDDEN, "API rate limit exceeded for user ID 583231.");
            let reset = (Utc::now().timestamp() + 1).to_string();
            r.headers_mut().insert("x-ratelimit-remaining", "0".parse().unwrap());
            r.headers_mut().insert("x-ratelimit-limit", "5000".parse().unwrap());
            r.headers_mut().insert("x-ratelimit-reset", reset.parse().unwrap());
            r
        }
        Fault::ServerError => message(StatusCode::BAD_GATEWAY, "Server Error"),
        Fault::Garbage => {
            ([("content-type", "application/json")], "[{\"@timestamp\":1606929874512,\"action\":\"te").into_response()
        }
    };
    r.headers_mut().insert("x-github-request-id", "CA5E:1F2B:3C4D5E:6F7A8B:65A0B1C2".parse().unwrap());
    r
}

/// The bounds of a phrase's `created:>=` and `created:<=` qualifiers.
/// The `created:>=` and `created:<=` bounds of a phrase, each if given.
type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

fn created_bounds(phrase: &str) -> Result<Bounds, String> {
    let (mut from, mut to) = (None, None);
    for term in phrase.split_whitespace() {
        let parse = |v: &str| DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|e| e.to_string());
        if let Some(v) = term.strip_prefix("created:>=") {
            from = Some(parse(v)?);
        } else if let Some(v) = term.strip_prefix("created:<=") {
            to = Some(parse(v)?);
        } else {
            return Err(format!("unknown term {term}"));
        }
    }
    Ok((from, to))
}

async fn audit_log(
    State(st): State<Shared>,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Some(f) = s.faults.pop_front() {
        return fault_response(f);
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return message(StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    if org != ORG {
        return message(StatusCode::NOT_FOUND, "Not Found");
    }
    let phrase = q.get("phrase").map(String::as_str).unwrap_or_default();
    let Ok((from, to)) = created_bounds(phrase) else {
        return message(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
    };
    let nothing = s.created_matches_nothing && (from.is_some() || to.is_some());
    let per_page: usize = q.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(30).min(100);
    let asc = q.get("order").map(String::as_str) == Some("asc");
    let mut rows: Vec<&(DateTime<Utc>, Value)> = s
        .events
        .iter()
        .filter(|(t, _)| !nothing && from.is_none_or(|f| *t >= f) && to.is_none_or(|u| *t <= u))
        .collect();
    if !asc {
        rows.reverse();
    }
    let start = match q.get("after") {
        Some(after) => match rows.iter().position(|(_, e)| e["_document_id"] == after.as_str()) {
            Some(i) => i + 1,
            None => return message(StatusCode::UNPROCESSABLE_ENTITY, "Invalid cursor"),
        },
        None => 0,
    };
    let page: Vec<Value> = rows.iter().skip(start).take(per_page).map(|(_, e)| e.clone()).collect();
    let mut resp = Json(&page).into_response();
    if start + page.len() < rows.len() {
        let mut next = url::Url::parse(&format!("http://127.0.0.1/orgs/{org}/audit-log")).unwrap();
        for (k, v) in q.iter().filter(|(k, _)| k.as_str() != "after") {
            next.query_pairs_mut().append_pair(k, v);
        }
        next.query_pairs_mut().append_pair("after", page.last().unwrap()["_document_id"].as_str().unwrap());
        let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
        let next = next.as_str().replacen("127.0.0.1", host, 1);
        let link = format!("<{next}>; rel=\"next\"");
        resp.headers_mut().insert("link", link.parse().unwrap());
    }
    resp.headers_mut().insert("x-ratelimit-remaining", "1749".parse().unwrap());
    resp
}

impl FakeGithub {
    fn start() -> FakeGithub {
        let state = Arc::new(Mutex::new(Fake {
            events: Vec::new(),
            faults: VecDeque::new(),
            created_matches_nothing: false,
            next: 0,
        }));
        let router = Router::new().route("/orgs/{org}/audit-log", get(audit_log)).with_state(state.clone());
        FakeGithub { state, server: common::Server::start(router) }
    }

    /// `n` events, two per millisecond, never in the past.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis() + 1).unwrap();
        let t0 = s.events.last().map_or(now, |(t, _)| (*t).max(now));
        let mut ids = Vec::new();
        for i in 0..n {
            let t = t0 + chrono::Duration::milliseconds((i / 2) as i64);
            s.next += 1;
            let k = s.next;
            let id = format!("xJJFlFOhQ6b-5vaA{k:06}");
            let (action, op) =
                [("team.add_member", "create"), ("repo.destroy", "remove"), ("git.clone", "access")][k as usize % 3];
            ids.push(id.clone());
            let ms = t.timestamp_millis();
            s.events.push((
                t,
                json!({
                    "@timestamp": ms, "action": action, "actor": "octocat", "actor_id": 583231,
                    "actor_ip": "192.0.2.44", "actor_location": { "country_code": "US" }, "created_at": ms,
                    "_document_id": id, "operation_type": op, "org": ORG, "org_id": 9919,
                    "repo": format!("{ORG}/mona-test-repo"), "team": format!("{ORG}/example-team"), "user": "monalisa"
                }),
            ));
        }
        ids
    }

    fn block_for(&self, name: &str, org: &str, token: &str) -> String {
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"github\"\nurl = \"{}\"\norg = \"{org}\"\ntoken = \"{token}\"\nrate_limit = \"50/s\"\n",
            self.server.url()
        )
    }

    fn block(&self, name: &str, token: &str) -> String {
        self.block_for(name, ORG, token)
    }
}

common::compliance::fake_vendor!(FakeGithub, TOKEN, "ghp_not-the-token");
common::compliance::compliance_tests!(FakeGithub::start());

/// A wrong organisation answers 404, which must not pass for an empty log:
/// `check --connect` and the running agent name the organisation and the
/// scope the token needs.
#[test]
fn github_a_wrong_org_is_loud_naming_the_org_and_the_scope() {
    let api = FakeGithub::start();
    api.add(3);
    let dir = common::agent::TestDir::new();
    let block = with_test_defaults(&api.block_for("gh", "octo-crop", TOKEN));
    let out = dir.file("out.jsonl");
    let cfg = format!("{}\n{block}{}", dir.agent_section(), common::agent::file_output("out", &out, 5));
    dir.write_config(&cfg);
    let (code, text) = dir.check_connect();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains("octo-crop")), "{text}");
    assert!(text.contains("read:audit_log"), "{text}");
    let agent = dir.start_with(&cfg);
    let named = || dir.last_error(0).contains("octo-crop") && dir.last_error(0).contains("read:audit_log");
    common::agent::wait_until_or("the org to be named", common::agent::DEADLINE, named, || {
        common::agent::tail(&agent.stderr(), 20)
    });
    agent.stop();
    assert!(common::agent::file_ids(&out).is_empty());
}

/// A new organisation's empty log is legitimate: `check --connect` passes
/// (the guard finds no event at all) and nothing is reported.
#[test]
fn github_an_empty_log_is_not_an_error() {
    let api = FakeGithub::start();
    let dir = common::agent::TestDir::new();
    let block = with_test_defaults(&api.block("gh", TOKEN));
    let cfg = format!("{}\n{block}{}", dir.agent_section(), common::agent::file_output("out", &dir.file("o"), 5));
    dir.write_config(&cfg);
    let (code, text) = dir.check_connect();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("credentials accepted"), "{text}");
}

/// A `created` qualifier GitHub did not understand (it matches nothing)
/// must not pass for a quiet organisation: the poll and `check --connect`
/// fail naming the qualifier, and once it works every event arrives.
#[test]
fn github_a_created_qualifier_that_matches_nothing_is_not_a_quiet_org() {
    let api = FakeGithub::start();
    api.state.lock().unwrap().created_matches_nothing = true;
    let ids = api.add(5);
    let fix = || api.state.lock().unwrap().created_matches_nothing = false;
    check_wrong_guess_is_loud(&api.block("gh", TOKEN), "did not honour the created qualifier", fix, &ids);
}

/// Secondary rate limits (429 and 403 with `Retry-After`) and a spent
/// quota (403, `X-RateLimit-Remaining: 0`) in the middle of Link paging are
/// waited out, never reported as refused credentials; every event arrives
/// once.
#[test]
fn github_rate_limits_mid_paging_are_throttling_not_refusals() {
    let api = FakeGithub::start();
    let ids = api.add(30);
    {
        let mut s = api.state.lock().unwrap();
        s.faults.extend([Fault::TooManyRequests { retry_after: Some(1) }, Fault::Throttle401]);
    }
    let dir = common::agent::TestDir::new();
    let out = dir.file("out.jsonl");
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&api.block("gh", TOKEN)),
        common::agent::file_output("out", &out, 5)
    );
    let agent = dir.start_with(&cfg);
    // Throttle again once the first pages are in.
    common::agent::wait_until("a first page", common::agent::DEADLINE, || !common::agent::file_ids(&out).is_empty());
    api.state.lock().unwrap().faults.extend([Fault::Throttle401, Fault::TooManyRequests { retry_after: Some(1) }]);
    common::agent::wait_until_or(
        "every event",
        common::agent::DEADLINE,
        || common::missing(&common::agent::file_ids(&out), &ids).is_empty(),
        || common::agent::tail(&agent.stderr(), 30),
    );
    let log = agent.stop();
    assert!(!log.contains("refused"), "throttling is not a refusal: {}", common::agent::tail(&log, 30));
    common::assert_exactly_once(&common::agent::file_ids(&out), &ids, "through rate limits");
}
