//! The run loop: poll, record the source's health and metrics, wait for
//! the interval once caught up, until cancelled.

use super::Poller;
use crate::sources::SourceError;
use crate::state::{State, Status};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

impl Poller {
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
