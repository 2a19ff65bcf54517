//! A source's position in its API: `(time, ids already taken near that
//! time)`, plus the window being walked when the API lists newest first;
//! and [`Cursors`], sled's copy of each source's cursor (tree `cursors`,
//! long values in `parts` under tag `c`). The journal's records hold the
//! cursors first; sled's copy is a checkpoint written after each record
//! and read when the record is gone (see the `state` module header).

use super::db::{release_garbage, tx_err};
use super::{values, Result, StateError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use std::collections::HashSet;

/// Tag of a cursor's parts in the `parts` tree.
const CURSOR_TAG: u8 = b'c';

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
enum StoredCursor {
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

/// A cursor's stored bytes (in sled and in journal records).
pub(super) fn encode(c: &Cursor) -> Vec<u8> {
    serde_json::to_vec(&StoredCursor::V1(c.clone())).unwrap_or_default()
}

/// A cursor of `source` from its stored bytes.
pub(super) fn decode(source: &str, v: &[u8]) -> Result<Cursor> {
    match serde_json::from_slice::<StoredCursor>(v) {
        Ok(StoredCursor::V1(c)) => Ok(c),
        Err(e) => Err(StateError::Corrupt { what: format!("cursor of source {source:?}"), detail: e.to_string() }),
    }
}

/// Every source's cursor as sled keeps it.
pub struct Cursors {
    tree: sled::Tree,
    parts: sled::Tree,
}

impl Cursors {
    pub(super) fn new(tree: sled::Tree, parts: sled::Tree) -> Cursors {
        Cursors { tree, parts }
    }

    /// A source's cursor, `None` before its first page.
    pub fn get(&self, source: &str) -> Result<Option<Cursor>> {
        match self.tree.get(source).map_err(StateError::storage)? {
            None => Ok(None),
            Some(v) => decode(source, &values::read(&self.parts, CURSOR_TAG, source.as_bytes(), v)?).map(Some),
        }
    }

    /// Every stored cursor, by source name.
    pub fn all(&self) -> Result<Vec<(String, Cursor)>> {
        let mut out = Vec::new();
        for item in self.tree.iter() {
            let (k, v) = item.map_err(StateError::storage)?;
            let name = String::from_utf8_lossy(&k).into_owned();
            let c = decode(&name, &values::read(&self.parts, CURSOR_TAG, &k, v)?)?;
            out.push((name, c));
        }
        Ok(out)
    }

    /// Store a source's cursor (encoded). Not flushed: the journal holds it
    /// durably until garbage collection, which flushes first.
    pub(super) fn store(&self, source: &str, cursor: &[u8]) -> Result<()> {
        // A short cursor replacing a short one is one compare-and-swap: a
        // sled transaction seals sled's log buffer and writes it out, one
        // log write per poll (thousands of quiet sources: a third of the
        // idle CPU).
        if values::fits_inline(cursor) {
            let old = self.tree.get(source).map_err(StateError::storage)?;
            if old.as_deref().is_none_or(values::is_inline)
                && self.tree.compare_and_swap(source, old, Some(cursor)).map_err(StateError::storage)?.is_ok()
            {
                release_garbage();
                return Ok(());
            }
        }
        (&self.tree, &self.parts)
            .transaction(|(cursors, parts)| values::put(cursors, parts, CURSOR_TAG, source.as_bytes(), cursor))
            .map_err(tx_err)?;
        release_garbage();
        Ok(())
    }

    /// Forget a source's cursor in sled alone (tests: what a power cut
    /// before sled's flush leaves).
    #[cfg(test)]
    pub(super) fn forget(&self, source: &str) -> Result<()> {
        self.tree.remove(source).map_err(StateError::storage)?;
        Ok(())
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
