//! `sekoia`: the SEKOIA.IO activity log. Sekoia has no activity-log list
//! endpoint; the log is an intake (dialect `41e3ca4e-…`) whose events are
//! read through the asynchronous event search:
//!
//! 1. `POST /v1/sic/conf/events/search/jobs` over a closed window
//!    (`earliest_time`/`latest_time`, `max_last_events` = [`MAX_LAST_EVENTS`]);
//! 2. `GET …/jobs/{uuid}` until `status` is 2 (0 and 1: not started,
//!    running; anything else failed), waiting between polls
//!    ([`Next::Wait`](super::api::Next::Wait));
//! 3. `GET …/jobs/{uuid}/events?limit&offset` until `offset >= total`.
//!
//! The order of the results is not documented, so the source reads each
//! window completely before its cursor moves (`order() = Desc`: the poller
//! keeps the window open with the ids taken so far). A job whose `total`
//! reaches `max_last_events` may have been truncated: its results are set
//! aside and the range is split in two and searched again, so a busy window
//! never loses events. Events reach the API about two minutes late (default
//! `lag`).
//!
//! Items are already ECS, in one of two shapes, both read: the search API
//! returns them flat, with dotted keys (`"client.ip"`, `"event.id"`), the
//! time in `timestamp` and the index's own `__event_id` (the shape of the
//! SekoiaXDR integration's test data in demisto/content); the integration
//! catalogue shows them nested with `@timestamp`. Either way the fields
//! are kept as ECS paths. The intake key an item carries
//! ([`INTAKE_KEYS`]) is a credential: it is removed from the item before
//! anything else sees it, so it reaches neither the ECS fields nor
//! `event.original`.
//!
//! The search term is a guess: the dialect uuid of the catalogue, under the
//! key `sekoiaio.intake.dialect_uuid`, in Sekoia's query language (`query`
//! replaces it). A term that matches nothing would look exactly like a
//! quiet community, so the first walk of the process that finds nothing in
//! its whole window (the history window at start; `check --connect`'s last
//! hour) is followed by one guard job ([`api::guard_state`](super::api::guard_state)):
//! the same window searched by another mark of the activity log,
//! [`GUARD_TERM`] (the `agent.name` its events carry), a few results. An
//! activity-log event there fails the poll naming the term and the `query`
//! to set, and so does every later empty walk until it is fixed; the cursor
//! stays. Only events under the term settle it for the process; none under
//! the guard's leave it to run again on an empty walk an hour later
//! ([`GUARD_RECHECK`](super::api::GUARD_RECHECK); a job is several requests:
//! not on every empty poll), so a quiet first window cannot settle a wrong
//! term for good.

pub mod config;

use super::api::{
    guard_of, json_body, ApiPage, ApiRequest, ApiResponse, Defaults, GuardSchedule, Next, Order, Query, ShapeError,
    SourceApi, Verdict,
};
use super::auth::Auth;
use super::common::UrlAndToken;
use super::{ceil_to, endpoint, floor_to, utc_time};
use crate::event::{Normalised, Observer};
use crate::settings::secret::Env;
use crate::settings::Problem;
use chrono::{DateTime, Utc};
pub use config::SekoiaConfig;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Dialect uuid of the "SEKOIA.IO activity logs" intake.
pub const DIALECT_UUID: &str = "41e3ca4e-a714-41aa-ad69-684a0b3835fc";
/// Results one search job may hold; a job reaching it is split (the cap
/// Sekoia applies is not documented, so we set our own).
pub const MAX_LAST_EVENTS: u64 = 10_000;
/// Where an item carries the key of its intake, a credential that lets
/// anyone push events into the community: removed from every item, as a
/// dotted key, a nested path or inside the raw record in `message`.
pub const INTAKE_KEYS: [&str; 3] = ["sekoiaio.intake.key", "customer.intake_key", "event.intake_key"];
/// Keys of an item the agent reads itself and does not copy as ECS fields:
/// the time (`@timestamp`, the flat shape's `timestamp`), the raw record
/// (`message`), the index's document id and `event.original`.
const NOT_COPIED: [&str; 5] = ["@timestamp", "timestamp", "message", "__event_id", "event.original"];
/// A range narrower than this is not split further.
const MIN_SPLIT: Duration = Duration::from_secs(2);
/// The guard's search: the web API's activity log by its agent name, a
/// mark its events carry besides the dialect (the integration's samples).
pub const GUARD_TERM: &str = "agent.name:\"sekoia.webapi\"";
/// Results the guard job asks for: one would do.
const GUARD_EVENTS: u64 = 10;
/// The guard step of a walk's state.
const OTHER_MARK: &str = "other_mark";

