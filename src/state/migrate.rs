//! Moving a schema 1–3 journal (a sled tree `journal`) into segment files,
//! once, at the first open by a schema-4 build.
//!
//! The chunks are written to `journal.migrating/`, synced, and the
//! directory renamed to `journal/` (synced) before the sled tree is dropped:
//! a crash before the rename redoes the move; after it, only the drop.

use super::db::be64;
use super::segments::{sync_dir, Segments, DIR};
use super::{frames, Result, StateError};
use std::path::Path;

/// Move the sled journal of an older schema into segment files. `floor`:
/// the sequence number the journal continues from when the tree is empty.
pub(super) fn journal_out_of_sled(db: &sled::Db, state_dir: &Path, floor: u64) -> Result<()> {
    if !db.tree_names().iter().any(|n| n.as_ref() == b"journal") {
        return Ok(());
    }
    let tree = db.open_tree("journal").map_err(StateError::storage)?;
    let target = state_dir.join(DIR);
    if !tree.is_empty() && !target.exists() {
        let staging = state_dir.join("journal.migrating");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|source| StateError::Dir { path: staging.clone(), source })?;
        }
        let first = match tree.first().map_err(StateError::storage)? {
            Some((k, _)) => be64(&k).unwrap_or(floor),
            None => floor,
        };
        let opened = Segments::open_in(staging.clone(), first)?;
        let segments = opened.segments;
        let mut last = 0;
        let mut moved = 0u64;
        for item in tree.iter() {
            let (k, v) = item.map_err(StateError::storage)?;
            let seq = be64(&k)
                .ok_or_else(|| StateError::Corrupt { what: "journal key".into(), detail: "not a u64".into() })?;
            let chunk = frames::as_chunk(&v).ok_or_else(|| StateError::Corrupt {
                what: format!("journal chunk {seq}"),
                detail: "truncated chunk".into(),
            })?;
            let (range, pos) = segments.append("", None, &[chunk])?;
            if range.start != seq {
                return Err(StateError::Corrupt {
                    what: format!("journal chunk {seq}"),
                    detail: format!("expected entry {} next (a gap in the old journal)", range.start),
                });
            }
            moved += range.end - range.start;
            last = pos;
        }
        segments.sync(last)?;
        drop(segments);
        std::fs::rename(&staging, &target).map_err(|source| StateError::Dir { path: target.clone(), source })?;
        sync_dir(state_dir)?;
        tracing::info!(entries = moved, dir = %target.display(), "moved the journal out of sled into segment files (state schema 4)");
    }
    drop(tree);
    db.drop_tree("journal").map_err(StateError::storage)?;
    db.open_tree("meta").map_err(StateError::storage)?.remove("journal_bytes").map_err(StateError::storage)?;
    db.flush().map_err(StateError::storage)?;
    Ok(())
}
