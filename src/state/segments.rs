//! The journal's segment files: `journal/NNNNNNNNNNNNNNNNNNNN.seg` under
//! the state directory, numbered from 1, each a run of records.
//!
//! # Record
//!
//! | bytes | what |
//! | --- | --- |
//! | 4 | magic `ARJ1` |
//! | 4 | body length, u32 big-endian |
//! | 4 | CRC-32 (IEEE) of the body |
//! | body | `0x01`; the sequence number of its first entry (u64); the source name (u32 length + UTF-8); the source's cursor after this page (u32 length + the JSON `cursors` stores, length 0 = no cursor); the chunk count (u32); each chunk (u32 length + the chunk, see `frames.rs`) |
//!
//! One record is one page: its events and the cursor past them are written,
//! checked and made durable together, so a torn write loses both or
//! neither.
//!
//! # Writing and syncing
//!
//! Records are appended under one lock and made durable by `fdatasync`
//! outside it: a sync covers every record written before it started, so
//! concurrent appends share one (group commit). A segment is synced before
//! the next one is created, and the directory is synced when a segment is
//! created or deleted. Only the newest segment can therefore end in a
//! record that was never synced. A record whose cursor covers no event (a
//! quiet poll) is not waited for: it is synced with the next record, or
//! within `SYNC_SOON` (1 s) — losing it only takes a source back to a
//! cursor whose window held nothing more.
//!
//! # Recovery
//!
//! At open every record is read and its CRC checked. A bad record followed
//! by nothing valid in the newest segment is a torn tail (a write the power
//! cut interrupted, never acknowledged to anyone): the file is cut there and
//! a warning says how many bytes went. A bad record anywhere else, or one
//! followed by a valid record, is damage: the agent refuses to start and
//! names the file and the offset, and nothing is deleted.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::record::{parse_page, record_head, HEAD, MAGIC};

/// A segment takes records until it holds this many bytes.
pub(super) const SEGMENT_BYTES: u64 = 32 << 20;

/// A segment whose entries every output passed is replaced by a new one
/// once it holds this many bytes (an idle source's cursor-only records
/// would otherwise grow it forever).
const RECYCLE_BYTES: u64 = 1 << 20;

/// The longest a record nobody waits for stays unsynced
/// ([`Segments::sync_soon`]).
pub(super) const SYNC_SOON: Duration = Duration::from_secs(1);

/// The journal's directory under the state directory.
pub(super) const DIR: &str = "journal";

/// Tries at creating a segment file (and syncing the directory after it)
/// while the process or the system is out of file descriptors. A failure
/// here stops the agent (the source's append fails with a state error), so
/// a shortage that passes within the tries (a burst of connections) is
/// waited out instead; one that lasts still stops it, as before.
const CREATE_TRIES: u32 = 5;

/// The pause between those tries. The thread creating the segment blocks
/// meanwhile (it holds the writer, which every append waits for anyway),
/// so all tries together stay a fraction of a second.
const CREATE_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// `EMFILE` (the process's descriptor limit) and `ENFILE` (the system's):
/// the same numbers on Linux and the BSDs.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// What went wrong with the segment files.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading, writing, syncing or creating a journal file failed.
    #[error("journal file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        source: io::Error,
    },
    /// A record that was made durable does not read back: bit rot, a file
    /// written by something else, or a segment missing in the middle.
    #[error("journal file {path} is damaged at byte {offset}: {detail}; nothing was deleted — move the file aside to start without it (the events it holds that were not delivered yet are then lost; re-fetch them with `auditrelay replay`), or keep the directory for analysis")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io { path: path.to_path_buf(), source }
}

/// One segment file.
pub(super) struct Segment {
    path: PathBuf,
    file: File,
    /// The segment's number (its file name).
    number: u64,
    /// The sequence number after its last entry (its first when empty).
    end: AtomicU64,
}

impl Segment {
    fn name(number: u64) -> String {
        format!("{number:020}.seg")
    }

    fn create(dir: &Path, number: u64, first: u64) -> Result<Segment, JournalError> {
        Segment::create_with(dir, number, first, open_new)
    }

