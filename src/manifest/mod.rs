//! Completeness manifests: what lets a SIEM *check* that the audit trail it
//! holds is complete and unaltered, instead of trusting the hand-off.
//!
//! Every output with manifests on (`manifest_interval`, default
//! [`DEFAULT_INTERVAL`]) keeps, per source, an open **window**. Each event
//! it sends carries its place in it, as `auditrelay` in the document:
//! `{"output": "splunk", "window": 17, "index": 42}`. Every interval the
//! output waits until everything it sent is confirmed, closes every
//! source's window (empty ones too) and sends one **manifest** per source
//! through the same output, after which window 18 opens. Window numbers are
//! contiguous per source × output from 1, durable across restarts and power
//! cuts: a window's state is committed in the same sled transaction as the
//! output's offset, and a closed window's manifest is stored before it is
//! sent, so a crash resends the same manifest, never another one.
//!
//! ## Format, version 1
//!
//! A manifest is an event whose document has `auditrelay.manifest`:
//!
//! | key | meaning |
//! | --- | --- |
//! | `version` | `1` |
//! | `source`, `output` | what the window counts |
//! | `window` | its sequence number |
//! | `opened`, `closed` | when the window opened and closed (RFC 3339) |
//! | `first_delivery`, `last_delivery` | when the receiver confirmed its first and last event (`null` when empty) |
//! | `count` | events the receiver confirmed: indices `0..indices` minus `rejected` |
//! | `indices` | positions used in the window |
//! | `rejected`, `rejected_total` | positions the receiver refused for good (dead letters; at most 64 listed) |
//! | `events_digest` | the chain over the window's events, hex (below) |
//! | `previous` | `digest` of the window before (64 zeros for window 1) |
//! | `journal` | journal sequence numbers of its first and last event (`null` when empty) |
//! | `host` | the agent that closed it |
//! | `digest` | SHA-256 of the manifest's canonical JSON without `digest`, hex |
//!
//! An event's digest is the SHA-256 of its document as sent (with its
//! `auditrelay` tag) in **canonical JSON**: object keys sorted by their
//! UTF-8 bytes at every level, no whitespace, strings and numbers as
//! serde_json writes them, and `event.original` (the raw event) replaced by
//! the hex SHA-256 of its UTF-8 text. A receiver that re-serialises the
//! JSON (Splunk, a relay) keeps the same digest. The chain starts at 32
//! zero bytes and, for each confirmed event in index order, becomes
//! `SHA-256(chain ‖ index as u64 BE ‖ len(event.id) as u32 BE ‖ event.id ‖
//! event digest)`.
//!
//! `auditrelay verify` ([`verify`]) recomputes all of it from what the
//! SIEM holds.

pub mod verify;

use crate::event::{Event, WindowTag};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The manifest format's version.
pub const VERSION: u64 = 1;
/// How often an output closes its windows when the config does not say.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// The shortest `manifest_interval` the config accepts.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Rejected positions a manifest lists (it counts them all).
pub const MAX_REJECTED_LISTED: usize = 64;
/// `event.dataset` of a manifest event.
pub const DATASET: &str = "auditrelay.manifest";

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        let d = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Digest(out)
    }

    /// The hex text.
    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(DIGITS[usize::from(b >> 4)]));
            s.push(char::from(DIGITS[usize::from(b & 15)]));
        }
        s
    }

    /// Parse 64 hex digits.
    pub fn parse(s: &str) -> Option<Digest> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Digest(out))
    }

    /// The chain after one more confirmed event.
    pub fn chain(&self, index: u64, id: &str, event: &Digest) -> Digest {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&self.0);
        ctx.update(&index.to_be_bytes());
        ctx.update(&(id.len() as u32).to_be_bytes());
        ctx.update(id.as_bytes());
        ctx.update(&event.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Digest(out)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).ok_or_else(|| serde::de::Error::custom("not a SHA-256 digest (64 hex digits)"))
    }
}

