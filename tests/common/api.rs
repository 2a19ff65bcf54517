//! A fake JSON audit API for the `http_json` source.
//!
//! `GET /audit?since=<rfc3339>&limit=N[&cursor=TOKEN]` with
//! `Authorization: Bearer <token>` (401 otherwise) answers
//! `{"data":{"items":[...]}, "next_cursor": TOKEN|null}`: the events with
//! `created_at >= since`, oldest first, `limit` at a time. Events look like
//! `{"id":"evt-000001","created_at":"…123Z","actor":{…},"action":"login",…}`;
//! several share one timestamp. Events can be added while the agent runs;
//! new ones are never older than the newest already there, and never older
//! than the moment they were added, so an honest poller cannot miss them.
//!
//! A fault queue makes the next request(s) answer 429 (with or without
//! `Retry-After`), 500, an HTML page, 401, or a page whose next token
//! repeats forever (a pagination loop).

use super::compliance::{FakeVendor, Fault};
use super::Server;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the next request answers instead of its page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiFault {
    /// 429, with `Retry-After: N` when given.
    TooManyRequests {
        /// Seconds.
        retry_after: Option<u64>,
    },
    /// 500.
    ServerError,
    /// 200 with an HTML maintenance page.
    Html,
    /// 401, whatever the token.
    Unauthorized,
    /// The page as usual, but its next token answers itself as next again.
    RepeatToken,
}

/// One request the API answered.
#[derive(Debug, Clone)]
pub struct Served {
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// HTTP status.
    pub status: u16,
    /// Events in the page.
    pub items: usize,
}

struct ApiState {
    token: String,
    events: Vec<(DateTime<Utc>, Value)>,
    faults: VecDeque<ApiFault>,
    served: Vec<Served>,
    next_id: u64,
}

type Shared = Arc<Mutex<ApiState>>;

/// The fake API. Dropping it stops it.
pub struct FakeApi {
    state: Shared,
    server: Server,
}

/// RFC 3339 with milliseconds, `Z`.
pub fn ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn ceil_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    let millis = t.timestamp_millis() + i64::from(t.timestamp_subsec_nanos() % 1_000_000 != 0);
    DateTime::from_timestamp_millis(millis).expect("time in range")
}

const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
const ACTIONS: [&str; 5] = ["login", "logout", "user.update", "role.grant", "api_key.create"];

fn make_event(k: u64, t: DateTime<Utc>) -> Value {
    let i = (k % 5) as usize;
    json!({
        "id": format!("evt-{k:06}"),
        "created_at": ms(t),
        "actor": { "id": format!("u-{i}"), "name": NAMES[i], "email": format!("{}@example.com", NAMES[i]) },
        "action": ACTIONS[i],
        "ip": format!("10.0.0.{}", k % 250 + 1),
        "user_agent": "Mozilla/5.0 (auditrelay test)",
        "status": if k % 7 == 0 { "failure" } else { "success" },
        "details": { "n": k, "note": "line one\nline two" },
    })
}