/// The search term of the catalogue's activity-log intake.
pub fn default_term() -> String {
    format!("sekoiaio.intake.dialect_uuid:\"{DIALECT_UUID}\"")
}

/// The Sekoia hooks.
#[derive(Debug)]
pub struct Sekoia {
    jobs: url::Url,
    cap: u64,
    term: String,
    /// When the term guard runs again.
    guard: GuardSchedule,
    /// The job of the last walk that had not ended when that walk did (a
    /// failed poll): its range and uuid. The next walk from the same
    /// cursor asks about it instead of creating another, which would use
    /// up the tenant's job budget.
    running: std::sync::Mutex<Option<(Range, String)>>,
}

/// Build from config: `url` (a region's API base, e.g.
/// `https://api.sekoia.io` or `https://app.sekoia.io/api`), `token` and
/// `query` (the search term, default [`default_term`]).
pub fn build(
    cfg: &SekoiaConfig,
    required: UrlAndToken,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> Option<(Box<dyn SourceApi>, Auth)> {
    let token = required.token.resolve(at, env, problems)?;
    let mut api = Sekoia::new(&required.url, MAX_LAST_EVENTS);
    if let Some(term) = cfg.query.as_deref() {
        api.term = term.to_owned();
    }
    Some((Box::new(api), Auth::Bearer(token)))
}

super::connector!(SekoiaConfig => build);

/// How long SEKOIA.IO's own library waits for a search job to start
/// (status 0), and then to run (status 1) (SEKOIA-IO/automation-library,
/// the operation center's `get_events` action): a busy tenant's job is
/// waited for as long as the vendor does.
pub const JOB_START_WAIT: Duration = Duration::from_secs(20 * 60);
/// See [`JOB_START_WAIT`].
pub const JOB_RUN_WAIT: Duration = Duration::from_secs(30 * 60);

/// A time range a job searches.
type Range = (DateTime<Utc>, DateTime<Utc>);

/// Seconds a job has been waited for, queued and running.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Waited {
    queued: u64,
    running: u64,
}

/// Where a walk is, carried in [`Query::state`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
enum Step {
    /// Create a job for `ranges[0]`.
    Create { ranges: Vec<(DateTime<Utc>, DateTime<Utc>)> },
    /// Ask how job `job` is doing (`polls` asked so far, `waited` seconds
    /// waited for it to start and then to run).
    Status {
        ranges: Vec<(DateTime<Utc>, DateTime<Utc>)>,
        job: String,
        polls: u32,
        #[serde(default)]
        waited: Waited,
    },
    /// Read job `job`'s results from `offset`.
    Events { ranges: Vec<(DateTime<Utc>, DateTime<Utc>)>, job: String, offset: u64 },
}

impl Sekoia {
    /// Hooks for the API at `base`; jobs reaching `cap` results are split.
    pub fn new(base: &url::Url, cap: u64) -> Self {
        Sekoia {
            jobs: endpoint(base, "v1/sic/conf/events/search/jobs"),
            cap,
            term: default_term(),
            guard: GuardSchedule::default(),
            running: Default::default(),
        }
    }

