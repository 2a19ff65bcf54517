//! The sled database under `db/`, and what makes its writes durable: a
//! flush that is sled's flush followed by an `fdatasync` of its log file
//! (sled's flush alone is not durable, see the module header of
//! `state`), run a few at a time on tokio's blocking pool. The stores
//! (`cursor.rs`, `offsets.rs`, `dead_letters.rs`…) each hold their trees
//! of it and share one [`Db`] to flush.

use super::error::is_lock_error;
use super::{Result, StateError, StorageError};
use sled::transaction::TransactionError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Flushes running at once (see [`Db::flush`]).
const FLUSH_SLOTS: usize = 4;

/// How long a flush waits for a slot before it goes ahead without one
/// (see [`Db::flush`]).
const FLUSH_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// sled's page cache; its default is 1 GiB, far more than an agent needs.
const CACHE_CAPACITY: u64 = 8 << 20;

/// The open sled database and its log file.
pub(super) struct Db {
    path: PathBuf,
    db: sled::Db,
    /// sled's log file, opened again to fsync it (see the module header).
    file: Arc<std::fs::File>,
    /// Bounds concurrent flushes (see [`Db::flush`]).
    flush_slots: tokio::sync::Semaphore,
}

impl Db {
    /// Open (or create) the database `db/` in the state directory `dir`,
    /// syncing what a previous run left before sled reads it and what sled
    /// wrote while opening.
    pub fn open(dir: &Path) -> Result<Db> {
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
            StateError::Open { path: path.clone(), source: StorageError(source), hint }
        })?;
        // sled may have written a snapshot and its config while opening.
        sync_tree(&path)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(sync_err(dir))?;
        let file = Arc::new(std::fs::File::open(path.join("db")).map_err(sync_err(&path))?);
        Ok(Db { path, db, file, flush_slots: tokio::sync::Semaphore::new(FLUSH_SLOTS) })
    }

    /// The database itself (migration, tests).
    pub fn sled(&self) -> &sled::Db {
        &self.db
    }

    /// A tree, created if it is not there yet.
    pub fn tree(&self, name: &str) -> Result<sled::Tree> {
        self.db.open_tree(name).map_err(StateError::storage)
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make everything written to sled so far durable: sled's flush, then
    /// an fdatasync of its log file.
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
        let (db, file, path) = (self.db.clone(), self.file.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || flush_and_sync(&db, &file, &path))
            .await
            .map_err(|e| sled::Error::ReportableBug(format!("flush task ended: {e}")))
            .map_err(StateError::storage)?
    }

    /// [`Db::flush`] on this thread.
    pub fn flush_now(&self) -> Result<()> {
        flush_and_sync(&self.db, &self.file, &self.path)
    }
}

fn flush_and_sync(db: &sled::Db, file: &std::fs::File, path: &Path) -> Result<()> {
    let flushed = db.flush();
    release_garbage();
    flushed.map_err(StateError::storage)?;
    file.sync_data().map_err(sync_err(&path.join("db")))
}

/// Hand this thread's deferred frees to crossbeam-epoch's global collector.
///
/// sled frees what it replaces (a sealed 512 KiB log buffer, an old version
/// of a tree node) through crossbeam-epoch, which keeps each thread's
/// deferred frees in a bag of up to 64 until that thread pins often enough
/// to collect them. A thread that writes or flushes now and then (a tokio
/// worker, a blocking-pool thread) held up to 64 dead log buffers: ~45 MiB
/// of the agent's heap at peak in a catch-up (heaptrack). Called after each
/// write transaction and flush, on the thread that did it.
pub(super) fn release_garbage() {
    crossbeam_epoch::pin().flush();
}

/// A sled transaction's error as the state's.
pub(super) fn tx_err(e: TransactionError<StateError>) -> StateError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StateError::storage(e),
    }
}

/// A u64 stored big-endian.
pub(super) fn be64(v: &[u8]) -> Option<u64> {
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

/// Create the state directory with mode 0700, or tighten an existing one.
pub(super) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
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
