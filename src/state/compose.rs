//! [`State`]: the journal and the sled stores opened together, and the
//! few operations that must span them to keep the ordering in the module
//! header of `state`: a page journaled before its cursor's copy reaches
//! sled and before outputs are told; an offset committed in one sled
//! transaction with the dead letters and manifest windows it settles;
//! journal files deleted only after sled (holding their cursors) is
//! durable. Everything else is a store's own: `state.journal().read(..)`,
//! `state.cursors().get(..)`, `state.dead_letters().list(..)`.

use super::cursor::{self, Cursors};
use super::db::{be64, create_private_dir, release_garbage, tx_err, Db};
use super::dead_letters::{self, DeadLetter, DeadLetters};
use super::journal::Journal;
use super::manifests::{self, Manifests};
use super::offsets::{self, Offsets};
use super::set_aside::SetAsideEvents;
use super::status::Statuses;
use super::{migrate, Cursor, Result, StateError, SCHEMA_VERSION};
use crate::event::Event;
use crate::manifest::Window;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The open state: the journal and the sled stores.
pub struct State {
    db: Arc<Db>,
    /// Schema version, the journal's sequence floor and release mark, HEC
    /// channel ids.
    meta: sled::Tree,
    /// Where every store keeps the parts of long values; written by the
    /// transactions that span stores too.
    parts: sled::Tree,
    journal: Journal,
    cursors: Cursors,
    offsets: Offsets,
    dead_letters: DeadLetters,
    set_aside: SetAsideEvents,
    status: Statuses,
    manifests: Manifests,
    /// Serialises offset commits and garbage collection.
    commit_lock: Mutex<()>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("path", &self.db.path()).finish_non_exhaustive()
    }
}

