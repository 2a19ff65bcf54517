//! Events an output's receiver rejected for good, with the reason: tree
//! `dead_letters`, keyed by output name, `0x00` and the u64 big-endian
//! sequence number the event had, its JSON `{"v":1,…}` as the value (long
//! ones in `parts` under tag `d`). They are written in the transaction
//! that moves the output's offset past them ([`super::State::commit`]),
//! so an event is delivered or dead-lettered, never neither; `dead-letters
//! retry` journals them again ([`super::State::retry_dead_letters`]).
//! Events a source could not read share the tree under keys no output can
//! have (`set_aside.rs`).

use super::db::{tx_err, Db};
use super::{values, Result, StateError};
use crate::event::Event;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;
use std::sync::Arc;

/// Tag of a dead letter's parts in the `parts` tree (set-aside events
/// use it too: they live in the same tree).
pub(super) const DEAD_TAG: u8 = b'd';

/// An event an output's receiver rejected for good, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The journal sequence number it had.
    pub seq: u64,
    /// The receiver's reason, as it said it.
    pub reason: String,
    /// When it was rejected (RFC 3339).
    pub at: String,
    /// The event.
    pub event: Event,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum StoredDeadLetter {
    #[serde(rename = "1")]
    V1(DeadLetter),
}

fn dead_key(output: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(output.len() + 9);
    k.extend_from_slice(output.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn prefix(output: &str) -> Vec<u8> {
    let mut prefix = output.as_bytes().to_vec();
    prefix.push(0);
    prefix
}

/// The keys and stored values of `dead`, dead letters of `output`.
pub(super) fn encode(output: &str, dead: &[DeadLetter]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    dead.iter()
        .map(|d| {
            serde_json::to_vec(&StoredDeadLetter::V1(d.clone()))
                .map(|v| (dead_key(output, d.seq), v))
                .map_err(|e| StateError::Corrupt { what: "dead letter".into(), detail: e.to_string() })
        })
        .collect()
}

/// Store dead letters ([`encode`]d) inside a transaction on
/// [`DeadLetters::tree`] and the `parts` tree.
pub(super) fn put_in(
    tree: &TransactionalTree,
    parts: &TransactionalTree,
    items: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), ConflictableTransactionError<StateError>> {
    for (k, v) in items {
        values::put(tree, parts, DEAD_TAG, k, v)?;
    }
    Ok(())
}

/// Delete the items of `tree` under `prefix` (and their parts), then make
/// that durable. Returns how many.
pub(super) async fn purge(db: &Db, tree: &sled::Tree, parts: &sled::Tree, prefix: &[u8]) -> Result<usize> {
    let keys: Vec<_> =
        tree.scan_prefix(prefix).keys().collect::<std::result::Result<_, _>>().map_err(StateError::storage)?;
    for k in &keys {
        (tree, parts).transaction(|(dead, parts)| values::remove(dead, parts, DEAD_TAG, k)).map_err(tx_err)?;
    }
    db.flush().await?;
    Ok(keys.len())
}

/// The outputs' dead letters.
pub struct DeadLetters {
    tree: sled::Tree,
    parts: sled::Tree,
    db: Arc<Db>,
}

impl DeadLetters {
    pub(super) fn new(tree: sled::Tree, parts: sled::Tree, db: Arc<Db>) -> DeadLetters {
        DeadLetters { tree, parts, db }
    }

    /// An output's dead letters, oldest first.
    pub fn list(&self, output: &str) -> Result<Vec<DeadLetter>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(prefix(output)) {
            let (k, v) = item.map_err(StateError::storage)?;
            let v = values::read(&self.parts, DEAD_TAG, &k, v)?;
            match serde_json::from_slice::<StoredDeadLetter>(&v) {
                Ok(StoredDeadLetter::V1(d)) => out.push(d),
                Err(e) => {
                    return Err(StateError::Corrupt {
                        what: format!("dead letter of {output:?}"),
                        detail: e.to_string(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// How many dead letters an output has.
    pub fn count(&self, output: &str) -> usize {
        self.tree.scan_prefix(prefix(output)).count()
    }

    /// Delete an output's dead letters. Returns how many.
    pub async fn purge(&self, output: &str) -> Result<usize> {
        purge(&self.db, &self.tree, &self.parts, &prefix(output)).await
    }

    /// The tree, for a transaction that spans stores.
    pub(super) fn tree(&self) -> &sled::Tree {
        &self.tree
    }
}
