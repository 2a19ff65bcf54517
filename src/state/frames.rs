//! What the journal's records hold: a page's entries, encoded as entry
//! frames packed into chunks (the unit a record holds and an output reads),
//! and read back without parsing the events. The journal ([`super::Journal`])
//! writes and reads them; the record around them is `record.rs`.
//!
//! # Chunks and entry frames
//!
//!
//! | what | layout |
//! | --- | --- |
//! | chunk | `0x02`, the entry count as u32, then each entry frame with its u32 length (up to ~64 KiB, an entry larger than that alone); schema 1 stored one bare entry frame per key, still read when migrating |
//! | entry frame, schema 3 and 4 | `0x03`, then source, `to` (output for retried dead letters, empty = routed), id as u32-length-prefixed UTF-8, time as i64 s + u32 ns, the ECS fields as u32-length-prefixed JSON text without `event.original`, the u32 byte offset in that text where `event.original` goes and one byte for what surrounds it (`Hole`: 0 `,"original":…` before the `event` object's closing brace, 1 the same in an empty `event`, 2 `,"event":{"original":…}` before the document's closing brace, 3 the same in an empty document), raw event JSON verbatim to the end; outputs splice the raw event into the text without parsing either |
//! | entry frame, schemas 1–2, still read | `0x01`, then source, `to`, id as u32-length-prefixed UTF-8, time as i64 s + u32 ns, ECS fields as u32-length-prefixed JSON, raw event JSON verbatim to the end |

use super::record::CHUNK_V2;
use super::{Result, StateError};
use crate::event::{unreadable_fields, Event, Hole, Template};
use serde::{Deserialize, Serialize};

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The event.
    pub event: Event,
    /// Only this output, for dead letters sent back by `dead-letters retry`;
    /// `None` = the outputs the source routes to.
    #[serde(default)]
    pub to: Option<String>,
}

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

/// Version byte of the schema-1 and -2 entry frame: fields as plain JSON.
const ENTRY_V1: u8 = 1;

/// Version byte of the schema-3 entry frame: fields as a [`Template`] (the
/// document's JSON with the place of `event.original`). 3, not 2, so that
/// an entry frame never starts like a chunk.
const ENTRY_V3: u8 = 3;

/// An entry's frame on its own (the journal writes frames straight into
/// chunks with [`encode_chunks`]).
#[cfg(test)]
pub(crate) fn encode_entry(ev: &Event, to: Option<&str>) -> Vec<u8> {
    let template = ev.template();
    let mut out = Vec::with_capacity(frame_len(ev, to, &template));
    write_entry(&mut out, ev, to, &template);
    out
}

/// The length of `ev`'s frame (see [`write_entry`]).
fn frame_len(ev: &Event, to: Option<&str>, template: &Template) -> usize {
    1 + 16 + ev.source.len() + to.map_or(0, str::len) + ev.id.len() + 12 + template.text().len() + 5 + ev.raw.len()
}

/// Append an entry's on-disk frame to `out` (see the module layout table):
/// `0x03`, then `source`, `to` (empty = none), `id` as u32-length-prefixed
/// UTF-8, the time as i64 seconds and u32 nanoseconds (big-endian), the ECS
/// fields as u32-length-prefixed JSON text, the u32 offset in that text
/// where `event.original` goes and a byte for what surrounds it ([`Hole`]),
/// and the raw event's JSON verbatim to the end. Neither the raw event nor
/// the fields are parsed on the way out: outputs splice the two.
fn write_entry(out: &mut Vec<u8>, ev: &Event, to: Option<&str>, template: &Template) {
    write_frame_head(out, ENTRY_V3, ev, to.unwrap_or(""), template.text());
    out.extend_from_slice(&(template.at() as u32).to_be_bytes());
    out.push(template.hole() as u8);
    out.extend_from_slice(ev.raw.as_bytes());
}