    /// [`Segment::create`], opening the new file with `open` (tests make it
    /// fail). A shortage of descriptors is retried (see [`CREATE_TRIES`]).
    fn create_with(
        dir: &Path,
        number: u64,
        first: u64,
        mut open: impl FnMut(&Path) -> io::Result<File>,
    ) -> Result<Segment, JournalError> {
        let path = dir.join(Segment::name(number));
        let file = retry_out_of_descriptors(&path, || open(&path)).map_err(io_err(&path))?;
        if let Err(e) = retry_out_of_descriptors(dir, || File::open(dir).and_then(|d| d.sync_all())) {
            // The file is empty and nothing refers to it yet: remove it, or
            // the next try (`create_new`) would find it and fail for good.
            let _ = std::fs::remove_file(&path);
            return Err(JournalError::Io { path: dir.to_path_buf(), source: e });
        }
        Ok(Segment { path, file, number, end: AtomicU64::new(first) })
    }
}

/// Create a new segment file, readable by the agent only.
fn open_new(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(path)
}

/// Whether the process or the system ran out of file descriptors.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE))
}

/// Run `op` until it succeeds, fails for another reason, or has failed
/// [`CREATE_TRIES`] times for want of descriptors.
fn retry_out_of_descriptors<T>(path: &Path, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 1;
    loop {
        match op() {
            Err(e) if out_of_descriptors(&e) && tries < CREATE_TRIES => {
                let limit = crate::transport::http::descriptor_limit(&e).unwrap_or_default();
                tracing::warn!(path = %path.display(), "creating a journal segment: {e} ({limit}); try {tries} of {CREATE_TRIES}, retrying in {CREATE_RETRY_PAUSE:?}");
                tries += 1;
                std::thread::sleep(CREATE_RETRY_PAUSE);
            }
            done => return done,
        }
    }
}

/// Where a chunk of entries lies.
#[derive(Clone)]
pub(super) struct ChunkAt {
    /// The sequence number of its first entry.
    pub first: u64,
    /// Its entries.
    pub count: u64,
    segment: Arc<Segment>,
    at: u64,
    len: u32,
}

impl ChunkAt {
    /// The chunk's bytes.
    pub fn len(&self) -> u64 {
        u64::from(self.len)
    }
}

/// A page record read back at open.
pub(super) struct Recovered {
    /// The source that wrote it.
    pub source: String,
    /// The cursor it carries, as `cursors` stores it.
    pub cursor: Vec<u8>,
    /// The sequence number after its entries.
    pub end: u64,
}

/// What [`Segments::open`] found.
pub(super) struct Opened {
    /// The segments.
    pub segments: Segments,
    /// Every record with a cursor, oldest first.
    pub cursors: Vec<Recovered>,
    /// Bytes cut off a torn tail (0 if none).
    pub torn: u64,
}

struct Writer {
    active: Arc<Segment>,
    /// Bytes in the active segment.
    len: u64,
    /// Bytes ever appended (all segments, this process): a log position.
    pos: u64,
    next_seq: u64,
    /// Set when a failed write could not be undone: appends stop.
    broken: Option<String>,
}

/// The open segment files.
pub(super) struct Segments {
    dir: PathBuf,
    writer: Mutex<Writer>,
    /// The log position every sync so far has covered.
    synced: AtomicU64,
    sync_lock: Mutex<()>,
    /// A sync within [`SYNC_SOON`] is planned ([`Segments::sync_soon`]).
    soon: std::sync::atomic::AtomicBool,
    /// Segments on disk, oldest first (the active one last).
    files: Mutex<VecDeque<Arc<Segment>>>,
    /// Chunks not yet passed by every output, oldest first.
    chunks: Mutex<VecDeque<ChunkAt>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sync a directory, so that files created, renamed or removed in it stay.
pub(super) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

impl Segments {
    /// Open (or create) the journal directory and read every record back.
    /// `floor` is the lowest sequence number the journal may continue
    /// from (what sled recorded; a journal emptied by garbage collection
    /// has no record of its end).
    pub fn open(state_dir: &Path, floor: u64) -> Result<Opened, JournalError> {
        Segments::open_in(state_dir.join(DIR), floor)
    }

