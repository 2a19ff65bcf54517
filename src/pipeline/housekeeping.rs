//! What the agent does between the events: the periodic tick (journal
//! metrics, the status snapshot, the systemd status and watchdog ping, the
//! garbage collection of an empty journal) and the clock that says when the
//! journal's garbage is due.

use super::components::Running;
use super::components::Runtime;
use super::snapshot;
use crate::state::{State, StateError};
use crate::telemetry::metrics::name as metric;
use std::collections::HashSet;
use std::time::Duration;

/// What housekeeping remembers from one tick to the next.
#[derive(Default)]
pub(super) struct Kept {
    /// Replay requests reported as impossible to remove (never applied).
    pub(super) replays: HashSet<std::path::PathBuf>,
    pub(super) ticks: u64,
    /// Journal tail and status generation at the last snapshot, and when.
    pub(super) snapshot: Option<((u64, u64), tokio::time::Instant)>,
}

/// The status snapshot is rewritten when something changed, and at least
/// this often (so `status` shows a recent time on an idle agent).
const SNAPSHOT_REFRESH: Duration = Duration::from_secs(30);

pub(super) async fn housekeep(running: &Running, rt: &Runtime, kept: &mut Kept) -> Result<(), StateError> {
    kept.ticks += 1;
    let outputs: Vec<String> = running.config.outputs.iter().map(|o| o.name.clone()).collect();
    // The 250 ms tick collects while the journal holds anything; this one
    // runs now and then on an empty journal too, to forget the offsets of
    // outputs removed from the config.
    if rt.state.journal().bytes() == 0 && kept.ticks % 15 == 1 {
        rt.state.collect_garbage(&outputs).await?;
    }
    rt.metrics.set(metric::JOURNAL_BYTES, &[], rt.state.journal().bytes() as f64);
    let tail = rt.state.journal().next_seq();
    for o in &outputs {
        if let Some(off) = rt.state.offsets().get(o)? {
            rt.metrics.set(metric::BACKLOG_EVENTS, &[("output", o)], tail.saturating_sub(off) as f64);
        }
    }
    let key = (tail, rt.state.status().generation());
    let now = tokio::time::Instant::now();
    if kept.snapshot.is_none_or(|(k, at)| k != key || now - at >= SNAPSHOT_REFRESH) {
        if let Err(e) = snapshot::write(&running.config, &rt.state) {
            tracing::debug!("status snapshot not written: {e}");
        }
        kept.snapshot = Some((key, now));
    }
    let backlog: u64 = outputs
        .iter()
        .filter_map(|o| rt.state.offsets().get(o).ok().flatten())
        .map(|off| tail.saturating_sub(off))
        .sum();
    let status = format!(
        "STATUS={} source(s), {} output(s), backlog {backlog} event(s), journal {} KiB\nWATCHDOG=1",
        running.sources.len(),
        running.outputs.len(),
        rt.state.journal().bytes() / 1024
    );
    crate::telemetry::notify::notify(&status);
    Ok(())
}

/// When journal garbage collection is due: every `interval` while the
/// journal holds events; while it is empty (an idle agent), not until the
/// next append, so an idle agent does no store reads.
///
/// The wait re-checks the journal each time it is entered: a catch-up's
/// journal is empty for a moment after each collection, and a guard
/// evaluated once when the agent's `select!` was entered kept collection
/// off until another branch (the 2 s housekeeping) fired, so a source at
/// `max_journal_size` waited ~2 s per journal-full of events.
pub(super) struct GcClock {
    tick: tokio::time::Interval,
    tail: tokio::sync::watch::Receiver<u64>,
}

impl GcClock {
    pub(super) fn new(state: &State, interval: Duration) -> Self {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        GcClock { tick, tail: state.journal().subscribe() }
    }

    /// Resolves when a collection is due. Cancel-safe.
    pub(super) async fn due(&mut self, state: &State) {
        while state.journal().bytes() == 0 {
            // An append moves the tail; a closed channel cannot happen
            // while the state lives, but would fall back to ticking.
            if self.tail.changed().await.is_err() {
                break;
            }
        }
        self.tick.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::state::Cursor;

    async fn append_one(state: &State, id: &str) {
        let ev = Event::new("s".into(), id.into(), chrono::Utc::now(), serde_json::Map::new(), "{}".into());
        state.append("s", &[ev], &Cursor::default()).await.unwrap();
    }

    /// Collection is never due on an empty journal, due within a tick of an
    /// append, and again after the journal was emptied and refilled (a
    /// catch-up at `max_journal_size` does this every few hundred ms).
    #[tokio::test(start_paused = true)]
    async fn gc_is_due_while_the_journal_holds_events_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let mut gc = GcClock::new(&state, Duration::from_millis(50));
        let quiet = Duration::from_millis(300);
        let soon = Duration::from_secs(5);
        assert!(tokio::time::timeout(quiet, gc.due(&state)).await.is_err(), "due on an empty journal");

        append_one(&state, "1").await;
        tokio::time::timeout(soon, gc.due(&state)).await.expect("not due after an append");
        tokio::time::timeout(soon, gc.due(&state)).await.expect("not due again while events remain");

        state.commit("o", 1, &[]).await.unwrap();
        assert_eq!(state.collect_garbage(&["o".to_owned()]).await.unwrap(), 1);
        assert_eq!(state.journal().bytes(), 0);
        assert!(tokio::time::timeout(quiet, gc.due(&state)).await.is_err(), "due once emptied");

        append_one(&state, "2").await;
        tokio::time::timeout(soon, gc.due(&state)).await.expect("not due after the journal refilled");
    }
}