/// `value` as canonical JSON (see the module header).
pub fn canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // Strings always serialise.
                let _ = serde_json::to_writer(&mut *out, k);
                out.push(b':');
                canonical(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(v, out);
            }
            out.push(b']');
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

/// The digest of a document as sent: its canonical JSON with
/// `event.original` (when a string) replaced by the hex SHA-256 of its
/// UTF-8 text, so the raw event, the largest part, is hashed once as it is
/// instead of escaped and re-read.
pub fn document_digest(doc: &Value) -> Digest {
    let mut buf = Vec::with_capacity(1024);
    match doc.pointer("/event/original").and_then(Value::as_str) {
        Some(original) => {
            let mut doc = doc.clone();
            if let Some(o) = doc.pointer_mut("/event/original") {
                *o = Value::String(Digest::of(original.as_bytes()).hex());
            }
            canonical(&doc, &mut buf);
        }
        None => canonical(doc, &mut buf),
    }
    Digest::of(&buf)
}

/// The digest of an event as an output sends it (its document, with its
/// window tag).
pub fn event_digest(event: &Event) -> Digest {
    let original = Digest::of(event.raw.as_bytes()).hex();
    let mut doc = Vec::with_capacity(1024);
    event.write_document_with(&original, &mut doc);
    let mut out = Vec::with_capacity(doc.len());
    match reorder(&doc, &mut out) {
        Ok(()) => Digest::of(&out),
        // Never for a document this agent wrote; the slow path agrees.
        Err(_) => document_digest(&event.document()),
    }
}

/// [`canonical`] of JSON text that serde_json wrote (the agent's own
/// documents), without building a `Value` or parsing a string: its strings
/// and numbers are already in serde_json's form, so only object members
/// are put in key order; everything else is copied as it is. Text it does
/// not expect (whitespace, a key written with an escape, a key twice) is
/// an error, and the caller takes the slow path. A test holds it to
/// [`canonical`] of the parsed text.
fn reorder(text: &[u8], out: &mut Vec<u8>) -> Result<(), NotOurs> {
    out.reserve(text.len());
    let end = Scan { text, out, members: Vec::new(), scratch: Vec::new() }.value(0)?;
    if end == text.len() {
        Ok(())
    } else {
        Err(NotOurs)
    }
}

/// Text [`reorder`] leaves to the slow path.
#[derive(Debug)]
struct NotOurs;

/// Deepest nesting [`reorder`] follows (the slow path takes deeper text).
const MAX_DEPTH: usize = 64;

struct Scan<'a, 'o> {
    text: &'a [u8],
    out: &'o mut Vec<u8>,
    /// The members of the objects being written, innermost last.
    members: Vec<Member>,
    /// Where an object's members are copied to be put in order.
    scratch: Vec<u8>,
}

impl Scan<'_, '_> {
    /// Write the canonical form of the value at `at`; where it ends.
    fn value(&mut self, at: usize) -> Result<usize, NotOurs> {
        self.nested(at, 0)
    }

    fn nested(&mut self, at: usize, depth: usize) -> Result<usize, NotOurs> {
        if depth > MAX_DEPTH {
            return Err(NotOurs);
        }
        match self.text.get(at) {
            Some(b'{') => self.object(at, depth),
            Some(b'[') => {
                self.out.push(b'[');
                let mut i = at + 1;
                if self.text.get(i) == Some(&b']') {
                    self.out.push(b']');
                    return Ok(i + 1);
                }
                loop {
                    i = self.nested(i, depth + 1)?;
                    match self.text.get(i) {
                        Some(b',') => self.out.push(b','),
                        Some(b']') => {
                            self.out.push(b']');
                            return Ok(i + 1);
                        }
                        _ => return Err(NotOurs),
                    }
                    i += 1;
                }
            }
            Some(b'"') => {
                let end = string_end(self.text, at)?;
                self.out.extend_from_slice(&self.text[at..end]);
                Ok(end)
            }
            Some(_) => {
                let end = scalar_end(self.text, at)?;
                self.out.extend_from_slice(&self.text[at..end]);
                Ok(end)
            }
            None => Err(NotOurs),
        }
    }

