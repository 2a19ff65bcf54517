//! The generic poller: one loop that owns the interval, the request rate
//! limit, timeouts, the response size limit, retries (honouring
//! `Retry-After`), `lag`/`lookback`, the `(time, ids taken)` cursor, loop
//! detection, back-pressure from the journal and shutdown. Vendors plug in
//! through [`SourceApi`].
//!
//! A poll walks one time window `[cursor - lookback, now - lag]` page by
//! page. Oldest-first APIs commit each page with the cursor moved to its
//! newest event; newest-first APIs keep the window open in the cursor (with
//! the ids taken so far) until its last page, then move the cursor to the
//! window's end. Each commit is one journal transaction, flushed.

use super::api::{
    parse_wanted, ApiPage, ApiRequest, ApiResponse, Body, Next, Order, Query, SourceApi, Unparsed, Verdict,
};
use super::auth::Auth;
use super::SourceError;
use crate::config::units::{Rate, StartAt};
use crate::event::{as_sent, needs_tree, normalise_text, Event};
use crate::retry::Backoff;
use crate::state::{Cursor, State, Status, Window};
use crate::telemetry::metrics::Metrics;
use crate::transport::http::{error_chain, excerpt, read_body, redact_url, BodyError};
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota};
use serde_json::Value;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The current time; injectable so tests can move the clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Attempts per request within one poll before the poll gives up (the next
/// poll tries again from the same cursor).
const ATTEMPTS: u32 = 5;
/// Longest `Retry-After` honoured within a poll.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(900);
/// Most `Next::Wait` steps in one walk (an asynchronous job that never ends).
const MAX_WAITS: u32 = 120;

/// A source's settings with vendor defaults applied.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Source name.
    pub name: String,
    /// Time between polls once caught up.
    pub interval: Duration,
    /// Where a source without a cursor starts.
    pub start_at: StartAt,
    /// Events per request.
    pub page_size: u32,
    /// Leave events this young for the next poll.
    pub lag: Duration,
    /// Re-ask this far behind the cursor.
    pub lookback: Duration,
    /// Longest window per walk.
    pub max_window: Option<Duration>,
    /// Request timeout (set on the client).
    pub timeout: Duration,
    /// Larger responses are refused.
    pub max_response_size: u64,
    /// Requests per period.
    pub rate_limit: Option<Rate>,
    /// The configured `headers`, sent on every API request (values marked
    /// sensitive: `Debug` does not show them).
    pub headers: reqwest::header::HeaderMap,
}

/// What the poller shares with the rest of the agent.
#[derive(Clone)]
pub struct SourceContext {
    /// The state database.
    pub state: Arc<State>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// The clock.
    pub clock: Clock,
    /// Journal size at which the source pauses.
    pub max_journal_bytes: u64,
    /// Journal size at which the source pauses while every output delivers
    /// (normally [`RUN_AHEAD`]).
    pub run_ahead_bytes: u64,
    /// Permits for the pages being handled at once, shared by all the
    /// sources of an agent (normally [`pages_in_hand`]).
    pub pages: Arc<tokio::sync::Semaphore>,
}

/// One configured source, ready to run.
pub struct Poller {
    settings: Settings,
    api: Arc<dyn SourceApi>,
    client: reqwest::Client,
    auth: Auth,
    limiter: Option<DefaultDirectRateLimiter>,
    ctx: SourceContext,
    /// When "journal is full" was last logged: at most once a minute across
    /// pauses (a catch-up into a small journal pauses every few seconds).
    full_logged: std::sync::Mutex<Option<Instant>>,
}

/// What one walk did.
#[derive(Debug, Clone, PartialEq)]
pub struct PollReport {
    /// Events journaled.
    pub journaled: u64,
    /// Requests made.
    pub requests: u64,
    /// Whether the cursor reached `now - lag` (false: catch up at once).
    pub caught_up: bool,
}