/// What every entry frame version starts with: the version byte, `source`,
/// `to` and `id` length-prefixed, the time, and the fields text
/// length-prefixed.
fn write_frame_head(out: &mut Vec<u8>, version: u8, ev: &Event, to: &str, fields: &[u8]) {
    out.push(version);
    for part in [ev.source.as_bytes(), to.as_bytes(), ev.id.as_bytes()] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&ev.timestamp.timestamp().to_be_bytes());
    out.extend_from_slice(&ev.timestamp.timestamp_subsec_nanos().to_be_bytes());
    out.extend_from_slice(&(fields.len() as u32).to_be_bytes());
    out.extend_from_slice(fields);
}

struct Frame<'a>(&'a [u8]);

impl<'a> Frame<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

fn decode_frame(v: &[u8]) -> Option<Result<Entry, String>> {
    let mut f = Frame(v);
    let version = f.u8()?;
    if version != ENTRY_V1 && version != ENTRY_V3 {
        return Some(Err(format!("unknown entry version {version}")));
    }
    let source = f.str()?.to_owned();
    let to = f.str()?;
    let id = f.str()?.to_owned();
    let secs = i64::from_be_bytes(f.take(8)?.try_into().ok()?);
    let nanos = f.u32()?;
    let timestamp = chrono::DateTime::from_timestamp(secs, nanos)?;
    let n = f.u32()? as usize;
    let text = f.take(n)?;
    let hole = if version == ENTRY_V3 { Some((f.u32()? as usize, f.u8()?)) } else { None };
    let raw = std::str::from_utf8(f.0).ok()?.to_owned();
    let to = (!to.is_empty()).then(|| to.to_owned());
    // A template that fails its check is parsed instead; fields that cannot
    // be read back must not block the output: the event is delivered with
    // its raw original and the reason in `error.message`.
    let template = hole.and_then(|(at, b)| Template::from_parts(text.to_vec(), at, Hole::from_byte(b)?));
    let event = match template {
        Some(t) => Event::journaled(source, id, timestamp, t, raw),
        None => {
            let fields = serde_json::from_slice(text)
                .unwrap_or_else(|e| unreadable_fields(&source, &id, timestamp, &format!("ECS fields unreadable: {e}")));
            Event::new(source, id, timestamp, fields, raw)
        }
    };
    Some(Ok(Entry { event, to }))
}

/// A chunk holds consecutive entries up to about this many bytes. One sled
/// key per chunk instead of per event cuts the store's per-key cost (insert,
/// read, delete) by the number of events in a chunk, while staying well
/// below the size at which sled moves a value out to a blob file.
const CHUNK_BYTES: usize = 64 << 10;

/// Encode entries (each event with the one output it is for, if any)
/// straight into chunks: `0x02`, the entry count as u32, then each frame
/// (see [`write_entry`]) with its u32 length (big-endian). A chunk takes
/// entries while it stays within [`CHUNK_BYTES`]; an entry larger than that
/// gets a chunk of its own. Returns each chunk with its entry count.
pub(super) fn encode_chunks<'a>(
    entries: impl IntoIterator<Item = (&'a Event, Option<&'a str>)>,
) -> Vec<(Vec<u8>, u64)> {
    let mut chunks: Vec<(Vec<u8>, u64)> = Vec::new();
    for (ev, to) in entries {
        let template = ev.template();
        let len = frame_len(ev, to, &template);
        let fits = chunks.last().is_some_and(|(c, _)| c.len() + 4 + len <= CHUNK_BYTES);
        if !fits {
            let mut c = Vec::with_capacity(CHUNK_BYTES.max(5 + 4 + len));
            c.push(CHUNK_V2);
            c.extend_from_slice(&0u32.to_be_bytes());
            chunks.push((c, 0));
        }
        if let Some((c, n)) = chunks.last_mut() {
            c.extend_from_slice(&(len as u32).to_be_bytes());
            write_entry(c, ev, to, &template);
            *n += 1;
        }
    }
    for (c, n) in &mut chunks {
        c[1..5].copy_from_slice(&(*n as u32).to_be_bytes());
    }
    chunks
}