    /// The step of the walk, and whether it is the guard's. A walk starts
    /// with a job of its own window, or with the job a failed walk from the
    /// same cursor left running (then the rest of the window after it).
    fn step(&self, q: &Query<'_>) -> Result<(bool, Step), ShapeError> {
        let read =
            |s: &Value| serde_json::from_value(s.clone()).map_err(|e| ShapeError(format!("internal walk state: {e}")));
        match q.state {
            None => {
                let running = self.running.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Ok((
                    false,
                    match running {
                        Some(((from, to), job)) if from == q.window.from && to <= q.window.to => {
                            let mut ranges = vec![(from, to)];
                            if to < q.window.to {
                                ranges.push((to, q.window.to));
                            }
                            Step::Status { ranges, job, polls: 0, waited: Waited::default() }
                        }
                        _ => Step::Create { ranges: vec![(q.window.from, q.window.to)] },
                    },
                ))
            }
            Some(s) if guard_of(Some(s)) == Some(OTHER_MARK) => Ok((true, read(&s["step"])?)),
            Some(s) => Ok((false, read(s)?)),
        }
    }

    /// Forget `job` as the running one.
    fn forget(&self, job: &str) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.as_ref().is_some_and(|(_, j)| j == job) {
            *running = None;
        }
    }

    /// The guard's verdict on its results: an activity-log event inside
    /// the window means the term missed it.
    fn verdict_of_guard(&self, q: &Query<'_>, items: &[Value]) -> Result<ApiPage, ShapeError> {
        let inside = items.iter().find(|item| {
            let map = item.as_object().cloned().unwrap_or_default();
            let at = utc_time(crate::event::get(&map, "@timestamp")).or_else(|| utc_time(map.get("timestamp")));
            at.is_some_and(|t| q.window.from <= t && t <= q.window.to) && is_activity_log(&map)
        });
        let Some(item) = inside else { return Ok(ApiPage::parsed(Vec::new(), Next::Done)) };
        // Not settled: every later empty walk fails the same way until
        // `query` is set, so the cursor never passes these events.
        self.guard.wrong();
        let id = item.get("event.id").or_else(|| item.pointer("/event/id")).or_else(|| item.get("__event_id"));
        Err(ShapeError(format!(
            "the search term {:?} found no event between {} and {}, but the activity log has some there (event {}, \
             found by {GUARD_TERM}): the term does not select this community's activity log; set query to a term \
             that does (the cursor stays)",
            self.term,
            sekoia_time(q.window.from),
            sekoia_time(q.window.to),
            id.cloned().unwrap_or(Value::Null)
        )))
    }

    fn job_url(&self, job: &str, tail: &str) -> Result<url::Url, ShapeError> {
        let mut url = self.jobs.clone();
        url.path_segments_mut().map_err(|()| ShapeError("url cannot be a base".into()))?.push(job);
        if !tail.is_empty() {
            url.path_segments_mut().map_err(|()| ShapeError("url cannot be a base".into()))?.push(tail);
        }
        Ok(url)
    }
}

fn sekoia_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn state(step: &Step) -> Value {
    serde_json::to_value(step).unwrap_or(Value::Null)
}

/// `step` as the walk's state, inside the guard's marker when it is the
/// guard's.
fn wrap(guard: bool, step: &Step) -> Value {
    if guard {
        let mut g = super::api::guard_state(OTHER_MARK);
        g["step"] = state(step);
        g
    } else {
        state(step)
    }
}

/// Whether an item is an event of the activity-log intake: its dialect,
/// its agent or its `sekoiaio.activity` fields say so.
fn is_activity_log(map: &Map<String, Value>) -> bool {
    let is = |path: &str, want: &str| crate::event::get(map, path).and_then(Value::as_str) == Some(want);
    is("sekoiaio.intake.dialect_uuid", DIALECT_UUID)
        || is("agent.name", "sekoia.webapi")
        || crate::event::get(map, "sekoiaio.activity").is_some()
        || map.keys().any(|k| k.starts_with("sekoiaio.activity."))
}

