//! `auditrelay verify`: check what a SIEM holds against the manifests it
//! holds.
//!
//! Input is one record per line, as a SIEM exports it:
//! - the JSON document itself (the file output, a JSON-lines archive);
//! - a Splunk export (`output_mode=json`: `{"result": {"_raw": "…"}}`, or a
//!   record with `_raw`);
//! - an HEC request body (`{"time": …, "event": {…}}`);
//! - a syslog line whose message is the JSON document (everything from
//!   the first `{`).
//!
//! Records are grouped by source (`labels.source`) and output
//! (`auditrelay.output`), then by window. A window is checked in full when
//! its manifest and the previous window's are in the input (window 1 needs
//! only its own): every one of its events was sent after the one and before
//! the other. The first manifest of a stream in the input is where checking
//! starts; the windows after the last manifest are still open and only
//! counted. Findings:
//! - a window number missing between two manifests (a manifest deleted or
//!   lost), or a manifest whose `previous` is not the digest of the one
//!   before it, or whose own digest does not match its content;
//! - positions of a checked window with no event (events lost after the
//!   hand-off), or a chain over its events that differs from the manifest's
//!   (an event altered);
//! - events beyond a window's positions: resends after a crash (the same
//!   event, by id and content, also in a later window) are counted as
//!   duplicates like identical copies; others are reported.

use super::{document_digest, Digest, Manifest};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Missing positions listed per window (all are counted).
const LISTED: usize = 20;

/// One input line, read.
#[derive(Debug)]
pub enum Record {
    /// An event with its window tag.
    Event(Tagged),
    /// A manifest.
    Manifest(Box<Manifest>),
    /// A manifest that does not read as version 1.
    BadManifest(String),
    /// JSON without a window tag (sent with manifests off, or not ours).
    Untagged,
    /// Not JSON.
    Unreadable,
}

/// An event as the SIEM holds it.
#[derive(Debug, Clone)]
pub struct Tagged {
    /// `labels.source`.
    pub source: String,
    /// `auditrelay.output`.
    pub output: String,
    /// `auditrelay.window`.
    pub window: u64,
    /// `auditrelay.index`.
    pub index: u64,
    /// `event.id`.
    pub id: String,
    /// The digest of the document.
    pub digest: Digest,
    /// The digest of the document without its tag (the same event resent
    /// in another window has the same).
    pub body: Digest,
}

/// Read one line.
pub fn read(line: &str) -> Record {
    let line = line.trim();
    if line.is_empty() {
        return Record::Untagged;
    }
    let value = match serde_json::from_str::<Value>(line) {
        Ok(v) => v,
        Err(_) => match line.find('{').map(|i| serde_json::from_str::<Value>(&line[i..])) {
            Some(Ok(v)) => v,
            _ => return Record::Unreadable,
        },
    };
    let doc = unwrap(value);
    classify(&doc)
}

/// The document inside a Splunk export record or an HEC body.
fn unwrap(v: Value) -> Value {
    let raw = v.get("result").and_then(|r| r.get("_raw")).or_else(|| v.get("_raw")).and_then(Value::as_str);
    if let Some(raw) = raw {
        return serde_json::from_str(raw).unwrap_or(Value::Null);
    }
    if v.get("auditrelay").is_none() {
        if let Some(inner) = v.get("event").filter(|e| e.get("auditrelay").is_some()) {
            return inner.clone();
        }
    }
    v
}

fn classify(doc: &Value) -> Record {
    let Some(tag) = doc.get("auditrelay") else { return Record::Untagged };
    if let Some(m) = tag.get("manifest") {
        return match serde_json::from_value::<Manifest>(m.clone()) {
            Ok(m) if m.version == super::VERSION => Record::Manifest(Box::new(m)),
            Ok(m) => Record::BadManifest(format!("version {} (this build reads {})", m.version, super::VERSION)),
            Err(e) => Record::BadManifest(e.to_string()),
        };
    }
    let num = |k: &str| tag.get(k).and_then(Value::as_u64);
    let (Some(output), Some(window), Some(index)) =
        (tag.get("output").and_then(Value::as_str), num("window"), num("index"))
    else {
        return Record::Untagged;
    };
    let text = |path: [&str; 2]| doc.get(path[0]).and_then(|v| v.get(path[1])).and_then(Value::as_str).unwrap_or("");
    let mut body = doc.clone();
    if let Value::Object(map) = &mut body {
        map.remove("auditrelay");
    }
    Record::Event(Tagged {
        source: text(["labels", "source"]).to_owned(),
        output: output.to_owned(),
        window,
        index,
        id: text(["event", "id"]).to_owned(),
        digest: document_digest(doc),
        body: document_digest(&body),
    })
}

