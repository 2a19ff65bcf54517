//! The *delivered* cursor of a source: the newest cursor whose journal
//! record (and every record before it) every output has committed past.
//! A fleet hands a source over from it (`crate::cluster`): what a dead
//! agent journaled but had not delivered is fetched again from the API.
//! The journal keeps it ([`super::Journal::delivered_cursor`]).
//!
//! Kept in memory: every journal record with a cursor is noted with the
//! sequence number after its entries when it is placed (under the append
//! lock, so in journal order), and forgotten once the outputs' lowest
//! offset reaches that number, its cursor becoming the delivered one. At
//! open the records still in the journal's files are noted again. A source
//! with no record waiting is delivered up to its stored cursor. Right
//! after a start, a source whose older records went with deleted files and
//! whose newer ones wait has no known delivered cursor until the outputs
//! pass one of them (`None`: nothing is checkpointed meanwhile).

use std::collections::{HashMap, VecDeque};

/// Cursors waiting for the outputs, and the newest passed, per source.
#[derive(Default)]
pub(super) struct Delivered {
    waiting: HashMap<String, VecDeque<(u64, Vec<u8>)>>,
    passed: HashMap<String, Vec<u8>>,
}

impl Delivered {
    /// A record of `source` ending before sequence number `end` carries `cursor`.
    pub fn journaled(&mut self, source: &str, end: u64, cursor: Vec<u8>) {
        match self.waiting.get_mut(source) {
            Some(q) => q.push_back((end, cursor)),
            None => {
                self.waiting.insert(source.to_owned(), VecDeque::from([(end, cursor)]));
            }
        }
    }

    /// Every output has committed past `low`.
    pub fn passed(&mut self, low: u64) {
        for (source, q) in self.waiting.iter_mut() {
            let mut newest = None;
            while q.front().is_some_and(|(end, _)| *end <= low) {
                newest = q.pop_front().map(|(_, c)| c);
            }
            if let Some(c) = newest {
                self.passed.insert(source.clone(), c);
            }
        }
        self.waiting.retain(|_, q| !q.is_empty());
    }

    /// What is known of `source`'s delivered cursor: `None` when no record
    /// of it waits (its stored cursor is delivered), `Some(None)` when
    /// records wait and none was passed yet, else the newest passed.
    pub fn newest_passed(&self, source: &str) -> Option<Option<&[u8]>> {
        if self.waiting.contains_key(source) {
            Some(self.passed.get(source).map(Vec::as_slice))
        } else {
            None
        }
    }
}
