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
//!
//! The loop's parts, one file each: [`run`](self) (the run loop and the
//! source's health), `walk` (one window, page by page, in named steps),
//! `fetch` (the [`Fetcher`]: one request with its rate limit, retries and
//! their classification, apart from the walk), `normalise` (a page's events, in parallel parts) and
//! `writer` (the pipelined journal writer and back-pressure).
//!
//! The types every part uses live here rather than in a file of their own:
//! the parts add `impl Poller` blocks and read its private fields, which
//! only this module and its children can.

mod fetch;
mod normalise;
mod run;
mod walk;
mod writer;

#[cfg(test)]
mod tests;

pub use fetch::{Fetcher, RequestSettings};
pub use run::mark_unhealthy;
pub use run::{first_poll_delay, first_poll_spread, FIRST_POLL_SPREAD_MAX, FIRST_POLL_SPREAD_PER_SOURCE};
pub use writer::{fetch_slots, pages_in_hand, FETCH_SLOTS, PAGES_IN_HAND, RUN_AHEAD};

use super::api::SourceApi;
use super::auth::Auth;
use crate::settings::units::StartAt;
use crate::state::State;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::OutputHealth;
use crate::transport::http::Clients;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The current time; injectable so tests can move the clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

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
    /// Most pages one walk takes before it stops as a runaway.
    pub max_pages: u64,
    /// Longest one walk runs before it stops as a runaway.
    pub max_poll_time: Duration,
}

/// Pages one walk takes at most by default (`max_pages`): an API that
/// keeps handing out new page tokens cannot hold a walk, and the memory
/// of the requests it made, forever.
pub const DEFAULT_MAX_PAGES: u64 = 10_000;
/// How long one walk runs at most by default (`max_poll_time`).
pub const DEFAULT_MAX_POLL_TIME: Duration = Duration::from_secs(3600);

/// What the poller shares with the rest of the agent.
#[derive(Clone)]
pub struct SourceContext {
    /// The state database.
    pub state: Arc<State>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Whether some output is down: the journal limit depends on it.
    pub output_health: OutputHealth,
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
    /// Slots for the requests in flight whose answer is not yet a page in
    /// hand, shared by all the sources (normally [`fetch_slots`]).
    pub fetches: Arc<tokio::sync::Semaphore>,
    /// The HTTP clients the sources of this build share.
    pub http: Arc<Clients>,
    /// The longest a source with a cursor waits before its first poll
    /// (see [`first_poll_spread`]); zero: at once.
    pub first_poll_spread: Duration,
}

/// One configured source, ready to run: the walk's settings, the
/// vendor's hooks, the [`Fetcher`] that makes its requests, and what it
/// shares with the agent.
pub struct Poller {
    settings: Settings,
    api: Arc<dyn SourceApi>,
    fetcher: Fetcher,
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
    /// Assemble a poller: its requests made with `request` on `client`,
    /// authenticated by `auth`.
    pub fn new(
        settings: Settings,
        request: RequestSettings,
        api: Box<dyn SourceApi>,
        client: reqwest::Client,
        auth: Auth,
        ctx: SourceContext,
    ) -> Self {
        let api: Arc<dyn SourceApi> = Arc::from(api);
        let fetcher = Fetcher::new(&settings.name, request, api.clone(), client, auth, &ctx);
        Poller { settings, api, fetcher, ctx, full_logged: std::sync::Mutex::new(None) }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}
