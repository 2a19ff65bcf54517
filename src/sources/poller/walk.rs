//! One walk: the window `[cursor - lookback, now - lag]`, page by page,
//! each page fetched (or read ahead), normalised, sifted against the
//! cursor and handed to the journal writer with the cursor that moves past
//! it; and the one-page walk `check --connect` makes.

use super::writer::Writer;
use super::{PollReport, Poller};
use crate::sources::api::{ApiPage, ApiResponse, Next, Order, Query};
use crate::sources::SourceError;
use crate::state::{Cursor, Window};
use crate::transport::http::redact_url;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most `Next::Wait` steps in one walk (an asynchronous job that never ends).
const MAX_WAITS: u32 = 120;

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

    pub(super) async fn walk(
        &self,
        cancel: &CancellationToken,
        writer: &mut Writer,
    ) -> Result<PollReport, SourceError> {
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

pub(super) fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
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
                Next::Page(state) if page.is_empty() && crate::sources::api::guard_of(Some(state)).is_some() => {
                    state.clone()
                }
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