    /// [`Segments::open`] on the journal directory `dir` itself.
    pub fn open_in(dir: PathBuf, floor: u64) -> Result<Opened, JournalError> {
        if !dir.exists() {
            std::fs::create_dir(&dir).map_err(io_err(&dir))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let mut numbers = Vec::new();
        for item in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let item = item.map_err(io_err(&dir))?;
            let name = item.file_name();
            let name = name.to_string_lossy();
            match name.strip_suffix(".seg").and_then(|n| n.parse::<u64>().ok()) {
                Some(n) if name.len() == 24 => numbers.push(n),
                _ => {
                    tracing::warn!(path = %item.path().display(), "a file that is not a journal segment in the journal directory; left alone")
                }
            }
        }
        numbers.sort_unstable();
        let mut files = VecDeque::new();
        let mut chunks = VecDeque::new();
        let mut cursors = Vec::new();
        let mut torn = 0;
        let mut next: Option<u64> = None;
        let last = numbers.last().copied();
        for number in numbers {
            let path = dir.join(Segment::name(number));
            let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).map_err(io_err(&path))?;
            let seg = Arc::new(Segment { path, file, number, end: AtomicU64::new(next.unwrap_or(floor)) });
            let scan = scan(&seg, &mut next, &mut chunks, &mut cursors)?;
            if let Some(bad) = scan {
                if Some(number) != last {
                    return Err(bad.damage);
                }
                // The newest segment: a torn tail unless valid records follow.
                if bad.valid_after {
                    return Err(bad.damage);
                }
                let size = seg.file.metadata().map_err(io_err(&seg.path))?.len();
                torn = size - bad.at;
                seg.file.set_len(bad.at).map_err(io_err(&seg.path))?;
                seg.file.sync_all().map_err(io_err(&seg.path))?;
            }
            if let Some(n) = next {
                seg.end.store(n, Ordering::Relaxed);
            }
            files.push_back(seg);
        }
        let next_seq = next.unwrap_or(floor).max(floor);
        let (active, len) = match files.back() {
            Some(seg) => {
                let len = seg.file.metadata().map_err(io_err(&seg.path))?.len();
                seg.end.fetch_max(next_seq, Ordering::Relaxed);
                (seg.clone(), len)
            }
            None => {
                let seg = Arc::new(Segment::create(&dir, 1, next_seq)?);
                files.push_back(seg.clone());
                (seg, 0)
            }
        };
        let writer = Writer { active, len, pos: 0, next_seq, broken: None };
        let segments = Segments {
            dir,
            writer: Mutex::new(writer),
            synced: AtomicU64::new(0),
            sync_lock: Mutex::new(()),
            soon: Default::default(),
            files: Mutex::new(files),
            chunks: Mutex::new(chunks),
        };
        Ok(Opened { segments, cursors, torn })
    }

    /// The sequence number the next entry gets.
    pub fn next_seq(&self) -> u64 {
        lock(&self.writer).next_seq
    }