/// A value of an older schema's sled journal as a chunk, with its entry
/// count (a schema-1 value is one bare frame).
pub(super) fn as_chunk(v: &[u8]) -> Option<(Vec<u8>, u64)> {
    if v.first() == Some(&CHUNK_V2) {
        return chunk_frames(v).map(|f| (v.to_vec(), f.len() as u64));
    }
    let mut c = Vec::with_capacity(9 + v.len());
    c.push(CHUNK_V2);
    c.extend_from_slice(&1u32.to_be_bytes());
    c.extend_from_slice(&(v.len() as u32).to_be_bytes());
    c.extend_from_slice(v);
    Some((c, 1))
}

/// The entry frames of a stored value, in order.
pub(super) fn chunk_frames(v: &[u8]) -> Option<Vec<&[u8]>> {
    if v.first() != Some(&CHUNK_V2) {
        return Some(vec![v]);
    }
    let mut f = Frame(&v[1..]);
    let n = f.u32()? as usize;
    let mut frames = Vec::with_capacity(n.min(v.len() / 4));
    for _ in 0..n {
        let len = f.u32()? as usize;
        frames.push(f.take(len)?);
    }
    f.0.is_empty().then_some(frames)
}

pub(super) fn decode_entry(seq: u64, v: &[u8]) -> Result<Entry> {
    match decode_frame(v) {
        Some(Ok(e)) => Ok(e),
        Some(Err(detail)) => Err(StateError::Corrupt { what: format!("journal entry {seq}"), detail }),
        None => Err(StateError::Corrupt { what: format!("journal entry {seq}"), detail: "truncated frame".into() }),
    }
}

/// A frame as schemas 1 and 2 wrote it: fields as plain JSON.
#[cfg(test)]
pub(crate) fn encode_entry_v1(ev: &Event) -> Vec<u8> {
    let fields = serde_json::to_vec(ev.fields()).unwrap_or_default();
    let mut out = Vec::new();
    write_frame_head(&mut out, ENTRY_V1, ev, "", &fields);
    out.extend_from_slice(ev.raw.as_bytes());
    out
}

#[cfg(test)]
mod frame_tests {
    use super::*;
    use crate::state::record::chunk_len;
    use serde_json::{json, Value};

    fn login() -> Event {
        Event::new(
            "s".into(),
            "id-é".into(),
            chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap(),
            json!({"event": {"action": "login"}, "user": {"name": "bob"}}).as_object().unwrap().clone(),
            "{\"a\":\"line\nbreak \\\" quote\"}".into(),
        )
    }

    fn document(e: &Event) -> Value {
        let mut out = Vec::new();
        e.write_document(&mut out);
        serde_json::from_slice(&out).expect("the document is JSON")
    }

    #[test]
    fn frame_round_trips_and_rejects_damage() {
        let ev = login();
        for to in [None, Some("hec".to_owned())] {
            let e = Entry { event: ev.clone(), to };
            let bytes = encode_entry(&e.event, e.to.as_deref());
            let back = decode_entry(0, &bytes).unwrap();
            assert_eq!(back, e);
            assert_eq!(document(&back.event), ev.document(), "spliced from the journaled text");
            assert_eq!(encode_entry(&back.event, back.to.as_deref()), bytes, "re-journaled as it was read");
            for cut in [0, 1, 5, 20, bytes.len() - ev.raw.len() - 3] {
                assert!(decode_entry(0, &bytes[..cut]).is_err(), "truncated at {cut}");
            }
        }
        assert!(decode_entry(0, &[9, 0, 0]).unwrap_err().to_string().contains("unknown entry version 9"));
    }

