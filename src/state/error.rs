//! The state's errors: all of them fatal for the agent (it exits 1 and
//! systemd restarts it), each naming the path or key it is about.

use super::{JournalError, SCHEMA_VERSION};
use std::path::PathBuf;

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
        /// The storage engine's error.
        source: StorageError,
        /// A hint for the operator.
        hint: &'static str,
    },
    /// A read, write or flush failed (disk full, IO error).
    #[error("state database error: {0} (is the disk full or read-only?)")]
    Sled(StorageError),
    /// The journal's files could not be read, written or synced, or are
    /// damaged.
    #[error("{0}")]
    Journal(#[from] JournalError),
    /// A sled file could not be synced to disk.
    #[error("cannot sync state file {path} to disk: {source}")]
    Sync {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
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

/// An error of the storage engine under the state (sled), kept opaque: the
/// engine is this module's choice, not part of its interface.
#[derive(Debug)]
pub struct StorageError(pub(super) sled::Error);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&sled_text(&self.0))
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            sled::Error::Io(io) => Some(io),
            _ => None,
        }
    }
}

impl StateError {
    /// A failed read, write or flush of the storage engine. A function
    /// rather than `From<sled::Error>`, so the engine's error type is not
    /// part of the state's public interface.
    pub(super) fn storage(e: sled::Error) -> StateError {
        StateError::Sled(StorageError(e))
    }

    pub(super) fn corrupt(key: &[u8], detail: &str) -> StateError {
        StateError::Corrupt { what: String::from_utf8_lossy(key).into_owned(), detail: detail.to_owned() }
    }

    /// Whether the database is locked by another process (a running agent).
    pub fn is_locked(&self) -> bool {
        matches!(self, StateError::Open { source, .. } if is_lock_error(&source.0))
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
pub(super) fn is_lock_error(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock
                || io.raw_os_error() == Some(11)
                || io.to_string().contains("could not acquire lock")
        }
        _ => false,
    }
}
