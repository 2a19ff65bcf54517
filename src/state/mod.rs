//! Durable state in one sled database under `agent.state_dir/db`.
//!
//! # On-disk layout
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `journal` | sequence number of its first entry, u64 big-endian | chunk of consecutive entries (up to ~64 KiB): `0x02`, the entry count as u32, then each entry frame with its u32 length; schema 1 stored one bare entry frame per key, still read |
//! | (entry frame, schema 3) | | `0x03`, then source, `to` (output for retried dead letters, empty = routed), id as u32-length-prefixed UTF-8, time as i64 s + u32 ns, the ECS fields as u32-length-prefixed JSON text without `event.original`, the u32 byte offset in that text where `event.original` goes and one byte for what surrounds it (`Hole`: 0 `,"original":…` before the `event` object's closing brace, 1 the same in an empty `event`, 2 `,"event":{"original":…}` before the document's closing brace, 3 the same in an empty document), raw event JSON verbatim to the end; outputs splice the raw event into the text without parsing either |
//! | (entry frame, schemas 1–2, still read) | | `0x01`, then source, `to` (output for retried dead letters, empty = routed), id as u32-length-prefixed UTF-8, time as i64 s + u32 ns, ECS fields as u32-length-prefixed JSON, raw event JSON verbatim to the end |
//! | `cursors` | source name | JSON `{"v":"1","time":…,"taken":[…],"window":…}` |
//! | `offsets` | output name | u64 big-endian: the next sequence number the output has not delivered |
//! | `dead_letters` | output name, `0x00`, u64 big-endian sequence | JSON `{"v":1,"reason":…,"at":…,"event":{…}}` |
//! | `meta` | `schema_version` | u32 big-endian ([`SCHEMA_VERSION`]) |
//! | `meta` | `next_seq` | u64 big-endian: the sequence number of the next journal entry |
//! | `meta` | `journal_bytes` | u64 big-endian: bytes of journal values stored |
//! | `meta` | `channel/<output>` | the HEC channel GUID of that output |
//! | `status` | `source/<name>`, `output/<name>` | JSON health, last poll/send, last error (advisory, not flushed) |
//!
//! # Invariants
//!
//! 1. A page of events and the cursor that moves past it are written in **one
//!    transaction** (journal, cursors and meta trees), then the database is
//!    flushed before the source asks for the next page. A crash leaves both or
//!    neither, so a page is never lost and never journaled twice.
//! 2. Sequence numbers only grow: `next_seq` is stored, not derived from the
//!    last key, so an emptied journal never reuses a number an output has
//!    already committed past.
//! 3. An output's offset only moves after its receiver confirmed every event
//!    below it (or the event went to `dead_letters`, in the same transaction
//!    as the offset move), and is flushed before the next batch is read.
//! 4. A journal entry is deleted only when every configured output's offset
//!    is past it.
//! 5. A state written by a newer schema is refused, never rewritten.

mod cursor;
mod journal;

pub use cursor::{Cursor, Taken, Window};
pub use journal::{DeadLetter, Entry};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::watch;

/// Flushes running at once (see [`State::flush`]).
const FLUSH_SLOTS: usize = 4;

/// The schema this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 3;

/// sled's page cache; its default is 1 GiB, far more than an agent needs.
const CACHE_CAPACITY: u64 = 8 << 20;

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

/// Errors of the state database. All of them are fatal for the agent: it
/// exits 1 and systemd restarts it.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state directory could not be created or secured.
    #[error("cannot prepare state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// sled could not open the database (locked by a running agent, corrupt, unreadable).
    #[error("cannot open state database {path}: {source}{hint}")]
    Open {
        /// The database directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
        /// A hint for the operator.
        hint: &'static str,
    },
    /// A read, write or flush failed (disk full, IO error).
    #[error("state database error: {} (is the disk full or read-only?)", sled_text(.0))]
    Sled(#[from] sled::Error),
    /// A stored value could not be decoded.
    #[error("corrupt state entry {what}: {detail}")]
    Corrupt {
        /// Which entry.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// The state was written by a newer auditrelay.
    #[error("state at {path} has schema version {found}, newer than this auditrelay understands ({SCHEMA_VERSION}); upgrade auditrelay or point agent.state_dir elsewhere — the state was not touched")]
    NewerSchema {
        /// The database directory.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
}

impl StateError {
    /// Whether the database is locked by another process (a running agent).
    pub fn is_locked(&self) -> bool {
        matches!(self, StateError::Open { source, .. } if is_lock_error(source))
    }
}

/// sled's IO errors print in debug form (`Os { code: 28, … }`); show the
/// operating system's sentence instead.
fn sled_text(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// sled reports a held lock as an IO error whose text says so (the
/// underlying `WouldBlock` is only in the message).
fn is_lock_error(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock
                || io.raw_os_error() == Some(11)
                || io.to_string().contains("could not acquire lock")
        }
        _ => false,
    }
}

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
}

/// The open state database.
pub struct State {
    path: PathBuf,
    db: sled::Db,
    journal: sled::Tree,
    cursors: sled::Tree,
    offsets: sled::Tree,
    dead: sled::Tree,
    meta: sled::Tree,
    status: sled::Tree,
    /// Serialises appends so concurrent sources do not conflict.
    append_lock: Mutex<()>,
    /// Bounds concurrent flushes (see [`State::flush`]).
    flush_slots: tokio::sync::Semaphore,
    /// Serialises offset commits and garbage collection.
    commit_lock: Mutex<()>,
    journal_bytes: AtomicU64,
    /// Bumped by every status write.
    status_gen: AtomicU64,
    /// The next sequence number, updated under `append_lock`; authoritative.
    next_seq: AtomicU64,
    /// Wakes outputs when entries arrive; only ever moves forward.
    tail: watch::Sender<u64>,
    /// Outputs whose last delivery failed (see [`State::set_output_down`]).
    outputs_down: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("path", &self.path).finish_non_exhaustive()
    }
}

