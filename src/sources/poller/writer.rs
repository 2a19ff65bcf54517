//! The journal side of a walk: the pipelined writer (one page behind the
//! walk) and back-pressure (the walk waits while the journal is at its
//! limit).

use super::{Poller, SourceContext};
use crate::event::Event;
use crate::sources::SourceError;
use crate::state::Cursor;
use crate::telemetry::metrics::name as metric;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// "Journal is full" is logged at most this often across pauses (a
/// catch-up into a small journal pauses every few seconds).
const FULL_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// How often a paused source looks whether the journal has room again.
const ROOM_CHECK: Duration = Duration::from_millis(50);

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

/// Requests in flight at once across all the sources of an agent, their
/// answers included until they hold a page permit: 3,000 sources polling
/// at once held 3,000 answers while they waited for the 4 page permits
/// (~210 MiB of 100-event pages). A read-ahead takes none: it holds a page
/// permit already (and must not wait for a slot that a source waiting for
/// a page permit holds). 32 requests keep a slow API (hundreds of ms per
/// page) busy enough for ~100,000 events/s.
pub const FETCH_SLOTS: usize = 32;

/// The fetch slots the sources of this process share (see
/// [`FETCH_SLOTS`]).
pub fn fetch_slots() -> Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::LazyLock<Arc<tokio::sync::Semaphore>> =
        std::sync::LazyLock::new(|| Arc::new(tokio::sync::Semaphore::new(FETCH_SLOTS)));
    SLOTS.clone()
}

/// Journals a walk's pages on a task of its own, one page behind the walk:
/// the next page is fetched and normalised while the previous one is
/// written. Pages are written in order, each with the cursor that moves past
/// it, so a crash at any point leaves a cursor that matches the journal.
#[derive(Default)]
pub(super) struct Writer {
    pending: Option<tokio::task::JoinHandle<Result<(), crate::state::StateError>>>,
    /// A generous estimate of the bytes the pending page adds to the journal.
    pub(super) pending_bytes: u64,
}

impl Writer {
    /// Wait for the page being written.
    pub(super) async fn wait(&mut self) -> Result<(), crate::state::StateError> {
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
    pub(super) async fn write(
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
            if events.is_empty() {
                // Nothing new: the cursor's move needs no sync of its own.
                state.advance(&name, &cursor).await?;
            } else {
                state.append(&name, &events, &cursor).await?;
            }
            metrics.add(metric::EVENTS_JOURNALED, &[("source", &name)], events.len() as u64);
            Ok(())
        }));
        Ok(())
    }
}

impl Poller {
    /// Journal bytes at which this source waits: `max_journal_size` while
    /// an output is down (the journal holds the outage), and at most
    /// `run_ahead_bytes` while every output delivers (a catch-up does not pile
    /// up ahead of outputs that are merely slower than the API).
    fn journal_limit(&self) -> u64 {
        if self.ctx.output_health.an_output_is_down() {
            self.ctx.max_journal_bytes
        } else {
            self.ctx.max_journal_bytes.min(self.ctx.run_ahead_bytes)
        }
    }

    /// Whether the journal, with the page `writer` is writing, is below
    /// [`Poller::journal_limit`].
    pub(super) fn room_for(&self, writer: &Writer) -> bool {
        self.ctx.state.journal().bytes().saturating_add(writer.pending_bytes) < self.journal_limit()
    }

    /// Back-pressure: wait while the journal is at its limit (see
    /// [`Poller::journal_limit`]); only a full journal is reported.
    pub(super) async fn wait_for_room(&self, cancel: &CancellationToken) -> Result<(), SourceError> {
        let (mut paused, mut logged) = (false, false);
        while self.ctx.state.journal().bytes() >= self.journal_limit() {
            if self.ctx.state.journal().bytes() >= self.ctx.max_journal_bytes {
                self.ctx.metrics.set(metric::JOURNAL_FULL, &[], 1.0);
                paused = true;
                let mut last = self.full_logged.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_none_or(|t| t.elapsed() >= FULL_LOG_INTERVAL) {
                    tracing::warn!(source = %self.settings.name, bytes = self.ctx.state.journal().bytes(), "journal is full (agent.max_journal_size); polling paused until outputs catch up");
                    *last = Some(Instant::now());
                    logged = true;
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                _ = tokio::time::sleep(ROOM_CHECK) => {}
            }
        }
        if paused {
            self.ctx.metrics.set(metric::JOURNAL_FULL, &[], 0.0);
        }
        if logged {
            tracing::info!(source = %self.settings.name, "journal has room again; polling resumed");
        }
        Ok(())
    }
}
