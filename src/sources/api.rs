//! The hook trait a vendor implements on top of the generic poller: how to
//! build the next request and how to read a response into events and the
//! next page. Hooks are synchronous and do no IO; the poller owns the
//! network, the clock, retries and the cursor.

use crate::event::{Normalised, Observer};
use crate::state::Window;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;

use super::json;
// The JSON readers used to live here; connectors, benches and the fuzz
// harness name them through this module.
pub use super::json::{parse_value, parse_wanted, Pointer, Unparsed, Wanted};

/// What the poller knows when it asks for a request.
#[derive(Debug)]
pub struct Query<'a> {
    /// The time window of this walk: `[cursor - lookback, now - lag]`.
    pub window: Window,
    /// Requests already made in this walk (0 for the first).
    pub page: u64,
    /// Events received so far in this walk (for offset paging).
    pub offset: u64,
    /// What the previous [`ApiPage::next`] carried.
    pub state: Option<&'a Value>,
    /// Events to ask for per request.
    pub page_size: u32,
    /// The poller's clock when the request is made: a connector that needs
    /// the time (a retention limit) reads it here, so tests can set it.
    pub now: DateTime<Utc>,
}

/// One HTTP request, described.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// `GET` or `POST`.
    pub method: reqwest::Method,
    /// Full URL with query string.
    pub url: url::Url,
    /// Extra headers (auth is added by the poller).
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Option<Body>,
}

impl ApiRequest {
    /// A GET of `url`.
    pub fn get(url: url::Url) -> Self {
        ApiRequest { method: reqwest::Method::GET, url, headers: Vec::new(), body: None }
    }
    /// A POST of a JSON body to `url`.
    pub fn post_json(url: url::Url, body: Value) -> Self {
        ApiRequest { method: reqwest::Method::POST, url, headers: Vec::new(), body: Some(Body::Json(body)) }
    }
    /// A fingerprint: the same request twice in one walk is a loop.
    pub fn fingerprint(&self) -> String {
        let body = match &self.body {
            None => String::new(),
            Some(Body::Json(v)) => v.to_string(),
            Some(Body::Text(t)) => t.clone(),
        };
        format!("{} {} {}", self.method, self.url, body)
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// JSON, sent with `Content-Type: application/json`.
    Json(Value),
    /// Text as configured, sent with `Content-Type: application/json`.
    Text(String),
}

/// A response, read whole (within `max_response_size`).
#[derive(Debug)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body bytes.
    pub body: bytes::Bytes,
}

/// What comes after a page.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// The window is complete: the cursor moves to the window's end.
    Done,
    /// Another page: the value is handed back as [`Query::state`].
    Page(Value),
    /// The API cannot say whether more remains (no paging, full page): the
    /// cursor moves to the newest event and the poller asks again from there.
    FromCursor,
    /// Ask again after a delay with this state (an asynchronous search job
    /// that is not finished yet). Not a loop, but bounded by the poller.
    Wait(Duration, Value),
}

/// A response read into raw events and what comes next.
#[derive(Debug)]
pub struct ApiPage {
    /// Raw events in the order the API gave them.
    pub events: Vec<Value>,
    /// Further events still as JSON text in the body, after `events`: the
    /// poller parses them with their normalisation, a large page in parallel
    /// parts (see [`json_body_split`]).
    pub unparsed: Option<Unparsed>,
    /// What comes next.
    pub next: Next,
}

impl ApiPage {
    /// A page of parsed events.
    pub fn parsed(events: Vec<Value>, next: Next) -> ApiPage {
        ApiPage { events, unparsed: None, next }
    }

    /// How many events the page holds.
    pub fn len(&self) -> usize {
        self.events.len() + self.unparsed.as_ref().map_or(0, Unparsed::len)
    }

    /// Whether the page holds no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
/// A vendor's verdict on an unsuccessful status, when it differs from the
/// HTTP meaning.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Throttled: wait and retry (e.g. Guance's 401 with a rate-limit code).
    Throttled(Option<Duration>),
    /// Credentials refused.
    Auth(String),
    /// An answer to read after all: handed to [`SourceApi::parse`] as a
    /// success is (Microsoft's 400 `AF20024`, "the subscription is already
    /// enabled", to a start that changes nothing).
    Accept,
}