/// What was found wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// Window numbers with no manifest between two that have one.
    MissingManifests { from: u64, to: u64 },
    /// A manifest whose digest does not match its content.
    ManifestAltered { window: u64 },
    /// A manifest whose `previous` is not the digest of the one before.
    ChainBroken { window: u64 },
    /// Two different manifests with one number.
    ConflictingManifests { window: u64 },
    /// Positions of a checked window with no event (and, looked up in the
    /// agent's journal, their `event.id`s).
    MissingEvents {
        window: u64,
        missing: u64,
        count: u64,
        indices: Vec<u64>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        ids: Vec<String>,
    },
    /// A checked window whose events do not chain to its manifest's digest.
    EventsAltered { window: u64 },
    /// Events at one position with different content.
    ConflictingEvents { window: u64, index: u64, id: String },
    /// Events beyond a window's positions that are no resend.
    UnexpectedEvents { window: u64, ids: Vec<String> },
}

/// One source × output.
#[derive(Debug, Default, Serialize)]
pub struct Stream {
    /// The source.
    pub source: String,
    /// The output.
    pub output: String,
    /// Windows checked in full.
    pub windows_checked: u64,
    /// First and last window checked.
    pub checked_range: Option<(u64, u64)>,
    /// Distinct events seen.
    pub events: u64,
    /// Copies beyond the first (identical, or resent in a later window).
    pub duplicates: u64,
    /// Windows after the last manifest (still open) and their events.
    pub open_windows: Vec<(u64, u64)>,
    /// Windows before the first manifest in the input (not checkable).
    pub before_range: u64,
    /// What is wrong.
    pub problems: Vec<Problem>,
    /// Where the agent's journal held the windows with missing events.
    #[serde(skip)]
    pub lookups: Vec<Lookup>,
}

/// A window whose missing events' ids may still be in the journal.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The window.
    pub window: u64,
    /// Its first and last journal sequence numbers.
    pub journal: (u64, u64),
    /// The `MissingEvents` problem to complete.
    pub problem: usize,
}

impl Report {
    /// Name the missing events' ids from the agent's journal: `entries`
    /// gives the journal's entries of a source from a first to a last
    /// sequence number (in order; fewer or none once the journal let them
    /// go). Returns how many windows it could name.
    pub fn name_missing(&mut self, mut entries: impl FnMut(&str, u64, u64) -> Vec<String>) -> usize {
        let mut named = 0;
        for s in &mut self.streams {
            for l in s.lookups.clone() {
                let ids = entries(&s.source, l.journal.0, l.journal.1);
                let Some(Problem::MissingEvents { indices, ids: found, .. }) = s.problems.get_mut(l.problem) else {
                    continue;
                };
                // Positions are handed out in journal order: the k-th
                // entry of the source in the window's range is index k.
                *found = indices.iter().filter_map(|i| ids.get(*i as usize).cloned()).collect();
                if !found.is_empty() {
                    named += 1;
                }
            }
        }
        named
    }
}

/// The whole report.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Per source × output.
    pub streams: Vec<Stream>,
    /// JSON records without a window tag.
    pub untagged: u64,
    /// Lines that are not JSON.
    pub unreadable: u64,
    /// Manifests this build cannot read.
    pub bad_manifests: Vec<String>,
    /// No gap, no alteration.
    pub ok: bool,
}

#[derive(Default)]
struct Gathered {
    manifests: BTreeMap<u64, Vec<Manifest>>,
    /// window → index → copies.
    events: BTreeMap<u64, BTreeMap<u64, Vec<Tagged>>>,
}