    /// An object, written in one pass as it stands, each value canonical;
    /// then, unless its keys were in order already (the usual case for
    /// small objects), its members are moved into key order.
    fn object(&mut self, at: usize, depth: usize) -> Result<usize, NotOurs> {
        let text = self.text;
        self.out.push(b'{');
        let base = self.members.len();
        let mut i = at + 1;
        if text.get(i) == Some(&b'}') {
            self.out.push(b'}');
            return Ok(i + 1);
        }
        let end = loop {
            if text.get(i) != Some(&b'"') {
                return Err(NotOurs);
            }
            let key_start = i + 1;
            let key_end = string_end(text, i)?;
            if text[key_start..key_end - 1].contains(&b'\\') || text.get(key_end) != Some(&b':') {
                return Err(NotOurs);
            }
            let start = self.out.len();
            self.out.extend_from_slice(&text[i..=key_end]);
            i = self.nested(key_end + 1, depth + 1)?;
            // Keys without escapes are their UTF-8 bytes: compared as
            // canonical JSON sorts them.
            self.members.push(Member { key: (key_start, key_end - 1), start, end: self.out.len() });
            match text.get(i) {
                Some(b',') => {
                    self.out.push(b',');
                    i += 1;
                }
                Some(b'}') => break i + 1,
                _ => return Err(NotOurs),
            }
        };
        let key = |m: &Member| &text[m.key.0..m.key.1];
        let members = &mut self.members[base..];
        if !members.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
            members.sort_unstable_by(|a, b| key(a).cmp(key(b)));
            if members.windows(2).any(|w| key(&w[0]) == key(&w[1])) {
                return Err(NotOurs);
            }
            let from = members.iter().map(|m| m.start).min().unwrap_or(self.out.len());
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.out[from..]);
            self.out.truncate(from);
            for (n, m) in members.iter().enumerate() {
                if n > 0 {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(&self.scratch[m.start - from..m.end - from]);
            }
        }
        self.members.truncate(base);
        self.out.push(b'}');
        Ok(end)
    }
}

/// One member of an object [`reorder`] writes: its key's span in the text
/// and the span of `"key":value` in the output.
struct Member {
    key: (usize, usize),
    start: usize,
    end: usize,
}

/// Where the string starting at `at` (its opening quote) ends, past its
/// closing quote.
fn string_end(text: &[u8], at: usize) -> Result<usize, NotOurs> {
    let mut i = at + 1;
    while let Some(&b) = text.get(i) {
        match b {
            b'"' => return Ok(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Err(NotOurs)
}

/// Where the number, `true`, `false` or `null` at `at` ends.
fn scalar_end(text: &[u8], at: usize) -> Result<usize, NotOurs> {
    let len = text[at..]
        .iter()
        .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'a'..=b'z'))
        .count();
    if len == 0 {
        Err(NotOurs)
    } else {
        Ok(at + len)
    }
}

/// The durable state of one source's open window on one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Its sequence number, from 1.
    pub window: u64,
    /// When it opened.
    pub opened: DateTime<Utc>,
    /// When the receiver confirmed its first event.
    pub first_delivery: Option<DateTime<Utc>>,
    /// When the receiver confirmed its last event.
    pub last_delivery: Option<DateTime<Utc>>,
    /// Events confirmed.
    pub count: u64,
    /// Positions used by confirmed or rejected events.
    pub indices: u64,
    /// The chain over the confirmed events.
    pub chain: Digest,
    /// The previous manifest's digest.
    pub previous: Digest,
    /// Positions refused for good (the first [`MAX_REJECTED_LISTED`]).
    pub rejected: Vec<u64>,
    /// Positions refused for good, all of them.
    pub rejected_total: u64,
    /// The journal sequence numbers of its first and last event: where
    /// `auditrelay verify --config` looks up a missing event's id.
    #[serde(default)]
    pub journal: Option<(u64, u64)>,
}

impl Window {
    /// The first window of a source on an output.
    pub fn first(opened: DateTime<Utc>) -> Window {
        Window::after(1, Digest::default(), opened)
    }