impl Poller {
    /// Assemble a poller.
    pub fn new(
        settings: Settings,
        api: Box<dyn SourceApi>,
        client: reqwest::Client,
        auth: Auth,
        ctx: SourceContext,
    ) -> Self {
        let limiter = settings.rate_limit.and_then(|r| {
            Quota::with_period(r.interval()).map(|q| DefaultDirectRateLimiter::direct(q.allow_burst(nonzero_one())))
        });
        let api = Arc::from(api);
        Poller { settings, api, client, auth, limiter, ctx, full_logged: std::sync::Mutex::new(None) }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Poll until cancelled. Returns an error only for a state failure, which
    /// the agent treats as fatal.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), crate::state::StateError> {
        let name = self.settings.name.clone();
        let mut healthy: Option<bool> = None;
        let mut last_error = String::new();
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let result = self.poll_once(&cancel).await;
            let now = (self.ctx.clock)();
            let mut status = self.ctx.state.status("source", &name).ok().flatten().unwrap_or_default();
            let caught_up = match result {
                Ok(report) => {
                    if healthy != Some(true) && healthy.is_some() {
                        tracing::info!(source = %name, "source is healthy again");
                    }
                    healthy = Some(true);
                    status.healthy = true;
                    status.last_ok = Some(crate::event::rfc3339(now));
                    self.ctx.metrics.set("auditrelay_up", &[("source", &name)], 1.0);
                    self.ctx.metrics.set(
                        "auditrelay_last_poll_timestamp_seconds",
                        &[("source", &name)],
                        now.timestamp() as f64,
                    );
                    report.caught_up
                }
                Err(SourceError::Cancelled) => return Ok(()),
                Err(SourceError::State(e)) => return Err(e),
                Err(e) => {
                    let msg = e.to_string();
                    if healthy != Some(false) || msg != last_error {
                        tracing::error!(source = %name, "poll failed; cursor kept, retrying in {:?}: {msg}", self.settings.interval);
                    }
                    healthy = Some(false);
                    last_error = msg.clone();
                    status.healthy = false;
                    status.last_error = Some(msg);
                    status.last_error_at = Some(crate::event::rfc3339(now));
                    self.ctx.metrics.set("auditrelay_up", &[("source", &name)], 0.0);
                    self.ctx.metrics.add("auditrelay_errors_total", &[("source", &name)], 1);
                    true
                }
            };
            let _ = self.ctx.state.set_status("source", &name, &status);
            if let Ok(Some(c)) = self.ctx.state.cursor(&name) {
                if let Some(t) = c.time {
                    let lag = (now - t).num_milliseconds() as f64 / 1000.0;
                    self.ctx.metrics.set("auditrelay_cursor_lag_seconds", &[("source", &name)], lag);
                }
            }
            if caught_up {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(self.settings.interval) => {}
                }
            }
        }
    }

    /// The window the next walk covers, or `None` when nothing is due yet.
    fn window(&self, cursor: &Cursor, now: DateTime<Utc>) -> Option<Window> {
        if let Some(open) = cursor.window {
            return Some(open);
        }
        let base = cursor.time.unwrap_or_else(|| self.settings.start_at.resolve(now));
        let from = base - chrono_dur(self.settings.lookback);
        let mut to = now - chrono_dur(self.settings.lag);
        if let Some(max) = self.settings.max_window {
            to = to.min(base + chrono_dur(max));
        }
        (to > base).then_some(Window { from, to })
    }

    /// Walk one window: every page, each committed with its cursor.
    pub async fn poll_once(&self, cancel: &CancellationToken) -> Result<PollReport, SourceError> {
        let mut writer = Writer::default();
        let walked = self.walk(cancel, &mut writer).await;
        // The walk ends only once its last page is journaled; a state
        // failure there outranks whatever the walk itself met.
        writer.wait().await?;
        walked
    }

    async fn walk(&self, cancel: &CancellationToken, writer: &mut Writer) -> Result<PollReport, SourceError> {
        let name = self.settings.name.as_str();
        let state = &self.ctx.state;
        let now = (self.ctx.clock)();
        let mut cursor = state.cursor(name)?.unwrap_or_default();
        let Some(mut window) = self.window(&cursor, now) else {
            return Ok(PollReport { journaled: 0, requests: 0, caught_up: true });
        };
        let desc = self.api.order() == Order::Desc;
        let mut taken = cursor.taken_ids();
        let mut seen = HashSet::new();
        let mut page_state = None;
        let (mut page, mut offset, mut waits, mut journaled) = (0u64, 0u64, 0u32, 0u64);
        let mut waiting = false;
        let mut ahead: Option<ReadAhead<'_>> = None;
        loop {
            if !self.room_for(writer) {
                writer.wait().await?;
            }
            self.wait_for_room(cancel).await?;
            let q = Query {
                window,
                page,
                offset,
                state: page_state.as_ref(),
                page_size: self.settings.page_size,
                cursor: &cursor,
            };
            let req = self.api.request(&q).map_err(|e| SourceError::Shape {
                source_name: name.into(),
                url: String::new(),
                detail: e.0,
            })?;
            let url = redact_url(&req.url);
            let fingerprint = req.fingerprint();
            if !seen.insert(fingerprint.clone()) && !waiting {
                return Err(SourceError::Loop {
                    source_name: name.into(),
                    detail: format!("request to {url} repeats within one poll (page {page}); the API returned the same page or cursor again"),
                });
            }
            // The permit is held until the page is journaled: it bounds the
            // pages being read ahead, parsed, normalised and written at
            // once, whatever the number of sources (a parsed page weighs
            // several times its body).
            let (resp, permit) = match ahead.take() {
                // Read ahead: the very request this step makes.
                Some(read) if read.fingerprint == fingerprint => match read.done {
                    Some(done) => done?,
                    None => read.fetch.await?,
                },
                // None, or one the page's events made obsolete (dropping it
                // cancels it).
                _ => {
                    let resp = self.fetch(&req, cancel).await?;
                    (resp, self.ctx.pages.clone().acquire_owned().await.map_err(|_| SourceError::Cancelled)?)
                }
            };
            let parsed = self.api.parse(&q, &resp).map_err(|e| SourceError::Shape {
                source_name: name.into(),
                url: url.clone(),
                detail: e.0,
            })?;
            page += 1;
            offset += parsed.len() as u64;
            self.ctx.metrics.add("auditrelay_events_polled_total", &[("source", name)], parsed.len() as u64);
            let ApiPage { events, unparsed, next } = parsed;
            if let Next::Page(s) = &next {
                let room = self.room_for(writer);
                let q =
                    Query { window, page, offset, state: Some(s), page_size: self.settings.page_size, cursor: &cursor };
                ahead = room.then(|| self.read_ahead(&q, &seen, cancel)).flatten();
            }
            let normalised = self.normalise_page(events, unparsed, page, &url, now);
            let normalised = match ahead.as_mut() {
                None => normalised.await?,
                Some(read) => {
                    tokio::pin!(normalised);
                    loop {
                        // The fetch first: its request goes out before
                        // the normalising is waited on.
                        tokio::select! {
                            biased;
                            done = &mut read.fetch, if read.done.is_none() => read.done = Some(done),
                            events = &mut normalised => break events?,
                        }
                    }
                }
            };
            let mut fresh = Vec::new();
            let mut dropped = 0u64;
            let mut past_end = false;
            for ev in normalised {
                past_end |= ev.timestamp > window.to;
                if ev.timestamp < window.from || ev.timestamp > window.to || !taken.insert(ev.id.clone()) {
                    dropped += 1;
                    continue;
                }
                fresh.push(ev);
            }
            if dropped > 0 {
                self.ctx.metrics.add("auditrelay_events_dropped_duplicate_total", &[("source", name)], dropped);
            }
            if desc && cursor.window.is_none() {
                cursor.window = Some(window);
            }
            let before = cursor.time;
            for ev in &fresh {
                cursor.take(ev.timestamp, &ev.id);
            }
            waiting = false;
            // An oldest-first API that has reached past the window's end has
            // nothing more for this window.
            let next = if past_end && !desc { Next::Done } else { next };
            let done = match next {
                Next::Done => {
                    cursor.window = None;
                    cursor.time = Some(cursor.time.map_or(window.to, |t| t.max(window.to)));
                    cursor.prune(self.settings.lookback);
                    true
                }
                Next::Page(s) => {
                    page_state = Some(s);
                    // Oldest first: ids older than `time - lookback` are
                    // excluded by time already; keeping them would make the
                    // cursor (rewritten every page) grow with the whole walk.
                    // (`prune` keeps everything while a desc window is open.)
                    cursor.prune(self.settings.lookback);
                    if !desc {
                        taken = cursor.taken_ids();
                    }
                    false
                }
                Next::FromCursor => {
                    page_state = None;
                    offset = 0;
                    if cursor.time != before {
                        cursor.prune(self.settings.lookback);
                    }
                    if let Some(t) = cursor.time.filter(|_| !desc) {
                        window.from = t - chrono_dur(self.settings.lookback);
                    }
                    false
                }
                Next::Wait(delay, s) => {
                    waits += 1;
                    if waits > MAX_WAITS {
                        return Err(SourceError::Unavailable {
                            source_name: name.into(),
                            url,
                            detail: format!("the API asked to wait {MAX_WAITS} times in one poll"),
                        });
                    }
                    page_state = Some(s);
                    waiting = true;
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    false
                }
            };
            if done || !fresh.is_empty() {
                journaled += fresh.len() as u64;
                writer.write(&self.ctx, name, fresh, cursor.clone(), permit).await?;
            }
            if done {
                let caught_up = window.to + chrono_dur(self.settings.interval) >= now - chrono_dur(self.settings.lag);
                return Ok(PollReport { journaled, requests: page, caught_up });
            }
            if cancel.is_cancelled() {
                return Err(SourceError::Cancelled);
            }
        }
    }

    /// Parse (where the API left them as text) and normalise a page's
    /// events, in order. A large page (a catch-up's) is cut into one part
    /// per core, each done on the blocking pool, so a single source uses
    /// every core; a small one is done in place.
    async fn normalise_page(
        &self,
        events: Vec<Value>,
        unparsed: Option<Unparsed>,
        index: u64,
        url: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, SourceError> {
        let name = self.settings.name.as_str();
        let failed = |(i, detail): (usize, String)| SourceError::Shape {
            source_name: name.into(),
            url: url.to_owned(),
            // An event that cannot be read or placed against the cursor
            // fails the poll, which keeps it (and the cursor) safe.
            detail: format!("event {i} of page {index} {detail}"),
        };
        let len = events.len() + unparsed.as_ref().map_or(0, Unparsed::len);
        let parts = cores().min(len / PART_MIN).max(1);
        let mut pieces = Vec::with_capacity(parts + 1);
        let per = len.div_ceil(parts).max(1);
        let (mut at, parsed) = (0, events.len());
        let mut events = events.into_iter();
        while at < parsed {
            let part: Vec<Value> = events.by_ref().take(per).collect();
            let n = part.len();
            pieces.push((at, Raw::Parsed(part)));
            at += n;
        }
        if let Some(text) = unparsed {
            for from in (0..text.len()).step_by(per) {
                pieces.push((at + from, Raw::Text(text.slice(from..(from + per).min(text.len())))));
            }
        }
        if pieces.len() <= 1 {
            let Some((first, raw)) = pieces.pop() else { return Ok(Vec::new()) };
            return normalise_part(&*self.api, name, raw, first, now).map_err(failed);
        }
        let mut tasks = Vec::with_capacity(pieces.len());
        for (first, raw) in pieces {
            let (api, name) = (self.api.clone(), name.to_owned());
            tasks.push(tokio::task::spawn_blocking(move || normalise_part(&*api, &name, raw, first, now)));
        }
        let mut out = Vec::with_capacity(len);
        for task in tasks {
            match task.await {
                Ok(part) => out.extend(part.map_err(failed)?),
                Err(e) => match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    // Only when the runtime is shutting down.
                    Err(_) => return Err(SourceError::Cancelled),
                },
            }
        }
        Ok(out)
    }

    /// Start fetching the page `q` asks for, to be read while the current
    /// one is normalised; `None` when the pages in hand across all sources
    /// are at their bound. The walk uses the response only if it then makes
    /// the same request (the cursor the current page moves can change it).
    /// A request this poll already made (`seen`) is not sent again: the
    /// walk will stop there as a pagination loop.
    fn read_ahead<'a>(
        &'a self,
        q: &Query<'_>,
        seen: &HashSet<String>,
        cancel: &'a CancellationToken,
    ) -> Option<ReadAhead<'a>> {
        let req = self.api.request(q).ok()?;
        let fingerprint = req.fingerprint();
        if seen.contains(&fingerprint) {
            return None;
        }
        let permit = self.ctx.pages.clone().try_acquire_owned().ok()?;
        let fetch = Box::pin(async move { Ok((self.fetch(&req, cancel).await?, permit)) });
        Some(ReadAhead { fingerprint, fetch, done: None })
    }

    /// Journal bytes at which this source waits: `max_journal_size` while
    /// an output is down (the journal holds the outage), and at most
    /// `run_ahead_bytes` while every output delivers (a catch-up does not pile
    /// up ahead of outputs that are merely slower than the API).
    fn journal_limit(&self) -> u64 {
        if self.ctx.state.an_output_is_down() {
            self.ctx.max_journal_bytes
        } else {
            self.ctx.max_journal_bytes.min(self.ctx.run_ahead_bytes)
        }
    }

    /// Whether the journal, with the page `writer` is writing, is below
    /// [`Poller::journal_limit`].
    fn room_for(&self, writer: &Writer) -> bool {
        self.ctx.state.journal_bytes().saturating_add(writer.pending_bytes) < self.journal_limit()
    }

    /// Back-pressure: wait while the journal is at its limit (see
    /// [`Poller::journal_limit`]); only a full journal is reported.
    async fn wait_for_room(&self, cancel: &CancellationToken) -> Result<(), SourceError> {
        let (mut paused, mut logged) = (false, false);
        while self.ctx.state.journal_bytes() >= self.journal_limit() {
            if self.ctx.state.journal_bytes() >= self.ctx.max_journal_bytes {
                self.ctx.metrics.set("auditrelay_journal_full", &[], 1.0);
                paused = true;
                let mut last = self.full_logged.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(source = %self.settings.name, bytes = self.ctx.state.journal_bytes(), "journal is full (agent.max_journal_size); polling paused until outputs catch up");
                    *last = Some(Instant::now());
                    logged = true;
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        if paused {
            self.ctx.metrics.set("auditrelay_journal_full", &[], 0.0);
        }
        if logged {
            tracing::info!(source = %self.settings.name, "journal has room again; polling resumed");
        }
        Ok(())
    }

    /// Send one request with the rate limit, retrying throttling, server
    /// errors and network failures a few times within the poll.
    pub async fn fetch(&self, req: &ApiRequest, cancel: &CancellationToken) -> Result<ApiResponse, SourceError> {
        let name = self.settings.name.as_str();
        let url = redact_url(&req.url);
        if let Some(resp) = self.api.local(req, (self.ctx.clock)()) {
            return Ok(resp);
        }
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(limiter) = &self.limiter {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                    _ = limiter.until_ready() => {}
                }
            }
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                r = self.send(req) => r,
            };
            let (retry_in, failure) = match outcome {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    self.count(resp.status);
                    return Ok(resp);
                }
                Ok(resp) => {
                    self.count(resp.status);
                    let status = resp.status;
                    let verdict = self.api.verdict(status, &resp.body);
                    let retry_after = retry_after(&resp.headers);
                    let failure = format!("HTTP {status}: {}", excerpt(&resp.body));
                    match verdict {
                        Some(Verdict::Throttled(d)) => (Some(d.or(retry_after)), failure),
                        Some(Verdict::Auth(detail)) => {
                            return Err(SourceError::Auth { source_name: name.into(), url, status, detail })
                        }
                        None if status == 401 || status == 403 => {
                            if let (Auth::OAuth2(o), false) = (&self.auth, renewed) {
                                o.invalidate().await;
                                renewed = true;
                                continue;
                            }
                            return Err(SourceError::Auth {
                                source_name: name.into(),
                                url,
                                status,
                                detail: excerpt(&resp.body),
                            });
                        }
                        None if status == 429 || status == 503 => (Some(retry_after), failure),
                        None if status == 408 || status >= 500 => (Some(None), failure),
                        None => {
                            return Err(SourceError::Http {
                                source_name: name.into(),
                                url,
                                status,
                                excerpt: excerpt(&resp.body),
                            })
                        }
                    }
                }
                Err(FetchFailure::TooLarge(limit)) => {
                    return Err(SourceError::TooLarge { source_name: name.into(), url, limit })
                }
                Err(FetchFailure::Auth(e)) => {
                    return Err(SourceError::Token { source_name: name.into(), detail: e.to_string() })
                }
                Err(FetchFailure::Network(detail)) => (Some(None), detail),
            };
            if attempt >= ATTEMPTS {
                return Err(SourceError::Unavailable { source_name: name.into(), url, detail: failure });
            }
            let delay = match retry_in.flatten() {
                Some(d) => d.min(MAX_RETRY_AFTER),
                None => backoff.next_delay(),
            };
            self.ctx.metrics.add("auditrelay_retries_total", &[("source", name)], 1);
            tracing::warn!(source = %name, url = %url, "request failed ({failure}); retrying in {delay:?}");
            tokio::select! {
                _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn count(&self, status: u16) {
        let s = status.to_string();
        self.ctx.metrics.add("auditrelay_requests_total", &[("source", &self.settings.name), ("status", &s)], 1);
    }

    async fn send(&self, req: &ApiRequest) -> Result<ApiResponse, FetchFailure> {
        // The configured headers first: the connector's own and the
        // credentials come after (validation refuses a configured header
        // that they would set).
        let mut rb = self.client.request(req.method.clone(), req.url.clone()).headers(self.settings.headers.clone());
        for (k, v) in &req.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        match &req.body {
            Some(Body::Json(v)) => rb = rb.json(v),
            Some(Body::Text(t)) => {
                rb = rb.header(reqwest::header::CONTENT_TYPE, "application/json").body(t.clone());
            }
            None => {}
        }
        let rb = self.auth.apply(&self.client, rb).await.map_err(FetchFailure::Auth)?;
        let resp = rb.send().await.map_err(|e| FetchFailure::Network(error_chain(&e.without_url())))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = read_body(resp, self.settings.max_response_size).await.map_err(|e| match e {
            BodyError::TooLarge { limit } => FetchFailure::TooLarge(limit),
            BodyError::Read(e) => FetchFailure::Network(error_chain(&e.without_url())),
        })?;
        Ok(ApiResponse { status, headers, body })
    }
}

