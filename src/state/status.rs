//! Each source's and output's health for `status` (tree `status`, keys
//! `source/<name>` and `output/<name>`, JSON values). Advisory: written
//! often, never flushed on its own, one small sled item each.

use super::{Result, StateError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// A status record longer than this loses the end of its error text
/// (status is advisory; it stays one small sled item).
const STATUS_ERROR_CHARS: usize = 1000;

/// Health and progress of a source or output, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Whether the last attempt succeeded.
    pub healthy: bool,
    /// Last successful poll or send (RFC 3339).
    pub last_ok: Option<String>,
    /// Last error and when.
    pub last_error: Option<String>,
    /// When `last_error` happened.
    pub last_error_at: Option<String>,
    /// What the poll in progress waits for (an API's asynchronous job),
    /// cleared when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// The recorded health of every source and output.
pub struct Statuses {
    tree: sled::Tree,
    /// Bumped by every write.
    generation: AtomicU64,
}

impl Statuses {
    pub(super) fn new(tree: sled::Tree) -> Statuses {
        Statuses { tree, generation: AtomicU64::new(0) }
    }

    /// Record the health of a source or output (`kind` is `source` or
    /// `output`). Advisory: not flushed.
    pub fn set(&self, kind: &str, name: &str, status: &Status) -> Result<()> {
        let trimmed = status.last_error.as_deref().filter(|e| e.len() > STATUS_ERROR_CHARS).map(|e| {
            let mut end = STATUS_ERROR_CHARS;
            while !e.is_char_boundary(end) {
                end -= 1;
            }
            Status { last_error: Some(format!("{}…", &e[..end])), ..status.clone() }
        });
        let status = trimmed.as_ref().unwrap_or(status);
        let v =
            serde_json::to_vec(status).map_err(|e| StateError::Corrupt { what: name.into(), detail: e.to_string() })?;
        self.tree.insert(format!("{kind}/{name}"), v).map_err(StateError::storage)?;
        self.generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Changes with every [`Statuses::set`]: a cheap "anything new?" for
    /// the status snapshot.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// The recorded health of a source or output.
    pub fn get(&self, kind: &str, name: &str) -> Result<Option<Status>> {
        Ok(self
            .tree
            .get(format!("{kind}/{name}"))
            .map_err(StateError::storage)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_error_is_cut_on_a_char_boundary_and_every_write_moves_the_generation() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let statuses = Statuses::new(db.open_tree("status").unwrap());
        assert_eq!(statuses.get("source", "api").unwrap(), None);
        let long = Status { last_error: Some("é".repeat(STATUS_ERROR_CHARS)), ..Default::default() };
        statuses.set("source", "api", &long).unwrap();
        let got = statuses.get("source", "api").unwrap().unwrap().last_error.unwrap();
        assert!(got.ends_with('…') && got.len() <= STATUS_ERROR_CHARS + '…'.len_utf8(), "{got}");
        let ok = Status { healthy: true, ..Default::default() };
        statuses.set("output", "api", &ok).unwrap();
        assert_eq!(statuses.get("output", "api").unwrap(), Some(ok));
        assert_eq!(statuses.generation(), 2);
    }
}