    /// Append a page (chunks of entries and the source's cursor after it).
    /// Returns its sequence numbers and the log position to [`Segments::sync`]
    /// to; nothing is durable before that.
    pub fn append(
        &self,
        source: &str,
        cursor: Option<&[u8]>,
        chunks: &[(Vec<u8>, u64)],
    ) -> Result<(std::ops::Range<u64>, u64), JournalError> {
        let mut w = lock(&self.writer);
        if let Some(why) = &w.broken {
            return Err(JournalError::Io {
                path: w.active.path.clone(),
                source: io::Error::other(format!("journal stopped after an earlier failure: {why}")),
            });
        }
        if w.len >= SEGMENT_BYTES {
            self.rotate(&mut w)?;
        }
        let first = w.next_seq;
        let count: u64 = chunks.iter().map(|(_, n)| n).sum();
        let head = record_head(first, source, cursor, chunks).map_err(io_err(&w.active.path))?;
        let start = w.len;
        let seg = w.active.clone();
        let mut at = start;
        let mut placed = Vec::with_capacity(chunks.len());
        let written = (|| {
            seg.file.write_all_at(&head, at)?;
            at += head.len() as u64;
            let mut seq = first;
            for (c, n) in chunks {
                seg.file.write_all_at(&(c.len() as u32).to_be_bytes(), at)?;
                at += 4;
                seg.file.write_all_at(c, at)?;
                placed.push(ChunkAt { first: seq, count: *n, segment: seg.clone(), at, len: c.len() as u32 });
                at += c.len() as u64;
                seq += n;
            }
            Ok(())
        })();
        if let Err(e) = written {
            // Leave no half record behind (a full disk must not become a
            // damaged journal): cut the file back to where it was.
            if let Err(undo) = seg.file.set_len(start) {
                w.broken = Some(format!("{e}; and the file could not be cut back: {undo}"));
            }
            return Err(JournalError::Io { path: seg.path.clone(), source: e });
        }
        let added = at - start;
        w.len = at;
        w.pos += added;
        w.next_seq = first + count;
        seg.end.store(first + count, Ordering::Relaxed);
        lock(&self.chunks).extend(placed);
        Ok((first..first + count, w.pos))
    }

    /// Close the active segment (synced) and start a new one.
    fn rotate(&self, w: &mut Writer) -> Result<(), JournalError> {
        w.active.file.sync_data().map_err(io_err(&w.active.path))?;
        self.synced.fetch_max(w.pos, Ordering::SeqCst);
        let seg = Arc::new(Segment::create(&self.dir, w.active.number + 1, w.next_seq)?);
        lock(&self.files).push_back(seg.clone());
        w.active = seg;
        w.len = 0;
        Ok(())
    }

