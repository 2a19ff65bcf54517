//! One walk: the window `[cursor - lookback, now - lag]`, page by page,
//! each page fetched (or read ahead), normalised, sifted against the
//! cursor and handed to the journal writer with the cursor that moves past
//! it; and the one-page walk `check --connect` makes.

use super::normalise::Sorted;
use super::writer::Writer;
use super::{PollReport, Poller};
use crate::event::Event;
use crate::sources::api::{ApiPage, ApiRequest, ApiResponse, Next, Order, Query};
use crate::sources::SourceError;
use crate::state::{Cursor, Window};
use crate::telemetry::metrics::name as metric;
use crate::transport::http::redact_url;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most `Next::Wait` steps in one walk: an API that asks to wait and
/// again without end (a walk's `max_poll_time` bounds the time; this, the
/// requests of waits that are very short). SEKOIA.IO's job, waited for as
/// long as its own tools wait (50 min at up to 10 s), asks ~300 times.
const MAX_WAITS: u32 = 1000;

/// Most requests `check --connect` makes for one source while nothing has
/// arrived: enough for a search job and a guard's job after it.
const MAX_PROBE_STEPS: u64 = 16;

impl Poller {
    /// The window the next walk covers, or `None` when nothing is due yet.
    pub(super) fn window(&self, cursor: &Cursor, now: DateTime<Utc>) -> Option<Window> {
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

    /// The walk, step by step: wait for room in the journal, make the
    /// request (a repeated one is a loop), get its response
    /// ([`Poller::respond`], read ahead or fetched), parse it, start reading
    /// the next page ahead, normalise ([`Poller::normalise_beside`]), sift
    /// out what the cursor has ([`Walk::sift`]), move the cursor
    /// ([`Walk::advance`]) and hand the page to the writer.
    pub(super) async fn walk(
        &self,
        cancel: &CancellationToken,
        writer: &mut Writer,
    ) -> Result<PollReport, SourceError> {
        let name = self.settings.name.as_str();
        let now = (self.ctx.clock)();
        let cursor = self.ctx.state.cursors().get(name)?.unwrap_or_default();
        let Some(window) = self.window(&cursor, now) else {
            return Ok(PollReport { journaled: 0, requests: 0, caught_up: true });
        };
        let arrival = self.api.filters_by_arrival();
        let mut walk = Walk::new(cursor, window, self.api.order() == Order::Desc || arrival, arrival);
        // Fingerprints of the requests made (a repeat is a loop).
        let mut seen = HashSet::new();
        let mut ahead: Option<ReadAhead<'_>> = None;
        let started = tokio::time::Instant::now();
        let mut waited = Duration::ZERO;
        loop {
            let limit = if walk.page >= self.settings.max_pages {
                Some(format!("{} pages (max_pages)", walk.page))
            } else if started.elapsed() >= self.settings.max_poll_time && walk.page > 0 {
                Some(format!("{:?} (max_poll_time)", self.settings.max_poll_time))
            } else {
                None
            };
            if let Some(limit) = limit {
                return Err(SourceError::Runaway { source_name: name.into(), limit });
            }
            if !self.room_for(writer) {
                writer.wait().await?;
            }
            self.wait_for_room(cancel).await?;
            let q = walk.query(self.settings.page_size, (self.ctx.clock)());
            let req = self.api.request(&q).map_err(|e| SourceError::Shape {
                source_name: name.into(),
                url: String::new(),
                detail: e.0,
            })?;
            let url = redact_url(&req.url);
            let fingerprint = req.fingerprint();
            // A request this walk made already is a loop, unless the API
            // asked to wait and ask again.
            if !seen.insert(fingerprint.clone()) && !walk.waiting {
                return Err(SourceError::Loop {
                    source_name: name.into(),
                    detail: format!("request to {url} repeats within one poll (page {}); the API returned the same page or cursor again", walk.page),
                });
            }
            let (resp, permit) = self.respond(ahead.take(), &req, fingerprint, cancel).await?;
            let parsed = self.api.parse(&q, &resp).map_err(|e| SourceError::Shape {
                source_name: name.into(),
                url: url.clone(),
                detail: e.0,
            })?;
            walk.page += 1;
            walk.offset += parsed.len() as u64;
            self.ctx.metrics.add(metric::EVENTS_POLLED, &[("source", name)], parsed.len() as u64);
            let ApiPage { events, unparsed, next } = parsed;
            if let Next::Page(s) = &next {
                let room = self.room_for(writer);
                let q = Query { state: Some(s), ..walk.query(self.settings.page_size, (self.ctx.clock)()) };
                ahead = room.then(|| self.read_ahead(&q, &seen, cancel)).flatten();
            }
            let sorted = self.sort_page(events, unparsed, now);
            let Sorted { events: normalised, set_aside } = self.normalise_beside(sorted, ahead.as_mut()).await?;
            if !set_aside.is_empty() {
                // A source that has never read an event and reads none
                // here is more likely configured wrong (the time pointer)
                // than fed poison: that fails the poll, loudly.
                let proven = walk.cursor.time.is_some() || !normalised.is_empty();
                self.put_aside(set_aside, proven, walk.page, &url, now).await?;
            }
            let (fresh, past_end) = walk.sift(normalised);
            if walk.dropped > 0 {
                self.ctx.metrics.add(metric::EVENTS_DROPPED_DUPLICATE, &[("source", name)], walk.dropped);
            }
            let done = match walk.advance(next, past_end, &fresh, self.settings.lookback) {
                Step::Done => true,
                Step::More => false,
                Step::Wait(_) if walk.waits > MAX_WAITS => {
                    return Err(SourceError::Unavailable {
                        source_name: name.into(),
                        url,
                        detail: format!("the API asked to wait {MAX_WAITS} times in one poll"),
                    });
                }
                Step::Wait(delay) => {
                    waited += delay;
                    let what =
                        format!("the API's job is not ready: waited {}s in {} step(s)", waited.as_secs(), walk.waits);
                    crate::telemetry::health::note_waiting(
                        &self.ctx.state,
                        crate::telemetry::health::Component::Source,
                        name,
                        &what,
                    );
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    false
                }
            };
            if done || !fresh.is_empty() {
                walk.journaled += fresh.len() as u64;
                writer.write(&self.ctx, name, fresh, walk.cursor.clone(), permit).await?;
            }
            if done {
                let to = walk.window.to;
                let caught_up = to + chrono_dur(self.settings.interval) >= now - chrono_dur(self.settings.lag);
                return Ok(PollReport { journaled: walk.journaled, requests: walk.page, caught_up });
            }
            if cancel.is_cancelled() {
                return Err(SourceError::Cancelled);
            }
        }
    }

    /// The response to `req`: the page read ahead when it answers this very
    /// request, else a fetch (in one of the agent's fetch slots, held until
    /// the page permit is). The page permit comes with it and is held
    /// until the page is journaled: it bounds the pages being read ahead,
    /// parsed, normalised and written at once, whatever the number of
    /// sources (a parsed page weighs several times its body).
    async fn respond(
        &self,
        ahead: Option<ReadAhead<'_>>,
        req: &ApiRequest,
        fingerprint: String,
        cancel: &CancellationToken,
    ) -> Fetched {
        match ahead {
            // Read ahead: the very request this step makes.
            Some(read) if read.fingerprint == fingerprint => match read.done {
                Some(done) => done,
                None => read.fetch.await,
            },
            // None, or one the page's events made obsolete (dropping it
            // cancels it).
            _ => {
                let (resp, slot) = self.fetcher.fetch_in(req, cancel, Some(&self.ctx.fetches)).await?;
                let permit = self.ctx.pages.clone().acquire_owned().await.map_err(|_| SourceError::Cancelled)?;
                drop(slot);
                Ok((resp, permit))
            }
        }
    }

    /// Wait for a page's normalising while the read-ahead, if any, makes
    /// progress (and keeps its outcome).
    async fn normalise_beside<T>(
        &self,
        normalised: impl Future<Output = Result<T, SourceError>>,
        ahead: Option<&mut ReadAhead<'_>>,
    ) -> Result<T, SourceError> {
        let Some(read) = ahead else { return normalised.await };
        tokio::pin!(normalised);
        loop {
            // The fetch first: its request goes out before the normalising
            // is waited on.
            tokio::select! {
                biased;
                done = &mut read.fetch, if read.done.is_none() => read.done = Some(done),
                events = &mut normalised => return events,
            }
        }
    }

    /// Start fetching the page `q` asks for, to be read while the current
    /// one is normalised; `None` when the pages in hand across all sources
    /// are at their bound. The walk uses the response only if it then makes
    /// the same request (a connector whose request depends on more than the
    /// query can make another).
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
        let fetch = Box::pin(async move { Ok((self.fetcher.fetch(&req, cancel).await?, permit)) });
        Some(ReadAhead { fingerprint, fetch, done: None })
    }
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

/// Where a walk stands between pages.
struct Walk {
    /// The window walked; an oldest-first API's `from` follows the cursor
    /// when the connector asks from the cursor again.
    window: Window,
    /// The cursor as it moves page by page.
    cursor: Cursor,
    /// Whether the API answers newest first (or by arrival: the window is
    /// read whole before the cursor moves).
    desc: bool,
    /// Whether the window is one of availability time
    /// ([`SourceApi::filters_by_arrival`]): records are kept whatever
    /// their time, and taken ids dated by the window's end.
    ///
    /// [`SourceApi::filters_by_arrival`]: crate::sources::api::SourceApi::filters_by_arrival
    arrival: bool,
    /// Ids the cursor holds (and, newest first, every id of the window).
    taken: HashSet<String>,
    /// What the last page's `Next` carried.
    page_state: Option<Value>,
    /// Requests made.
    page: u64,
    /// Events received since the walk (or the last `FromCursor`) began.
    offset: u64,
    /// `Next::Wait` steps so far.
    waits: u32,
    /// Events handed to the writer.
    journaled: u64,
    /// Events the last page held that were outside the window or taken.
    dropped: u64,
    /// Whether the last step waited (the same request may follow).
    waiting: bool,
}

/// What follows a page.
enum Step {
    /// The window is walked.
    Done,
    /// Ask for the next page.
    More,
    /// Ask again after this delay (an asynchronous job not ready yet).
    Wait(Duration),
}

impl Walk {
    fn new(cursor: Cursor, window: Window, desc: bool, arrival: bool) -> Walk {
        Walk {
            window,
            taken: cursor.taken_ids(),
            cursor,
            desc,
            arrival,
            page_state: None,
            page: 0,
            offset: 0,
            waits: 0,
            journaled: 0,
            dropped: 0,
            waiting: false,
        }
    }