impl SourceApi for Sekoia {
    fn observer(&self) -> Observer {
        Observer { vendor: "SEKOIA.IO", product: "SEKOIA.IO activity logs" }
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            page_size: 100,
            lag: Duration::from_secs(120),
            lookback: Duration::from_secs(60),
            max_window: Some(Duration::from_secs(3600)),
            // A job may wait JOB_START_WAIT + JOB_RUN_WAIT, and a window
            // split in sub-jobs waits for each.
            max_poll_time: Some(Duration::from_secs(2 * 3600)),
            ..Defaults::default()
        }
    }

    fn order(&self) -> Order {
        Order::Desc
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        let (guard, step) = self.step(q)?;
        match step {
            Step::Create { ranges } => {
                let (from, to) = ranges.first().copied().ok_or_else(|| ShapeError("no range to search".into()))?;
                let us = chrono::Duration::microseconds(1);
                let (term, cap) = if guard { (GUARD_TERM, GUARD_EVENTS) } else { (self.term.as_str(), self.cap) };
                let body = json!({
                    "term": term,
                    "earliest_time": sekoia_time(floor_to(from, us)),
                    "latest_time": sekoia_time(ceil_to(to, us)),
                    "visible": false,
                    "max_last_events": cap,
                });
                Ok(ApiRequest::post_json(self.jobs.clone(), body))
            }
            Step::Status { job, .. } => Ok(ApiRequest::get(self.job_url(&job, "")?)),
            Step::Events { job, offset, .. } => {
                let mut url = self.job_url(&job, "events")?;
                let limit = if guard { GUARD_EVENTS } else { u64::from(q.page_size) };
                url.query_pairs_mut()
                    .append_pair("limit", &limit.to_string())
                    .append_pair("offset", &offset.to_string());
                Ok(ApiRequest::get(url))
            }
        }
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        // The body's structure, not its bytes: an item can carry an intake key.
        let excerpt = || shape(&body);
        let page = |next| Ok(ApiPage::parsed(Vec::new(), next));
        let (guard, step) = self.step(q)?;
        match step {
            Step::Create { ranges } => {
                let job = body["uuid"].as_str().filter(|u| !u.is_empty());
                let job = job.ok_or_else(|| ShapeError(format!("search job created without a uuid: {}", excerpt())))?;
                if !guard {
                    *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some((ranges[0], job.to_owned()));
                }
                let waited = Waited::default();
                page(Next::Page(wrap(guard, &Step::Status { ranges, job: job.to_owned(), polls: 0, waited })))
            }
            Step::Status { ranges, job, polls, mut waited } => {
                let status = body["status"].as_i64();
                if status != Some(0) && status != Some(1) {
                    // Ended, one way or another: not to be asked about again.
                    self.forget(&job);
                }
                match status {
                    Some(s @ (0 | 1)) => {
                        let delay = Duration::from_secs(u64::from(polls.min(9)) + 1);
                        let (spent, limit, what) = match s {
                            0 => (&mut waited.queued, JOB_START_WAIT, "to start"),
                            _ => (&mut waited.running, JOB_RUN_WAIT, "to finish"),
                        };
                        if *spent >= limit.as_secs() {
                            return Err(ShapeError(format!(
                                "search job {job} waited {} min {what}, as long as SEKOIA.IO's own tools wait; the tenant \
                                 is busy: the next poll asks about the same job",
                                *spent / 60
                            )));
                        }
                        *spent += delay.as_secs();
                        let next = Step::Status { ranges, job, polls: polls + 1, waited };
                        page(Next::Wait(delay, wrap(guard, &next)))
                    }
                    Some(2) => page(Next::Page(wrap(guard, &Step::Events { ranges, job, offset: 0 }))),
                    Some(s) => Err(ShapeError(format!("search job {job} ended with status {s} (cancelled or failed)"))),
                    None => Err(ShapeError(format!("search job {job} has no status: {}", excerpt()))),
                }
            }
            Step::Events { mut ranges, job, offset } => {
                let items = body["items"].as_array();
                let items = items.ok_or_else(|| ShapeError(format!("job results without items: {}", excerpt())))?;
                let total = body["total"].as_u64();
                let total = total.ok_or_else(|| ShapeError(format!("job results without total: {}", excerpt())))?;
                if guard {
                    let items: Vec<Value> = items.iter().cloned().map(scrub).collect();
                    return self.verdict_of_guard(q, &items);
                }
                if total > 0 {
                    self.guard.settle();
                }
                // The whole window holds nothing under the term: the first
                // such walk looks once by another mark (see the module doc).
                let whole = ranges.len() == 1 && ranges[0] == (q.window.from, q.window.to);
                if total == 0 && offset == 0 && whole && self.guard.take_if_due(q.window.to) {
                    return page(Next::Page(wrap(true, &Step::Create { ranges })));
                }
                if offset == 0 && total >= self.cap {
                    let (from, to) = ranges.remove(0);
                    if (to - from).to_std().unwrap_or_default() < MIN_SPLIT {
                        return Err(ShapeError(format!(
                            "{total} events between {} and {}: more than one search job holds ({})",
                            sekoia_time(from),
                            sekoia_time(to),
                            self.cap
                        )));
                    }
                    let mid = from + (to - from) / 2;
                    ranges.splice(0..0, [(from, mid), (mid, to)]);
                    return page(Next::Page(state(&Step::Create { ranges })));
                }
                let offset = offset + items.len() as u64;
                if items.is_empty() && offset < total {
                    return Err(ShapeError(format!(
                        "search job {job} returned no items at offset {offset} of {total} (its results expired: results_ttl is 10 or 30 minutes)"
                    )));
                }
                let next = if offset < total {
                    Next::Page(state(&Step::Events { ranges, job, offset }))
                } else if ranges.len() > 1 {
                    Next::Page(state(&Step::Create { ranges: ranges.split_off(1) }))
                } else {
                    Next::Done
                };
                Ok(ApiPage::parsed(items.iter().cloned().map(scrub).collect(), next))
            }
        }
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let map = raw.as_object().cloned().unwrap_or_default();
        let s = |p: &str| crate::event::get(&map, p).and_then(Value::as_str).filter(|v| !v.is_empty());
        let inner = match crate::event::get(&map, "message") {
            Some(Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
            Some(v) => v.clone(),
            None => Value::Null,
        };
        let m = |p: &str| inner.pointer(p).and_then(Value::as_str).filter(|v| !v.is_empty());
        let mut n = Normalised {
            id: s("event.id").or(s("__event_id")).map(str::to_owned),
            timestamp: utc_time(crate::event::get(&map, "@timestamp")).or_else(|| utc_time(map.get("timestamp"))),
            ..Default::default()
        };
        keep_ecs(&mut n, "", &map);
        let method = s("http.request.method").or(m("/action/method"));
        let path = s("url.path").or(m("/action/path"));
        let action = s("sekoiaio.activity.action.name")
            .or(m("/action/name"))
            .map(str::to_owned)
            .or_else(|| Some(format!("{} {}", method?, path?)));
        let kind = match method.map(str::to_ascii_uppercase).as_deref() {
            Some("GET" | "HEAD" | "OPTIONS") => Some("access"),
            Some("DELETE") => Some("deletion"),
            Some(_) => Some("change"),
            None => None,
        };
        if n.fields.get("event.category").is_none() {
            n.put("event.category", Some(json!(["web"]))).put("event.type", kind.map(|k| json!([k])));
        }
        // ECS makes `event.category` and `event.type` arrays; a flat item
        // carries them as strings.
        for key in ["event.category", "event.type"] {
            if let Some(Value::String(one)) = n.fields.get(key) {
                n.put(key, Some(json!([one])));
            }
        }
        n.put_str("event.action", action.as_deref())
            .put_str("user.id", s("client.user.id").or(m("/identity/user_uuid")).or(s("sekoiaio.activity.client.id")))
            .put_str("source.ip", s("client.ip").or(m("/visit/ip")))
            .put_str("user_agent.original", s("user_agent.original").or(m("/visit/user_agent")));
        n
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        (status == 401 || status == 403).then(|| {
            Verdict::Auth(format!(
                "{}; the API key needs a role that can read events (Settings › API keys)",
                crate::transport::http::excerpt(body)
            ))
        })
    }
}