/// The defaults a vendor's API documents; config overrides each.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Events per request.
    pub page_size: u32,
    /// Requests allowed, as `(count, per)`.
    pub rate_limit: Option<crate::settings::units::Rate>,
    /// Leave events this young for the next poll.
    pub lag: Duration,
    /// Re-ask this far behind the cursor.
    pub lookback: Duration,
    /// Time between polls.
    pub interval: Duration,
    /// Longest window per walk (`None`: up to now).
    pub max_window: Option<Duration>,
    /// Longest one walk runs (`None`: the agent's default), for APIs
    /// whose asynchronous jobs may take long.
    pub max_poll_time: Option<Duration>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            page_size: super::DEFAULT_PAGE_SIZE,
            rate_limit: None,
            lag: Duration::ZERO,
            lookback: Duration::ZERO,
            interval: super::DEFAULT_INTERVAL,
            max_poll_time: None,
            max_window: None,
        }
    }
}

/// Listing order of an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Oldest first: the cursor can advance page by page.
    #[default]
    Asc,
    /// Newest first: a window is read completely before its cursor moves.
    Desc,
}

/// Parse failure of a response.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(pub String);

/// The hooks a vendor implements.
pub trait SourceApi: Send + Sync + 'static {
    /// Which platform the events come from.
    fn observer(&self) -> Observer;
    /// The vendor's documented defaults.
    fn defaults(&self) -> Defaults {
        Defaults::default()
    }
    /// Oldest first (the cursor moves per page) or newest first (a window is
    /// read completely before its cursor moves).
    fn order(&self) -> Order {
        Order::Asc
    }
    /// Build the request for this step of the walk.
    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError>;
    /// Read a successful response.
    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError>;
    /// Whether the API's time window filters on when records became
    /// available rather than on each record's own time (Microsoft 365
    /// lists content blobs by `contentCreated`; a blob holds records of
    /// hours or days before). The poller then keeps every record a walk
    /// brings whatever its time, reads each window whole before its cursor
    /// moves (as [`Order::Desc`]) and dates the ids it takes by the
    /// window's end, so that `lookback`, counted in availability time,
    /// keeps them while the window can be asked for again.
    fn filters_by_arrival(&self) -> bool {
        false
    }
    /// Map one raw event to ECS fields, its id and its time.
    fn normalise(&self, raw: &Value) -> Normalised;
    /// Everything [`SourceApi::normalise`] and [`SourceApi::untimed`] read
    /// of an event, when the source can say: events the page left as text
    /// are then parsed with [`parse_wanted`], not whole. `None` (the
    /// default): they are parsed whole.
    fn wanted(&self) -> Option<&Wanted> {
        None
    }
    /// Why a raw event that [`SourceApi::normalise`] found no time in has
    /// none (the poll fails on it): by default an excerpt of the event.
    fn untimed(&self, raw: &Value) -> String {
        crate::transport::http::excerpt(raw.to_string().as_bytes())
    }
    /// A vendor-specific reading of an unsuccessful status.
    fn verdict(&self, _status: u16, _body: &[u8]) -> Option<Verdict> {
        None
    }
    /// Answer a request without the network (the demo source).
    fn local(&self, _req: &ApiRequest, _now: DateTime<Utc>) -> Option<ApiResponse> {
        None
    }
}

/// The state of a connector's silent-empty guard step, `{"guard": what}`:
/// after a walk found nothing, one more request that checks a guess the
/// walk relied on (a filter field, a namespace), failing the poll loudly
/// when the guess was wrong, so that a wrong guess never passes for a
/// quiet tenant. [`Poller::probe`](super::poller::Poller::probe) follows
/// such steps too, so `check --connect` runs the guards.
pub fn guard_state(what: &str) -> Value {
    serde_json::json!({ "guard": what })
}

/// How long after a guard found nothing it runs again on an empty walk: a
/// quiet first window must not settle a wrong guess for good, and a guard
/// costs requests (a search job, a rate-limited query).
pub const GUARD_RECHECK: chrono::Duration = chrono::Duration::hours(1);

/// When a connector's silent-empty guard is due. Only a positive answer
/// (events under the guess) settles it; a guard that found nothing under
/// the alternative either is asked again after [`GUARD_RECHECK`] (walk
/// time: the window's end), and one that found events there is due on
/// every empty walk until the guess is fixed.
#[derive(Debug, Default)]
pub struct GuardSchedule(std::sync::Mutex<GuardLast>);

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum GuardLast {
    /// Never ran, or found the guess wrong: due.
    #[default]
    Due,
    /// Found nothing under the alternative, for the walk ending then.
    Quiet(DateTime<Utc>),
    /// Events under the guess: never again.
    Settled,
}