enum FetchFailure {
    TooLarge(u64),
    Auth(super::auth::AuthError),
    Network(String),
}

/// A fetch of the next page started while the current one is read.
struct ReadAhead<'a> {
    /// The request's fingerprint.
    fingerprint: String,
    /// The fetch, with the page permit it holds.
    fetch: Pin<Box<dyn Future<Output = Fetched> + Send + 'a>>,
    /// Its outcome once it finished.
    done: Option<Fetched>,
}

type Fetched = Result<(ApiResponse, tokio::sync::OwnedSemaphorePermit), SourceError>;

/// Journal bytes sources may hold ahead of outputs that all deliver
/// (counted until garbage collection deletes them, every 50 ms): about ten
/// batches of 1,000 audit events, enough to keep every output busy, without
/// a catch-up filling the whole journal (and memory) when an output is only
/// slower than the API. 32 MiB cost ~20 MiB more peak RSS with an output
/// slower than the source and were no faster; 10 MiB slowed HEC by ~20 %.
pub const RUN_AHEAD: u64 = 16 << 20;

/// Pages being handled at once across all the sources of an agent (see
/// `Poller::walk`).
pub const PAGES_IN_HAND: usize = 4;

/// The page permits the sources of this process share: one set, so a
/// config reload's new sources count against the same bound as the old.
pub fn pages_in_hand() -> Arc<tokio::sync::Semaphore> {
    static PAGES: std::sync::LazyLock<Arc<tokio::sync::Semaphore>> =
        std::sync::LazyLock::new(|| Arc::new(tokio::sync::Semaphore::new(PAGES_IN_HAND)));
    PAGES.clone()
}

