//! The journal: pages of events with the cursor past them, appended as
//! records to segment files (`segments.rs`, each record's bytes in
//! `record.rs`, the entries inside in `frames.rs`), read by outputs from
//! their offsets, and let go once every output has passed them.
//!
//! [`Journal`] owns the segment files and everything counted over them:
//! sequence numbers (only ever growing, handed out under one lock in file
//! order), the tail outputs are woken by (moved only once a record is
//! durable, never backwards), the bytes not yet passed by every output
//! (what the sources' back-pressure reads), and the cursors each record
//! carries until every output passed it (`delivered.rs`). It knows nothing
//! of sled: the cursor's copy in sled, the outputs' offsets and when files
//! may go are decided by [`super::State`], which composes the journal with
//! the sled stores.

use super::cursor::decode;
use super::delivered::Delivered;
use super::frames::{chunk_frames, decode_entry, encode_chunks, Entry};
use super::segments::{self, Recovered, Segments};
use super::{Cursor, Result, StateError};
use crate::event::Event;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The journal's segment files and what is counted over them.
pub struct Journal {
    segments: Arc<Segments>,
    /// Serialises appends so sequence numbers follow file order.
    append_lock: Mutex<()>,
    /// Bytes of journal chunks not yet passed by every output.
    bytes: AtomicU64,
    /// The next sequence number, updated under `append_lock`; authoritative.
    next_seq: AtomicU64,
    /// Wakes outputs when entries arrive (durable ones only); only ever
    /// moves forward.
    tail: watch::Sender<u64>,
    /// Journal records' cursors not yet passed by every output, and the
    /// newest passed, per source (see [`Journal::delivered_cursor`]).
    delivered: Mutex<Delivered>,
}

/// The journal as [`Journal::open`] found it.
pub(super) struct Opened {
    pub journal: Journal,
    /// The newest cursor the journal's records hold, per source (encoded).
    pub cursors: HashMap<String, Vec<u8>>,
}

impl Journal {
    /// Open the segment files in the state directory `dir`, cutting off a
    /// torn tail (logged). `floor`: the lowest sequence number the journal
    /// may continue from; `released`: the entries below it are passed by
    /// every output (their file may still be there).
    pub(super) fn open(dir: &Path, floor: u64, released: Option<u64>) -> Result<Opened> {
        let opened = Segments::open(dir, floor)?;
        if opened.torn > 0 {
            tracing::warn!(
                bytes = opened.torn,
                dir = %dir.join(segments::DIR).display(),
                "dropped the torn end of the journal (a write interrupted by a crash or power cut, never acknowledged to anyone); its page is fetched again from the API"
            );
        }
        let segments = Arc::new(opened.segments);
        if let Some(released) = released {
            segments.release(released);
        }
        let next = segments.next_seq();
        let (tail, _) = watch::channel(next);
        let mut delivered = Delivered::default();
        let mut cursors = HashMap::new();
        for Recovered { source, cursor, end } in opened.cursors {
            delivered.journaled(&source, end, cursor.clone());
            cursors.insert(source, cursor);
        }
        let journal = Journal {
            bytes: AtomicU64::new(segments.held_bytes()),
            segments,
            append_lock: Mutex::new(()),
            next_seq: AtomicU64::new(next),
            tail,
            delivered: Mutex::new(delivered),
        };
        Ok(Opened { journal, cursors })
    }