    fn sized(i: usize, raw_len: usize) -> Event {
        let raw = format!("{{\"n\":\"{}\"}}", "x".repeat(raw_len));
        let fields = json!({"event": {"action": "a"}, "n": i}).as_object().unwrap().clone();
        let mut ev = Event::new("src".into(), format!("id-{i}"), login().timestamp, fields, raw);
        if i % 2 == 0 {
            // Half of them as the journal keeps them: a template, not a map.
            ev = Event::journaled(
                ev.source.clone(),
                ev.id.clone(),
                ev.timestamp,
                ev.template().into_owned(),
                ev.raw.clone(),
            );
        }
        ev
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Chunks written in one pass hold every entry's frame, in order,
        /// each chunk as full as it can be without passing CHUNK_BYTES (an
        /// entry larger than that alone in its chunk), and read back as the
        /// events they were made of.
        #[test]
        fn chunks_hold_every_frame_in_order_and_are_filled_greedily(
            sizes in proptest::collection::vec(proptest::prop_oneof![9 => 0usize..3000, 1 => 60_000usize..70_000], 0..80),
            to in proptest::option::of("[a-z]{1,8}"),
        ) {
            let events: Vec<Event> = sizes.iter().enumerate().map(|(i, n)| sized(i, *n)).collect();
            let chunks = encode_chunks(events.iter().map(|e| (e, to.as_deref())));
            let frames: Vec<Vec<u8>> = events.iter().map(|e| encode_entry(e, to.as_deref())).collect();
            let mut next = 0;
            for (i, (c, n)) in chunks.iter().enumerate() {
                proptest::prop_assert_eq!(chunk_len(c), Some(*n));
                let inside = chunk_frames(c).expect("a well-formed chunk");
                proptest::prop_assert_eq!(inside.len() as u64, *n);
                proptest::prop_assert!(*n >= 1);
                for f in inside {
                    proptest::prop_assert_eq!(f, frames[next].as_slice());
                    let back = decode_entry(next as u64, f).unwrap();
                    proptest::prop_assert_eq!(&back.event.id, &events[next].id);
                    proptest::prop_assert_eq!(back.to.as_deref(), to.as_deref());
                    next += 1;
                }
                proptest::prop_assert!(c.len() <= CHUNK_BYTES || *n == 1, "chunk {} is {} bytes with {} entries", i, c.len(), n);
                if let Some(f) = frames.get(next).filter(|_| i + 1 < chunks.len()) {
                    proptest::prop_assert!(c.len() + 4 + f.len() > CHUNK_BYTES, "chunk {} had room for the next entry", i);
                }
            }
            proptest::prop_assert_eq!(next, events.len());
        }
    }

    #[test]
    fn schema_2_frames_are_read() {
        let ev = login();
        let old = encode_entry_v1(&ev);
        let back = decode_entry(0, &old).unwrap();
        assert_eq!(back.event, ev);
        assert_eq!(document(&back.event), ev.document());
    }

    #[test]
    fn a_damaged_template_is_parsed_or_delivered_with_the_reason() {
        let ev = login();
        let bytes = encode_entry(&ev, None);
        let hole_byte = bytes.len() - ev.raw.len() - 1;
        // The place of event.original is wrong: the text is parsed instead.
        let mut moved = bytes.clone();
        moved[hole_byte - 1] ^= 1;
        let back = decode_entry(0, &moved).unwrap().event;
        assert_eq!(back, ev);
        assert_eq!(document(&back), ev.document());
        // The text itself is damaged: delivered with the raw event and why.
        let text_at = bytes.len() - ev.raw.len() - 5 - 2;
        let mut broken = bytes.clone();
        broken[text_at] = b'[';
        let back = decode_entry(0, &broken).unwrap().event;
        assert!(back.str_field("error.message").unwrap().starts_with("ECS fields unreadable"));
        let doc = document(&back);
        assert_eq!(doc["event"]["original"], json!(ev.raw));
        assert_eq!(doc["event"]["id"], json!("id-é"));
    }
}