    fn after(window: u64, previous: Digest, opened: DateTime<Utc>) -> Window {
        Window {
            window,
            opened,
            first_delivery: None,
            last_delivery: None,
            count: 0,
            indices: 0,
            chain: Digest::default(),
            previous,
            rejected: Vec::new(),
            rejected_total: 0,
            journal: None,
        }
    }
}

/// A closed window's manifest (the `auditrelay.manifest` object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`VERSION`].
    pub version: u64,
    /// The source.
    pub source: String,
    /// The output.
    pub output: String,
    /// The window's sequence number.
    pub window: u64,
    /// When it opened.
    pub opened: DateTime<Utc>,
    /// When it closed.
    pub closed: DateTime<Utc>,
    /// First confirmation.
    pub first_delivery: Option<DateTime<Utc>>,
    /// Last confirmation.
    pub last_delivery: Option<DateTime<Utc>>,
    /// Events confirmed.
    pub count: u64,
    /// Positions used.
    pub indices: u64,
    /// Positions refused for good (listed).
    pub rejected: Vec<u64>,
    /// Positions refused for good (all).
    pub rejected_total: u64,
    /// The chain over the confirmed events.
    pub events_digest: Digest,
    /// The previous manifest's digest.
    pub previous: Digest,
    /// The journal sequence numbers of the window's first and last event.
    #[serde(default)]
    pub journal: Option<(u64, u64)>,
    /// The agent that closed the window.
    pub host: String,
    /// SHA-256 of the rest, canonical.
    pub digest: Digest,
}

impl Manifest {
    /// What `digest` must be.
    pub fn expected_digest(&self) -> Digest {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.remove("digest");
        }
        document_digest(&v)
    }

    /// The manifest as the event an output sends.
    pub fn event(&self) -> Event {
        let body = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut fields = Map::new();
        fields.insert("@timestamp".into(), Value::String(crate::event::rfc3339(self.closed)));
        let id = format!("auditrelay-manifest:{}:{}:{}", self.output, self.source, self.window);
        fields.insert(
            "event".into(),
            serde_json::json!({ "id": id, "kind": "event", "dataset": DATASET, "action": "manifest" }),
        );
        fields.insert("labels".into(), serde_json::json!({ "source": self.source }));
        fields.insert("observer".into(), serde_json::json!({ "vendor": "auditrelay", "product": "auditrelay" }));
        fields.insert(
            "message".into(),
            Value::String(format!(
                "manifest {} of source {} on output {}: {} events",
                self.window, self.source, self.output, self.count
            )),
        );
        fields.insert("auditrelay".into(), serde_json::json!({ "manifest": body }));
        let raw = serde_json::to_string(&body).unwrap_or_default();
        Event::new(self.source.clone(), id, self.closed, fields, raw)
    }
}

/// What closing an output's windows gives, to store at once.
#[derive(Debug, Default)]
pub struct Closing {
    /// One per closed window.
    pub manifests: Vec<Manifest>,
    /// The windows that open in their place.
    pub windows: Vec<(String, Window)>,
    /// Sources no longer routed here with nothing in their window: their
    /// windows are forgotten (their last manifest was sent before).
    pub retired: Vec<String>,
}

/// One output's windows: assigns positions as batches go out, counts and
/// chains them as they are confirmed, closes them into manifests.
#[derive(Debug)]
pub struct Book {
    output: Arc<str>,
    open: BTreeMap<String, Open>,
}

#[derive(Debug)]
struct Open {
    /// As committed (with the output's offset).
    durable: Window,
    /// Positions handed out, confirmed or not.
    assigned: u64,
    /// Changed since the last commit.
    dirty: bool,
}

impl Book {
    /// The windows as stored (`loaded`), for `output`.
    pub fn new(output: &str, loaded: Vec<(String, Window)>) -> Book {
        let open = loaded
            .into_iter()
            .map(|(source, w)| {
                let assigned = w.indices;
                (source, Open { durable: w, assigned, dirty: false })
            })
            .collect();
        Book { output: output.into(), open }
    }

