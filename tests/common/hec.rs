//! A fake Splunk HTTP Event Collector (see `reference/outputs.md` part A).
//!
//! - `POST /services/collector/event`: gunzips `Content-Encoding: gzip`,
//!   parses concatenated JSON envelopes, checks `Authorization: Splunk
//!   <token>` (missing: 401 code 2, malformed: 401 code 3, wrong: 403 code 4)
//!   and records each accepted envelope's `fields.event_id` in arrival order,
//!   duplicates included. With useACK on (the default) the reply carries an
//!   `ackId`, numbered per channel from 0; a missing channel is 400 code 10.
//! - `POST /services/collector/ack?channel=`: `{"acks":[ids]}` →
//!   `{"acks":{"id":bool}}`; an id answers `true` once it is indexed (at once,
//!   or after [`FakeHec::set_index_delay`]), exactly once, then `false`.
//!   With useACK off: 400 code 14.
//! - `GET /services/collector/health`: 200 code 17, or 503 code 18 when busy.
//!
//! Failure modes, switchable at runtime: [`Mode::Busy`] (503 code 9),
//! [`Mode::Refuse`] (connections closed at once, open ones broken),
//! [`Mode::HangAfterReceive`] (records the batch, never answers: a crash
//! between send and commit), [`FakeHec::lose_next_ack`] (the next batch's
//! ackId never turns true), [`FakeHec::reject`] (an event id answered with
//! 400 code 6 and its `invalid-event-number`; events before it in that
//! request count as accepted, as Splunk does).
//!
//! For the fault-injection suite: [`Mode::Blackhole`] (every request is
//! read and never answered, nothing recorded: a wedged proxy) and
//! [`FakeHec::never_ack_first_channel`] (the first channel GUID seen from
//! then on never gets a `true` ack: an indexer that lost that channel).

use super::Server;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the collector behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Accepts.
    Up,
    /// 503 `{"text":"Server is busy","code":9}` for every event POST.
    Busy,
    /// Closes new connections at once and breaks open ones.
    Refuse,
    /// Records what it receives and never answers.
    HangAfterReceive,
    /// Reads every request (events, acks, health) and never answers,
    /// recording nothing but the count ([`FakeHec::blackholed`]).
    Blackhole,
}

/// One accepted envelope.
#[derive(Debug, Clone)]
pub struct Received {
    /// `fields.event_id`.
    pub event_id: String,
    /// The whole envelope.
    pub envelope: Value,
    /// The serial number of the POST it came in (0 first).
    pub request: usize,
}

/// One event POST, as answered.
#[derive(Debug, Clone)]
pub struct Post {
    /// Serial number (0 first).
    pub serial: usize,
    /// Event ids in the body, accepted or not.
    pub event_ids: Vec<String>,
    /// HTTP status answered (0: never answered).
    pub status: u16,
    /// Whether the body was gzip.
    pub gzip: bool,
    /// The channel header or parameter.
    pub channel: Option<String>,
    /// The ackId given.
    pub ack_id: Option<u64>,
}

struct Ack {
    /// When it counts as indexed; `None` = lost, never true.
    indexed_at: Option<Instant>,
    reported: bool,
}

struct HecState {
    token: String,
    mode: Mode,
    use_ack: bool,
    lose_next_ack: bool,
    index_delay: Duration,
    /// Index delay varies by ackId so acks come back out of order.
    index_spread: bool,
    health_delay: Duration,
    reject: HashSet<String>,
    poison_first_channel: bool,
    poisoned: Option<String>,
    blackholed: usize,
    received: Vec<Received>,
    manifests: Vec<Received>,
    posts: Vec<Post>,
    acks: HashMap<(String, u64), Ack>,
    next_ack: HashMap<String, u64>,
    ack_queries: usize,
    /// The most ackIds one ack query asked about.
    widest_ack_query: usize,
    health_checks: usize,
    auth_failures: usize,
}

/// The token the suites' fake collectors accept (a HEC token is a UUID).
pub const HEC_TOKEN: &str = "11111111-2222-3333-4444-555555555555";

type Shared = Arc<Mutex<HecState>>;

/// The fake collector. Dropping it stops it.
pub struct FakeHec {
    state: Shared,
    server: Server,
}

enum Outcome {
    Reply(StatusCode, Value),
    Hang,
}

fn reply(status: u16, body: Value) -> Outcome {
    Outcome::Reply(StatusCode::from_u16(status).expect("status"), body)
}