/// Copy the item's ECS fields (nested or dotted keys) into the normalised
/// view, except [`NOT_COPIED`].
fn keep_ecs(n: &mut Normalised, prefix: &str, map: &Map<String, Value>) {
    for (k, v) in map {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        if NOT_COPIED.contains(&path.as_str()) {
            continue;
        }
        match v {
            Value::Object(inner) => keep_ecs(n, &path, inner),
            other => {
                n.put(&path, Some(other.clone()));
            }
        }
    }
}

/// Longest [`shape`] quoted in an error.
const SHAPE_CHARS: usize = 200;
/// Nesting [`shape`] shows; deeper values are `…`.
const SHAPE_DEPTH: usize = 3;

/// What a response looks like, for a shape error: its keys and the types
/// of its values (`{"items": [{"sekoiaio.intake.key": string, …}], …}`),
/// never a string's text (an item's intake key is one), at most
/// [`SHAPE_CHARS`] characters.
fn shape(body: &Value) -> String {
    fn walk(v: &Value, depth: usize, out: &mut String) {
        if out.len() > SHAPE_CHARS {
            return;
        }
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(_) => out.push_str("bool"),
            Value::Number(_) => out.push_str("number"),
            Value::String(_) => out.push_str("string"),
            Value::Array(a) if a.is_empty() => out.push_str("[]"),
            Value::Object(m) if m.is_empty() => out.push_str("{}"),
            _ if depth >= SHAPE_DEPTH => out.push('…'),
            Value::Array(a) => {
                out.push('[');
                walk(&a[0], depth + 1, out);
                if a.len() > 1 {
                    out.push_str(&format!(", … {} items", a.len()));
                }
                out.push(']');
            }
            Value::Object(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let key: String = k.chars().take(40).map(|c| if c.is_control() { ' ' } else { c }).collect();
                    out.push_str(&format!("{key:?}: "));
                    walk(v, depth + 1, out);
                }
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    walk(body, 0, &mut out);
    if out.chars().count() > SHAPE_CHARS {
        out = out.chars().take(SHAPE_CHARS).collect::<String>() + "…";
    }
    out
}

/// The item without its intake keys ([`INTAKE_KEYS`], and any key whose
/// name ends in `intake_key` at any depth, such as `event.intake_key`,
/// which Sekoia documents as "The intake key"), in the item and in a
/// `message` that holds JSON.
fn scrub(mut item: Value) -> Value {
    let Some(map) = item.as_object_mut() else { return item };
    scrub_map(map);
    if let Some(Value::String(text)) = map.get_mut("message") {
        // Both kinds of key name an intake: most records are not parsed here.
        if text.contains("intake") {
            if let Ok(Value::Object(mut inner)) = serde_json::from_str::<Value>(text) {
                if scrub_map(&mut inner) {
                    *text = Value::Object(inner).to_string();
                }
            }
        }
    }
    item
}

/// Remove the intake keys from `map` and every object inside it. Whether
/// anything was removed.
fn scrub_map(map: &mut Map<String, Value>) -> bool {
    let mut removed = false;
    for path in INTAKE_KEYS {
        removed |= remove(map, path);
    }
    let before = map.len();
    map.retain(|k, _| !k.to_ascii_lowercase().ends_with("intake_key"));
    removed |= map.len() != before;
    for v in map.values_mut() {
        removed |= scrub_value(v);
    }
    removed
}

fn scrub_value(v: &mut Value) -> bool {
    match v {
        Value::Object(inner) => scrub_map(inner),
        Value::Array(items) => items.iter_mut().fold(false, |r, i| scrub_value(i) | r),
        _ => false,
    }
}

/// Remove dotted `path` from `map` however it is written: one dotted key,
/// nested objects, or a mix (`"sekoiaio.intake": {"key": …}`). Whether
/// anything was removed.
fn remove(map: &mut Map<String, Value>, path: &str) -> bool {
    let mut removed = map.remove(path).is_some();
    for (at, _) in path.match_indices('.') {
        if let Some(Value::Object(inner)) = map.get_mut(&path[..at]) {
            removed |= remove(inner, &path[at + 1..]);
        }
    }
    removed
}

#[cfg(test)]
mod tests;