/// Journals a walk's pages on a task of its own, one page behind the walk:
/// the next page is fetched and normalised while the previous one is
/// written. Pages are written in order, each with the cursor that moves past
/// it, so a crash at any point leaves a cursor that matches the journal.
#[derive(Default)]
struct Writer {
    pending: Option<tokio::task::JoinHandle<Result<(), crate::state::StateError>>>,
    /// A generous estimate of the bytes the pending page adds to the journal.
    pending_bytes: u64,
}

impl Writer {
    /// Wait for the page being written.
    async fn wait(&mut self) -> Result<(), crate::state::StateError> {
        self.pending_bytes = 0;
        match self.pending.take() {
            None => Ok(()),
            Some(task) => match task.await {
                Ok(result) => result,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            },
        }
    }

    /// Start journaling a page once the previous one is written.
    async fn write(
        &mut self,
        ctx: &SourceContext,
        name: &str,
        events: Vec<Event>,
        cursor: Cursor,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(), crate::state::StateError> {
        self.wait().await?;
        self.pending_bytes = events.iter().map(|e| e.approx_size() as u64).sum();
        let (state, metrics, name) = (ctx.state.clone(), ctx.metrics.clone(), name.to_owned());
        self.pending = Some(tokio::spawn(async move {
            let _permit = permit;
            state.append(&name, &events, &cursor).await?;
            metrics.add("auditrelay_events_journaled_total", &[("source", &name)], events.len() as u64);
            Ok(())
        }));
        Ok(())
    }
}

/// Events per part below which a page is not cut further.
const PART_MIN: usize = 128;

fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Consecutive raw events of a page.
enum Raw {
    /// Parsed by the API's `parse`.
    Parsed(Vec<Value>),
    /// Left as text by it.
    Text(Unparsed),
}

/// Normalise consecutive events of a page (parsing them first if they are
/// text); `first` is the page index of the first. Err: the index of an event
/// that cannot be read or has no readable time, and what is wrong with it.
fn normalise_part(
    api: &dyn SourceApi,
    name: &str,
    raw: Raw,
    first: usize,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, (usize, String)> {
    let observer = api.observer();
    let timed = |i: usize, raw: &Value| {
        let n = api.normalise(raw);
        match n.timestamp {
            Some(_) => Ok(n),
            None => Err((first + i, format!("has no readable time: {}", api.untimed(raw)))),
        }
    };
    match raw {
        Raw::Parsed(events) => events
            .iter()
            .enumerate()
            .map(|(i, raw)| Ok(normalise_text(name, observer, raw, None, timed(i, raw)?, now).into_journaled()))
            .collect(),
        Raw::Text(text) => (0..text.len())
            .map(|i| {
                let sent = text.text(i);
                let unreadable = |e| (first + i, format!("is not readable JSON ({e}): {}", excerpt(sent)));
                let whole = || text.parse(i).map_err(unreadable);
                let event = match api.wanted() {
                    None => {
                        let raw = whole()?;
                        normalise_text(name, observer, &raw, as_sent(sent), timed(i, &raw)?, now)
                    }
                    // Only what the mapping reads is built; the whole tree
                    // only when the event is written compact or hashed.
                    Some(wanted) => {
                        let raw = parse_wanted(sent, wanted).map_err(unreadable)?;
                        let n = timed(i, &raw)?;
                        let text = as_sent(sent);
                        match needs_tree(text, &n) {
                            true => normalise_text(name, observer, &whole()?, text, n, now),
                            false => normalise_text(name, observer, &raw, text, n, now),
                        }
                    }
                };
                Ok(event.into_journaled())
            })
            .collect(),
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn nonzero_one() -> std::num::NonZeroU32 {
    std::num::NonZeroU32::MIN
}

/// Record a source's status as unhealthy with a reason (used when building
/// the source failed).
pub fn mark_unhealthy(state: &State, name: &str, reason: &str) {
    let status = Status {
        healthy: false,
        last_error: Some(reason.to_owned()),
        last_error_at: Some(crate::event::rfc3339(Utc::now())),
        ..Default::default()
    };
    let _ = state.set_status("source", name, &status);
}

impl Poller {
    /// One request for the last hour, for `check --connect`: proves DNS,
    /// TCP, TLS, credentials and the response shape. Returns how many events
    /// the first page held.
    pub async fn probe(&self, cancel: &CancellationToken) -> Result<usize, SourceError> {
        let name = self.settings.name.as_str();
        let now = (self.ctx.clock)();
        let cursor = Cursor::default();
        let window = Window { from: now - chrono::Duration::hours(1), to: now };
        let q = Query { window, page: 0, offset: 0, state: None, page_size: self.settings.page_size, cursor: &cursor };
        let shape = |url: String, detail: String| SourceError::Shape { source_name: name.into(), url, detail };
        let req = self.api.request(&q).map_err(|e| shape(String::new(), e.0))?;
        let url = redact_url(&req.url);
        let resp = self.fetch(&req, cancel).await?;
        let mut page = self.api.parse(&q, &resp).map_err(|e| shape(url, e.0))?;
        let mut n = page.len();
        // An empty answer may lead to the connector's silent-empty guard
        // (`api::guard_state`): followed here, so a wrong guess fails
        // `check --connect` too. A guard is one request; two at most.
        for _ in 0..2 {
            let state = match &page.next {
                Next::Page(state) if page.is_empty() && super::api::guard_of(Some(state)).is_some() => state.clone(),
                _ => break,
            };
            let q = Query { window, page: 1, offset: 0, state: Some(&state), page_size: q.page_size, cursor: &cursor };
            let req = self.api.request(&q).map_err(|e| shape(String::new(), e.0))?;
            let url = redact_url(&req.url);
            let resp = self.fetch(&req, cancel).await?;
            page = self.api.parse(&q, &resp).map_err(|e| shape(url, e.0))?;
            n += page.len();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::Rate;
    use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};

    fn demo_poller(state: Arc<State>, now_ms: Arc<AtomicI64>, lag: Duration) -> Poller {
        let mut cfg = crate::config::parse(crate::config::DEMO).unwrap().sources.remove(0);
        cfg.rate = Some(Rate::parse("100/s").unwrap());
        let api = Box::new(crate::sources::demo::Demo::new(&cfg));
        let t0 = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap().with_timezone(&Utc);
        let clock: Clock =
            Arc::new(move || DateTime::from_timestamp_millis(now_ms.load(AtomicOrdering::SeqCst)).unwrap_or_default());
        let settings = Settings {
            name: "demo".into(),
            interval: Duration::from_secs(1),
            start_at: StartAt::At(t0),
            page_size: 50,
            lag,
            lookback: Duration::ZERO,
            max_window: None,
            timeout: Duration::from_secs(5),
            max_response_size: 1 << 20,
            rate_limit: None,
            headers: Default::default(),
        };
        let ctx = SourceContext {
            state,
            metrics: Arc::new(Metrics::default()),
            clock,
            max_journal_bytes: u64::MAX,
            run_ahead_bytes: u64::MAX,
            pages: Arc::new(tokio::sync::Semaphore::new(PAGES_IN_HAND)),
        };
        Poller::new(settings, api, reqwest::Client::new(), Auth::None, ctx)
    }

    /// A demo-source poller on a scratch state, and the demo API itself.
    fn demo_parts() -> (tempfile::TempDir, Poller, crate::sources::demo::Demo) {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(dir.path()).unwrap());
        let p = demo_poller(state, Arc::new(AtomicI64::new(1_714_557_660_000)), Duration::ZERO);
        let cfg = crate::config::parse(crate::config::DEMO).unwrap().sources.remove(0);
        (dir, p, crate::sources::demo::Demo::new(&cfg))
    }

    /// Same id, time and raw event, and the same document byte for byte.
    fn assert_same_event(a: &Event, b: &Event) {
        assert_eq!((&a.id, a.timestamp, &a.raw), (&b.id, b.timestamp, &b.raw));
        let (mut x, mut y) = (Vec::new(), Vec::new());
        a.write_document(&mut x);
        b.write_document(&mut y);
        assert_eq!(String::from_utf8(x).unwrap(), String::from_utf8(y).unwrap());
    }

    /// A page large enough to be cut into parts comes back whole, in the
    /// API's order, each event as the one-by-one path builds it; an event
    /// without a time in a later part is reported with its page index.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_page_is_normalised_in_parts_in_order() {
        let (_dir, p, demo) = demo_parts();
        let events: Vec<Value> = (0..PART_MIN as i64 * 4 + 3).map(|k| demo.event(k)).collect();
        let now = Utc::now();
        let got = p.normalise_page(events.clone(), None, 1, "u", now).await.unwrap();
        assert_eq!(got.len(), events.len());
        for (raw, ev) in events.iter().zip(&got) {
            let one = crate::event::normalise("demo", demo.observer(), raw, demo.normalise(raw), now);
            assert_same_event(ev, &one);
        }

        let mut bad = events;
        let last = bad.len() - 2;
        bad[last]["time"] = Value::String("yesterday".into());
        let err = p.normalise_page(bad, None, 3, "u", now).await.unwrap_err().to_string();
        assert!(err.contains(&format!("event {last} of page 3 has no readable time")), "{err}");
    }

    /// Events an API left as text are read in parts too: the same events,
    /// in order, byte for byte, as from parsed events; one that cannot be
    /// read or has no time fails the page with its index.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_page_left_as_text_is_read_in_parts_in_order() {
        let (_dir, p, demo) = demo_parts();
        let split = |events: &[Value]| {
            let body = serde_json::to_vec_pretty(&serde_json::json!({"events": events})).unwrap();
            let resp = ApiResponse { status: 200, headers: Default::default(), body: body.into() };
            super::super::api::json_body_split(&resp, "/events").unwrap().1.unwrap()
        };
        // A page of events as these texts.
        let sent_as = |sent: &[String]| {
            let body = format!("{{\"events\": [{}]}}", sent.join(", "));
            let resp = ApiResponse { status: 200, headers: Default::default(), body: body.into_bytes().into() };
            super::super::api::json_body_split(&resp, "/events").unwrap().1.unwrap()
        };
        let now = Utc::now();
        for n in [0, 1, PART_MIN * 2 - 1, PART_MIN * 4 + 3] {
            let events: Vec<Value> = (0..n as i64).map(|k| demo.event(k)).collect();
            let want = p.normalise_page(events.clone(), None, 1, "u", now).await.unwrap();
            let got = p.normalise_page(Vec::new(), Some(split(&events)), 1, "u", now).await.unwrap();
            assert_eq!(got.len(), n);
            for (a, b) in got.iter().zip(&want) {
                assert_same_event(a, b);
            }
        }

        // Text on one line but not compact is journaled as the API sent it.
        let events: Vec<Value> = (0..PART_MIN as i64 * 2 + 1).map(|k| demo.event(k)).collect();
        let sent: Vec<String> = events.iter().map(|e| format!("{{ {}", &e.to_string()[1..])).collect();
        let text = sent_as(&sent);
        let want = p.normalise_page(events.clone(), None, 3, "u", now).await.unwrap();
        let got = p.normalise_page(Vec::new(), Some(text), 3, "u", now).await.unwrap();
        assert_eq!(got.len(), sent.len());
        for ((a, b), sent) in got.iter().zip(&want).zip(&sent) {
            assert_eq!(&a.raw, sent);
            assert_ne!(a.raw, b.raw, "the parsed path writes it compact");
            assert_eq!((&a.id, a.timestamp, a.fields()), (&b.id, b.timestamp, b.fields()));
        }

        // Only what the mapping reads is built for events with an id; one
        // without is hashed from its whole tree, as the parsed path does.
        let mut events: Vec<Value> = (0..PART_MIN as i64 * 2 + 1).map(|k| demo.event(k)).collect();
        for e in events.iter_mut().step_by(3) {
            e.as_object_mut().unwrap().remove("id");
        }
        let sent: Vec<String> = events.iter().map(|e| format!("{{ {}", &e.to_string()[1..])).collect();
        let text = sent_as(&sent);
        let want = p.normalise_page(events.clone(), None, 3, "u", now).await.unwrap();
        let got = p.normalise_page(Vec::new(), Some(text), 3, "u", now).await.unwrap();
        assert_eq!(got.len(), sent.len());
        for (k, ((a, b), sent)) in got.iter().zip(&want).zip(&sent).enumerate() {
            assert_eq!(&a.raw, sent);
            assert_eq!((&a.id, a.timestamp, a.fields()), (&b.id, b.timestamp, b.fields()));
            if k % 3 == 0 {
                assert_eq!(a.id, crate::event::hash_id(&events[k].to_string()));
            }
        }

        // A value nested deeper than serde_json builds a tree for, where the
        // mapping does not read, does not stop the event.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let events: Vec<Value> = (0..PART_MIN as i64 * 2).map(|k| demo.event(k)).collect();
        let sent: Vec<String> = events.iter().map(|e| format!("{{\"extra\":{deep},{}", &e.to_string()[1..])).collect();
        let text = sent_as(&sent);
        let want = p.normalise_page(events, None, 3, "u", now).await.unwrap();
        let got = p.normalise_page(Vec::new(), Some(text), 3, "u", now).await.unwrap();
        assert_eq!(got.len(), sent.len());
        for ((a, b), sent) in got.iter().zip(&want).zip(&sent) {
            assert_eq!(&a.raw, sent);
            assert_eq!((&a.id, a.timestamp, a.fields()), (&b.id, b.timestamp, b.fields()));
        }

        let mut events: Vec<Value> = (0..PART_MIN as i64 * 4).map(|k| demo.event(k)).collect();
        let late = events.len() - 3;
        events[late]["time"] = Value::Null;
        let err = p.normalise_page(Vec::new(), Some(split(&events)), 2, "u", now).await.unwrap_err().to_string();
        assert!(err.contains(&format!("event {late} of page 2 has no readable time")), "{err}");

        // Valid JSON nested deeper than serde_json builds a tree for.
        let mut items: Vec<String> = (0..PART_MIN as i64 * 4).map(|k| demo.event(k).to_string()).collect();
        let deep = PART_MIN * 3 + 1;
        let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
        items.insert(deep, nested.clone());
        let body = format!("{{\"events\": [{}]}}", items.join(","));
        let resp = ApiResponse { status: 200, headers: Default::default(), body: body.into_bytes().into() };
        let text = super::super::api::json_body_split(&resp, "/events").unwrap().1.unwrap();
        assert_eq!(text.text(deep), nested.as_bytes());
        let err = p.normalise_page(Vec::new(), Some(text), 4, "u", now).await.unwrap_err().to_string();
        assert!(err.contains(&format!("event {deep} of page 4 is not readable JSON (recursion limit")), "{err}");
    }

    /// A paged API answering locally: page `k` of `pages` holds events
    /// `k * per ..`, one per millisecond from `T0`; each body names the
    /// request it answers, and `parse` refuses one that is not the request
    /// this step of the walk makes. With `by_cursor` the request also
    /// names the cursor's time, which each page moves: a page read ahead
    /// is then always stale.
    struct Paged {
        pages: u64,
        per: u64,
        by_cursor: bool,
        fetched: Arc<std::sync::atomic::AtomicU64>,
        /// The page whose next-page token is its own (a looping API).
        stuck: Option<u64>,
    }

    const T0_MS: i64 = 1_714_557_600_000;

    impl SourceApi for Paged {
        fn observer(&self) -> crate::event::Observer {
            crate::event::Observer { vendor: "test", product: "paged" }
        }
        fn request(&self, q: &Query<'_>) -> Result<ApiRequest, super::super::api::ShapeError> {
            let k = q.state.and_then(Value::as_u64).unwrap_or(0);
            let after = if self.by_cursor { q.cursor.time.map(|t| t.timestamp_millis()).unwrap_or(0) } else { 0 };
            Ok(ApiRequest::get(url::Url::parse(&format!("test://local/p?k={k}&after={after}")).unwrap()))
        }
        fn local(&self, req: &ApiRequest, _now: DateTime<Utc>) -> Option<ApiResponse> {
            self.fetched.fetch_add(1, AtomicOrdering::SeqCst);
            let k: u64 = req.url.query_pairs().find(|(n, _)| n == "k").and_then(|(_, v)| v.parse().ok()).unwrap();
            let events: Vec<Value> = (k * self.per..(k + 1) * self.per)
                .map(|i| {
                    let t = DateTime::from_timestamp_millis(T0_MS + i as i64).unwrap();
                    serde_json::json!({"id": format!("e{i}"), "t": crate::event::rfc3339(t)})
                })
                .collect();
            let next = if self.stuck == Some(k) {
                serde_json::json!(k)
            } else if k + 1 < self.pages {
                serde_json::json!(k + 1)
            } else {
                Value::Null
            };
            let body = serde_json::json!({"asked": req.url.as_str(), "events": events, "next": next});
            Some(ApiResponse { status: 200, headers: Default::default(), body: body.to_string().into() })
        }
        fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, super::super::api::ShapeError> {
            let (body, unparsed) = super::super::api::json_body_split(resp, "/events")?;
            let asked = self.request(q)?.url.to_string();
            if body["asked"] != asked.as_str() {
                return Err(super::super::api::ShapeError(format!("answer to {} used for {asked}", body["asked"])));
            }
            let next = if body["next"].is_null() { Next::Done } else { Next::Page(body["next"].clone()) };
            Ok(ApiPage { events: Vec::new(), unparsed, next })
        }
        fn normalise(&self, raw: &Value) -> crate::event::Normalised {
            crate::event::Normalised {
                id: raw["id"].as_str().map(str::to_owned),
                timestamp: raw["t"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc()),
                ..Default::default()
            }
        }
    }

    /// A poller walking `api` an hour after its first event, pages of
    /// `api.per` events.
    fn paged_poller(state: Arc<State>, api: Paged) -> Poller {
        let now = DateTime::from_timestamp_millis(T0_MS + 3_600_000).unwrap();
        let settings = Settings {
            name: "paged".into(),
            interval: Duration::from_secs(60),
            start_at: StartAt::At(DateTime::from_timestamp_millis(T0_MS).unwrap()),
            page_size: api.per as u32,
            lag: Duration::ZERO,
            lookback: Duration::ZERO,
            max_window: None,
            timeout: Duration::from_secs(5),
            max_response_size: 1 << 24,
            rate_limit: None,
            headers: Default::default(),
        };
        let ctx = SourceContext {
            state,
            metrics: Arc::new(Metrics::default()),
            clock: Arc::new(move || now),
            max_journal_bytes: u64::MAX,
            run_ahead_bytes: u64::MAX,
            // Its own permits: other tests' pages must not decide
            // whether this walk reads ahead.
            pages: Arc::new(tokio::sync::Semaphore::new(PAGES_IN_HAND)),
        };
        Poller::new(settings, Box::new(api), reqwest::Client::new(), Auth::None, ctx)
    }

    /// The next page is fetched while the current one is normalised, and
    /// used only when the walk then makes that very request: with requests
    /// the cursor does not change, one fetch per page; with requests it
    /// does, every read-ahead is dropped and the page fetched again. Either
    /// way every event is journaled once, in the API's order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_page_read_ahead_is_used_only_for_the_request_it_answers() {
        for by_cursor in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let state = Arc::new(State::open(dir.path()).unwrap());
            let (pages, per) = (6, PART_MIN as u64 * 2 + 5);
            let fetched = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let api = Paged { pages, per, by_cursor, fetched: fetched.clone(), stuck: None };
            let p = paged_poller(state.clone(), api);
            let report = p.poll_once(&CancellationToken::new()).await.unwrap();
            assert_eq!((report.journaled, report.requests), (pages * per, pages), "by_cursor {by_cursor}");
            let ids: Vec<String> =
                state.read(0, usize::MAX, usize::MAX).unwrap().into_iter().map(|(_, e)| e.event.id).collect();
            let want: Vec<String> = (0..pages * per).map(|i| format!("e{i}")).collect();
            assert_eq!(ids, want, "every event once, in order (by_cursor {by_cursor})");
            let want = if by_cursor { 2 * pages - 1 } else { pages };
            assert_eq!(fetched.load(AtomicOrdering::SeqCst), want, "fetches (by_cursor {by_cursor})");
        }
    }