impl FakeHec {
    /// Start a collector that accepts `token`, with useACK on.
    pub fn start(token: &str) -> FakeHec {
        let state = Arc::new(Mutex::new(HecState {
            token: token.to_owned(),
            mode: Mode::Up,
            use_ack: true,
            lose_next_ack: false,
            index_delay: Duration::ZERO,
            index_spread: false,
            health_delay: Duration::ZERO,
            reject: HashSet::new(),
            poison_first_channel: false,
            poisoned: None,
            blackholed: 0,
            received: Vec::new(),
            manifests: Vec::new(),
            posts: Vec::new(),
            acks: HashMap::new(),
            next_ack: HashMap::new(),
            ack_queries: 0,
            widest_ack_query: 0,
            health_checks: 0,
            auth_failures: 0,
        }));
        let router = Router::new()
            .route("/services/collector/event", post(event))
            .route("/services/collector/event/1.0", post(event))
            .route("/services/collector", post(event))
            .route("/services/collector/ack", post(ack))
            .route("/services/collector/health", get(health))
            .route("/services/collector/health/1.0", get(health))
            .with_state(state.clone());
        FakeHec { state, server: Server::start(router) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HecState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Base URL for the output's `url`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Switch the failure mode.
    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
        self.server.gate.set_refusing(mode == Mode::Refuse);
    }

    /// Turn the token's useACK on or off (off: no `ackId`, `/ack` is 400 code 14).
    pub fn set_use_ack(&self, on: bool) {
        self.lock().use_ack = on;
    }

    /// The next accepted batch's ackId never turns true.
    pub fn lose_next_ack(&self) {
        self.lock().lose_next_ack = true;
    }

    /// Acks turn true this long after the batch arrived.
    pub fn set_index_delay(&self, d: Duration) {
        self.lock().index_delay = d;
    }

    /// Acks turn true after 3, 2, 1 and 0 times the index delay for ackIds
    /// 0, 1, 2, 3, 4, … (repeating): batches sent together are
    /// acknowledged in reverse order.
    pub fn set_index_delay_spread(&self, on: bool) {
        self.lock().index_spread = on;
    }

    /// `/health` answers this late (a slow collector at the agent's start).
    pub fn set_health_delay(&self, d: Duration) {
        self.lock().health_delay = d;
    }

    /// Answer 400 code 6 for any request holding this event id.
    pub fn reject(&self, event_id: &str) {
        self.lock().reject.insert(event_id.to_owned());
    }

    /// From now on, the first channel an event POST names never gets a
    /// `true` ack (its acks stay `false` forever); other channels are
    /// acknowledged as usual.
    pub fn never_ack_first_channel(&self) {
        self.lock().poison_first_channel = true;
    }

    /// The channel picked by [`FakeHec::never_ack_first_channel`], once seen.
    pub fn poisoned_channel(&self) -> Option<String> {
        self.lock().poisoned.clone()
    }

    /// Accepted POSTs whose ackId never turns true (lost or poisoned).
    pub fn lost_ack_posts(&self) -> Vec<Post> {
        let s = self.lock();
        s.posts
            .iter()
            .filter(|p| {
                let key = (p.channel.clone().unwrap_or_default(), p.ack_id.unwrap_or(u64::MAX));
                s.acks.get(&key).is_some_and(|a| a.indexed_at.is_none())
            })
            .cloned()
            .collect()
    }

    /// Requests swallowed by [`Mode::Blackhole`].
    pub fn blackholed(&self) -> usize {
        self.lock().blackholed
    }

    /// Accepted event ids in arrival order, duplicates included.
    pub fn event_ids(&self) -> Vec<String> {
        self.lock().received.iter().map(|r| r.event_id.clone()).collect()
    }

    /// Accepted envelopes in arrival order (completeness manifests left out).
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Accepted completeness manifests' envelopes in arrival order.
    pub fn manifests(&self) -> Vec<Received> {
        self.lock().manifests.clone()
    }

    /// Everything accepted, events and manifests, one JSON envelope per
    /// line as `auditrelay verify` reads an HEC capture.
    pub fn verify_lines(&self) -> Vec<String> {
        let s = self.lock();
        s.received.iter().chain(&s.manifests).map(|r| r.envelope.to_string()).collect()
    }

    /// Every event POST, answered or not.
    pub fn posts(&self) -> Vec<Post> {
        self.lock().posts.clone()
    }

    /// 503 code 9 answers given.
    pub fn busy_replies(&self) -> usize {
        self.lock().posts.iter().filter(|p| p.status == 503).count()
    }

    /// Connections closed while refusing.
    pub fn refused_connections(&self) -> usize {
        self.server.gate.refused()
    }

    /// `/ack` requests answered.
    pub fn ack_queries(&self) -> usize {
        self.lock().ack_queries
    }

    /// The most ackIds one `/ack` request asked about.
    pub fn widest_ack_query(&self) -> usize {
        self.lock().widest_ack_query
    }

    /// `/health` requests answered.
    pub fn health_checks(&self) -> usize {
        self.lock().health_checks
    }

    /// Requests refused for their token.
    pub fn auth_failures(&self) -> usize {
        self.lock().auth_failures
    }

    fn check_auth(s: &mut HecState, headers: &HeaderMap) -> Option<Outcome> {
        let got = headers.get("authorization").and_then(|v| v.to_str().ok());
        let refused = match got {
            None => Some(reply(401, json!({"text": "Token is required", "code": 2}))),
            Some(v) => match v.strip_prefix("Splunk ") {
                None => Some(reply(401, json!({"text": "Invalid authorization", "code": 3}))),
                Some(t) if t != s.token => Some(reply(403, json!({"text": "Invalid token", "code": 4}))),
                Some(_) => None,
            },
        };
        if refused.is_some() {
            s.auth_failures += 1;
        }
        refused
    }

    fn handle_event(state: &Shared, headers: &HeaderMap, q: &HashMap<String, String>, body: &[u8]) -> Outcome {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        if s.mode == Mode::Blackhole {
            s.blackholed += 1;
            return Outcome::Hang;
        }
        if let Some(refused) = Self::check_auth(&mut s, headers) {
            return refused;
        }
        let gzip = headers.get("content-encoding").and_then(|v| v.to_str().ok()) == Some("gzip");
        let channel = headers
            .get("x-splunk-request-channel")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| q.get("channel").cloned());
        let serial = s.posts.len();
        let mut post = Post { serial, event_ids: Vec::new(), status: 0, gzip, channel: channel.clone(), ack_id: None };
        let outcome = Self::accept(&mut s, &mut post, gzip, channel, body);
        if let Outcome::Reply(status, _) = &outcome {
            post.status = status.as_u16();
        }
        s.posts.push(post);
        outcome
    }

