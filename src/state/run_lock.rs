//! `run.lock`: the lock a running agent holds on its state directory for
//! its whole life, taken before the database is opened.
//!
//! sled's own lock guards the database, but it is taken only once the
//! database is being opened, and a short-lived command (`status`,
//! `replay`, `dead-letters`) takes it too while it reads. A `status` run in
//! a loop (`watch auditrelay status`, a monitoring script) could then hold
//! it at every moment a starting agent tried, and the service failed to
//! start with "another auditrelay is running". With this lock a command
//! that finds the agent running or starting never opens the database: it
//! reads the status snapshot, or says the agent must be stopped. The
//! starting agent waits for a command that holds it to finish.

use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

/// The file, in the state directory.
pub const FILE: &str = "run.lock";

/// How often a starting agent tries again while a command holds the lock:
/// far shorter than the gap between two runs of a command in a loop.
const RETRY: Duration = Duration::from_millis(10);

/// The lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it: an agent runs (or starts) on this directory.
    #[error("another auditrelay is running on {}", .0.display())]
    Held(std::path::PathBuf),
    #[error("cannot lock {}: {source}", path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
}

impl RunLock {
    /// Take the lock on `dir` (created 0700 if missing) if no other process
    /// holds it.
    pub fn try_take(dir: &Path) -> Result<RunLock, LockError> {
        let path = dir.join(FILE);
        let io = |source| LockError::Io { path: path.clone(), source };
        super::db::create_private_dir(dir).map_err(io)?;
        let file = open(&path).map_err(io)?;
        // flock(2), as sled's own lock: it belongs to this open file and
        // ends with the process, however that ends.
        match file.try_lock_exclusive() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => {
                Err(LockError::Held(dir.to_path_buf()))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Take the lock, waiting up to `wait` while another process holds it
    /// (a command that reads the state); `Ok(None)` when `cancelled()`
    /// turns true first.
    pub fn take(dir: &Path, wait: Duration, cancelled: impl Fn() -> bool) -> Result<Option<RunLock>, LockError> {
        let deadline = Instant::now() + wait;
        loop {
            match RunLock::try_take(dir) {
                Ok(lock) => return Ok(Some(lock)),
                Err(LockError::Held(_)) if cancelled() => return Ok(None),
                Err(LockError::Held(_)) if Instant::now() < deadline => std::thread::sleep(RETRY),
                Err(e) => return Err(e),
            }
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_told_the_agent_runs_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::try_take(dir.path()).unwrap();
        // flock locks belong to the open file, so a second open in the
        // same process is refused like another process would be.
        assert!(matches!(RunLock::try_take(dir.path()), Err(LockError::Held(_))));
        assert!(RunLock::take(dir.path(), Duration::from_millis(50), || false).is_err());
        assert!(RunLock::take(dir.path(), Duration::from_secs(5), || true).unwrap().is_none());
        drop(first);
        assert!(RunLock::try_take(dir.path()).is_ok());
    }

    #[test]
    fn a_waiting_taker_gets_the_lock_as_soon_as_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::try_take(dir.path()).unwrap();
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || RunLock::take(&path, Duration::from_secs(30), || false));
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
        assert!(waiter.join().unwrap().unwrap().is_some());
    }

    #[test]
    fn the_state_directory_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let _lock = RunLock::try_take(&state).unwrap();
        assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(state.join(FILE)).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