    /// The query for the next request.
    fn query(&self, page_size: u32, now: DateTime<Utc>) -> Query<'_> {
        Query {
            window: self.window,
            page: self.page,
            offset: self.offset,
            state: self.page_state.as_ref(),
            page_size,
            now,
        }
    }

    /// The events of a page the cursor does not have yet (inside the
    /// window, not taken), and whether any lay past the window's end.
    fn sift(&mut self, normalised: Vec<Event>) -> (Vec<Event>, bool) {
        let mut fresh = Vec::new();
        let (mut dropped, mut past_end) = (0u64, false);
        for ev in normalised {
            let outside = !self.arrival && (ev.timestamp < self.window.from || ev.timestamp > self.window.to);
            past_end |= !self.arrival && ev.timestamp > self.window.to;
            if outside || !self.taken.insert(ev.id.clone()) {
                dropped += 1;
                continue;
            }
            fresh.push(ev);
        }
        self.dropped = dropped;
        (fresh, past_end)
    }

    /// Move the cursor past the page's `fresh` events and on as `next`
    /// says: to the window's end when it is walked.
    fn advance(&mut self, next: Next, past_end: bool, fresh: &[Event], lookback: Duration) -> Step {
        let (desc, cursor) = (self.desc, &mut self.cursor);
        if desc && cursor.window.is_none() {
            cursor.window = Some(self.window);
        }
        let before = cursor.time;
        for ev in fresh {
            cursor.take(if self.arrival { self.window.to } else { ev.timestamp }, &ev.id);
        }
        self.waiting = false;
        // An oldest-first API that has reached past the window's end has
        // nothing more for this window.
        let next = if past_end && !desc { Next::Done } else { next };
        match next {
            Next::Done => {
                cursor.window = None;
                cursor.time = Some(cursor.time.map_or(self.window.to, |t| t.max(self.window.to)));
                cursor.prune(lookback);
                Step::Done
            }
            Next::Page(s) => {
                self.page_state = Some(s);
                // Oldest first: ids older than `time - lookback` are
                // excluded by time already; keeping them would make the
                // cursor (rewritten every page) grow with the whole walk.
                // (`prune` keeps everything while a desc window is open.)
                cursor.prune(lookback);
                if !desc {
                    self.taken = cursor.taken_ids();
                }
                Step::More
            }
            Next::FromCursor => {
                self.page_state = None;
                self.offset = 0;
                if cursor.time != before {
                    cursor.prune(lookback);
                }
                if let Some(t) = cursor.time.filter(|_| !desc) {
                    self.window.from = t - chrono_dur(lookback);
                }
                Step::More
            }
            Next::Wait(delay, s) => {
                self.waits += 1;
                self.page_state = Some(s);
                self.waiting = true;
                Step::Wait(delay)
            }
        }
    }
}