    fn accept(s: &mut HecState, post: &mut Post, gzip: bool, channel: Option<String>, body: &[u8]) -> Outcome {
        if s.mode == Mode::Busy {
            return reply(503, json!({"text": "Server is busy", "code": 9}));
        }
        let mut plain = Vec::new();
        let body = if gzip {
            if flate2::read::GzDecoder::new(body).read_to_end(&mut plain).is_err() {
                return reply(400, json!({"text": "Invalid data format", "code": 6}));
            }
            &plain[..]
        } else {
            body
        };
        let mut envelopes = Vec::new();
        for (i, item) in serde_json::Deserializer::from_slice(body).into_iter::<Value>().enumerate() {
            match item {
                Ok(v) => envelopes.push(v),
                Err(_) => {
                    return reply(400, json!({"text": "Invalid data format", "code": 6, "invalid-event-number": i}))
                }
            }
        }
        if envelopes.is_empty() {
            return reply(400, json!({"text": "No data", "code": 5}));
        }
        post.event_ids = envelopes
            .iter()
            .map(|e| e.pointer("/fields/event_id").and_then(Value::as_str).unwrap_or_default().to_owned())
            .collect();
        if s.use_ack && channel.is_none() {
            return reply(400, json!({"text": "Data channel is missing", "code": 10}));
        }
        // The first bad envelope: events before it are accepted, like Splunk.
        let mut bad = None;
        for (i, e) in envelopes.iter().enumerate() {
            let reason = match e.get("event") {
                None => Some((12, "Event field is required")),
                Some(Value::String(t)) if t.is_empty() => Some((13, "Event field cannot be blank")),
                Some(Value::Object(o)) if o.is_empty() => Some((13, "Event field cannot be blank")),
                _ if s.reject.contains(&post.event_ids[i]) => Some((6, "Invalid data format")),
                _ => None,
            };
            if let Some((code, text)) = reason {
                bad = Some((i, code, text));
                break;
            }
        }
        let good = bad.map_or(envelopes.len(), |(i, _, _)| i);
        for (e, id) in envelopes.into_iter().zip(post.event_ids.clone()).take(good) {
            // Completeness manifests are kept apart, so that suites count
            // events alone.
            let list =
                if e.pointer("/event/auditrelay/manifest").is_some() { &mut s.manifests } else { &mut s.received };
            list.push(Received { event_id: id, envelope: e, request: post.serial });
        }
        if let Some((i, code, text)) = bad {
            return reply(400, json!({"text": text, "code": code, "invalid-event-number": i}));
        }
        if s.mode == Mode::HangAfterReceive {
            return Outcome::Hang;
        }
        if !s.use_ack {
            return reply(200, json!({"text": "Success", "code": 0}));
        }
        let channel = channel.unwrap_or_default();
        let next = s.next_ack.entry(channel.clone()).or_insert(0);
        let id = *next;
        *next += 1;
        if s.poison_first_channel && s.poisoned.is_none() {
            s.poisoned = Some(channel.clone());
        }
        let poisoned = s.poisoned.as_deref() == Some(channel.as_str());
        let lost = poisoned || std::mem::take(&mut s.lose_next_ack);
        let delay = if s.index_spread { s.index_delay * (3 - (id % 4) as u32) } else { s.index_delay };
        let indexed_at = if lost { None } else { Some(Instant::now() + delay) };
        s.acks.insert((channel, id), Ack { indexed_at, reported: false });
        post.ack_id = Some(id);
        reply(200, json!({"text": "Success", "code": 0, "ackId": id}))
    }

