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

use super::{AnySink, Delivery, ErrorKind, SendError, Sink};
use crate::config::BatchConfig;
use crate::event::Event;
use crate::retry::Backoff;
use crate::state::{DeadLetter, Entry, StateError, Status};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
}

/// Run an output until cancelled. Returns an error only for a state failure
/// (fatal).
pub async fn run(
    settings: DriverSettings,
    sink: AnySink,
    routes: Routes,
    ctx: super::OutputContext,
    cancel: CancellationToken,
) -> Result<(), StateError> {
    Driver::new(settings, sink, routes, ctx).run(cancel).await
}

struct Driver<S> {
    settings: DriverSettings,
    sink: S,
    routes: Routes,
    ctx: super::OutputContext,
    limiter: Option<governor::DefaultDirectRateLimiter>,
    healthy: Option<bool>,
}

/// Pacing is done in chunks no larger than one second's worth.
fn limiter(max_eps: Option<u32>) -> Option<governor::DefaultDirectRateLimiter> {
    let eps = NonZeroU32::new(max_eps?)?;
    Some(governor::RateLimiter::direct(governor::Quota::per_second(eps)))
}

impl<S: Sink> Driver<S> {
    fn new(settings: DriverSettings, sink: S, routes: Routes, ctx: super::OutputContext) -> Self {
        let limiter = limiter(settings.max_eps);
        Driver { settings, sink, routes, ctx, limiter, healthy: None }
    }