    /// Regression (CI, tests/faults.rs with FAULT_SEED=1796024776547953062):
    /// a page whose next-page token repeats the request just made was read
    /// ahead, so a looping API was asked the same page twice before the
    /// walk stopped on the loop. Now it is asked once, and the events up to
    /// the loop are journaled once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_looping_token_is_not_read_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(dir.path()).unwrap());
        let (pages, per) = (6, PART_MIN as u64 * 2 + 5);
        let fetched = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let api = Paged { pages, per, by_cursor: false, fetched: fetched.clone(), stuck: Some(2) };
        let p = paged_poller(state.clone(), api);
        let err = p.poll_once(&CancellationToken::new()).await.unwrap_err();
        assert!(matches!(err, SourceError::Loop { .. }), "{err}");
        assert_eq!(fetched.load(AtomicOrdering::SeqCst), 3, "pages 0, 1 and 2, each asked once");
        let ids: Vec<String> =
            state.read(0, usize::MAX, usize::MAX).unwrap().into_iter().map(|(_, e)| e.event.id).collect();
        let want: Vec<String> = (0..3 * per).map(|i| format!("e{i}")).collect();
        assert_eq!(ids, want, "the pages before the loop, once each, in order");
    }

    #[tokio::test]
    async fn long_walk_keeps_the_cursor_small_and_takes_each_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(dir.path()).unwrap());
        let t0_ms = 1_714_557_600_000i64;
        let now = Arc::new(AtomicI64::new(t0_ms + 60_000));
        let p = demo_poller(state.clone(), now.clone(), Duration::ZERO);
        let cancel = CancellationToken::new();
        let r = p.poll_once(&cancel).await.unwrap();
        assert_eq!(r.journaled, 6001, "100/s over [t0, t0+60s], both ends included");
        assert_eq!(r.requests, 121);
        let c = state.cursor("demo").unwrap().unwrap();
        assert!(c.taken.len() <= 2, "cursor keeps only ids at its time, not the walk: {}", c.taken.len());
        assert_eq!(p.poll_once(&cancel).await.unwrap().journaled, 0, "nothing new, nothing twice");
        now.fetch_add(10_000, AtomicOrdering::SeqCst);
        assert_eq!(p.poll_once(&cancel).await.unwrap().journaled, 1000);
        let ids: std::collections::HashSet<String> =
            state.read(0, usize::MAX, usize::MAX).unwrap().into_iter().map(|(_, e)| e.event.id).collect();
        assert_eq!(ids.len(), 7001, "no duplicate ids in the journal");
    }

    /// Regression: during an oldest-first walk the cursor committed with
    /// each page kept every id taken since the walk began, so a catch-up
    /// rewrote an ever larger cursor per page (quadratic).
    #[tokio::test]
    async fn cursor_committed_mid_walk_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(dir.path()).unwrap());
        let now = Arc::new(AtomicI64::new(1_714_557_600_000 + 600_000));
        let mut p = demo_poller(state.clone(), now, Duration::ZERO);
        p.ctx.max_journal_bytes = 200 << 10; // pauses the walk part-way: back-pressure
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            stop.cancel();
        });
        assert!(matches!(p.poll_once(&cancel).await, Err(SourceError::Cancelled)));
        let c = state.cursor("demo").unwrap().unwrap();
        let journaled = state.next_seq();
        assert!((100..60_001).contains(&journaled), "stopped part-way: {journaled}");
        assert!(c.taken.len() <= 2, "mid-walk cursor holds {} ids", c.taken.len());
        assert!(state.journal_bytes() >= p.ctx.max_journal_bytes, "paused because the journal was full");
    }

    /// While every output delivers, a catch-up stops `run_ahead_bytes`
    /// ahead of them (quietly: the journal is not full); once an output is
    /// down the same walk goes on towards `max_journal_size`, and it ends
    /// with every event journaled once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_catch_up_runs_ahead_of_delivering_outputs_only_so_far() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(dir.path()).unwrap());
        let now = Arc::new(AtomicI64::new(1_714_557_600_000 + 60_000));
        let mut p = demo_poller(state.clone(), now, Duration::ZERO);
        p.ctx.run_ahead_bytes = 200 << 10;
        state.set_output_down("hec", false);
        let walk = tokio::spawn(async move {
            let r = p.poll_once(&CancellationToken::new()).await;
            (r, p)
        });
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let seq = state.next_seq();
            if seq == last {
                break;
            }
            last = seq;
        }
        assert!(!walk.is_finished(), "paused part-way");
        let bytes = state.journal_bytes();
        assert!(((200 << 10)..(400 << 10)).contains(&bytes), "paused at the lead, within a page or two: {bytes}");
        assert!(last < 6001, "not everything journaled yet: {last}");

        state.set_output_down("hec", true);
        let (r, p) = tokio::time::timeout(Duration::from_secs(30), walk).await.unwrap().unwrap();
        assert_eq!(r.unwrap().journaled, 6001, "the whole window once an output is down");
        assert!(p.ctx.metrics.series("auditrelay_journal_full").is_empty(), "never reported as full");
        let ids: std::collections::HashSet<String> =
            state.read(0, usize::MAX, usize::MAX).unwrap().into_iter().map(|(_, e)| e.event.id).collect();
        assert_eq!(ids.len(), 6001, "every event once");
        state.set_output_down("hec", false);
        assert!(!state.an_output_is_down());
    }

    #[tokio::test]
    async fn lag_leaves_young_events_and_a_clock_jump_back_polls_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(dir.path()).unwrap());
        let t0_ms = 1_714_557_600_000i64;
        let now = Arc::new(AtomicI64::new(t0_ms + 10_000));
        let p = demo_poller(state.clone(), now.clone(), Duration::from_secs(5));
        let cancel = CancellationToken::new();
        assert_eq!(p.poll_once(&cancel).await.unwrap().journaled, 501, "only [t0, now - 5s]");
        now.store(t0_ms, AtomicOrdering::SeqCst); // the host clock jumps back
        let r = p.poll_once(&cancel).await.unwrap();
        assert_eq!((r.journaled, r.requests), (0, 0), "no window before the cursor: nothing asked, nothing lost");
        now.store(t0_ms + 20_000, AtomicOrdering::SeqCst);
        assert_eq!(p.poll_once(&cancel).await.unwrap().journaled, 1000, "resumes exactly after the cursor");
    }
}
