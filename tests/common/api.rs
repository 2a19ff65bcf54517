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
//! repeats forever (a pagination loop); and, for the fault-injection suite,
//! truncated JSON, an oversized body, a page of events older than `since`,
//! or an empty page that still carries a next token.
//!
//! [`FakeApi::start_with_prefix`] gives a second API distinct event ids;
//! [`FakeApi::add_history_within`] spreads any number of events over a past
//! span; [`FakeApi::add_at`] stamps events at any time (an API whose clock
//! jumps), keeping the listing in time order.

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
    /// 200 with the page's JSON cut off half-way.
    Truncated,
    /// 200 with a body of about `bytes` bytes: the real page plus a huge
    /// padding field (valid JSON, so only its size can refuse it). With
    /// `chunked`, no `Content-Length`: the reader must stop on its own.
    Huge {
        /// Approximate body size.
        bytes: usize,
        /// Stream it without a length.
        chunked: bool,
    },
    /// A page that ignores `since`: events from the start of the listing
    /// (older than the cursor), `limit` of them; the next token goes on as
    /// usual.
    OlderThanCursor,
    /// An empty page whose next token leads to the page that was asked for.
    EmptyWithNext,
    /// The page as usual, but its last event's `created_at` is a word.
    Untimed,
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
    prefix: String,
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

fn make_event(prefix: &str, k: u64, t: DateTime<Utc>) -> Value {
    let i = (k % 5) as usize;
    json!({
        "id": format!("{prefix}{k:06}"),
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
        Self::start_with_prefix(token, "evt-")
    }

    /// [`FakeApi::start`], with event ids `{prefix}000001`, … (two APIs
    /// whose ids must not collide).
    pub fn start_with_prefix(token: &str, prefix: &str) -> FakeApi {
        let state = Arc::new(Mutex::new(ApiState {
            token: token.to_owned(),
            prefix: prefix.to_owned(),
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
            let e = make_event(&s.prefix, k, t);
            ids.push(e["id"].as_str().unwrap().to_owned());
            s.events.push((t, e));
        }
        s.events.sort_by_key(|(t, _)| *t);
        ids
    }

    /// Add `n` events spread evenly over `span` up to now (three per
    /// timestamp). Only before the agent first polls, like
    /// [`FakeApi::add_history`].
    pub fn add_history_within(&self, n: usize, span: Duration) -> Vec<String> {
        let mut s = self.lock();
        let now = ceil_ms(Utc::now()) - chrono::Duration::milliseconds(1);
        let span = chrono::Duration::from_std(span).expect("span");
        let steps = n.div_ceil(3).max(1) as i64;
        let step_ms = (span.num_milliseconds() / steps).max(1);
        let base = now - chrono::Duration::milliseconds(step_ms * steps);
        let mut ids = Vec::new();
        for i in 0..n {
            let t = base + chrono::Duration::milliseconds((i / 3) as i64 * step_ms);
            let k = s.next_id;
            s.next_id += 1;
            let e = make_event(&s.prefix, k, t);
            ids.push(e["id"].as_str().unwrap().to_owned());
            s.events.push((t, e));
        }
        s.events.sort_by_key(|(t, _)| *t);
        ids
    }

    /// Add `n` events stamped from `t` on (three per millisecond), whatever
    /// the events already there: an API whose clock jumps. The listing
    /// stays in time order (events at equal times keep their order).
    pub fn add_at(&self, n: usize, t: DateTime<Utc>) -> Vec<String> {
        let mut s = self.lock();
        let t0 = ceil_ms(t);
        let mut ids = Vec::new();
        for i in 0..n {
            let t = t0 + chrono::Duration::milliseconds((i / 3) as i64);
            let k = s.next_id;
            s.next_id += 1;
            let e = make_event(&s.prefix, k, t);
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
            let e = make_event(&s.prefix, k, t);
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
        let mut special = None;
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
            Some(f) => special = Some(f),
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
                    None => (false, tok.strip_prefix(['p', 'e']).unwrap_or("x")),
                };
                match pos.parse::<usize>() {
                    Ok(p) => (p, looping.then(|| tok.to_owned())),
                    Err(_) => return err(400, "bad cursor"),
                }
            }
        };
        if special == Some(ApiFault::EmptyWithNext) {
            let r = Json(json!({ "data": { "items": [] }, "next_cursor": format!("e{start}") })).into_response();
            return (200, r, 0);
        }
        let older = special == Some(ApiFault::OlderThanCursor);
        let matching: Vec<usize> =
            (start.min(s.events.len())..s.events.len()).filter(|&i| older || s.events[i].0 >= since).collect();
        let mut page: Vec<Value> = matching.iter().take(limit).map(|&i| s.events[i].1.clone()).collect();
        if let (Some(ApiFault::Untimed), Some(last)) = (&special, page.last_mut()) {
            last["created_at"] = json!("yesterday");
        }
        let next_pos = matching.get(limit).copied();
        let next = match (looping, repeat) {
            (Some(tok), _) => Value::String(tok),
            (None, true) => Value::String(format!("loop-{}", next_pos.unwrap_or(s.events.len()))),
            (None, false) => next_pos.map_or(Value::Null, |p| Value::String(format!("p{p}"))),
        };
        let n = page.len();
        let body = json!({ "data": { "items": page }, "next_cursor": next });
        match special {
            Some(ApiFault::Truncated) => {
                let text = body.to_string();
                let cut = text[..text.len() / 2].to_owned();
                (200, ([("content-type", "application/json")], cut).into_response(), 0)
            }
            Some(ApiFault::Huge { bytes, chunked }) => (200, huge_body(body, bytes, chunked), 0),
            _ => (200, Json(body).into_response(), n),
        }
    }
}

/// `body` with a `padding` field that makes it about `bytes` long.
fn huge_body(mut body: Value, bytes: usize, chunked: bool) -> Response {
    body["padding"] = Value::String(String::new());
    let text = body.to_string();
    let (head, tail) = text.rsplit_once("\"padding\":\"\"").expect("padding field");
    let pad = bytes.saturating_sub(text.len());
    let parts: Vec<axum::body::Bytes> = std::iter::once(format!("{head}\"padding\":\"").into_bytes())
        .chain((0..pad.div_ceil(1 << 20)).map(|i| vec![b'x'; (pad - i * (1 << 20)).min(1 << 20)]))
        .chain(std::iter::once(format!("\"{tail}").into_bytes()))
        .map(axum::body::Bytes::from)
        .collect();
    let ct = [("content-type", "application/json")];
    if chunked {
        let stream = futures_util::stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>));
        (ct, axum::body::Body::from_stream(stream)).into_response()
    } else {
        (ct, parts.concat()).into_response()
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