impl State {
    /// Open (or create) the state in `dir`, creating `dir` with mode 0700.
    /// Recovers from a power cut by itself: a torn journal tail is cut off
    /// (logged), cursors newer in the journal than in sled are taken.
    pub fn open(dir: &Path) -> Result<State> {
        create_private_dir(dir).map_err(|source| StateError::Dir { path: dir.to_path_buf(), source })?;
        let db = Arc::new(Db::open(dir)?);
        let meta = db.tree("meta")?;
        let found = match meta.get("schema_version").map_err(StateError::storage)? {
            Some(v) => v
                .as_ref()
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| StateError::Corrupt { what: "meta/schema_version".into(), detail: "not a u32".into() })?,
            None => SCHEMA_VERSION,
        };
        if found > SCHEMA_VERSION {
            return Err(StateError::NewerSchema { path: db.path().to_path_buf(), found });
        }
        let offsets = Offsets::new(db.tree("offsets")?);
        let floor = meta
            .get("next_seq")
            .map_err(StateError::storage)?
            .and_then(|v| be64(&v))
            .unwrap_or(0)
            .max(offsets.highest()?);
        migrate::journal_out_of_sled(db.sled(), dir, floor)?;
        let released = meta.get("released").map_err(StateError::storage)?.and_then(|v| be64(&v));
        let opened = Journal::open(dir, floor, released)?;
        let cursors = db.tree("cursors")?;
        let dead = db.tree("dead_letters")?;
        let parts = db.tree("parts")?;
        let status = db.tree("status")?;
        let windows = db.tree("manifest_windows")?;
        let pending = db.tree("manifests_pending")?;
        let state = State {
            journal: opened.journal,
            cursors: Cursors::new(cursors, parts.clone()),
            offsets,
            dead_letters: DeadLetters::new(dead.clone(), parts.clone(), db.clone()),
            set_aside: SetAsideEvents::new(dead, parts.clone(), db.clone()),
            status: Statuses::new(status),
            manifests: Manifests::new(windows, pending, parts.clone(), db.clone()),
            parts,
            meta,
            db,
            commit_lock: Mutex::new(()),
        };
        // The journal's cursors are at least as new as sled's: the newest
        // per source goes to sled, then sled is made durable once.
        for (source, cursor) in &opened.cursors {
            state.cursors.store(source, cursor)?;
        }
        state.meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes()).map_err(StateError::storage)?;
        state.meta.insert("next_seq", &state.journal.next_seq().to_be_bytes()).map_err(StateError::storage)?;
        state.db.flush_now()?;
        Ok(state)
    }

    /// The journal: reading, its end and tail, its size.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The sources' cursors as sled keeps them.
    pub fn cursors(&self) -> &Cursors {
        &self.cursors
    }

    /// The outputs' committed offsets.
    pub fn offsets(&self) -> &Offsets {
        &self.offsets
    }

    /// The outputs' dead letters.
    pub fn dead_letters(&self) -> &DeadLetters {
        &self.dead_letters
    }

    /// The events sources set aside.
    pub fn set_aside(&self) -> &SetAsideEvents {
        &self.set_aside
    }

    /// The sources' and outputs' recorded health.
    pub fn status(&self) -> &Statuses {
        &self.status
    }

    /// The outputs' manifest windows and pending manifests.
    pub fn manifests(&self) -> &Manifests {
        &self.manifests
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// The schema version stored.
    pub fn schema_version(&self) -> Result<u32> {
        Ok(self
            .meta
            .get("schema_version")
            .map_err(StateError::storage)?
            .and_then(|v| v.as_ref().try_into().ok().map(u32::from_be_bytes))
            .unwrap_or(SCHEMA_VERSION))
    }

    /// Make everything written to sled so far durable (see `db.rs`).
    pub async fn flush(&self) -> Result<()> {
        self.db.flush().await
    }

    /// The HEC channel GUID of an output, created and persisted the first
    /// time.
    pub async fn channel(&self, output: &str) -> Result<String> {
        let key = format!("channel/{output}");
        if let Some(v) = self.meta.get(&key).map_err(StateError::storage)? {
            return Ok(String::from_utf8_lossy(&v).into_owned());
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.meta.insert(key, id.as_bytes()).map_err(StateError::storage)?;
        self.db.flush().await?;
        Ok(id)
    }

    /// Journal a page of events and the cursor that moves past them as one
    /// record, make it durable, then store the cursor in sled too. Returns
    /// the sequence numbers given. An empty page still stores the cursor
    /// (an empty window moves it too).
    pub async fn append(&self, source: &str, events: &[Event], cursor: &Cursor) -> Result<Range<u64>> {
        self.journal_page(source, events.iter().map(|e| (e, None)), Some(cursor), true).await
    }

    /// Journal a source's cursor moved past a window in which it found
    /// nothing new (an idle poll), without waiting for its own
    /// `fdatasync`: the record is synced by the next sync of the journal
    /// (the next page's), at the latest within a second (one sync for
    /// all the quiet polls of that second). A power cut before then
    /// takes the source back to its previous cursor, whose window held
    /// nothing this one did not: no event is lost or duplicated, and the
    /// contract (a cursor is durable no earlier than its events) holds,
    /// since this cursor covers none. With thousands of quiet sources this
    /// was one fdatasync per poll (100 a second for 3,000 sources polling
    /// every 30 s). A cursor an operator moves (`replay`) is
    /// [`State::set_cursor`], synced.
    pub async fn advance(&self, source: &str, cursor: &Cursor) -> Result<()> {
        self.journal_page(source, std::iter::empty(), Some(cursor), false).await.map(|_| ())
    }

    /// Replace a source's cursor without journaling any event (`replay`):
    /// a journal record with the cursor alone, so that it is durable and
    /// newer than every cursor the journal holds for that source.
    pub async fn set_cursor(&self, source: &str, cursor: &Cursor) -> Result<()> {
        self.append(source, &[], cursor).await.map(|_| ())
    }

    /// Journal entries and, when given, a source's cursor as one record;
    /// returns once the record is durable (`sync`; otherwise once written)
    /// and the cursor is in sled, and then tells outputs.
    async fn journal_page<'a>(
        &self,
        source: &str,
        entries: impl IntoIterator<Item = (&'a Event, Option<&'a str>)>,
        cursor: Option<&Cursor>,
        sync: bool,
    ) -> Result<Range<u64>> {
        let cursor = cursor.map(cursor::encode);
        let range = self.journal.write(source, entries, cursor.as_deref(), sync).await?;
        // sled's copy of the cursor follows the durable record (it is a
        // checkpoint: `open` takes the newer one from the journal), and is
        // written before outputs can deliver the page, so garbage
        // collection never deletes a record whose cursor sled lacks.
        if let Some(c) = &cursor {
            self.cursors.store(source, c)?;
        }
        self.journal.publish(range.end);
        Ok(range)
    }

    /// An output's committed offset, starting it at the journal tail the first
    /// time it runs: a new output receives events journaled from now on.
    pub async fn offset_or_tail(&self, output: &str) -> Result<u64> {
        if let Some(o) = self.offsets.get(output)? {
            return Ok(o);
        }
        // At the tail, under the journal's append lock: no page can be
        // journaled between reading the tail and storing it as this
        // output's start.
        let tail = self.journal.at_tail(|tail| {
            let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.offsets.start(output, tail).map(|()| tail)
        })?;
        self.db.flush().await?;
        Ok(tail)
    }

    /// Move an output's offset to `offset` (every entry below it delivered or
    /// dead-lettered) together with the dead letters, in one transaction, and
    /// make it durable.
    pub async fn commit(&self, output: &str, offset: u64, dead: &[DeadLetter]) -> Result<()> {
        self.commit_with(output, offset, dead, &[]).await
    }

    /// [`State::commit`] with the output's manifest windows that changed,
    /// in the same transaction: a window never counts an event the offset
    /// has not passed, nor misses one it has.
    pub async fn commit_with_windows(
        &self,
        output: &str,
        offset: u64,
        dead: &[DeadLetter],
        windows: &[(String, Window)],
    ) -> Result<()> {
        let windows = manifests::encode_windows(output, windows)?;
        self.commit_with(output, offset, dead, &windows).await
    }

    /// [`State::commit`], also storing `windows` (keys and values of the
    /// `manifest_windows` tree) in the same transaction.
    async fn commit_with(
        &self,
        output: &str,
        offset: u64,
        dead: &[DeadLetter],
        windows: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<()> {
        let dead = dead_letters::encode(output, dead)?;
        {
            let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            (self.offsets.tree(), self.dead_letters.tree(), &self.parts, self.manifests.windows_tree())
                .transaction(|(offsets, dead_tree, parts, window_tree)| {
                    dead_letters::put_in(dead_tree, parts, &dead)?;
                    manifests::put_windows_in(window_tree, parts, windows)?;
                    offsets::set_in(offsets, output, offset)?;
                    Ok::<_, ConflictableTransactionError<StateError>>(())
                })
                .map_err(tx_err)?;
            release_garbage();
        }
        self.db.flush().await
    }

    /// Forget the journal entries every output in `outputs` has committed
    /// past, and delete the segment files that hold nothing else. Returns
    /// how many entries were forgotten. Outputs not listed (removed from
    /// the config) no longer hold entries back; their offsets are
    /// forgotten.
    pub async fn collect_garbage(&self, outputs: &[String]) -> Result<u64> {
        let Some(low) = self.offsets.lowest(outputs, self.journal.next_seq())? else {
            return Ok(0); // an output that has not started yet
        };
        let mut removed = false;
        for (name, _) in self.offsets.all()? {
            if !outputs.contains(&name) {
                self.offsets.forget(&name)?;
                removed = true;
            }
        }
        self.journal.passed(low);
        let entries = {
            let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
            let entries = self.journal.release(low);
            if entries > 0 {
                // Remembered, so a restart does not count delivered entries
                // (still in their segment file) as held.
                self.meta.insert("released", &low.to_be_bytes()).map_err(StateError::storage)?;
            }
            entries
        };
        if self.journal.has_passed(low) {
            // The files to delete carry cursors: sled's copies of them (and
            // the journal's end, for a journal about to be emptied) are made
            // durable first.
            self.meta.insert("next_seq", &self.journal.next_seq().to_be_bytes()).map_err(StateError::storage)?;
            self.db.flush().await?;
            self.journal.delete_passed(low).await?;
        } else if removed || entries > 0 {
            self.db.flush().await?;
        }
        Ok(entries)
    }

    /// Put an output's dead letters back into the journal, addressed to that
    /// output only, and remove them from the dead-letter tree. Returns how
    /// many.
    pub async fn retry_dead_letters(&self, output: &str) -> Result<usize> {
        let letters = self.dead_letters.list(output)?;
        // Journal first (durable), then delete: a crash in between leaves a
        // duplicate dead letter, never a lost one.
        self.journal_page(output, letters.iter().map(|d| (&d.event, Some(output))), None, true).await?;
        self.dead_letters.purge(output).await?;
        Ok(letters.len())
    }

    /// The newest cursor of `source` whose events every output in
    /// `outputs` has confirmed (see `delivered.rs`); `None` when not
    /// known yet. Never newer than what was delivered: a handover from it
    /// can duplicate, never lose.
    pub fn delivered_cursor(&self, source: &str, outputs: &[String]) -> Result<Option<Cursor>> {
        let Some(low) = self.offsets.lowest(outputs, self.journal.next_seq())? else { return Ok(None) };
        self.journal.delivered_cursor(source, low, || self.cursors.get(source))
    }

    /// The sled database (tests look at its trees).
    #[cfg(test)]
    pub(super) fn db(&self) -> &Db {
        &self.db
    }
}