    fn handle_ack(state: &Shared, headers: &HeaderMap, q: &HashMap<String, String>, body: &[u8]) -> Outcome {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        if s.mode == Mode::Blackhole {
            s.blackholed += 1;
            return Outcome::Hang;
        }
        if let Some(refused) = Self::check_auth(&mut s, headers) {
            return refused;
        }
        if s.mode == Mode::Busy {
            return reply(503, json!({"text": "Server is busy", "code": 9}));
        }
        if !s.use_ack {
            return reply(400, json!({"text": "ACK is disabled", "code": 14}));
        }
        let Some(channel) = q
            .get("channel")
            .cloned()
            .or_else(|| headers.get("x-splunk-request-channel").and_then(|v| v.to_str().ok()).map(str::to_owned))
        else {
            return reply(400, json!({"text": "Data channel is missing", "code": 10}));
        };
        let ids: Vec<u64> = match serde_json::from_slice::<Value>(body) {
            Ok(v) => v
                .get("acks")
                .and_then(Value::as_array)
                .map_or_else(Vec::new, |a| a.iter().filter_map(Value::as_u64).collect()),
            Err(_) => return reply(400, json!({"text": "Invalid data format", "code": 6})),
        };
        s.ack_queries += 1;
        s.widest_ack_query = s.widest_ack_query.max(ids.len());
        let now = Instant::now();
        let mut answer = serde_json::Map::new();
        for id in ids {
            let done = match s.acks.get_mut(&(channel.clone(), id)) {
                Some(a) if !a.reported && a.indexed_at.is_some_and(|t| now >= t) => {
                    a.reported = true;
                    true
                }
                _ => false,
            };
            answer.insert(id.to_string(), Value::Bool(done));
        }
        reply(200, json!({ "acks": answer }))
    }
}

async fn respond(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Reply(status, body) => (status, Json(body)).into_response(),
        Outcome::Hang => std::future::pending().await,
    }
}

async fn event(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    respond(FakeHec::handle_event(&s, &headers, &q, &body)).await
}

async fn ack(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    respond(FakeHec::handle_ack(&s, &headers, &q, &body)).await
}

async fn health(State(s): State<Shared>) -> Response {
    let (delay, blackhole) = {
        let mut g = s.lock().unwrap_or_else(|p| p.into_inner());
        let blackhole = g.mode == Mode::Blackhole;
        g.blackholed += usize::from(blackhole);
        (g.health_delay, blackhole)
    };
    if blackhole {
        return std::future::pending().await;
    }
    // The scripted slow collector (`set_health_delay`); zero by default.
    tokio::time::sleep(delay).await;
    let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
    s.health_checks += 1;
    match s.mode {
        Mode::Busy => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"text": "HEC is unhealthy, queues are full", "code": 18})))
                .into_response()
        }
        _ => Json(json!({"text": "HEC is healthy", "code": 17})).into_response(),
    }
}