    /// Make everything appended up to log position `pos` durable.
    pub fn sync(&self, pos: u64) -> Result<(), JournalError> {
        if self.synced.load(Ordering::SeqCst) >= pos {
            return Ok(());
        }
        let _one = lock(&self.sync_lock);
        if self.synced.load(Ordering::SeqCst) >= pos {
            return Ok(());
        }
        let (seg, upto) = {
            let w = lock(&self.writer);
            (w.active.clone(), w.pos)
        };
        // Earlier segments were synced when the writer left them.
        seg.file.sync_data().map_err(io_err(&seg.path))?;
        self.synced.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    /// Plan a sync of everything appended by then within [`SYNC_SOON`],
    /// unless one is planned already: records nobody waits for (a cursor
    /// that covers no event) are on disk soon, so that the journal's
    /// unsynced tail stays short. A failure stops the journal (the next
    /// append fails with it): a failed fdatasync may have dropped the dirty
    /// pages, and a later one would then report success.
    pub fn sync_soon(self: &Arc<Self>) {
        if self.soon.swap(true, Ordering::SeqCst) {
            return;
        }
        let segments = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SYNC_SOON).await;
            segments.soon.store(false, Ordering::SeqCst);
            let s = segments.clone();
            let synced = tokio::task::spawn_blocking(move || {
                // Not `s.sync(lock(..).pos)`: the guard would live through
                // the sync, which takes the same lock.
                let pos = lock(&s.writer).pos;
                s.sync(pos)
            })
            .await;
            if let Ok(Err(e)) = synced {
                tracing::error!("the journal could not be synced: {e}");
                lock(&segments.writer).broken.get_or_insert_with(|| format!("a sync failed: {e}"));
            }
        });
    }

    /// The chunks holding entries from `from` on, up to `end` (exclusive).
    pub fn chunks_from(&self, from: u64, end: u64, max: usize) -> Vec<ChunkAt> {
        let chunks = lock(&self.chunks);
        let i = chunks.partition_point(|c| c.first + c.count <= from);
        chunks.range(i..).take_while(|c| c.first < end).take(max).cloned().collect()
    }

    /// Read a chunk's bytes.
    pub fn read(&self, c: &ChunkAt) -> Result<Vec<u8>, JournalError> {
        let mut buf = vec![0; c.len as usize];
        c.segment.file.read_exact_at(&mut buf, c.at).map_err(io_err(&c.segment.path))?;
        Ok(buf)
    }

    /// The first entry still held (every output not past it), if any.
    pub fn first_held(&self) -> Option<u64> {
        lock(&self.chunks).front().map(|c| c.first)
    }

    /// Bytes of the chunks still held.
    pub fn held_bytes(&self) -> u64 {
        lock(&self.chunks).iter().map(ChunkAt::len).sum()
    }

    /// Forget the chunks every output has passed (all entries below `low`).
    /// Returns the entries and bytes forgotten.
    pub fn release(&self, low: u64) -> (u64, u64) {
        let mut chunks = lock(&self.chunks);
        let (mut entries, mut bytes) = (0, 0);
        while chunks.front().is_some_and(|c| c.first + c.count <= low) {
            if let Some(c) = chunks.pop_front() {
                entries += c.count;
                bytes += c.len();
            }
        }
        (entries, bytes)
    }

    /// Whether [`Segments::delete_passed`] has anything to do for `low`.
    pub fn has_passed(&self, low: u64) -> bool {
        // The writer first, then the files, never both at once: `append`
        // takes the writer and then the files (rotation).
        let recycle = recyclable(&lock(&self.writer), low);
        let files = lock(&self.files);
        let deletable = files.len() > 1 && files.front().is_some_and(|s| s.end.load(Ordering::Relaxed) <= low);
        deletable || (files.len() == 1 && recycle)
    }

    /// Delete the segments whose entries are all below `low` (never the
    /// active one; a large active segment whose entries are all passed is
    /// replaced by a new one first). The caller has made every cursor these
    /// segments carry durable elsewhere. Returns how many files went.
    pub fn delete_passed(&self, low: u64) -> Result<usize, JournalError> {
        {
            let mut w = lock(&self.writer);
            if recyclable(&w, low) {
                self.rotate(&mut w)?;
            }
        }
        let mut gone = 0;
        loop {
            let victim = {
                let files = lock(&self.files);
                match files.front() {
                    Some(s) if files.len() > 1 && s.end.load(Ordering::Relaxed) <= low => s.clone(),
                    _ => break,
                }
            };
            std::fs::remove_file(&victim.path).map_err(io_err(&victim.path))?;
            lock(&self.files).pop_front();
            gone += 1;
        }
        if gone > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(gone)
    }
}

/// Whether the active segment is large and every entry in it passed, so
/// that a new one should take its place.
fn recyclable(w: &Writer, low: u64) -> bool {
    w.active.end.load(Ordering::Relaxed) <= low && w.len >= RECYCLE_BYTES && w.broken.is_none()
}

/// Where a segment stopped reading well.
struct Bad {
    at: u64,
    valid_after: bool,
    damage: JournalError,
}

/// Read a segment's records, adding its chunks and cursors. `next` is the
/// sequence number the next record must start at (`None` before the first
/// record of the journal).
fn scan(
    seg: &Arc<Segment>,
    next: &mut Option<u64>,
    chunks: &mut VecDeque<ChunkAt>,
    cursors: &mut Vec<Recovered>,
) -> Result<Option<Bad>, JournalError> {
    let size = seg.file.metadata().map_err(io_err(&seg.path))?.len();
    let mut at = 0u64;
    let mut body = Vec::new();
    while at < size {
        match read_record(seg, at, size, &mut body) {
            Ok(()) => {}
            Err(detail) => {
                let valid_after = valid_record_after(seg, at + 1, size);
                let damage = JournalError::Damaged { path: seg.path.clone(), offset: at, detail };
                return Ok(Some(Bad { at, valid_after, damage }));
            }
        }
        let body_at = at + HEAD as u64;
        let page = parse_page(&body).ok_or_else(|| JournalError::Damaged {
            path: seg.path.clone(),
            offset: at,
            detail: "a record whose CRC matches but whose layout does not".into(),
        })?;
        if let Some(expected) = *next {
            if page.first != expected {
                return Err(JournalError::Damaged {
                    path: seg.path.clone(),
                    offset: at,
                    detail: format!(
                        "the record starts at entry {} where {expected} was expected (a segment missing?)",
                        page.first
                    ),
                });
            }
        }
        let mut seq = page.first;
        for (off, len, count) in page.chunks {
            chunks.push_back(ChunkAt { first: seq, count, segment: seg.clone(), at: body_at + off, len });
            seq += count;
        }
        *next = Some(seq);
        if let Some(cursor) = page.cursor {
            cursors.push(Recovered { source: page.source, cursor, end: seq });
        }
        at = body_at + body.len() as u64;
    }
    Ok(None)
}