    /// The sequence number the next journal entry gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::SeqCst)
    }

    /// Watch the journal's tail, to wake outputs when events arrive.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tail.subscribe()
    }

    /// Bytes of events in the journal.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Number of entries in the journal.
    pub fn len(&self) -> usize {
        // Entries are numbered without gaps from the first held on.
        self.segments.first_held().map_or(0, |first| self.next_seq().saturating_sub(first) as usize)
    }

    /// Whether the journal holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read up to `max_events` entries (and about `max_bytes`) from `from`,
    /// with their sequence numbers. The first entry is returned even when it
    /// alone is larger than `max_bytes`. Only entries already durable (and
    /// told to outputs) are read.
    pub fn read(&self, from: u64, max_events: usize, max_bytes: usize) -> Result<Vec<(u64, Entry)>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let end = *self.tail.borrow();
        let mut from_chunk = from;
        'more: loop {
            let chunks = self.segments.chunks_from(from_chunk, end, 16);
            if chunks.is_empty() {
                break;
            }
            for c in &chunks {
                let v = self.segments.read(c)?;
                let frames = chunk_frames(&v).ok_or_else(|| StateError::Corrupt {
                    what: format!("journal chunk {}", c.first),
                    detail: "truncated chunk".into(),
                })?;
                for (seq, frame) in (c.first..).zip(frames) {
                    if seq < from || seq >= end {
                        continue;
                    }
                    if !out.is_empty() && (out.len() >= max_events || bytes + frame.len() > max_bytes) {
                        break 'more;
                    }
                    let entry = decode_entry(seq, frame)?;
                    bytes += frame.len();
                    out.push((seq, entry));
                }
                from_chunk = c.first + c.count;
            }
        }
        Ok(out)
    }

    /// Write entries (each event with the one output it is for, if any)
    /// and, when given, a source's cursor (encoded) as one record; returns
    /// the sequence numbers given once the record is durable (`sync`;
    /// otherwise once written). Outputs are not told yet
    /// ([`Journal::publish`]): the caller first stores the cursor's copy.
    pub(super) async fn write<'a>(
        &self,
        source: &str,
        entries: impl IntoIterator<Item = (&'a Event, Option<&'a str>)>,
        cursor: Option<&[u8]>,
        sync: bool,
    ) -> Result<Range<u64>> {
        let chunks = encode_chunks(entries);
        let added: u64 = chunks.iter().map(|(c, _)| c.len() as u64).sum();
        let (range, pos) = {
            // Sequence numbers and file position in one step; the write is
            // into the page cache and short.
            let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
            let placed = self.segments.append(source, cursor, &chunks)?;
            if let Some(c) = cursor {
                self.delivered.lock().unwrap_or_else(|p| p.into_inner()).journaled(source, placed.0.end, c.to_vec());
            }
            self.bytes.fetch_add(added, Ordering::Relaxed);
            self.next_seq.fetch_max(placed.0.end, Ordering::SeqCst);
            placed
        };
        drop(chunks);
        if !sync {
            self.segments.sync_soon();
        } else {
            let segments = self.segments.clone();
            tokio::task::spawn_blocking(move || segments.sync(pos)).await.map_err(|e| StateError::Corrupt {
                what: "journal sync".into(),
                detail: format!("task ended: {e}"),
            })??;
        }
        Ok(range)
    }

    /// Tell outputs the journal grew to `end` (never moves the tail back,
    /// whatever order concurrent appends finish in).
    pub(super) fn publish(&self, end: u64) {
        self.tail.send_if_modified(|t| {
            let grew = end > *t;
            if grew {
                *t = end;
            }
            grew
        });
    }

    /// Run `f` with the journal's tail while no page can be journaled.
    pub(super) fn at_tail<T>(&self, f: impl FnOnce(u64) -> T) -> T {
        let _append = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        f(self.next_seq())
    }

    /// Every output has committed past `low`: the records' cursors below
    /// it are delivered.
    pub(super) fn passed(&self, low: u64) {
        self.delivered.lock().unwrap_or_else(|p| p.into_inner()).passed(low);
    }

    /// Forget the entries below `low` (every output is past them); returns
    /// how many. Their files stay until [`Journal::delete_passed`].
    pub(super) fn release(&self, low: u64) -> u64 {
        let (entries, freed) = self.segments.release(low);
        let _ = self.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(freed)));
        entries
    }

    /// Whether some segment file holds nothing at or above `low`.
    pub(super) fn has_passed(&self, low: u64) -> bool {
        self.segments.has_passed(low)
    }

    /// Delete the segment files that hold nothing at or above `low`.
    pub(super) async fn delete_passed(&self, low: u64) -> Result<()> {
        let segments = self.segments.clone();
        tokio::task::spawn_blocking(move || segments.delete_passed(low)).await.map_err(|e| StateError::Corrupt {
            what: "journal cleanup".into(),
            detail: format!("task ended: {e}"),
        })??;
        Ok(())
    }

    /// The newest cursor of `source` whose record (and every record before
    /// it) every output has committed past, given their lowest offset
    /// `low`; `None` when not known yet. When no record of `source` waits,
    /// `stored` (the cursor sled holds) is read, under the lock: a record
    /// placed after this point is noted as waiting before its cursor
    /// reaches sled.
    pub(super) fn delivered_cursor(
        &self,
        source: &str,
        low: u64,
        stored: impl FnOnce() -> Result<Option<Cursor>>,
    ) -> Result<Option<Cursor>> {
        let bytes = {
            let mut d = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
            d.passed(low);
            match d.newest_passed(source) {
                Some(Some(c)) => c.to_vec(),
                Some(None) => return Ok(None),
                None => return stored(),
            }
        };
        decode(source, &bytes).map(Some)
    }

    /// The segment files (tests look at their chunks).
    #[cfg(test)]
    pub(super) fn segments(&self) -> &Segments {
        &self.segments
    }
}
