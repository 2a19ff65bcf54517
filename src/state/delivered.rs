//! The *delivered* cursor of a source: the newest cursor whose journal
//! record (and every record before it) every output has committed past.
//! A fleet hands a source over from it (`crate::cluster`): what a dead
//! agent journaled but had not delivered is fetched again from the API.
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

use super::{decode_cursor, Cursor, Result, State};
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
}

impl State {
    /// The newest cursor of `source` whose events every output in
    /// `outputs` has confirmed (see the module header); `None` when not
    /// known yet. Never newer than what was delivered: a handover from it
    /// can duplicate, never lose.
    pub fn delivered_cursor(&self, source: &str, outputs: &[String]) -> Result<Option<Cursor>> {
        let mut low = self.next_seq();
        for o in outputs {
            match self.offset(o)? {
                Some(off) => low = low.min(off),
                None => return Ok(None),
            }
        }
        let bytes = {
            let mut d = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
            d.passed(low);
            if d.waiting.contains_key(source) {
                match d.passed.get(source) {
                    Some(c) => c.clone(),
                    None => return Ok(None),
                }
            } else {
                // Read under the lock: a record placed after this point is
                // noted as waiting before its cursor reaches sled.
                return self.cursor(source);
            }
        };
        decode_cursor(source, &bytes).map(Some)
    }
}