    async fn run(mut self, cancel: CancellationToken) -> Result<(), StateError> {
        let name = self.settings.name.clone();
        let state = self.ctx.state.clone();
        let mut offset = state.offset_or_tail(&name).await?;
        let mut tail = state.subscribe();
        loop {
            // Gather a batch: wait for the first entry, then up to
            // batch.timeout for the batch to fill.
            let mut deadline: Option<Instant> = None;
            let entries = loop {
                let entries = state.read(
                    offset,
                    self.settings.batch.max_events,
                    self.settings.batch.max_bytes.bytes() as usize,
                )?;
                let full = entries.len() >= self.settings.batch.max_events
                    || entries.iter().map(|(_, e)| e.event.approx_size()).sum::<usize>() as u64
                        >= self.settings.batch.max_bytes.bytes();
                let now = Instant::now();
                if !entries.is_empty() && (full || deadline.is_some_and(|d| now >= d)) {
                    break entries;
                }
                if !entries.is_empty() && deadline.is_none() {
                    deadline = Some(now + self.settings.batch.timeout.get());
                }
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tail.changed() => {}
                    _ = sleep_until(deadline) => {}
                }
            };
            let last = entries.last().map_or(offset, |(seq, _)| *seq);
            let (seqs, events): (Vec<u64>, Vec<Event>) =
                entries.into_iter().filter(|(_, e)| self.routed(e)).map(|(s, e)| (s, e.event)).unzip();
            if events.is_empty() {
                state.commit(&name, last + 1, &[]).await?;
                offset = last + 1;
                continue;
            }
            self.pace(events.len(), &cancel).await;
            let Some(delivery) = self.send_until_confirmed(&events, &cancel).await else {
                return Ok(()); // cancelled while retrying: the offset stays, the batch is sent again next start
            };
            let at = crate::event::rfc3339(chrono::Utc::now());
            let dead: Vec<DeadLetter> = delivery
                .rejected
                .iter()
                .filter_map(|(i, reason)| {
                    let event = events.get(*i)?.clone();
                    Some(DeadLetter { seq: seqs[*i], reason: reason.clone(), at: at.clone(), event })
                })
                .collect();
            state.commit(&name, last + 1, &dead).await?;
            offset = last + 1;
            let m = &self.ctx.metrics;
            m.add("auditrelay_events_sent_total", &[("output", &name)], (events.len() - dead.len()) as u64);
            if !dead.is_empty() {
                tracing::error!(output = %name, count = dead.len(), reason = %dead[0].reason, "receiver rejected events; they are in the dead-letter queue (auditrelay dead-letters list --output {name})");
                m.add("auditrelay_events_dead_lettered_total", &[("output", &name)], dead.len() as u64);
            }
            m.set(
                "auditrelay_last_send_timestamp_seconds",
                &[("output", &name)],
                chrono::Utc::now().timestamp() as f64,
            );
            m.set("auditrelay_backlog_events", &[("output", &name)], state.next_seq().saturating_sub(offset) as f64);
        }
    }

    fn routed(&self, e: &Entry) -> bool {
        let map = self.routes.read().unwrap_or_else(|p| p.into_inner());
        let routes = map.get(&e.event.source).and_then(|r| r.as_deref());
        e.routed_to(&self.settings.name, routes)
    }

    /// Wait for `max_eps` to allow `n` events; delays, never drops.
    async fn pace(&self, n: usize, cancel: &CancellationToken) {
        let (Some(l), Some(eps)) = (&self.limiter, self.settings.max_eps) else { return };
        let mut left = n as u32;
        while left > 0 {
            let chunk = left.min(eps.max(1));
            let Some(c) = NonZeroU32::new(chunk) else { return };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = l.until_n_ready(c) => {}
            }
            left -= chunk;
        }
    }

    /// Send until the receiver confirms; `None` when cancelled first.
    async fn send_until_confirmed(&mut self, events: &[Event], cancel: &CancellationToken) -> Option<Delivery> {
        let name = self.settings.name.clone();
        let mut backoff = Backoff::new(Duration::from_secs(1), self.settings.retry_max_interval);
        let mut slow = Backoff::new(
            Duration::from_secs(30).min(self.settings.retry_max_interval),
            self.settings.retry_max_interval.max(Duration::from_secs(300)),
        );
        loop {
            match self.sink.send(events).await {
                Ok(d) => {
                    self.set_health(true, None);
                    return Some(d);
                }
                Err(e) => {
                    let delay = match e.kind {
                        ErrorKind::Transient => backoff.next_delay(),
                        ErrorKind::Auth | ErrorKind::Config => slow.next_delay(),
                    };
                    self.ctx.metrics.add("auditrelay_retries_total", &[("output", &name)], 1);
                    self.ctx.metrics.add("auditrelay_errors_total", &[("output", &name)], 1);
                    self.set_health(false, Some((&e, delay)));
                    tokio::select! {
                        _ = cancel.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Record health; log once per change (and when the error changes).
    fn set_health(&mut self, ok: bool, err: Option<(&SendError, Duration)>) {
        let name = &self.settings.name;
        let mut status = self.ctx.state.status("output", name).ok().flatten().unwrap_or_default();
        let now = crate::event::rfc3339(chrono::Utc::now());
        match err {
            None => {
                if self.healthy == Some(false) {
                    tracing::info!(output = %name, "output is healthy again; delivery resumed");
                }
                status = Status { healthy: true, last_ok: Some(now), ..status };
            }
            Some((e, delay)) => {
                let changed = status.last_error.as_deref() != Some(e.detail.as_str());
                if self.healthy != Some(false) || changed {
                    let what = match e.kind {
                        ErrorKind::Transient => "receiver unavailable",
                        ErrorKind::Auth => "receiver refused the credentials",
                        ErrorKind::Config => "receiver refused the configuration",
                    };
                    tracing::error!(output = %name, "{what}: {}; events stay in the journal, retrying (next in {delay:?})", e.detail);
                }
                status.healthy = false;
                status.last_error = Some(e.detail.clone());
                status.last_error_at = Some(now);
            }
        }
        self.healthy = Some(ok);
        self.ctx.metrics.set("auditrelay_up", &[("output", name)], if ok { 1.0 } else { 0.0 });
        let _ = self.ctx.state.set_status("output", name, &status);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
