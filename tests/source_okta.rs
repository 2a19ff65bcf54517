//! The `okta` source against a fake Okta org built from Okta's System Log
//! reference (okta/okta-developer-docs, `docs/reference/api/system-log`):
//! `GET /api/v1/logs` with `Authorization: SSWS <token>` (otherwise a 401
//! with `E0000011`), `since`/`until` (RFC 3339, both bounds inclusive on
//! `published`), `limit` (0–1000, else 400 `E0000001`), `sortOrder`
//! (`ASCENDING`); an array of LogEvent objects shaped like the Filebeat
//! test input the unit tests read (elastic/beats
//! `x-pack/filebeat/module/okta/system/test/okta-system-test.json.log`).
//!
//! Paging is by `Link` headers: a `self` link always and, as on a polling
//! query, a `next` link *always*, even after the last event (an empty page
//! that names the same `after` cursor again), so a walk that followed
//! `next` blindly would never end. The `next` link is absolute, built from
//! the request's `Host`, as Okta's are.
//!
//! Rate limits as Okta sends them: every answer has `X-Rate-Limit-Limit`,
//! `-Remaining` and `-Reset` (Unix seconds); a request over the quota
//! before the reset is a 429 `E0000047` with those headers and no
//! `Retry-After`.

use crate::common;

use axum::extract::{Query, State};
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

const TOKEN: &str = "00QCjAl4MlV-WPXM5tAh8LdKYmVDuSJL-f7K-A2hSb";

