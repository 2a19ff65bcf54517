//! One health reporter for sources and outputs: the outcome of each poll or
//! send goes to the component's `status` in the state (what `status` and
//! `/health` show), to the `auditrelay_up` gauge and the
//! `auditrelay_errors_total` counter, and says whether it changed, so the
//! caller logs once per change in its own words (a source keeps its
//! cursor, an output keeps its events in the journal).

use crate::state::{State, Status};
use crate::telemetry::metrics::name as metric;
use crate::telemetry::metrics::Metrics;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

/// Which kind of component reports: the key of its status and the label
/// of its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// A `[[source]]`.
    Source,
    /// An `[[output]]`.
    Output,
}

impl Component {
    /// `source` or `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Source => "source",
            Component::Output => "output",
        }
    }
}

/// What an outcome changed, for the caller's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Healthy again after a failure.
    Recovered,
    /// A first failure, or one with another error than the last.
    Failed,
    /// Nothing worth a log line.
    Unchanged,
}

/// The health of one source or output.
pub struct Health {
    component: Component,
    name: String,
    state: Arc<State>,
    metrics: Arc<Metrics>,
    /// The last outcome reported (`None` before the first).
    last: Mutex<Option<bool>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("component", &self.component).field("name", &self.name).finish_non_exhaustive()
    }
}

impl Health {
    /// The reporter of the component `name`.
    pub fn new(component: Component, name: &str, state: Arc<State>, metrics: Arc<Metrics>) -> Self {
        Health { component, name: name.to_owned(), state, metrics, last: Mutex::new(None) }
    }

    /// A poll or send succeeded at `now`.
    pub fn ok(&self, now: DateTime<Utc>) -> Change {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let mut status = self.status();
        status.healthy = true;
        status.waiting = None;
        status.last_ok = Some(crate::event::rfc3339(now));
        self.record(&status);
        let change = if *last == Some(false) { Change::Recovered } else { Change::Unchanged };
        *last = Some(true);
        change
    }

    /// A poll or send failed at `now` with `detail` (which names no secret).
    pub fn failed(&self, now: DateTime<Utc>, detail: &str) -> Change {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let mut status = self.status();
        let same = *last == Some(false) && status.last_error.as_deref() == Some(detail);
        status.healthy = false;
        status.waiting = None;
        status.last_error = Some(detail.to_owned());
        status.last_error_at = Some(crate::event::rfc3339(now));
        self.record(&status);
        self.metrics.add(metric::ERRORS, &[(self.component.as_str(), &self.name)], 1);
        *last = Some(false);
        if same {
            Change::Unchanged
        } else {
            Change::Failed
        }
    }

    fn status(&self) -> Status {
        self.state.status().get(self.component.as_str(), &self.name).ok().flatten().unwrap_or_default()
    }

    fn record(&self, status: &Status) {
        let up = if status.healthy { 1.0 } else { 0.0 };
        self.metrics.set(metric::UP, &[(self.component.as_str(), &self.name)], up);
        let _ = self.state.status().set(self.component.as_str(), &self.name, status);
    }
}

/// Note in a component's status what its poll in progress waits for (the
/// next outcome reported clears it): `status` shows a source waiting for
/// an asynchronous job instead of one that is merely slow.
pub fn note_waiting(state: &State, component: Component, name: &str, what: &str) {
    let mut status = state.status().get(component.as_str(), name).ok().flatten().unwrap_or_default();
    status.waiting = Some(what.to_owned());
    let _ = state.status().set(component.as_str(), name, &status);
}

/// Record a component as unhealthy with a reason, without a reporter
/// (building it failed, so it never ran).
pub fn mark_unhealthy(state: &State, component: Component, name: &str, reason: &str) {
    let status = Status {
        healthy: false,
        last_error: Some(reason.to_owned()),
        last_error_at: Some(crate::event::rfc3339(Utc::now())),
        ..Default::default()
    };
    let _ = state.status().set(component.as_str(), name, &status);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_reported_once_and_status_and_metrics_follow() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(dir.path()).unwrap());
        let metrics = Arc::new(Metrics::default());
        let h = Health::new(Component::Output, "hec", state.clone(), metrics.clone());
        let now = Utc::now();
        assert_eq!(h.ok(now), Change::Unchanged, "a first success is not news");
        assert_eq!(h.failed(now, "down"), Change::Failed);
        assert_eq!(h.failed(now, "down"), Change::Unchanged);
        assert_eq!(h.failed(now, "refused"), Change::Failed, "another error is logged");
        let st = state.status().get("output", "hec").unwrap().unwrap();
        assert!(!st.healthy && st.last_error.as_deref() == Some("refused"), "{st:?}");
        assert_eq!(h.ok(now), Change::Recovered);
        let st = state.status().get("output", "hec").unwrap().unwrap();
        assert!(st.healthy && st.last_ok.is_some() && st.last_error.as_deref() == Some("refused"), "{st:?}");
        assert_eq!(metrics.get(metric::UP, &[("output", "hec")]), 1.0);
        assert_eq!(metrics.get(metric::ERRORS, &[("output", "hec")]), 3.0);
        note_waiting(&state, Component::Output, "hec", "a job");
        assert_eq!(state.status().get("output", "hec").unwrap().unwrap().waiting.as_deref(), Some("a job"));
        h.failed(now, "refused");
        assert_eq!(state.status().get("output", "hec").unwrap().unwrap().waiting, None, "the outcome clears it");
    }
}