impl GuardSchedule {
    /// Whether an empty walk ending at `now` runs the guard; if so, it is
    /// taken (another empty walk before the answer does not run it twice).
    pub fn take_if_due(&self, now: DateTime<Utc>) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let due = match *last {
            GuardLast::Due => true,
            GuardLast::Quiet(at) => now - at >= GUARD_RECHECK,
            GuardLast::Settled => false,
        };
        if due {
            *last = GuardLast::Quiet(now);
        }
        due
    }

    /// Events under the guess: the guard is never needed again.
    pub fn settle(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = GuardLast::Settled;
    }

    /// The guard found events the guess missed: due on every empty walk.
    pub fn wrong(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = GuardLast::Due;
    }
}

/// The window guard of a connector whose filter is a time range: after a
/// filtered window came back empty, up to three one-row requests tell a
/// quiet window from a filter the API does not apply as sent. Keepnet,
/// GitHub and OpenCTI walk these steps; each asks in its own API's words
/// and words its errors, and [`window_guard::judge`] is the one decision.
pub mod window_guard {
    use chrono::{DateTime, Utc};

    /// Step 1: the newest row, unfiltered.
    pub const NEWEST: &str = "newest_unfiltered";
    /// Step 2: the newest row at or before the window's end (the end bound
    /// of the filter alone).
    pub const BEFORE_END: &str = "newest_before_end";
    /// Step 3: the oldest row, unfiltered.
    pub const OLDEST: &str = "oldest_unfiltered";

    /// What a step's first row says about the empty window `[from, to]`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Finding {
        /// The window is truly empty.
        Empty,
        /// Another step must tell.
        Ask(&'static str),
        /// The row lies inside the window: the filter missed it.
        Inside,
        /// Asked for rows at or before the end, the API answered a later one:
        /// the bound is not applied.
        BoundIgnored,
        /// The oldest row is at or before the end, yet the end bound alone
        /// matched nothing.
        Missed,
    }

    /// The decision on `step`'s first row, dated `first`.
    pub fn judge(step: &str, first: Option<DateTime<Utc>>, from: DateTime<Utc>, to: DateTime<Utc>) -> Finding {
        match (step, first) {
            (_, Some(at)) if step != OLDEST && from <= at && at <= to => Finding::Inside,
            (NEWEST, Some(at)) if at > to => Finding::Ask(BEFORE_END),
            (BEFORE_END, Some(at)) if at > to => Finding::BoundIgnored,
            (BEFORE_END, None) => Finding::Ask(OLDEST),
            (OLDEST, Some(at)) if at <= to => Finding::Missed,
            _ => Finding::Empty,
        }
    }
}

/// Which guard a step's state is, if it is one ([`guard_state`]).
pub fn guard_of(state: Option<&Value>) -> Option<&str> {
    state?.get("guard")?.as_str()
}

/// Parse a JSON body with a short excerpt in the error.
///
/// A body that is not UTF-8 is read with the offending bytes as U+FFFD:
/// one bad byte in one event must not make a page unreadable forever. (The
/// generic source, which keeps each event's bytes, sets such events aside
/// instead: [`json_body_split`].)
pub fn json_body(resp: &ApiResponse) -> Result<Value, ShapeError> {
    match serde_json::from_slice(&resp.body) {
        Ok(v) => Ok(v),
        Err(e) if std::str::from_utf8(&resp.body).is_err() => {
            serde_json::from_str(&String::from_utf8_lossy(&resp.body)).map_err(|_| not_json(resp, e))
        }
        Err(e) => Err(not_json(resp, e)),
    }
}

fn not_json(resp: &ApiResponse, e: serde_json::Error) -> ShapeError {
    ShapeError(format!("body is not JSON ({e}): {}", crate::transport::http::excerpt(&resp.body)))
}
/// Parse a JSON body except the array of events at `pointer` (a JSON
/// pointer through objects only, `""` for the whole body): its elements are
/// only checked and left as text, and the array in the returned body is
/// empty (see [`json::split`]). When the pointer does not name an array (or
/// goes through an array index), the whole body is parsed and `None`
/// returned, so the caller reports the shape as [`json_body`]'s callers do.
pub fn json_body_split(resp: &ApiResponse, pointer: &str) -> Result<(Value, Option<Unparsed>), ShapeError> {
    json::split(&resp.body, pointer).map_err(|e| not_json(resp, e))
}
