//! The output driver: one loop per output that reads the journal from the
//! output's committed offset, builds a batch (max events, max bytes, max
//! wait), paces it to `max_eps`, sends it through the [`Sink`], retries
//! failures with exponential backoff and jitter forever, and only after the
//! receiver confirmed the batch commits the new offset (with the batch's dead
//! letters, in one transaction).
//!
//! Entries routed elsewhere are skipped and the offset moves past them.
//! During shutdown a batch being sent is finished (bounded by the agent's
//! shutdown timeout); waits and backoffs end at once.
//!
//! With manifests on (`crate::manifest`), every event sent is tagged with
//! its place in its source's window, each confirmation is counted and
//! chained into the window committed with the offset, and every
//! `manifest_interval` the driver stops handing out batches until those
//! in flight are confirmed, closes the windows, stores their manifests and
//! sends them before the next batch.

use super::common::BatchConfig;
use super::{Delivery, ErrorKind, SendError, Sink};
use crate::event::Event;
use crate::manifest::{Book, Manifest};
use crate::retry::Backoff;
use crate::state::{DeadLetter, Entry, StateError};
use crate::telemetry::health::{Change, Component, Health};
use crate::telemetry::metrics::name as metric;
use futures_util::stream::{FuturesOrdered, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// First wait after a transient failure (network, timeout, 5xx, busy);
/// the waits double from here to `retry_max_interval`, with jitter.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// First wait after the receiver refused the credentials or the
/// configuration (or `retry_max_interval`, when that is shorter): an
/// operator has to act, so there is no point knocking every second.
pub const REFUSED_RETRY_FIRST: Duration = Duration::from_secs(30);
/// Longest wait between retries of a refused batch (or `retry_max_interval`,
/// when that is longer): a refusal is still retried, forever, but slowly.
pub const REFUSED_RETRY_MAX: Duration = Duration::from_secs(300);

/// Which outputs each source routes to (`None` = every output). Sources not
/// in the map (removed from the config) route to every output, so their
/// journaled events are still delivered.
pub type Routes = Arc<std::sync::RwLock<HashMap<String, Option<Vec<String>>>>>;

/// The driver's settings.
#[derive(Debug, Clone)]
pub struct DriverSettings {
    /// Output name.
    pub name: String,
    /// Batch limits.
    pub batch: BatchConfig,
    /// Events per second at most (`None` = no limit).
    pub max_eps: Option<u32>,
    /// Longest wait between retries.
    pub retry_max_interval: Duration,
    /// Batches sent before the first is confirmed (1 = one at a time); more
    /// only where the sink can [`Sink::fork`].
    pub max_in_flight: usize,
    /// How often the output closes its manifest windows (`None`: manifests
    /// off).
    pub manifest_interval: Option<Duration>,
    /// The name its windows are tagged and its manifests sent under: the
    /// output's name, or in a fleet `output@agent`, so that every agent's
    /// windows form a sequence of their own (`None`: the output's name).
    pub manifest_stream: Option<String>,
}

/// Run an output until cancelled. Returns an error only for a state failure
/// (fatal).
pub async fn run<S: Sink>(
    settings: DriverSettings,
    sink: S,
    routes: Routes,
    ctx: super::OutputContext,
    cancel: CancellationToken,
) -> Result<(), StateError> {
    Driver::new(settings, sink, routes, ctx).run(cancel).await
}

/// What the driver and its send tasks share.
struct Shared {
    settings: DriverSettings,
    ctx: super::OutputContext,
    /// The output's health, logged once per change.
    health: Health,
}

struct Driver<S> {
    shared: Arc<Shared>,
    /// Idle handles on the receiver; one per batch in flight.
    pool: Vec<S>,
    routes: Routes,
    limiter: Option<Pacer>,
    /// The manifest windows, with manifests on.
    book: Option<Book>,
}

/// A batch handed to the receiver, in journal order.
struct Flight<S> {
    /// The handle it went out on (`None` for a batch with nothing routed here).
    sink: Option<S>,
    /// Journal sequence numbers of `events`.
    seqs: Vec<u64>,
    events: Vec<Event>,
    /// The events' digests for their manifest windows (empty with
    /// manifests off), computed in the send task, off the driver's loop.
    digests: Vec<crate::manifest::Digest>,
    /// The last sequence number the batch covers (routed elsewhere or not).
    last: u64,
    /// The receiver's confirmation; `None` when cancelled before it came.
    delivery: Option<Delivery>,
}

type InFlight<S> = FuturesOrdered<Pin<Box<dyn Future<Output = Flight<S>> + Send>>>;

/// The `max_eps` limiter. It reads tokio's clock (see [`TokioClock`]).
type Pacer = governor::RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    TokioClock,
    governor::middleware::NoOpMiddleware<Duration>,
>;

/// Pacing is done in chunks no larger than one second's worth.
fn limiter(max_eps: Option<u32>) -> Option<Pacer> {
    let eps = NonZeroU32::new(max_eps?)?;
    Some(governor::RateLimiter::direct_with_clock(governor::Quota::per_second(eps), TokioClock(Instant::now())))
}

/// Time since a start, read from tokio's clock: the real monotonic clock
/// in the agent, the paused one in tests. (governor's default clock and its
/// `until_ready` wait read the real clock, which a paused test cannot move.)
#[derive(Debug, Clone)]
struct TokioClock(Instant);

impl governor::clock::Clock for TokioClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

impl<S: Sink> Driver<S> {
    fn new(settings: DriverSettings, sink: S, routes: Routes, ctx: super::OutputContext) -> Self {
        let limiter = limiter(settings.max_eps);
        let mut pool = Vec::with_capacity(settings.max_in_flight.max(1));
        while pool.len() + 1 < settings.max_in_flight {
            match sink.fork() {
                Some(f) => pool.push(f),
                None => break,
            }
        }
        pool.push(sink);
        let health = Health::new(Component::Output, &settings.name, ctx.state.clone(), ctx.metrics.clone());
        let shared = Arc::new(Shared { settings, ctx, health });
        Driver { shared, pool, routes, limiter, book: None }
    }

    /// Read batches from the journal and hand each to an idle sink handle;
    /// commit offsets strictly in journal order as confirmations come back,
    /// so a batch confirmed early waits for the ones before it.
    async fn run(mut self, cancel: CancellationToken) -> Result<(), StateError> {
        let name = self.shared.settings.name.clone();
        let batch = self.shared.settings.batch;
        let state = self.shared.ctx.state.clone();
        let mut offset = state.offset_or_tail(&name).await?;
        // Where the next batch starts: past every batch handed out.
        let mut read_from = offset;
        let mut tail = state.journal().subscribe();
        let mut in_flight: InFlight<S> = FuturesOrdered::new();
        let mut deadline: Option<Instant> = None;
        let mut next_close = self.start_manifests(&cancel).await?;
        if cancel.is_cancelled() {
            return Ok(()); // while sending pending manifests: they stay stored
        }
        loop {
            // Windows close once what is in flight has landed; meanwhile no
            // new batch goes out.
            let closing = next_close.is_some_and(|t| Instant::now() >= t);
            if closing && in_flight.is_empty() {
                if !self.close_windows(&cancel).await? {
                    return Ok(()); // cancelled while sending manifests: they stay pending
                }
                next_close = self.shared.settings.manifest_interval.map(|i| Instant::now() + i);
                continue;
            }
            // Gather a batch while a handle is idle: wait for the first
            // entry, then up to batch.timeout for the batch to fill.
            if !self.pool.is_empty() && !closing {
                let entries = state.journal().read(read_from, batch.max_events, batch.max_bytes.bytes() as usize)?;
                let full = entries.len() >= batch.max_events
                    || entries.iter().map(|(_, e)| e.event.approx_size()).sum::<usize>() as u64
                        >= batch.max_bytes.bytes();
                let now = Instant::now();
                if !entries.is_empty() && (full || deadline.is_some_and(|d| now >= d)) {
                    deadline = None;
                    read_from = entries.last().map_or(read_from, |(seq, _)| *seq + 1);
                    self.dispatch(entries, &mut in_flight, &cancel).await;
                    continue;
                }
                if !entries.is_empty() && deadline.is_none() {
                    deadline = Some(now + batch.timeout.get());
                }
            }
            let gathering = !self.pool.is_empty() && !closing;
            tokio::select! {
                _ = cancel.cancelled() => {
                    // Batches already sent finish (each bounded by the
                    // shutdown timeout); what was confirmed is committed.
                    while let Some(flight) = in_flight.next().await {
                        if !self.land(flight, &mut offset).await? {
                            break;
                        }
                    }
                    return Ok(());
                }
                Some(flight) = in_flight.next(), if !in_flight.is_empty() => {
                    if !self.land(flight, &mut offset).await? {
                        return Ok(()); // cancelled while retrying: the offset stays
                    }
                }
                _ = tail.changed(), if gathering => {}
                _ = sleep_until(deadline), if gathering => {}
                _ = sleep_until(next_close), if !closing => {}
            }
        }
    }

    /// With manifests on: load the windows, send the manifests a crash left
    /// unconfirmed, and say when the windows close next (`None`: manifests
    /// off).
    async fn start_manifests(&mut self, cancel: &CancellationToken) -> Result<Option<Instant>, StateError> {
        let Some(interval) = self.shared.settings.manifest_interval else { return Ok(None) };
        let (name, ctx) = (&self.shared.settings.name, &self.shared.ctx);
        let stream = self.shared.settings.manifest_stream.as_deref().unwrap_or(name);
        let book = Book::new(stream, ctx.state.manifests().windows(name)?);
        let now = (ctx.clock)();
        let age = book.oldest().and_then(|t| (now - t).to_std().ok()).unwrap_or_default();
        self.book = Some(book);
        ctx.metrics.set(metric::MANIFEST_INTERVAL, &[("output", name)], interval.as_secs_f64());
        ctx.metrics.set(metric::MANIFEST_LAST_SENT, &[("output", name)], now.timestamp() as f64);
        ctx.metrics.add(metric::MANIFESTS_SENT, &[("output", name)], 0);
        let pending = ctx.state.manifests().pending(name)?;
        self.send_manifests(pending, cancel).await?;
        Ok(Some(Instant::now() + interval.saturating_sub(age)))
    }

    /// Close every window, store the manifests, send them. `false` when
    /// cancelled first.
    async fn close_windows(&mut self, cancel: &CancellationToken) -> Result<bool, StateError> {
        let Some(book) = self.book.as_mut() else { return Ok(true) };
        let (name, ctx) = (&self.shared.settings.name, &self.shared.ctx);
        let routed: Vec<String> = {
            let map = self.routes.read().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .filter(|(_, to)| to.as_ref().is_none_or(|to| to.iter().any(|o| o == name)))
                .map(|(s, _)| s.clone())
                .collect()
        };
        let closing = book.close(routed.iter().map(String::as_str), (ctx.clock)(), &ctx.hostname);
        ctx.state.manifests().close(name, &closing).await?;
        self.send_manifests(closing.manifests, cancel).await
    }

    /// Send manifests until the receiver confirmed them, then forget them.
    /// `false` when cancelled first (they stay stored).
    async fn send_manifests(
        &mut self,
        manifests: Vec<Manifest>,
        cancel: &CancellationToken,
    ) -> Result<bool, StateError> {
        if manifests.is_empty() {
            return Ok(true);
        }
        let Some(mut sink) = self.pool.pop() else { return Ok(false) };
        let events: Vec<Event> = manifests.iter().map(Manifest::event).collect();
        let max = self.shared.settings.batch.max_events.max(1);
        for chunk in events.chunks(max) {
            pace(self.limiter.as_ref(), self.shared.settings.max_eps, chunk.len(), cancel).await;
            let Some(delivery) = send_until_confirmed(&self.shared, &mut sink, chunk, cancel).await else {
                self.pool.push(sink);
                return Ok(false);
            };
            for (i, reason) in &delivery.rejected {
                let m = chunk.get(*i).map_or("", |e| e.id.as_str());
                tracing::error!(output = %self.shared.settings.name, manifest = %m, reason = %crate::telemetry::printable(reason), "receiver rejected a manifest; `auditrelay verify` will report its window as missing");
            }
        }
        self.pool.push(sink);
        let (name, ctx) = (&self.shared.settings.name, &self.shared.ctx);
        ctx.state.manifests().sent(name, &manifests)?;
        ctx.metrics.add(metric::MANIFESTS_SENT, &[("output", name)], manifests.len() as u64);
        ctx.metrics.set(metric::MANIFEST_LAST_SENT, &[("output", name)], (ctx.clock)().timestamp() as f64);
        Ok(true)
    }

    /// Hand a batch to an idle handle, as a task of its own.
    async fn dispatch(&mut self, entries: Vec<(u64, Entry)>, in_flight: &mut InFlight<S>, cancel: &CancellationToken) {
        let last = entries.last().map_or(0, |(seq, _)| *seq);
        let (seqs, mut events): (Vec<u64>, Vec<Event>) =
            entries.into_iter().filter(|(_, e)| self.routed(e)).map(|(s, e)| (s, e.event)).unzip();
        if let Some(book) = self.book.as_mut() {
            let now = (self.shared.ctx.clock)();
            for e in &mut events {
                book.tag(e, now);
            }
        }
        if events.is_empty() {
            let flight =
                Flight { sink: None, seqs, events, digests: Vec::new(), last, delivery: Some(Delivery::default()) };
            in_flight.push_back(Box::pin(std::future::ready(flight)));
            return;
        }
        pace(self.limiter.as_ref(), self.shared.settings.max_eps, events.len(), cancel).await;
        let Some(mut sink) = self.pool.pop() else { return };
        let (shared, cancel) = (self.shared.clone(), cancel.clone());
        let manifests = self.book.is_some();
        let task = tokio::spawn(async move {
            let digests =
                if manifests { events.iter().map(crate::manifest::event_digest).collect() } else { Vec::new() };
            let delivery = send_until_confirmed(&shared, &mut sink, &events, &cancel).await;
            Flight { sink: Some(sink), seqs, events, digests, last, delivery }
        });
        in_flight.push_back(Box::pin(async move {
            match task.await {
                Ok(flight) => flight,
                // A send task only ends early by panicking: re-raise it.
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }));
    }

    /// Commit a confirmed batch (the next in journal order) with its dead
    /// letters. `false` when it was cancelled before being confirmed.
    async fn land(&mut self, flight: Flight<S>, offset: &mut u64) -> Result<bool, StateError> {
        if let Some(sink) = flight.sink {
            self.pool.push(sink);
        }
        let Some(delivery) = flight.delivery else { return Ok(false) };
        let (name, state) = (&self.shared.settings.name, &self.shared.ctx.state);
        let at = crate::event::rfc3339((self.shared.ctx.clock)());
        let dead: Vec<DeadLetter> = delivery
            .rejected
            .iter()
            .filter_map(|(i, reason)| {
                let event = flight.events.get(*i)?.clone();
                Some(DeadLetter { seq: flight.seqs[*i], reason: reason.clone(), at: at.clone(), event })
            })
            .collect();
        let windows = match self.book.as_mut() {
            Some(book) => {
                let now = (self.shared.ctx.clock)();
                let refused: std::collections::HashSet<usize> = delivery.rejected.iter().map(|(i, _)| *i).collect();
                for (i, e) in flight.events.iter().enumerate() {
                    book.confirm(e, flight.seqs[i], flight.digests.get(i).copied(), refused.contains(&i), now);
                }
                book.take_dirty()
            }
            None => Vec::new(),
        };
        state.commit_with_windows(name, flight.last + 1, &dead, &windows).await?;
        *offset = flight.last + 1;
        if flight.events.is_empty() {
            return Ok(true);
        }
        let m = &self.shared.ctx.metrics;
        m.add(metric::EVENTS_SENT, &[("output", name)], (flight.events.len() - dead.len()) as u64);
        if !dead.is_empty() {
            tracing::error!(output = %name, count = dead.len(), reason = %crate::telemetry::printable(&dead[0].reason), "receiver rejected events; they are in the dead-letter queue (auditrelay dead-letters list --output {name})");
            m.add(metric::EVENTS_DEAD_LETTERED, &[("output", name)], dead.len() as u64);
        }
        m.set(metric::LAST_SEND, &[("output", name)], (self.shared.ctx.clock)().timestamp() as f64);
        m.set(metric::BACKLOG_EVENTS, &[("output", name)], state.journal().next_seq().saturating_sub(*offset) as f64);
        Ok(true)
    }

    fn routed(&self, e: &Entry) -> bool {
        let map = self.routes.read().unwrap_or_else(|p| p.into_inner());
        let routes = map.get(&e.event.source).and_then(|r| r.as_deref());
        e.routed_to(&self.shared.settings.name, routes)
    }
}

/// Wait for `max_eps` to allow `n` events; delays, never drops.
// A free function, not a method: the wait must not hold `&Driver`, which
// is not `Sync` (a sink need not be).
async fn pace(limiter: Option<&Pacer>, max_eps: Option<u32>, n: usize, cancel: &CancellationToken) {
    let (Some(l), Some(eps)) = (limiter, max_eps) else { return };
    let mut left = n as u32;
    while left > 0 {
        let chunk = left.min(eps.max(1));
        let Some(c) = NonZeroU32::new(chunk) else { return };
        // What governor's `until_n_ready` does, waiting on tokio's clock.
        loop {
            let wait = match l.check_n(c) {
                Ok(Ok(())) => break,
                Ok(Err(not_until)) => not_until.wait_time_from(governor::clock::Clock::now(l.clock())),
                // A chunk is at most the burst (one second's worth).
                Err(_) => return,
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        left -= chunk;
    }
}

/// Send until the receiver confirms; `None` when cancelled first.
async fn send_until_confirmed<S: Sink>(
    shared: &Shared,
    sink: &mut S,
    events: &[Event],
    cancel: &CancellationToken,
) -> Option<Delivery> {
    let settings = &shared.settings;
    let mut backoff = Backoff::new(RETRY_FIRST, settings.retry_max_interval);
    let mut slow = Backoff::new(
        REFUSED_RETRY_FIRST.min(settings.retry_max_interval),
        settings.retry_max_interval.max(REFUSED_RETRY_MAX),
    );
    loop {
        match sink.send(events).await {
            Ok(d) => {
                shared.set_health(None);
                return Some(d);
            }
            Err(e) => {
                let delay = match e.kind {
                    ErrorKind::Transient => backoff.next_delay(),
                    ErrorKind::Auth | ErrorKind::Config => slow.next_delay(),
                };
                let name = settings.name.as_str();
                shared.ctx.metrics.add(metric::RETRIES, &[("output", name)], 1);
                shared.set_health(Some((&e, delay)));
                tokio::select! {
                    _ = cancel.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

impl Shared {
    /// Record health; log once per change (and when the error changes).
    fn set_health(&self, err: Option<(&SendError, Duration)>) {
        let name = &self.settings.name;
        let now = (self.ctx.clock)();
        match err {
            None => {
                if self.health.ok(now) == Change::Recovered {
                    tracing::info!(output = %name, "output is healthy again; delivery resumed");
                }
            }
            Some((e, delay)) => {
                let detail = crate::telemetry::printable(&e.detail);
                if self.health.failed(now, &detail) == Change::Failed {
                    let what = match e.kind {
                        ErrorKind::Transient => "receiver unavailable",
                        ErrorKind::Auth => "receiver refused the credentials",
                        ErrorKind::Config => "receiver refused the configuration",
                    };
                    tracing::error!(output = %name, "{what}: {detail}; events stay in the journal, retrying (next in {delay:?})");
                }
            }
        }
        self.ctx.output_health.set_down(name, err.is_some());
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