/// Check the records.
pub fn verify(records: impl IntoIterator<Item = Record>) -> Report {
    let mut report = Report::default();
    let mut streams: BTreeMap<(String, String), Gathered> = BTreeMap::new();
    for r in records {
        match r {
            Record::Event(t) => {
                let g = streams.entry((t.source.clone(), t.output.clone())).or_default();
                g.events.entry(t.window).or_default().entry(t.index).or_default().push(t);
            }
            Record::Manifest(m) => {
                let g = streams.entry((m.source.clone(), m.output.clone())).or_default();
                let same = g.manifests.entry(m.window).or_default();
                if !same.contains(&m) {
                    same.push(*m);
                }
            }
            Record::BadManifest(d) => report.bad_manifests.push(d),
            Record::Untagged => report.untagged += 1,
            Record::Unreadable => report.unreadable += 1,
        }
    }
    for ((source, output), g) in streams {
        report.streams.push(check(source, output, g));
    }
    report.ok = report.bad_manifests.is_empty() && report.streams.iter().all(|s| s.problems.is_empty());
    report
}

fn check(source: String, output: String, g: Gathered) -> Stream {
    let mut s = Stream { source, output, ..Stream::default() };
    let first = g.manifests.keys().next().copied();
    let last = g.manifests.keys().next_back().copied();
    // Manifests: their own digest, conflicts, the chain and gaps.
    let mut prev: Option<(u64, Digest)> = None;
    for (&w, ms) in &g.manifests {
        if ms.len() > 1 {
            s.problems.push(Problem::ConflictingManifests { window: w });
        }
        let m = &ms[0];
        if m.expected_digest() != m.digest {
            s.problems.push(Problem::ManifestAltered { window: w });
        }
        match prev {
            Some((p, _)) if p + 1 < w => s.problems.push(Problem::MissingManifests { from: p + 1, to: w - 1 }),
            Some((_, d)) if d != m.previous => s.problems.push(Problem::ChainBroken { window: w }),
            None if w == 1 && m.previous != Digest::default() => s.problems.push(Problem::ChainBroken { window: w }),
            _ => {}
        }
        prev = Some((w, m.digest));
    }
    // Events: ids and contents per window, for resends.
    let mut later: HashMap<(&str, Digest), BTreeSet<u64>> = HashMap::new();
    for (&w, by_index) in &g.events {
        for copies in by_index.values() {
            for t in copies {
                later.entry((t.id.as_str(), t.body)).or_default().insert(w);
            }
        }
    }
    for (&w, by_index) in &g.events {
        if g.manifests.contains_key(&w) {
            continue;
        }
        match (first, last) {
            (Some(f), _) if w < f => s.before_range += 1,
            (_, Some(l)) if w > l => s.open_windows.push((w, by_index.len() as u64)),
            (None, None) => s.open_windows.push((w, by_index.len() as u64)),
            // Between two manifests: reported as missing manifests.
            _ => {}
        }
    }
    let empty = BTreeMap::new();
    for (&w, ms) in &g.manifests {
        let m = &ms[0];
        let checkable = w == 1 || g.manifests.contains_key(&(w - 1));
        if !checkable {
            continue;
        }
        s.windows_checked += 1;
        s.checked_range = Some((s.checked_range.map_or(w, |(a, _)| a), w));
        let by_index = g.events.get(&w).unwrap_or(&empty);
        let rejected: BTreeSet<u64> = m.rejected.iter().copied().collect();
        let mut chain = Digest::default();
        let mut missing = Vec::new();
        let mut missing_count = 0u64;
        let mut altered = false;
        for index in 0..m.indices {
            let copies = by_index.get(&index);
            let Some(copies) = copies.filter(|c| !c.is_empty()) else {
                if !rejected.contains(&index) {
                    missing_count += 1;
                    if missing.len() < LISTED {
                        missing.push(index);
                    }
                }
                continue;
            };
            let t = &copies[0];
            s.events += 1;
            s.duplicates += copies.len() as u64 - 1;
            if copies.iter().any(|c| c.digest != t.digest) {
                altered = true;
                s.problems.push(Problem::ConflictingEvents { window: w, index, id: t.id.clone() });
            }
            chain = chain.chain(index, &t.id, &t.digest);
        }
        // Rejections beyond those the manifest lists may be among them.
        let unlisted = m.rejected_total.saturating_sub(rejected.len() as u64);
        let missing_count = missing_count.saturating_sub(unlisted);
        if missing_count > 0 {
            s.problems.push(Problem::MissingEvents {
                window: w,
                missing: missing_count,
                count: m.count,
                indices: missing,
                ids: Vec::new(),
            });
            if let Some(range) = m.journal {
                s.lookups.push(Lookup { window: w, journal: range, problem: s.problems.len() - 1 });
            }
        } else if chain != m.events_digest && !altered {
            s.problems.push(Problem::EventsAltered { window: w });
        }
        // Beyond the window's positions: resends or not ours.
        let mut unexpected = Vec::new();
        for copies in by_index.range(m.indices..).map(|(_, c)| c) {
            for t in copies {
                let resent = later.get(&(t.id.as_str(), t.body)).is_some_and(|ws| ws.iter().any(|&o| o > w));
                if resent {
                    s.duplicates += 1;
                } else if unexpected.len() < LISTED {
                    unexpected.push(t.id.clone());
                }
            }
        }
        if !unexpected.is_empty() {
            s.problems.push(Problem::UnexpectedEvents { window: w, ids: unexpected });
        }
    }
    s
}

