//! Durable state under `agent.state_dir`: the journal in segment files of
//! our own (`journal/`), everything else in one sled database (`db/`).
//!
//! # Why this split, and what makes it durable
//!
//! "Written" means on disk after a power cut. sled 0.34 alone does not give
//! that: `Db::flush()` writes its log with `sync_file_range`, which persists
//! neither metadata nor a file-size extension (only its background flusher
//! calls `fsync`, every `flush_every_ms`), and anything larger than a
//! quarter of a segment goes to a blob file that is never synced and is
//! created with `create_new` — after a power cut the database could refuse
//! to open (`File exists`). So:
//!
//! - **The journal** (all the volume) is ours: append-only segment files, a
//!   CRC per record, one record per page holding the page's events *and*
//!   the source's cursor after it, made durable with `fdatasync` (shared by
//!   concurrent appends) before the source moves on or any output sees the
//!   events; a segment is synced before the next is created and the
//!   directory is synced whenever a file is created or deleted. At open a
//!   torn tail (the one record a power cut interrupted) is cut off and
//!   logged; any other bad record is reported with its path and offset,
//!   never wiped. See `segments.rs`.
//! - **sled** keeps cursors, output offsets, dead letters, HEC channel ids,
//!   schema and status: small values, every item at most 2 KiB (longer
//!   values are split into parts, `values.rs`), so no node ever reaches the
//!   blob threshold and sled's data lives in its one log file. After every
//!   flush that promises durability that file is `fdatasync`ed (through a
//!   descriptor of our own: fsync works on the inode); before sled opens,
//!   its files are synced, so the snapshot sled writes while recovering
//!   never describes a log that is not on disk. What is on disk after a
//!   power cut is then a state sled wrote at some moment, which it recovers
//!   from like from a crash.
//!
//! # Ordering
//!
//! 1. A page and the cursor past it are one journal record: both or
//!    neither. The record is durable before `append` returns; sled's copy of
//!    the cursor is written after it (a checkpoint: at open the newest
//!    cursor in the journal wins over sled's), and before outputs are told.
//! 2. Outputs read only durable entries, so an offset can never point past
//!    what a power cut leaves of the journal.
//! 3. An output's offset moves after its receiver confirmed every event
//!    below it (dead letters in the same sled transaction), and is durable
//!    (sled flush + fdatasync) before the next batch is read.
//! 4. Journal files are deleted only when every output is past them, after
//!    sled (holding their cursors) was made durable.
//! 5. Sequence numbers only grow: the journal's end is read back from its
//!    records, and sled keeps `next_seq` for a journal emptied by garbage
//!    collection.
//! 6. A state written by a newer schema is refused, never rewritten.
//!
//! # sled layout
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `cursors` | source name | JSON `{"v":"1","time":…,"taken":[…],"window":…}` (or a parts header) |
//! | `offsets` | output name | u64 big-endian: the next sequence number the output has not delivered |
//! | `dead_letters` | output name, `0x00`, u64 big-endian sequence | JSON `{"v":1,"reason":…,"at":…,"event":{…}}` (or a parts header) |
//! | `parts` | tag (`c` cursor, `d` dead letter), key, u32 part number | up to 2 KiB of a longer value |
//! | `meta` | `schema_version` | u32 big-endian ([`SCHEMA_VERSION`]) |
//! | `meta` | `next_seq` | u64 big-endian: a floor for the journal's next sequence number |
//! | `meta` | `released` | u64 big-endian: journal entries below it are passed by every output (their file may remain until the rest of it is) |
//! | `meta` | `channel/<output>` | the HEC channel GUID of that output |
//! | `status` | `source/<name>`, `output/<name>` | JSON health, last poll/send, last error (advisory, not flushed) |
//!
//! Journal chunks and entry frames are described in `journal.rs`; schemas
//! 1–3 kept them in a sled tree `journal`, which `open` moves into segment
//! files once (`migrate.rs`).

mod cursor;
mod delivered;
mod error;
mod journal;
mod manifests;
mod migrate;
pub mod owner;
mod record;
pub mod run_lock;
mod segments;
mod set_aside;
mod values;