    /// Give `event` the next position in its source's window.
    pub fn tag(&mut self, event: &mut Event, now: DateTime<Utc>) {
        let open = self.open.entry(event.source.clone()).or_insert_with(|| Open {
            durable: Window::first(now),
            assigned: 0,
            dirty: true,
        });
        event.window =
            Some(WindowTag { output: self.output.clone(), window: open.durable.window, index: open.assigned });
        open.assigned += 1;
    }

    /// Count a sent event as the receiver answered: confirmed, or refused
    /// for good (`rejected`). Events are confirmed in the order they were
    /// tagged. `digest` is [`event_digest`] of it, when already computed.
    /// `seq` is the event's journal sequence number.
    pub fn confirm(&mut self, event: &Event, seq: u64, digest: Option<Digest>, rejected: bool, at: DateTime<Utc>) {
        let Some(tag) = &event.window else { return };
        let Some(open) = self.open.get_mut(&event.source) else { return };
        let w = &mut open.durable;
        if tag.window != w.window {
            return; // tagged before a close that could not happen: never
        }
        w.indices = w.indices.max(tag.index + 1);
        w.journal = Some(w.journal.map_or((seq, seq), |(first, last)| (first.min(seq), last.max(seq))));
        open.dirty = true;
        if rejected {
            w.rejected_total += 1;
            if w.rejected.len() < MAX_REJECTED_LISTED {
                w.rejected.push(tag.index);
            }
            return;
        }
        let digest = digest.unwrap_or_else(|| event_digest(event));
        w.chain = w.chain.chain(tag.index, &event.id, &digest);
        w.count += 1;
        w.first_delivery.get_or_insert(at);
        w.last_delivery = Some(at);
    }

    /// The windows changed since the last call, to commit with the offset.
    pub fn take_dirty(&mut self) -> Vec<(String, Window)> {
        self.open
            .iter_mut()
            .filter(|(_, o)| o.dirty)
            .map(|(s, o)| {
                o.dirty = false;
                (s.clone(), o.durable.clone())
            })
            .collect()
    }

    /// When the oldest open window opened.
    pub fn oldest(&self) -> Option<DateTime<Utc>> {
        self.open.values().map(|o| o.durable.opened).min()
    }

    /// Close the windows of `sources` (those routed to this output; one
    /// without a window gets an empty one) and of every other source with
    /// events in its window (one removed from the config: its last window).
    /// Call it only when nothing sent is unconfirmed. What it returns is
    /// stored in one transaction before any manifest is sent.
    pub fn close<'a>(&mut self, sources: impl IntoIterator<Item = &'a str>, now: DateTime<Utc>, host: &str) -> Closing {
        let routed: std::collections::BTreeSet<&str> = sources.into_iter().collect();
        for s in &routed {
            self.open.entry((*s).to_owned()).or_insert_with(|| Open {
                durable: Window::first(now),
                assigned: 0,
                dirty: true,
            });
        }
        let mut closing = Closing::default();
        let output = self.output.to_string();
        self.open.retain(|source, open| {
            let w = &open.durable;
            if !routed.contains(source.as_str()) && w.indices == 0 {
                closing.retired.push(source.clone());
                return false;
            }
            let mut m = Manifest {
                version: VERSION,
                source: source.clone(),
                output: output.clone(),
                window: w.window,
                opened: w.opened,
                closed: now,
                first_delivery: w.first_delivery,
                last_delivery: w.last_delivery,
                count: w.count,
                indices: w.indices,
                rejected: w.rejected.clone(),
                rejected_total: w.rejected_total,
                events_digest: w.chain,
                previous: w.previous,
                journal: w.journal,
                host: host.to_owned(),
                digest: Digest::default(),
            };
            m.digest = m.expected_digest();
            open.durable = Window::after(w.window + 1, m.digest, now);
            open.assigned = 0;
            open.dirty = false;
            closing.windows.push((source.clone(), open.durable.clone()));
            closing.manifests.push(m);
            true
        });
        closing
    }
}

#[cfg(test)]
mod tests;
