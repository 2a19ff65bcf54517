//! A source's position in its API: `(time, ids already taken near that
//! time)`, plus the window being walked when the API lists newest first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// An event id taken, with its time, kept while it can come back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Taken {
    /// The event's time.
    pub t: DateTime<Utc>,
    /// The event's id.
    pub id: String,
}

/// A time window `[from, to]` walked completely before the cursor moves to
/// `to` (newest-first APIs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start, inclusive.
    pub from: DateTime<Utc>,
    /// End, inclusive.
    pub to: DateTime<Utc>,
}

/// Where a source is. Every event at or before `time` has been journaled,
/// except ids later found in `[time - lookback, time]` that are not in
/// `taken`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Cursor {
    /// Everything up to this time is journaled; `None` before the first poll.
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    /// Ids taken at times the next poll asks for again (the lookback
    /// horizon, and the whole open window).
    #[serde(default)]
    pub taken: Vec<Taken>,
    /// The window being walked, for newest-first APIs.
    #[serde(default)]
    pub window: Option<Window>,
    /// Vendor-specific state (e.g. a page token that survives a restart).
    #[serde(default)]
    pub extra: Option<serde_json::Value>,
}

/// The stored form, versioned so later releases can read it.
#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
pub(crate) enum StoredCursor {
    #[serde(rename = "1")]
    V1(Cursor),
}

impl Cursor {
    /// A set of the taken ids, for fast lookups during a poll.
    pub fn taken_ids(&self) -> HashSet<String> {
        self.taken.iter().map(|t| t.id.clone()).collect()
    }

    /// Record an event as taken and move `time` forward to it (ascending
    /// APIs).
    pub fn take(&mut self, t: DateTime<Utc>, id: &str) {
        self.taken.push(Taken { t, id: id.to_owned() });
        if self.window.is_none() && self.time.is_none_or(|c| t > c) {
            self.time = Some(t);
        }
    }

    /// Forget ids that no later poll asks for again: those older than
    /// `time - lookback`. Nothing is pruned while a window is open.
    pub fn prune(&mut self, lookback: std::time::Duration) {
        if self.window.is_some() {
            return;
        }
        let Some(time) = self.time else { return };
        let horizon = time - chrono::Duration::from_std(lookback).unwrap_or(chrono::Duration::zero());
        self.taken.retain(|t| t.t >= horizon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn take_advances_and_prune_keeps_the_horizon() {
        let mut c = Cursor::default();
        c.take(t(0), "a");
        c.take(t(10), "b");
        c.take(t(10), "c");
        c.take(t(5), "late");
        assert_eq!(c.time, Some(t(10)));
        c.prune(std::time::Duration::ZERO);
        assert_eq!(c.taken_ids(), ["b", "c"].iter().map(|s| s.to_string()).collect());
        let mut c2 = c.clone();
        c2.take(t(5), "late");
        c2.prune(std::time::Duration::from_secs(6));
        assert!(c2.taken_ids().contains("late"));
    }

    #[test]
    fn open_window_keeps_time_and_ids() {
        let mut c = Cursor { time: Some(t(0)), window: Some(Window { from: t(0), to: t(100) }), ..Default::default() };
        c.take(t(90), "x");
        c.take(t(1), "y");
        c.prune(std::time::Duration::ZERO);
        assert_eq!(c.time, Some(t(0)));
        assert_eq!(c.taken.len(), 2);
    }
}