pub use cursor::{Cursor, Taken, Window};
use error::is_lock_error;
pub use error::{StateError, StorageError};
pub use journal::{DeadLetter, Entry};
pub use segments::JournalError;
pub use set_aside::SetAside;

use segments::Segments;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Flushes running at once (see [`State::flush`]).
const FLUSH_SLOTS: usize = 4;

/// The schema this build writes and the newest it reads: 4 keeps the
/// journal in segment files (1–3 kept it in sled).
pub const SCHEMA_VERSION: u32 = 4;

/// sled's page cache; its default is 1 GiB, far more than an agent needs.
const CACHE_CAPACITY: u64 = 8 << 20;

/// Tag of a cursor's parts in the `parts` tree.
const CURSOR_TAG: u8 = b'c';
/// Tag of a dead letter's parts in the `parts` tree.
const DEAD_TAG: u8 = b'd';
/// Tag of a manifest window's parts in the `parts` tree.
const WINDOW_TAG: u8 = b'w';
/// Tag of a pending manifest's parts in the `parts` tree.
const MANIFEST_TAG: u8 = b'm';

/// A status record longer than this loses the end of its error text
/// (status is advisory; it stays one small sled item).
const STATUS_ERROR_CHARS: usize = 1000;

/// Hand this thread's deferred frees to crossbeam-epoch's global collector.
///
/// sled frees what it replaces (a sealed 512 KiB log buffer, an old version
/// of a tree node) through crossbeam-epoch, which keeps each thread's
/// deferred frees in a bag of up to 64 until that thread pins often enough
/// to collect them. A thread that writes or flushes now and then (a tokio
/// worker, a blocking-pool thread) held up to 64 dead log buffers: ~45 MiB
/// of the agent's heap at peak in a catch-up (heaptrack). Called after each
/// write transaction and flush, on the thread that did it.
pub(crate) fn release_garbage() {
    crossbeam_epoch::pin().flush();
}

/// How long a flush waits for a slot before it goes ahead without one
/// (see [`State::flush`]).
const FLUSH_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Result of state operations.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

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

/// The open state database.
pub struct State {
    path: PathBuf,
    db: sled::Db,
    /// sled's log file, opened again to fsync it (see the module header).
    db_file: Arc<std::fs::File>,
    segments: Arc<Segments>,
    cursors: sled::Tree,
    offsets: sled::Tree,
    dead: sled::Tree,
    parts: sled::Tree,
    meta: sled::Tree,
    status: sled::Tree,
    /// Each output's open manifest window per source.
    windows: sled::Tree,
    /// Manifests closed and not yet confirmed by their output.
    pending: sled::Tree,
    /// Serialises appends so sequence numbers follow file order.
    append_lock: Mutex<()>,
    /// Bounds concurrent flushes (see [`State::flush`]).
    flush_slots: tokio::sync::Semaphore,
    /// Serialises offset commits and garbage collection.
    commit_lock: Mutex<()>,
    /// Bytes of journal chunks not yet passed by every output.
    journal_bytes: AtomicU64,
    /// Bumped by every status write.
    status_gen: AtomicU64,
    /// The next sequence number, updated under `append_lock`; authoritative.
    next_seq: AtomicU64,
    /// Wakes outputs when entries arrive (durable ones only); only ever
    /// moves forward.
    tail: watch::Sender<u64>,
    /// Journal records' cursors not yet passed by every output, and the
    /// newest passed, per source (see [`State::delivered_cursor`]).
    delivered: Mutex<delivered::Delivered>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("path", &self.path).finish_non_exhaustive()
    }
}

fn be64(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

fn sync_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Sync { path: path.to_path_buf(), source }
}

/// fsync every file directly in `dir`, then `dir` itself: what a previous
/// run left in the page cache is on disk before anyone reads it.
fn sync_tree(dir: &Path) -> Result<()> {
    let Ok(items) = std::fs::read_dir(dir) else { return Ok(()) };
    for item in items {
        let path = item.map_err(sync_err(dir))?.path();
        if path.is_file() {
            std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(sync_err(&path))?;
        } else if path.is_dir() {
            sync_tree(&path)?;
        }
    }
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(sync_err(dir))
}

