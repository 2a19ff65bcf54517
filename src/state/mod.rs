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
//! | `dead_letters` | `source/<name>`, `0x00`, 16 bytes of a SHA-256 of the event | JSON set-aside event (`set_aside.rs`; or a parts header) |
//! | `parts` | tag (`c` cursor, `d` dead letter or set-aside event, `w` manifest window, `m` pending manifest), key, u32 part number | up to 2 KiB of a longer value |
//! | `meta` | `schema_version` | u32 big-endian ([`SCHEMA_VERSION`]) |
//! | `meta` | `next_seq` | u64 big-endian: a floor for the journal's next sequence number |
//! | `meta` | `released` | u64 big-endian: journal entries below it are passed by every output (their file may remain until the rest of it is) |
//! | `meta` | `channel/<output>` | the HEC channel GUID of that output |
//! | `status` | `source/<name>`, `output/<name>` | JSON health, last poll/send, last error (advisory, not flushed) |
//! | `manifest_windows` | output name, `0x00`, source | JSON manifest window (or a parts header) |
//! | `manifests_pending` | output name, `0x00`, source, `0x00`, u64 big-endian window | JSON manifest closed and not yet confirmed (or a parts header) |
//!
//! Journal chunks and entry frames are described in `frames.rs`; schemas
//! 1–3 kept them in a sled tree `journal`, which `open` moves into segment
//! files once (`migrate.rs`).
//!
//! # Types
//!
//! Each role is a type that owns its files or trees: the [`Journal`]
//! (segment files, sequence numbers, the tail outputs wait on, its byte
//! count, the cursors its records hold until delivered), and small sled
//! stores — [`Cursors`], [`Offsets`], [`DeadLetters`], [`SetAsideEvents`],
//! [`Statuses`], [`Manifests`] — sharing one database (`db.rs`) to flush.
//! [`State`] opens them together and keeps only what spans them (append a
//! page with its cursor, commit an offset with its dead letters and
//! windows, garbage collection), in the order above.

mod compose;
mod cursor;
mod db;
mod dead_letters;
mod delivered;
mod error;
mod frames;
mod journal;
mod manifests;
mod migrate;
mod offsets;
pub mod owner;
mod record;
pub mod run_lock;
mod segments;
mod set_aside;
mod status;
mod values;

pub use compose::State;
pub use cursor::{Cursor, Cursors, Taken, Window};
pub use dead_letters::{DeadLetter, DeadLetters};
pub use error::{StateError, StorageError};
pub use frames::Entry;
pub use journal::Journal;
pub use manifests::Manifests;
pub use offsets::Offsets;
pub use segments::JournalError;
pub use set_aside::{SetAside, SetAsideEvents};
pub use status::{Status, Statuses};

/// The schema this build writes and the newest it reads: 4 keeps the
/// journal in segment files (1–3 kept it in sled).
pub const SCHEMA_VERSION: u32 = 4;

/// Result of state operations.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