fn be64(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

impl State {
    /// Open (or create) the database in `dir`, creating `dir` with mode 0700.
    pub fn open(dir: &Path) -> Result<State> {
        create_private_dir(dir).map_err(|source| StateError::Dir { path: dir.to_path_buf(), source })?;
        let path = dir.join("db");
        // Every durable write is flushed explicitly; sled's own periodic
        // flush (roll the log, clean segments, fsync) only has to keep up
        // with advisory status writes, so it runs every 2 s instead of 0.5 s
        // (an idle agent's main cost).
        let config = sled::Config::new().path(&path).cache_capacity(CACHE_CAPACITY).flush_every_ms(Some(2000));
        let db = config.open().map_err(|source| {
            let hint = match &source {
                e if is_lock_error(e) => " (another auditrelay is running on this state directory)",
                sled::Error::Corruption { .. } => {
                    " (the database is damaged; keep a copy of the directory for analysis)"
                }
                _ => "",
            };
            StateError::Open { path: path.clone(), source, hint }
        })?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema_version")? {
            Some(v) => {
                let found = v.as_ref().try_into().map(u32::from_be_bytes).map_err(|_| StateError::Corrupt {
                    what: "meta/schema_version".into(),
                    detail: "not a u32".into(),
                })?;
                if found > SCHEMA_VERSION {
                    return Err(StateError::NewerSchema { path, found });
                }
                if found < SCHEMA_VERSION {
                    // Schema 3 reads schemas 1 (one entry per key) and 2
                    // (chunks of `0x01` entry frames) as they are; the mark
                    // keeps an older build from misreading what it writes.
                    meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                    db.flush()?;
                }
            }
            None => {
                meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
        }
        let next = meta.get("next_seq")?.and_then(|v| be64(&v)).unwrap_or(0);
        let journal = db.open_tree("journal")?;
        // Garbage collection lowers the byte count just after deleting; a
        // crash in between leaves it high. An empty journal holds nothing.
        let bytes = match journal.is_empty() {
            true => 0,
            false => meta.get("journal_bytes")?.and_then(|v| be64(&v)).unwrap_or(0),
        };
        let (tail, _) = watch::channel(next);
        Ok(State {
            path,
            journal,
            cursors: db.open_tree("cursors")?,
            offsets: db.open_tree("offsets")?,
            dead: db.open_tree("dead_letters")?,
            status: db.open_tree("status")?,
            meta,
            db,
            append_lock: Mutex::new(()),
            flush_slots: tokio::sync::Semaphore::new(FLUSH_SLOTS),
            commit_lock: Mutex::new(()),
            journal_bytes: AtomicU64::new(bytes),
            status_gen: AtomicU64::new(0),
            outputs_down: Mutex::default(),
            next_seq: AtomicU64::new(next),
            tail,
        })
    }

    /// The schema version stored.
    pub fn schema_version(&self) -> Result<u32> {
        Ok(self
            .meta
            .get("schema_version")?
            .and_then(|v| v.as_ref().try_into().ok().map(u32::from_be_bytes))
            .unwrap_or(SCHEMA_VERSION))
    }

    /// Flush everything written so far to disk.
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
        let _slot = tokio::time::timeout(std::time::Duration::from_secs(10), self.flush_slots.acquire()).await;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let flushed = db.flush();
            release_garbage();
            flushed
        })
        .await
        .map_err(|e| sled::Error::ReportableBug(format!("flush task ended: {e}")))??;
        Ok(())
    }

    /// A source's cursor, `None` before its first page.
    pub fn cursor(&self, source: &str) -> Result<Option<Cursor>> {
        match self.cursors.get(source)? {
            None => Ok(None),
            Some(v) => decode_cursor(source, &v).map(Some),
        }
    }

    /// Every stored cursor, by source name.
    pub fn cursors(&self) -> Result<Vec<(String, Cursor)>> {
        let mut out = Vec::new();
        for item in self.cursors.iter() {
            let (k, v) = item?;
            let name = String::from_utf8_lossy(&k).into_owned();
            let c = decode_cursor(&name, &v)?;
            out.push((name, c));
        }
        Ok(out)
    }

    /// Replace a source's cursor without journaling anything (`replay`), and
    /// flush.
    pub async fn set_cursor(&self, source: &str, cursor: &Cursor) -> Result<()> {
        self.cursors.insert(source, encode_cursor(cursor))?;
        self.flush().await
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

    /// Record whether an output's last delivery failed. While every output
    /// delivers, sources keep only a short lead over them in the journal;
    /// while one is down they may fill it to `max_journal_size`.
    pub fn set_output_down(&self, name: &str, down: bool) {
        let mut set = self.outputs_down.lock().unwrap_or_else(|p| p.into_inner());
        if down {
            set.insert(name.to_owned());
        } else {
            set.remove(name);
        }
    }

    /// Whether some output's last delivery failed.
    pub fn an_output_is_down(&self) -> bool {
        !self.outputs_down.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Bytes of events in the journal.
    pub fn journal_bytes(&self) -> u64 {
        self.journal_bytes.load(Ordering::Relaxed)
    }

    /// Number of entries in the journal.
    pub fn journal_len(&self) -> usize {
        // Entries are numbered without gaps from the first key on.
        match self.journal.first() {
            Ok(Some((k, _))) => self.next_seq().saturating_sub(be64(&k).unwrap_or(0)) as usize,
            _ => 0,
        }
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