impl State {
    /// Open (or create) the state in `dir`, creating `dir` with mode 0700.
    /// Recovers from a power cut by itself: a torn journal tail is cut off
    /// (logged), cursors newer in the journal than in sled are taken.
    pub fn open(dir: &Path) -> Result<State> {
        create_private_dir(dir).map_err(|source| StateError::Dir { path: dir.to_path_buf(), source })?;
        let path = dir.join("db");
        sync_tree(&path)?;
        // Every durable write is flushed and synced explicitly; sled's own
        // periodic flush (roll the log, clean segments, fsync) only has to
        // keep up with advisory status writes, so it runs every 2 s
        // instead of 0.5 s (an idle agent's main cost).
        let config = sled::Config::new().path(&path).cache_capacity(CACHE_CAPACITY).flush_every_ms(Some(2000));
        let db = config.open().map_err(|source| {
            let hint = match &source {
                e if is_lock_error(e) => " (another auditrelay is running on this state directory)",
                sled::Error::Corruption { .. } => {
                    " (the database is damaged; keep a copy of the directory for analysis)"
                }
                _ => "",
            };
            StateError::Open { path: path.clone(), source: source.into(), hint }
        })?;
        // sled may have written a snapshot and its config while opening.
        sync_tree(&path)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(sync_err(dir))?;
        let db_file = Arc::new(std::fs::File::open(path.join("db")).map_err(sync_err(&path))?);
        let meta = db.open_tree("meta")?;
        let found = match meta.get("schema_version")? {
            Some(v) => v
                .as_ref()
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| StateError::Corrupt { what: "meta/schema_version".into(), detail: "not a u32".into() })?,
            None => SCHEMA_VERSION,
        };
        if found > SCHEMA_VERSION {
            return Err(StateError::NewerSchema { path, found });
        }
        let offsets = db.open_tree("offsets")?;
        let mut floor = meta.get("next_seq")?.and_then(|v| be64(&v)).unwrap_or(0);
        for item in offsets.iter() {
            floor = floor.max(be64(&item?.1).unwrap_or(0));
        }
        migrate::journal_out_of_sled(&db, dir, floor)?;
        let opened = Segments::open(dir, floor)?;
        if opened.torn > 0 {
            tracing::warn!(
                bytes = opened.torn,
                dir = %dir.join(segments::DIR).display(),
                "dropped the torn end of the journal (a write interrupted by a crash or power cut, never acknowledged to anyone); its page is fetched again from the API"
            );
        }
        let segments = Arc::new(opened.segments);
        if let Some(released) = meta.get("released")?.and_then(|v| be64(&v)) {
            segments.release(released);
        }
        let next = segments.next_seq();
        let (tail, _) = watch::channel(next);
        let state = State {
            journal_bytes: AtomicU64::new(segments.held_bytes()),
            path,
            db_file,
            segments,
            cursors: db.open_tree("cursors")?,
            offsets,
            dead: db.open_tree("dead_letters")?,
            parts: db.open_tree("parts")?,
            status: db.open_tree("status")?,
            windows: db.open_tree("manifest_windows")?,
            pending: db.open_tree("manifests_pending")?,
            meta,
            db,
            append_lock: Mutex::new(()),
            flush_slots: tokio::sync::Semaphore::new(FLUSH_SLOTS),
            commit_lock: Mutex::new(()),
            status_gen: AtomicU64::new(0),
            delivered: Mutex::default(),
            next_seq: AtomicU64::new(next),
            tail,
        };
        // The journal's cursors are at least as new as sled's: the newest
        // per source goes to sled, then sled is made durable once.
        let mut newest = std::collections::HashMap::new();
        {
            let mut d = state.delivered.lock().unwrap_or_else(|p| p.into_inner());
            for r in opened.cursors {
                d.journaled(&r.source, r.end, r.cursor.clone());
                newest.insert(r.source, r.cursor);
            }
        }
        for (source, cursor) in &newest {
            state.store_cursor(source, cursor)?;
        }
        state.meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
        state.meta.insert("next_seq", &next.to_be_bytes())?;
        state.flush_now()?;
        Ok(state)
    }

    /// The schema version stored.
    pub fn schema_version(&self) -> Result<u32> {
        Ok(self
            .meta
            .get("schema_version")?
            .and_then(|v| v.as_ref().try_into().ok().map(u32::from_be_bytes))
            .unwrap_or(SCHEMA_VERSION))
    }

    /// Make everything written to sled so far durable: sled's flush, then
    /// an fdatasync of its log file (sled's flush alone is not durable, see
    /// the module header).
    ///
    /// On a thread of tokio's blocking pool, never on sled's own pool:
    /// sled 0.34's `flush_async` blocks a thread of its small shared pool
    /// until the log is written, and the log write itself needs a thread of
    /// that pool. Enough concurrent flushes (a hundred sources, or several
    /// databases in one process) took every thread and hung them all.
    ///
    /// A few flushes at a time: a flush that runs makes everything written
    /// before it durable, so waiting costs nothing extra and saves an fsync
    /// storm. When the log write fails (a full disk), sled never wakes the
    /// flushes already waiting; a new flush returns the error at once. So a
    /// flush that cannot get a slot within 10 s goes ahead without one,
    /// rather than queue forever behind flushes that will never return.
    pub async fn flush(&self) -> Result<()> {
        let _slot = tokio::time::timeout(FLUSH_SLOT_WAIT, self.flush_slots.acquire()).await;
        let (db, file, path) = (self.db.clone(), self.db_file.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || flush_and_sync(&db, &file, &path))
            .await
            .map_err(|e| sled::Error::ReportableBug(format!("flush task ended: {e}")))?
    }

    /// [`State::flush`] on this thread.
    fn flush_now(&self) -> Result<()> {
        flush_and_sync(&self.db, &self.db_file, &self.path)
    }

    /// A source's cursor, `None` before its first page.
    pub fn cursor(&self, source: &str) -> Result<Option<Cursor>> {
        match self.cursors.get(source)? {
            None => Ok(None),
            Some(v) => decode_cursor(source, &values::read(&self.parts, CURSOR_TAG, source.as_bytes(), v)?).map(Some),
        }
    }

    /// Every stored cursor, by source name.
    pub fn cursors(&self) -> Result<Vec<(String, Cursor)>> {
        let mut out = Vec::new();
        for item in self.cursors.iter() {
            let (k, v) = item?;
            let name = String::from_utf8_lossy(&k).into_owned();
            let c = decode_cursor(&name, &values::read(&self.parts, CURSOR_TAG, &k, v)?)?;
            out.push((name, c));
        }
        Ok(out)
    }

    /// Replace a source's cursor without journaling any event (`replay`):
    /// a journal record with the cursor alone, so that it is durable and
    /// newer than every cursor the journal holds for that source.
    pub async fn set_cursor(&self, source: &str, cursor: &Cursor) -> Result<()> {
        self.append(source, &[], cursor).await.map(|_| ())
    }

    /// Store a source's cursor (encoded) in sled. Not flushed: the journal
    /// holds it durably until garbage collection, which flushes first.
    fn store_cursor(&self, source: &str, cursor: &[u8]) -> Result<()> {
        // A short cursor replacing a short one is one compare-and-swap: a
        // sled transaction seals sled's log buffer and writes it out, one
        // log write per poll (thousands of quiet sources: a third of the
        // idle CPU).
        if values::fits_inline(cursor) {
            let old = self.cursors.get(source)?;
            if old.as_deref().is_none_or(values::is_inline)
                && self.cursors.compare_and_swap(source, old, Some(cursor))?.is_ok()
            {
                release_garbage();
                return Ok(());
            }
        }
        (&self.cursors, &self.parts)
            .transaction(|(cursors, parts)| values::put(cursors, parts, CURSOR_TAG, source.as_bytes(), cursor))
            .map_err(journal::tx_err)?;
        release_garbage();
        Ok(())
    }

    /// The sequence number the next journal entry gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::SeqCst)
    }

    /// Tell outputs the journal grew to `end` (never moves the tail back,
    /// whatever order concurrent appends finish in).
    fn publish_tail(&self, end: u64) {
        self.tail.send_if_modified(|t| {
            let grew = end > *t;
            if grew {
                *t = end;
            }
            grew
        });
    }

    /// Watch the journal's tail, to wake outputs when events arrive.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tail.subscribe()
    }

    /// Bytes of events in the journal.
    pub fn journal_bytes(&self) -> u64 {
        self.journal_bytes.load(Ordering::Relaxed)
    }

    /// Number of entries in the journal.
    pub fn journal_len(&self) -> usize {
        // Entries are numbered without gaps from the first held on.
        self.segments.first_held().map_or(0, |first| self.next_seq().saturating_sub(first) as usize)
    }

    /// An output's committed offset, `None` if it never ran.
    pub fn offset(&self, output: &str) -> Result<Option<u64>> {
        Ok(self.offsets.get(output)?.and_then(|v| be64(&v)))
    }

    /// An output's committed offset, starting it at the journal tail the first
    /// time it runs: a new output receives events journaled from now on.
    pub async fn offset_or_tail(&self, output: &str) -> Result<u64> {
        if let Some(o) = self.offset(output)? {
            return Ok(o);
        }
        // Holding the append lock: no page can be journaled between reading
        // the tail and storing it as this output's start.
        let _append = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let tail = self.next_seq();
        self.offsets.insert(output, &tail.to_be_bytes())?;
        drop(_guard);
        drop(_append);
        self.flush().await?;
        Ok(tail)
    }

    /// Every stored output offset.
    pub fn offsets(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for item in self.offsets.iter() {
            let (k, v) = item?;
            out.push((String::from_utf8_lossy(&k).into_owned(), be64(&v).unwrap_or(0)));
        }
        Ok(out)
    }

    /// The HEC channel GUID of an output, created and persisted the first
    /// time.
    pub async fn channel(&self, output: &str) -> Result<String> {
        let key = format!("channel/{output}");
        if let Some(v) = self.meta.get(&key)? {
            return Ok(String::from_utf8_lossy(&v).into_owned());
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.meta.insert(key, id.as_bytes())?;
        self.flush().await?;
        Ok(id)
    }

    /// Record the health of a source or output (`kind` is `source` or
    /// `output`). Advisory: not flushed.
    pub fn set_status(&self, kind: &str, name: &str, status: &Status) -> Result<()> {
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
        self.status.insert(format!("{kind}/{name}"), v)?;
        self.status_gen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Changes with every [`State::set_status`]: a cheap "anything new?"
    /// for the status snapshot.
    pub fn status_generation(&self) -> u64 {
        self.status_gen.load(Ordering::Relaxed)
    }

    /// The recorded health of a source or output.
    pub fn status(&self, kind: &str, name: &str) -> Result<Option<Status>> {
        Ok(self.status.get(format!("{kind}/{name}"))?.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn flush_and_sync(db: &sled::Db, file: &std::fs::File, path: &Path) -> Result<()> {
    let flushed = db.flush();
    release_garbage();
    flushed?;
    file.sync_data().map_err(sync_err(&path.join("db")))
}

fn encode_cursor(c: &Cursor) -> Vec<u8> {
    serde_json::to_vec(&cursor::StoredCursor::V1(c.clone())).unwrap_or_default()
}

fn decode_cursor(source: &str, v: &[u8]) -> Result<Cursor> {
    match serde_json::from_slice::<cursor::StoredCursor>(v) {
        Ok(cursor::StoredCursor::V1(c)) => Ok(c),
        Err(e) => Err(StateError::Corrupt { what: format!("cursor of source {source:?}"), detail: e.to_string() }),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    } else {
        let meta = std::fs::metadata(dir)?;
        if meta.permissions().mode() & 0o077 != 0 {
            // Tighten an existing directory we own; ignore failure (a
            // directory managed by systemd's StateDirectory= is already 0700).
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    Ok(())
}

/// Events and where to send them, decoded from the journal.
impl Entry {
    /// Whether this entry goes to `output`, given the routes of its source
    /// (`None` = every output).
    pub fn routed_to(&self, output: &str, routes: Option<&[String]>) -> bool {
        match &self.to {
            Some(only) => only == output,
            None => routes.is_none_or(|r| r.iter().any(|o| o == output)),
        }
    }
}

#[cfg(test)]
mod tests;