impl Report {
    /// The report for a terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.streams {
            let range = s.checked_range.map_or("none".to_owned(), |(a, b)| format!("{a}–{b}"));
            out.push_str(&format!(
                "source {} → output {}: {} windows checked ({range}), {} events, {} duplicates",
                s.source, s.output, s.windows_checked, s.events, s.duplicates
            ));
            for (w, n) in &s.open_windows {
                out.push_str(&format!(", window {w} open ({n} events)"));
            }
            if s.before_range > 0 {
                out.push_str(&format!(
                    ", {} windows before the first manifest in the input (not checked)",
                    s.before_range
                ));
            }
            out.push('\n');
            for p in &s.problems {
                out.push_str("  ");
                out.push_str(&describe(p));
                out.push('\n');
            }
        }
        for d in &self.bad_manifests {
            out.push_str(&format!("unreadable manifest: {}\n", d.escape_debug()));
        }
        if self.unreadable > 0 || self.untagged > 0 {
            out.push_str(&format!(
                "{} lines not JSON, {} records without a window tag (ignored)\n",
                self.unreadable, self.untagged
            ));
        }
        let problems: usize = self.streams.iter().map(|s| s.problems.len()).sum::<usize>() + self.bad_manifests.len();
        if self.ok {
            out.push_str("verify: complete: no gap, no alteration\n");
        } else {
            out.push_str(&format!("verify: {problems} problems found\n"));
        }
        out
    }
}

fn describe(p: &Problem) -> String {
    match p {
        Problem::MissingManifests { from, to } if from == to => format!("MISSING MANIFEST: window {from}"),
        Problem::MissingManifests { from, to } => format!("MISSING MANIFESTS: windows {from}–{to}"),
        Problem::ManifestAltered { window } => {
            format!("ALTERED MANIFEST: window {window} (its digest does not match it)")
        }
        Problem::ChainBroken { window } => {
            format!("BROKEN CHAIN: manifest {window} does not follow the manifest before it")
        }
        Problem::ConflictingManifests { window } => format!("CONFLICTING MANIFESTS: two different manifests {window}"),
        Problem::MissingEvents { window, missing, count, indices, ids } => {
            let list: Vec<String> = indices.iter().map(u64::to_string).collect();
            let more = if *missing as usize > indices.len() { ", …" } else { "" };
            let mut text = format!(
                "MISSING EVENTS: window {window}: {missing} of {count} missing, at index {}{more}",
                list.join(", ")
            );
            if !ids.is_empty() {
                let ids: Vec<String> = ids.iter().map(|i| i.escape_debug().to_string()).collect();
                text.push_str(&format!(" (event.id {} from the agent's journal)", ids.join(", ")));
            }
            text
        }
        Problem::EventsAltered { window } => {
            format!("ALTERED EVENTS: window {window}: its events do not match the manifest's digest")
        }
        Problem::ConflictingEvents { window, index, id } => format!(
            "ALTERED EVENT: window {window} index {index} (event.id {}) held with different contents",
            id.escape_debug()
        ),
        Problem::UnexpectedEvents { window, ids } => format!(
            "UNEXPECTED EVENTS: window {window}: {} events beyond its manifest and not resent (first: {})",
            ids.len(),
            ids[0].escape_debug()
        ),
    }
}
