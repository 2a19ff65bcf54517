//! The run loop: poll, record the source's health and metrics, wait for
//! the interval once caught up, until cancelled.

use super::Poller;
use crate::sources::SourceError;
use crate::state::State;
use crate::telemetry::health::{Change, Component, Health};
use crate::telemetry::metrics::name as metric;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest the first polls of the sources started together are
/// spread over (never more than a source's own interval).
pub const FIRST_POLL_SPREAD_MAX: Duration = Duration::from_secs(30);
/// The spread each source started together adds: 3,000 sources spread
/// over 30 s (100 first polls a second), 100 over 1 s, one waits at most
/// 10 ms.
pub const FIRST_POLL_SPREAD_PER_SOURCE: Duration = Duration::from_millis(10);

/// The spread of the first polls when `sources` start together: grows
/// with their number, up to [`FIRST_POLL_SPREAD_MAX`].
pub fn first_poll_spread(sources: usize) -> Duration {
    FIRST_POLL_SPREAD_PER_SOURCE.saturating_mul(u32::try_from(sources).unwrap_or(u32::MAX)).min(FIRST_POLL_SPREAD_MAX)
}

/// How long the source `name` waits before its first poll: a point in
/// `[0, min(spread, interval))` fixed by its name (CRC-32), so the same
/// config restarts with the same offsets and the sources of a restart do
/// not all ask their APIs at the same instant.
pub fn first_poll_delay(name: &str, interval: Duration, spread: Duration) -> Duration {
    let window = spread.min(interval).as_nanos();
    let at = (u128::from(crc32fast::hash(name.as_bytes())) * window) >> 32;
    Duration::from_nanos(u64::try_from(at).unwrap_or(u64::MAX))
}

impl Poller {
    /// Poll until cancelled. Returns an error only for a state failure, which
    /// the agent treats as fatal.
    ///
    /// A source with a cursor (a restart) first waits its
    /// [`first_poll_delay`]; one without (never polled, its whole
    /// `start_at` window to catch up on) polls at once: delaying it would
    /// only delay its backlog, and the agent's fetch slots bound what all
    /// such sources ask at once.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), crate::state::StateError> {
        let name = self.settings.name.clone();
        let health = Health::new(Component::Source, &name, self.ctx.state.clone(), self.ctx.metrics.clone());
        if self.ctx.state.cursors().get(&name)?.is_some() {
            let delay = first_poll_delay(&name, self.settings.interval, self.ctx.first_poll_spread);
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
        }
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let result = self.poll_once(&cancel).await;
            let now = (self.ctx.clock)();
            let caught_up = match result {
                Ok(report) => {
                    if health.ok(now) == Change::Recovered {
                        tracing::info!(source = %name, "source is healthy again");
                    }
                    self.ctx.metrics.set(metric::LAST_POLL, &[("source", &name)], now.timestamp() as f64);
                    report.caught_up
                }
                Err(SourceError::Cancelled) => return Ok(()),
                Err(SourceError::State(e)) => return Err(e),
                Err(e) => {
                    let msg = crate::telemetry::printable(&e.to_string());
                    if health.failed(now, &msg) == Change::Failed {
                        tracing::error!(source = %name, "poll failed; cursor kept, retrying in {:?}: {msg}", self.settings.interval);
                    }
                    true
                }
            };
            if let Ok(Some(c)) = self.ctx.state.cursors().get(&name) {
                if let Some(t) = c.time {
                    let lag = (now - t).num_milliseconds() as f64 / 1000.0;
                    self.ctx.metrics.set(metric::CURSOR_LAG, &[("source", &name)], lag);
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
}

/// Record a source's status as unhealthy with a reason (used when building
/// the source failed).
pub fn mark_unhealthy(state: &State, name: &str, reason: &str) {
    crate::telemetry::health::mark_unhealthy(state, Component::Source, name, reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_poll_spread_grows_with_the_sources_up_to_its_bound() {
        assert_eq!(first_poll_spread(0), Duration::ZERO);
        assert_eq!(first_poll_spread(1), Duration::from_millis(10));
        assert_eq!(first_poll_spread(100), Duration::from_secs(1));
        assert_eq!(first_poll_spread(3000), FIRST_POLL_SPREAD_MAX);
        assert_eq!(first_poll_spread(usize::MAX), FIRST_POLL_SPREAD_MAX);
    }

    /// The same name waits the same, within the spread and the interval,
    /// and 3,000 sources' first polls spread evenly over it.
    #[test]
    fn first_poll_delays_are_fixed_by_name_and_spread_evenly() {
        let (interval, spread) = (Duration::from_secs(30), first_poll_spread(3000));
        assert_eq!(first_poll_delay("s00042", interval, spread), first_poll_delay("s00042", interval, spread));
        let mut per_second = [0usize; 30];
        for i in 0..3000 {
            let d = first_poll_delay(&format!("s{i:05}"), interval, spread);
            assert!(d < spread);
            per_second[d.as_secs() as usize] += 1;
        }
        // 100 a second on average; no second gets twice that.
        assert!(per_second.iter().all(|n| (40..200).contains(n)), "{per_second:?}");
        assert!(first_poll_delay("s1", Duration::from_secs(2), spread) < Duration::from_secs(2), "within the interval");
        assert_eq!(first_poll_delay("s1", interval, Duration::ZERO), Duration::ZERO);
    }
}