impl FakeApi {
    /// Start an empty API that accepts `Bearer <token>`.
    pub fn start(token: &str) -> FakeApi {
        let state = Arc::new(Mutex::new(ApiState {
            token: token.to_owned(),
            events: Vec::new(),
            faults: VecDeque::new(),
            served: Vec::new(),
            next_id: 1,
        }));
        let router = Router::new().route("/audit", get(audit)).with_state(state.clone());
        FakeApi { state, server: Server::start(router) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ApiState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The bearer token it accepts.
    pub fn token(&self) -> String {
        self.lock().token.clone()
    }

    /// Add `n` events spread over the last minutes (three per timestamp,
    /// timestamps with milliseconds). Only before the agent first polls:
    /// they are older than anything added later.
    pub fn add_history(&self, n: usize) -> Vec<String> {
        let mut s = self.lock();
        let base = ceil_ms(Utc::now()) - chrono::Duration::minutes(10);
        let mut ids = Vec::new();
        for i in 0..n {
            let t = base + chrono::Duration::milliseconds((i / 3) as i64 * 1001 + 7);
            let k = s.next_id;
            s.next_id += 1;
            let e = make_event(k, t);
            ids.push(e["id"].as_str().unwrap().to_owned());
            s.events.push((t, e));
        }
        s.events.sort_by_key(|(t, _)| *t);
        ids
    }

    /// Add `n` events now (three per millisecond, never older than the
    /// newest event already there).
    pub fn add_now(&self, n: usize) -> Vec<String> {
        let mut s = self.lock();
        let newest = s.events.last().map(|(t, _)| *t);
        let t0 = newest.map_or(ceil_ms(Utc::now()), |last| last.max(ceil_ms(Utc::now())));
        let mut ids = Vec::new();
        for i in 0..n {
            let t = t0 + chrono::Duration::milliseconds((i / 3) as i64);
            let k = s.next_id;
            s.next_id += 1;
            let e = make_event(k, t);
            ids.push(e["id"].as_str().unwrap().to_owned());
            s.events.push((t, e));
        }
        ids
    }

    /// Every event, in the API's order.
    pub fn events(&self) -> Vec<Value> {
        self.lock().events.iter().map(|(_, e)| e.clone()).collect()
    }

    /// Every event id, in the API's order.
    pub fn ids(&self) -> Vec<String> {
        self.lock().events.iter().map(|(_, e)| e["id"].as_str().unwrap().to_owned()).collect()
    }

    /// An event by id.
    pub fn event(&self, id: &str) -> Option<Value> {
        self.lock().events.iter().find(|(_, e)| e["id"] == id).map(|(_, e)| e.clone())
    }

    /// Queue a fault for the next request.
    pub fn push_fault(&self, f: ApiFault) {
        self.lock().faults.push_back(f);
    }

    /// Faults not served yet.
    pub fn faults_pending(&self) -> usize {
        self.lock().faults.len()
    }

    /// Requests answered so far.
    pub fn served(&self) -> Vec<Served> {
        self.lock().served.clone()
    }

    /// The `[[source]]` block of an `http_json` source reading this API
    /// with `token`.
    pub fn source_block(&self, name: &str, token: &str) -> String {
        format!(
            r#"[[source]]
name = "{name}"
type = "http_json"
url = "{url}/audit"
auth = {{ type = "bearer", token = "{token}" }}
events = "/data/items"
id = "/id"
timestamp = "/created_at"
params = {{ since = "{{{{cursor}}}}", limit = "{{{{page_size}}}}" }}
pagination = {{ type = "next", next = "/next_cursor", param = "cursor" }}
"#,
            url = self.url()
        )
    }

    fn answer(state: &Shared, headers: &HeaderMap, q: HashMap<String, String>) -> Response {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let (status, resp, items) = Self::page(&mut s, headers, &q);
        s.served.push(Served { query: q, status, items });
        resp
    }

    fn page(s: &mut ApiState, headers: &HeaderMap, q: &HashMap<String, String>) -> (u16, Response, usize) {
        let err = |status: u16, msg: &str| {
            (status, (StatusCode::from_u16(status).unwrap(), Json(json!({ "error": msg }))).into_response(), 0)
        };
        let want = format!("Bearer {}", s.token);
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
            return err(401, "invalid or missing API token");
        }
        let mut repeat = false;
        match s.faults.pop_front() {
            None => {}
            Some(ApiFault::TooManyRequests { retry_after }) => {
                let mut r =
                    (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "error": "rate limit exceeded" }))).into_response();
                if let Some(secs) = retry_after {
                    r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
                }
                return (429, r, 0);
            }
            Some(ApiFault::ServerError) => return err(500, "internal error"),
            Some(ApiFault::Unauthorized) => return err(401, "token expired"),
            Some(ApiFault::Html) => {
                let html = "<!DOCTYPE html><html><head><title>Maintenance</title></head><body><h1>We'll be back soon</h1></body></html>";
                let r = ([("content-type", "text/html; charset=utf-8")], html).into_response();
                return (200, r, 0);
            }
            Some(ApiFault::RepeatToken) => repeat = true,
        }
        let Some(since) = q.get("since").and_then(|v| DateTime::parse_from_rfc3339(v).ok()) else {
            return err(400, "since must be an RFC 3339 time");
        };
        let since = since.with_timezone(&Utc);
        let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(100).clamp(1, 1000);
        let (start, looping) = match q.get("cursor").map(String::as_str) {
            None => (0, None),
            Some(tok) => {
                let (looping, pos) = match tok.strip_prefix("loop-") {
                    Some(rest) => (true, rest),
                    None => (false, tok.strip_prefix('p').unwrap_or("x")),
                };
                match pos.parse::<usize>() {
                    Ok(p) => (p, looping.then(|| tok.to_owned())),
                    Err(_) => return err(400, "bad cursor"),
                }
            }
        };
        let matching: Vec<usize> =
            (start.min(s.events.len())..s.events.len()).filter(|&i| s.events[i].0 >= since).collect();
        let page: Vec<Value> = matching.iter().take(limit).map(|&i| s.events[i].1.clone()).collect();
        let next_pos = matching.get(limit).copied();
        let next = match (looping, repeat) {
            (Some(tok), _) => Value::String(tok),
            (None, true) => Value::String(format!("loop-{}", next_pos.unwrap_or(s.events.len()))),
            (None, false) => next_pos.map_or(Value::Null, |p| Value::String(format!("p{p}"))),
        };
        let n = page.len();
        (200, Json(json!({ "data": { "items": page }, "next_cursor": next })).into_response(), n)
    }
}

async fn audit(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    FakeApi::answer(&s, &headers, q)
}

impl FakeVendor for FakeApi {
    fn base_url(&self) -> String {
        self.url()
    }

    fn add_events(&self, n: usize) -> Vec<String> {
        self.add_now(n)
    }

    fn inject(&self, fault: Fault) {
        self.push_fault(match fault {
            Fault::TooManyRequests { retry_after } => ApiFault::TooManyRequests { retry_after },
            Fault::ServerError => ApiFault::ServerError,
            Fault::Garbage => ApiFault::Html,
            // A generic JSON API has no throttling-by-401 of its own.
            Fault::Throttle401 => ApiFault::TooManyRequests { retry_after: Some(1) },
        });
    }

    fn source_toml(&self, name: &str) -> String {
        self.source_block(name, &self.token())
    }

    fn wrong_credentials_toml(&self, name: &str) -> String {
        self.source_block(name, "not-the-token")
    }
}

/// Wait until no fault is pending (the agent has hit them all).
pub fn wait_faults_served(api: &FakeApi, timeout: Duration) {
    super::agent::wait_until("the API's faults to be served", timeout, || api.faults_pending() == 0);
}