pub(super) fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Poller {
    /// The last hour's first page, for `check --connect`: proves DNS, TCP,
    /// TLS, credentials and the response shape. Returns how many events
    /// that page held.
    ///
    /// While nothing has arrived, the walk's next steps are followed (at
    /// most [`MAX_PROBE_STEPS`] requests, waiting where the API asks to):
    /// an asynchronous search job is read to its results, and a
    /// connector's silent-empty guard (`api::guard_state`) runs, so a
    /// wrong guess fails `check --connect` too.
    pub async fn probe(&self, cancel: &CancellationToken) -> Result<usize, SourceError> {
        let name = self.settings.name.as_str();
        let now = (self.ctx.clock)();
        let window = Window { from: now - chrono::Duration::hours(1), to: now };
        let shape = |url: String, detail: String| SourceError::Shape { source_name: name.into(), url, detail };
        let mut state: Option<Value> = None;
        for step in 0..MAX_PROBE_STEPS {
            let q =
                Query { window, page: step, offset: 0, state: state.as_ref(), page_size: self.settings.page_size, now };
            let req = self.api.request(&q).map_err(|e| shape(String::new(), e.0))?;
            let url = redact_url(&req.url);
            let resp = self.fetcher.fetch(&req, cancel).await?;
            let page = self.api.parse(&q, &resp).map_err(|e| shape(url, e.0))?;
            if !page.is_empty() {
                return Ok(page.len());
            }
            state = match page.next {
                Next::Page(next) => Some(next),
                Next::Wait(delay, next) => {
                    tokio::select! {
                        () = cancel.cancelled() => return Err(SourceError::Cancelled),
                        () = tokio::time::sleep(delay) => {}
                    }
                    Some(next)
                }
                Next::Done | Next::FromCursor => return Ok(0),
            };
        }
        Ok(0)
    }
}