/// The org's quota on `/api/v1/logs`: requests per window.
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
    /// Requests that came before a 429's `X-Rate-Limit-Reset`.
    early_retries: usize,
    /// The reset the last 429 named.
    throttled_until: Option<DateTime<Utc>>,
    next: u64,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeOkta {
    state: Shared,
    server: common::Server,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn okta_error(status: StatusCode, code: &str, summary: &str) -> Response {
    let body = json!({ "errorCode": code, "errorSummary": summary, "errorLink": code,
                       "errorId": "oaeQ2kM8bBwRbaCtw3xSVxxJw", "errorCauses": [] });
    (status, Json(body)).into_response()
}

impl Quota {
    /// Count a request; the headers to send and whether it is over the quota.
    fn take(&mut self, now: DateTime<Utc>) -> (Vec<(&'static str, String)>, bool) {
        let resets = match self.resets {
            Some(r) if r > now => r,
            _ => {
                self.used = 0;
                let secs = self.window.as_secs().max(1) as i64;
                let r = DateTime::from_timestamp(now.timestamp() + secs, 0).unwrap();
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
            ("x-rate-limit-limit", self.limit.to_string()),
            ("x-rate-limit-remaining", (self.limit - self.used).to_string()),
            ("x-rate-limit-reset", resets.timestamp().to_string()),
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

/// A 429 as Okta sends it: its rate-limit headers with the reset `in_secs`
/// from now, no `Retry-After`.
fn too_many(s: &mut Fake, now: DateTime<Utc>, in_secs: i64) -> Response {
    let reset = DateTime::from_timestamp(now.timestamp() + in_secs, 0).unwrap();
    s.throttled_until = Some(reset);
    let headers = [
        ("x-rate-limit-limit", s.quota.limit.to_string()),
        ("x-rate-limit-remaining", "0".to_owned()),
        ("x-rate-limit-reset", reset.timestamp().to_string()),
    ];
    let r =
        okta_error(StatusCode::TOO_MANY_REQUESTS, "E0000047", "API call exceeded rate limit due to too many requests.");
    with_headers(r, &headers)
}

async fn logs(State(st): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = st.lock().unwrap();
    let now = Utc::now();
    if s.throttled_until.is_some_and(|t| now < t) {
        s.early_retries += 1;
    }
    s.throttled_until = None;
    if let Some(f) = s.faults.pop_front() {
        return match f {
            Fault::TooManyRequests { retry_after: Some(n) } => too_many(&mut s, now, n as i64),
            // The reset already passed (a clock behind Okta's): backoff decides.
            Fault::TooManyRequests { retry_after: None } => too_many(&mut s, now, 0),
            // Okta has no throttling 401; it says so with a 429 as always.
            Fault::Throttle401 => too_many(&mut s, now, 1),
            Fault::ServerError => okta_error(StatusCode::INTERNAL_SERVER_ERROR, "E0000009", "Internal Server Error"),
            // A sign-in page, as a proxy or a wrong path answers.
            Fault::Garbage => {
                ([("content-type", "text/html")], "<!DOCTYPE html><html><head><title>Okta</title>").into_response()
            }
        };
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("SSWS {TOKEN}")) {
        return okta_error(StatusCode::UNAUTHORIZED, "E0000011", "Invalid token provided");
    }
    let (rate, over) = s.quota.take(now);
    if over {
        s.overruns += 1;
        let in_secs = s.quota.resets.map_or(1, |r| (r - now).num_seconds().max(1));
        return too_many(&mut s, now, in_secs);
    }
    let limit: usize = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if n <= 1000 => n,
        _ => return okta_error(StatusCode::BAD_REQUEST, "E0000001", "Api validation failed: limit"),
    };
    if q.get("sortOrder").is_some_and(|o| o != "ASCENDING" && o != "DESCENDING") {
        return okta_error(StatusCode::BAD_REQUEST, "E0000001", "Api validation failed: sortOrder");
    }
    let time = |k: &str| q.get(k).map(|v| DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)));
    let (since, until) = match (time("since"), time("until")) {
        (Some(Err(_)), _) | (_, Some(Err(_))) => {
            return okta_error(StatusCode::BAD_REQUEST, "E0000001", "Api validation failed: 'until': The date format in your query is not recognized. Please enter dates using ISO8601 string format.")
        }
        (s, u) => (s.map(Result::unwrap), u.map(Result::unwrap)),
    };
    if since.is_some() && q.contains_key("after") {
        return okta_error(StatusCode::BAD_REQUEST, "E0000001", "Api validation failed: since and after");
    }
    // `after` is an opaque cursor: here the index of the next event.
    let start = match q.get("after") {
        Some(a) => a.strip_prefix("c").and_then(|n| n.parse::<usize>().ok()).unwrap_or(usize::MAX),
        None => s.logs.iter().position(|(t, _)| since.is_none_or(|since| *t >= since)).unwrap_or(s.logs.len()),
    };
    let mut page = Vec::new();
    let mut end = start;
    for (t, e) in s.logs.iter().skip(start) {
        if until.is_some_and(|u| *t > u) || page.len() >= limit {
            break;
        }
        page.push(e.clone());
        end += 1;
    }
    let end = end.min(s.logs.len()).max(start.min(s.logs.len()));
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    let mut next = url::Url::parse(&format!("http://{host}/api/v1/logs")).unwrap();
    {
        let mut p = next.query_pairs_mut();
        p.append_pair("limit", &limit.to_string()).append_pair("sortOrder", "ASCENDING");
        if let Some(u) = until {
            p.append_pair("until", &stamp(u));
        }
        p.append_pair("after", &format!("c{end}"));
    }
    let mut r = with_headers(Json(Value::Array(page)).into_response(), &rate);
    let this = format!("<http://{host}/api/v1/logs>; rel=\"self\"");
    r.headers_mut().append("link", this.parse().unwrap());
    r.headers_mut().append("link", format!("<{next}>; rel=\"next\"").parse().unwrap());
    r
}

impl FakeOkta {
    fn start() -> FakeOkta {
        FakeOkta::with_quota(1000, std::time::Duration::from_secs(60))
    }

    fn with_quota(limit: u32, window: std::time::Duration) -> FakeOkta {
        let state = Arc::new(Mutex::new(Fake {
            logs: Vec::new(),
            faults: VecDeque::new(),
            quota: Quota { limit, window, used: 0, resets: None, spent: 0 },
            overruns: 0,
            early_retries: 0,
            throttled_until: None,
            next: 0,
        }));
        let router = Router::new().route("/api/v1/logs", get(logs)).with_state(state.clone());
        FakeOkta { state, server: common::Server::start(router) }
    }

    /// `n` LogEvents shaped like the Filebeat sample, two per millisecond,
    /// never in the past.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis() + 1).unwrap();
        let t0 = s.logs.last().map_or(now, |(t, _)| (*t).max(now));
        let mut ids = Vec::new();
        for i in 0..n {
            let t = t0 + chrono::Duration::milliseconds((i / 2) as i64);
            s.next += 1;
            let k = s.next;
            let uuid = format!("3aeede38-4f67-11ea-abd3-{k:012x}");
            let (ty, msg, result) = [
                ("user.session.start", "User login to Okta", "SUCCESS"),
                ("user.session.start", "User login to Okta", "FAILURE"),
                ("user.lifecycle.create", "Create Okta user", "SUCCESS"),
                ("policy.evaluate_sign_on", "Evaluation of sign-on policy", "ALLOW"),
            ][k as usize % 4];
            ids.push(uuid.clone());
            s.logs.push((t, json!({
                "actor": { "alternateId": "xxxxxx@elastic.co", "detailEntry": null, "displayName": "xxxxxx",
                           "id": "00u1abvz4pYqdM8ms4x6", "type": "User" },
                "authenticationContext": { "authenticationProvider": null, "authenticationStep": 0,
                                           "externalSessionId": "102bZDNFfWaQSyEZQuDgWt-uQ" },
                "client": { "device": "Computer", "ipAddress": "67.43.156.12", "zone": "null",
                            "userAgent": { "browser": "FIREFOX", "os": "Mac OS X",
                                           "rawUserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:72.0) Gecko/20100101 Firefox/72.0" } },
                "displayMessage": msg, "eventType": ty, "legacyEventType": null,
                "outcome": { "reason": null, "result": result },
                "published": stamp(t), "severity": "INFO",
                "target": [{ "alternateId": "unknown", "detailEntry": { "policyType": "OktaSignOn" },
                             "displayName": "Default Policy", "id": "00p1abvweGGDW10Ur4x6", "type": "PolicyEntity" }],
                "transaction": { "detail": {}, "id": "XkcAsWb8WjwDP76xh@1v8wAABp0", "type": "WEB" },
                "uuid": uuid, "version": "0"
            })));
        }
        ids
    }

    fn block(&self, name: &str, token: &str) -> String {
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"okta\"\nurl = \"{}\"\ntoken = \"{token}\"\n",
            self.server.url()
        )
    }
}

common::compliance::fake_vendor!(FakeOkta, TOKEN, "00not-the-token");

/// A quota of 3 requests per 2 s and 40 events in pages of 7 (seven
/// requests): every response's `X-Rate-Limit-Remaining` is read, and at 0
/// the next request waits for `X-Rate-Limit-Reset` instead of being
/// refused. Nothing is lost or repeated, and Okta never answers 429.
#[test]
fn okta_waits_for_the_rate_limit_reset_instead_of_overrunning_it() {
    let api = FakeOkta::with_quota(3, std::time::Duration::from_secs(2));
    let ids = api.add(40);
    let dir = TestDir::new();
    let (_, log) = deliver_to_file_logged(&dir, &api.block("okta", TOKEN), 5, &ids, "under Okta's quota");
    let s = api.state.lock().unwrap();
    assert!(s.quota.spent >= 2, "the quota ran out (more than once) while the walk went on");
    assert_eq!(s.overruns, 0, "the quota was overrun: {}", tail(&log, 20));
}

/// A 429 without `Retry-After` (Okta sends none) is retried once its
/// `X-Rate-Limit-Reset` has passed, not before.
#[test]
fn okta_retries_a_429_at_its_rate_limit_reset() {
    let api = FakeOkta::start();
    let ids = api.add(5);
    api.state.lock().unwrap().faults.push_back(Fault::TooManyRequests { retry_after: Some(2) });
    let dir = TestDir::new();
    let (_, log) = deliver_to_file_logged(&dir, &api.block("okta", TOKEN), 5, &ids, "after the 429");
    assert!(log.lines().any(|l| l.contains("okta") && l.contains("retrying")), "{}", tail(&log, 20));
    assert_eq!(api.state.lock().unwrap().early_retries, 0, "retried before the reset: {}", tail(&log, 20));
}

/// Events arrive mapped as the unit tests' recorded shape says, through
/// the real binary.
#[test]
fn okta_events_arrive_mapped_to_ecs() {
    let api = FakeOkta::start();
    let ids = api.add(4);
    let dir = TestDir::new();
    let out = common::compliance::deliver_to_file(&dir, &api.block("okta", TOKEN), 5, &ids, "four events");
    let docs: Vec<Value> =
        std::fs::read_to_string(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let failed = docs.iter().find(|d| d["okta"]["outcome"]["result"] == "FAILURE").expect("a failed login");
    assert_eq!(failed["event"]["action"], "user.session.start");
    assert_eq!(failed["event"]["outcome"], "failure");
    assert_eq!(failed["event"]["category"], json!(["authentication"]));
    assert_eq!(failed["user"]["name"], "xxxxxx@elastic.co");
    assert_eq!(failed["source"]["ip"], "67.43.156.12");
    assert_eq!(failed["okta"]["target"][0]["type"], "PolicyEntity");
    assert_eq!(failed["observer"]["vendor"], "Okta");
}

common::compliance::compliance_tests!(FakeOkta::start());
