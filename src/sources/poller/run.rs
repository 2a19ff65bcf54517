//! The run loop: poll, record the source's health and metrics, wait for
//! the interval once caught up, until cancelled.

use super::Poller;
use crate::sources::SourceError;
use crate::state::State;
use crate::telemetry::health::{Change, Component, Health};
use crate::telemetry::metrics::name as metric;
use tokio_util::sync::CancellationToken;

impl Poller {
    /// Poll until cancelled. Returns an error only for a state failure, which
    /// the agent treats as fatal.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), crate::state::StateError> {
        let name = self.settings.name.clone();
        let health = Health::new(Component::Source, &name, self.ctx.state.clone(), self.ctx.metrics.clone());
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
            if let Ok(Some(c)) = self.ctx.state.cursor(&name) {
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