/// Read and check the record at `at` into `body`.
fn read_record(seg: &Segment, at: u64, size: u64, body: &mut Vec<u8>) -> Result<(), String> {
    if size - at < HEAD as u64 {
        return Err(format!("{} bytes, too short for a record", size - at));
    }
    let mut head = [0u8; HEAD];
    seg.file.read_exact_at(&mut head, at).map_err(|e| e.to_string())?;
    if &head[..4] != MAGIC {
        return Err("no record starts here".into());
    }
    let len = u64::from(u32::from_be_bytes([head[4], head[5], head[6], head[7]]));
    if len > size - at - HEAD as u64 {
        return Err(format!("a record of {len} bytes runs past the end of the file"));
    }
    body.resize(len as usize, 0);
    seg.file.read_exact_at(body, at + HEAD as u64).map_err(|e| e.to_string())?;
    let crc = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    if crc32fast::hash(body) != crc {
        return Err("the record's CRC does not match".into());
    }
    Ok(())
}

/// Whether a valid record starts anywhere from `from` on.
fn valid_record_after(seg: &Segment, from: u64, size: u64) -> bool {
    let mut window = vec![0u8; 1 << 16];
    let mut body = Vec::new();
    let mut at = from;
    while at + HEAD as u64 <= size {
        let n = ((size - at) as usize).min(window.len());
        if seg.file.read_exact_at(&mut window[..n], at).is_err() {
            return false;
        }
        for i in 0..n.saturating_sub(3) {
            if &window[i..i + 4] == MAGIC && read_record(seg, at + i as u64, size, &mut body).is_ok() {
                return true;
            }
        }
        at += n.saturating_sub(3).max(1) as u64;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(EMFILE)
    }

    #[test]
    fn segment_creation_out_of_descriptors_is_retried_until_it_works() {
        let dir = tempfile::tempdir().unwrap();
        let mut calls = 0;
        let seg = Segment::create_with(dir.path(), 7, 42, |path| {
            calls += 1;
            if calls <= 2 {
                Err(if calls == 1 { emfile() } else { io::Error::from_raw_os_error(ENFILE) })
            } else {
                open_new(path)
            }
        })
        .unwrap();
        assert_eq!(calls, 3);
        assert_eq!(seg.number, 7);
        assert_eq!(seg.end.load(Ordering::Relaxed), 42);
        assert!(dir.path().join(Segment::name(7)).is_file());
    }

    #[test]
    fn segment_creation_gives_up_after_its_tries() {
        let dir = tempfile::tempdir().unwrap();
        let mut calls = 0;
        let err = Segment::create_with(dir.path(), 1, 0, |_| {
            calls += 1;
            Err(emfile())
        })
        .err()
        .unwrap();
        assert_eq!(calls, CREATE_TRIES);
        assert!(matches!(&err, JournalError::Io { source, .. } if source.raw_os_error() == Some(EMFILE)), "{err}");
    }

    #[test]
    fn other_segment_creation_errors_are_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let mut calls = 0;
        let err = Segment::create_with(dir.path(), 1, 0, |_| {
            calls += 1;
            Err(io::Error::from_raw_os_error(28)) // ENOSPC
        });
        assert!(err.is_err());
        assert_eq!(calls, 1);
    }
}
