//! Each output's committed offset (tree `offsets`: output name → u64
//! big-endian): the next sequence number it has not delivered. An offset
//! moves only together with what it settles (dead letters, manifest
//! windows), in one transaction [`super::State::commit`] runs; this store
//! reads offsets and knows their key and value.

use super::db::be64;
use super::{Result, StateError};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

/// The outputs' committed offsets.
pub struct Offsets {
    tree: sled::Tree,
}

impl Offsets {
    pub(super) fn new(tree: sled::Tree) -> Offsets {
        Offsets { tree }
    }

    /// An output's committed offset, `None` if it never ran.
    pub fn get(&self, output: &str) -> Result<Option<u64>> {
        Ok(self.tree.get(output).map_err(StateError::storage)?.and_then(|v| be64(&v)))
    }

    /// Every stored output offset.
    pub fn all(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for item in self.tree.iter() {
            let (k, v) = item.map_err(StateError::storage)?;
            out.push((String::from_utf8_lossy(&k).into_owned(), be64(&v).unwrap_or(0)));
        }
        Ok(out)
    }

    /// The lowest offset of `outputs`, at most `end` (the journal's end);
    /// `None` when one of them has not started yet.
    pub(super) fn lowest(&self, outputs: &[String], end: u64) -> Result<Option<u64>> {
        let mut low = end;
        for o in outputs {
            match self.get(o)? {
                Some(off) => low = low.min(off),
                None => return Ok(None),
            }
        }
        Ok(Some(low))
    }

    /// The highest offset stored, 0 when none: the journal continues at
    /// least from there.
    pub(super) fn highest(&self) -> Result<u64> {
        let mut high = 0;
        for item in self.tree.iter() {
            high = high.max(be64(&item.map_err(StateError::storage)?.1).unwrap_or(0));
        }
        Ok(high)
    }

    /// Store an output's offset outside a commit (its start). Not flushed.
    pub(super) fn start(&self, output: &str, offset: u64) -> Result<()> {
        self.tree.insert(output, &offset.to_be_bytes()).map_err(StateError::storage)?;
        Ok(())
    }

    /// Forget a removed output's offset. Not flushed.
    pub(super) fn forget(&self, output: &str) -> Result<()> {
        self.tree.remove(output.as_bytes()).map_err(StateError::storage)?;
        Ok(())
    }

    /// The tree, for a transaction that spans stores.
    pub(super) fn tree(&self) -> &sled::Tree {
        &self.tree
    }
}

/// Set `output`'s offset inside a transaction on [`Offsets::tree`].
pub(super) fn set_in<E>(
    tree: &TransactionalTree,
    output: &str,
    offset: u64,
) -> Result<(), ConflictableTransactionError<E>> {
    tree.insert(output.as_bytes(), &offset.to_be_bytes())?;
    Ok(())
}
