//! Property tests of the journal (`auditrelay::state`): any interleaving of
//! appends, reads, commits (with and without dead letters), dead-letter
//! retries, garbage collection and crashes keeps every event an output has
//! not committed past.
//!
//! Each case runs a random sequence of operations against a real sled
//! database in a temporary directory and against a plain in-memory model of
//! what the journal promises, and after every operation checks that:
//!
//! - reading from each output's committed offset yields exactly the model's
//!   entries from that offset on, in order, with their sequence numbers;
//! - every dead letter committed is still there (until retried, when it is
//!   back in the journal addressed to its output);
//! - `next_seq` never decreases and equals the number of entries ever
//!   appended; cursors are the last one appended per source;
//! - the journal's `len` is the model's, and its `bytes` is 0 exactly when
//!   the journal is empty, and unchanged by a reopen.
//!
//! Two kinds of crash: `Reopen` drops the `State` (sled flushes on drop) and
//! opens the directory again; `HardCrash` copies the database directory
//! while it is open and in use, as a power cut or `kill -9` would leave it
//! (everything `append` and `commit` flushed before returning, nothing
//! after), then opens the copy.

use auditrelay::event::{self, Event, Normalised, Observer};
use auditrelay::state::{Cursor, DeadLetter, Entry, State};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

const SOURCES: [&str; 2] = ["src-a", "src-b"];
const OUTPUTS: [&str; 2] = ["hec", "syslog"];

/// What an event is made of; turned into an [`Event`] with a unique id.
#[derive(Debug, Clone)]
struct EventSpec {
    text: String,
    time: DateTime<Utc>,
}

#[derive(Debug, Clone)]
enum Op {
    /// A source journals a page (possibly empty) with its new cursor.
    Append { source: usize, events: Vec<EventSpec> },
    /// An output reads a batch from its offset (starting at the tail the
    /// first time, as `offset_or_tail` does).
    Read { output: usize, max_events: usize, max_bytes: usize },
    /// An output delivers the first `take` entries from its offset and
    /// commits past them; those whose bit is set in `dead` were rejected.
    Commit { output: usize, take: usize, dead: u8 },
    /// `dead-letters retry` for an output.
    RetryDead { output: usize },
    /// `collect_garbage` with every configured output.
    Collect,
    /// Drop the state and open the directory again.
    Reopen,
    /// Copy the live database directory, drop the state, open the copy.
    HardCrash,
}

fn text() -> impl Strategy<Value = String> {
    // Any characters: quotes, backslashes, NUL, line breaks, non-BMP.
    prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter)
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        4 => (1_700_000_000i64..1_800_000_000, 0u32..1_000_000_000),
        // Far past and future, and leap seconds (nanos ≥ 10⁹ at second 59).
        1 => (-8_000_000_000_000i64..8_000_000_000_000, 0u32..2_000_000_000),
        1 => (0i64..1_000_000, 1_000_000_000u32..2_000_000_000).prop_map(|(m, n)| (m * 60 + 59, n)),
    ]
    .prop_filter_map("a representable time", |(s, n)| DateTime::from_timestamp(s, n))
}

fn op() -> impl Strategy<Value = Op> {
    let event = (text(), time()).prop_map(|(text, time)| EventSpec { text, time });
    prop_oneof![
        4 => (0..SOURCES.len(), prop::collection::vec(event, 0..5)).prop_map(|(source, events)| Op::Append { source, events }),
        2 => (0..OUTPUTS.len(), 1usize..6, prop_oneof![Just(usize::MAX), 1usize..400])
            .prop_map(|(output, max_events, max_bytes)| Op::Read { output, max_events, max_bytes }),
        4 => (0..OUTPUTS.len(), 0usize..6, any::<u8>()).prop_map(|(output, take, dead)| Op::Commit { output, take, dead }),
        1 => (0..OUTPUTS.len()).prop_map(|output| Op::RetryDead { output }),
        2 => Just(Op::Collect),
        1 => Just(Op::Reopen),
        1 => Just(Op::HardCrash),
    ]
}

/// What the journal promises, kept in memory.
#[derive(Debug, Default)]
struct Model {
    /// Entries not yet collected, by sequence number.
    journal: BTreeMap<u64, Entry>,
    /// The journal's chunks (first sequence number → one past the last):
    /// each append (and each dead-letter retry) of these small events is one
    /// chunk, and a chunk is collected only once every entry in it is passed.
    chunks: BTreeMap<u64, u64>,
    next_seq: u64,
    offsets: BTreeMap<&'static str, u64>,
    dead: BTreeMap<&'static str, Vec<DeadLetter>>,
    cursors: BTreeMap<&'static str, Cursor>,
    /// Ids handed out so far, to keep them unique.
    ids: u64,
}

impl Model {
    fn make_event(&mut self, source: &str, spec: &EventSpec) -> Event {
        self.ids += 1;
        let raw = json!({ "id": self.ids, "who": spec.text, "nested": { "t": [spec.text, 1.5, null, true] } });
        let mut n = Normalised {
            id: Some(format!("{}-{}", self.ids, spec.text)),
            timestamp: Some(spec.time),
            ..Default::default()
        };
        n.put_str("user.name", Some(&spec.text))
            .put_str("event.action", Some("login"))
            .put("labels.extra", Some(raw.clone()));
        event::normalise(source, Observer { vendor: "Prop", product: "Test" }, &raw, n, spec.time)
    }
}

struct Harness {
    rt: tokio::runtime::Runtime,
    dirs: Vec<tempfile::TempDir>,
    state: Option<State>,
    model: Model,
    last_next_seq: u64,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy dir");
    for entry in std::fs::read_dir(from).expect("read db dir") {
        let entry = entry.expect("db dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy db file");
        }
    }
}

/// Between two attempts of [`open`] while sled still holds the lock (200
/// attempts: 2 s); the lock's release cannot be waited for otherwise.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// Open the state in `dir`. sled releases its file lock when its background
/// flusher lets go of the dropped database, a moment after the drop, so a
/// reopen in the same process retries while the lock is still held.
fn open(dir: &Path) -> State {
    for _ in 0..200 {
        match State::open(dir) {
            Err(e) if e.is_locked() => std::thread::sleep(LOCK_RETRY),
            other => return other.expect("open state"),
        }
    }
    panic!("{} still locked 2 s after the state was dropped", dir.display());
}

impl Harness {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let state = open(dir.path());
        Harness { rt, dirs: vec![dir], state: Some(state), model: Model::default(), last_next_seq: 0 }
    }

    fn st(&self) -> &State {
        self.state.as_ref().expect("state is open")
    }

    fn dir(&self) -> &Path {
        self.dirs.last().expect("a state dir").path()
    }

    /// The output's offset, set to the tail the first time (`offset_or_tail`).
    fn start(&mut self, output: &'static str) -> u64 {
        let st = self.state.as_ref().expect("state is open");
        let got = self.rt.block_on(st.offset_or_tail(output)).expect("offset_or_tail");
        let want = *self.model.offsets.entry(output).or_insert(self.model.next_seq);
        assert_eq!(got, want, "offset_or_tail of {output}");
        got
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append { source, events } => {
                let source = SOURCES[*source];
                let events: Vec<Event> = events.iter().map(|s| self.model.make_event(source, s)).collect();
                let mut cursor = self.model.cursors.get(source).cloned().unwrap_or_default();
                for e in &events {
                    cursor.take(e.timestamp, &e.id);
                }
                let range = self.rt.block_on(self.st().append(source, &events, &cursor)).expect("append");
                assert_eq!(range, self.model.next_seq..self.model.next_seq + events.len() as u64, "append range");
                if !range.is_empty() {
                    self.model.chunks.insert(range.start, range.end);
                }
                for e in events {
                    self.model.journal.insert(self.model.next_seq, Entry { event: e, to: None });
                    self.model.next_seq += 1;
                }
                self.model.cursors.insert(source, cursor);
            }
            Op::Read { output, max_events, max_bytes } => {
                let output = OUTPUTS[*output];
                let from = self.start(output);
                let got = self.st().journal().read(from, *max_events, *max_bytes).expect("read");
                let want: Vec<(u64, Entry)> =
                    self.model.journal.range(from..).map(|(s, e)| (*s, e.clone())).take(got.len()).collect();
                assert_eq!(
                    got, want,
                    "read({from}, {max_events}, {max_bytes}) is not a prefix of what {output} is owed"
                );
                let owed = self.model.journal.range(from..).count();
                assert!(got.len() <= *max_events, "read returned more than max_events");
                assert!(owed == 0 || !got.is_empty(), "read returned nothing while {owed} entries are owed");
                if *max_bytes == usize::MAX {
                    assert_eq!(got.len(), owed.min(*max_events), "read without a byte limit stopped early");
                }
            }
            Op::Commit { output, take, dead } => {
                let output = OUTPUTS[*output];
                let from = self.start(output);
                let batch = self.st().journal().read(from, (*take).max(1), usize::MAX).expect("read");
                let batch = &batch[..(*take).min(batch.len())];
                let Some((last, _)) = batch.last() else { return };
                let letters: Vec<DeadLetter> = batch
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| dead & (1 << i) != 0)
                    .map(|(i, (seq, e))| DeadLetter {
                        seq: *seq,
                        reason: format!("rejected #{i}: \"bad\"\n"),
                        at: "2024-05-01T10:00:00Z".into(),
                        event: e.event.clone(),
                    })
                    .collect();
                self.rt.block_on(self.st().commit(output, last + 1, &letters)).expect("commit");
                self.model.offsets.insert(output, last + 1);
                let dead = self.model.dead.entry(output).or_default();
                dead.extend(letters);
                dead.sort_by_key(|d| d.seq);
            }
            Op::RetryDead { output } => {
                let output = OUTPUTS[*output];
                let n = self.rt.block_on(self.st().retry_dead_letters(output)).expect("retry_dead_letters");
                let letters = self.model.dead.remove(output).unwrap_or_default();
                assert_eq!(n, letters.len(), "retry_dead_letters count");
                if n > 0 {
                    self.model.chunks.insert(self.model.next_seq, self.model.next_seq + n as u64);
                }
                for d in letters {
                    self.model
                        .journal
                        .insert(self.model.next_seq, Entry { event: d.event, to: Some(output.to_owned()) });
                    self.model.next_seq += 1;
                }
            }
            Op::Collect => {
                let outputs: Vec<String> = OUTPUTS.iter().map(|o| o.to_string()).collect();
                let deleted = self.rt.block_on(self.st().collect_garbage(&outputs)).expect("collect_garbage");
                let low = if OUTPUTS.iter().all(|o| self.model.offsets.contains_key(o)) {
                    self.model.offsets.values().copied().min().unwrap_or(0)
                } else {
                    0
                };
                let passed: Vec<(u64, u64)> =
                    self.model.chunks.iter().filter(|(_, end)| **end <= low).map(|(s, e)| (*s, *e)).collect();
                let mut gone = 0u64;
                for (start, end) in passed {
                    self.model.chunks.remove(&start);
                    gone += (start..end).filter(|q| self.model.journal.remove(q).is_some()).count() as u64;
                }
                assert_eq!(deleted, gone, "collect_garbage deleted count");
            }
            Op::Reopen => {
                let bytes = self.st().journal().bytes();
                drop(self.state.take());
                self.state = Some(open(self.dir()));
                assert_eq!(self.st().journal().bytes(), bytes, "journal_bytes changed across a reopen");
            }
            Op::HardCrash => {
                let copy = tempfile::tempdir().expect("tempdir");
                copy_dir(self.dir(), copy.path());
                drop(self.state.take());
                self.dirs.push(copy);
                self.state = Some(open(self.dir()));
            }
        }
    }

    fn check(&mut self, after: &Op) {
        let st = self.state.as_ref().expect("state is open");
        let next = st.journal().next_seq();
        assert!(next >= self.last_next_seq, "next_seq went back from {} to {next} after {after:?}", self.last_next_seq);
        assert_eq!(next, self.model.next_seq, "next_seq after {after:?}");
        self.last_next_seq = next;
        for output in OUTPUTS {
            let offset = st.offsets().get(output).expect("offset");
            assert_eq!(offset, self.model.offsets.get(output).copied(), "offset of {output} after {after:?}");
            if let Some(from) = offset {
                let got = st.journal().read(from, usize::MAX, usize::MAX).expect("read");
                let want: Vec<(u64, Entry)> = self.model.journal.range(from..).map(|(s, e)| (*s, e.clone())).collect();
                assert_eq!(got, want, "what {output} is owed from offset {from} after {after:?}");
            }
            let dead = st.dead_letters().list(output).expect("dead_letters");
            let want = self.model.dead.get(output).cloned().unwrap_or_default();
            assert_eq!(dead, want, "dead letters of {output} after {after:?}");
            assert_eq!(st.dead_letters().count(output), want.len());
        }
        for source in SOURCES {
            assert_eq!(
                st.cursors().get(source).expect("cursor"),
                self.model.cursors.get(source).cloned(),
                "cursor of {source}"
            );
        }
        assert_eq!(st.journal().len(), self.model.journal.len(), "journal_len after {after:?}");
        let bytes = st.journal().bytes();
        assert_eq!(
            bytes == 0,
            self.model.journal.is_empty(),
            "journal_bytes {bytes} with {} entries after {after:?}",
            self.model.journal.len()
        );
        let raw: usize = self.model.journal.values().map(|e| e.event.raw.len()).sum();
        assert!(bytes >= raw as u64, "journal_bytes {bytes} is less than the raw events it holds ({raw})");
    }
}

/// Cases per run: 96 by default (a few seconds in debug), `PROPTEST_CASES`
/// for a longer hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96)
}

proptest! {
    // Each case opens a sled database and flushes on every append and commit.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn journal_keeps_every_event_not_committed(ops in prop::collection::vec(op(), 1..48)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
            h.check(op);
        }
        // At the end, every output that has started reads and commits
        // everything it is owed, and the journal empties.
        for output in OUTPUTS {
            h.start(output);
            loop {
                let before = h.model.offsets[output];
                h.apply(&Op::Commit { output: OUTPUTS.iter().position(|o| *o == output).unwrap_or(0), take: 5, dead: 0 });
                h.check(&Op::Collect);
                if h.model.offsets[output] == before {
                    break;
                }
            }
        }
        h.apply(&Op::Collect);
        h.check(&Op::Collect);
        prop_assert_eq!(h.st().journal().len(), 0);
        prop_assert_eq!(h.st().journal().bytes(), 0);
    }
}

/// `n` nested arrays around `1`.
fn nested(n: usize) -> Value {
    (0..n).fold(Value::from(1), |v, _| json!([v]))
}

/// A journal entry whose ECS fields nest deeper than serde_json's recursion
/// limit (128) is appended without complaint but can never be read back:
/// `read` fails with `Corrupt`, so its output stops at that entry for good.
#[test]
fn journal_entry_with_fields_nested_past_128_levels_is_readable() {
    let h = Harness::new();
    let mut n = Normalised { id: Some("deep".into()), ..Default::default() };
    n.put("a.b", Some(nested(130)));
    let e = event::normalise("s", Observer { vendor: "V", product: "P" }, &json!({"x": 1}), n, Utc::now());
    let st = h.st();
    h.rt.block_on(st.append("s", std::slice::from_ref(&e), &Cursor::default())).expect("append");
    let got = st.journal().read(0, 10, usize::MAX);
    assert!(matches!(&got, Ok(v) if v.len() == 1 && v[0].1.event == e), "journaled event not readable: {got:?}");
}

/// The same through a configured source: an `http_json` source mapping a
/// three-level ECS path (`fields = { "a.b.c" = "/x" }`) from an API whose
/// `x` nests as deep as a response may (the body itself parses) journals an
/// event its outputs can never read. The deepest body that parses is found
/// first, so the test does not depend on the exact limit.
#[test]
fn http_json_mapped_field_nested_as_deep_as_the_body_allows_is_readable() {
    use auditrelay::sources::api::{ApiResponse, Query};
    use auditrelay::state::Window;
    struct Fixed;
    impl auditrelay::settings::secret::Env for Fixed {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
        fn read(&self, _: &Path) -> std::io::Result<String> {
            Err(std::io::ErrorKind::NotFound.into())
        }
    }
    let toml = "[[source]]\nname = \"api\"\ntype = \"http_json\"\nurl = \"https://audit.example.com/v1\"\n\
                events = \"\"\ntimestamp = \"/t\"\nfields = { \"a.b.c\" = \"/x\" }\n\
                [[output]]\nname = \"o\"\ntype = \"file\"\npath = \"-\"\n";
    let cfg = auditrelay::config::parse(toml).expect("config");
    let (api, _) = auditrelay::sources::build_api(&cfg.sources[0].kind, "source[0]", &Fixed).expect("build");
    let body = (100..200)
        .rev()
        .map(|depth| json!([{ "t": "2024-05-01T10:00:00Z", "x": nested(depth) }]).to_string())
        .find(|b| serde_json::from_str::<Value>(b).is_ok())
        .expect("some depth parses");
    let (from, to) = (DateTime::from_timestamp(1_714_557_600, 0), DateTime::from_timestamp(1_714_561_200, 0));
    let window = Window { from: from.expect("time"), to: to.expect("time") };
    let q = Query { window, page: 0, offset: 0, state: None, page_size: 100, now: window.to };
    let resp = ApiResponse { status: 200, headers: Default::default(), body: body.into_bytes().into() };
    let page = api.parse(&q, &resp).expect("the source accepts the page");
    // The poller parses events left as text one by one (one level less
    // deep than the body).
    let raw = &page.unparsed.as_ref().expect("events left as text").parse(0).expect("the event parses");
    assert_eq!(page.len(), 1);
    let e = event::normalise("api", api.observer(), raw, api.normalise(raw), window.to);
    let h = Harness::new();
    let st = h.st();
    h.rt.block_on(st.append("api", std::slice::from_ref(&e), &Cursor::default())).expect("append");
    let got = st.journal().read(0, 10, usize::MAX);
    assert!(matches!(&got, Ok(v) if v.len() == 1 && v[0].1.event == e), "journaled event not readable: {got:?}");
}

/// Walk the Sekoia source through `fuzz/regressions/sekoia/<file>` (one body
/// answering create, status and events), journal its first event and read
/// it back.
fn sekoia_answer_through_the_journal(file: &str) {
    use auditrelay::sources::api::{ApiResponse, Next, Query};
    use auditrelay::state::Window;
    struct Fixed;
    impl auditrelay::settings::secret::Env for Fixed {
        fn var(&self, _: &str) -> Option<String> {
            Some("t".into())
        }
        fn read(&self, _: &Path) -> std::io::Result<String> {
            Err(std::io::ErrorKind::NotFound.into())
        }
    }
    let toml = "[[source]]\nname = \"sek\"\ntype = \"sekoia\"\nurl = \"https://app.sekoia.io/api\"\ntoken = \"t\"\n\
                [[output]]\nname = \"o\"\ntype = \"file\"\npath = \"-\"\n";
    let cfg = auditrelay::config::parse(toml).expect("config");
    let (api, _) = auditrelay::sources::build_api(&cfg.sources[0].kind, "source[0]", &Fixed).expect("build");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/sekoia").join(file);
    let body = std::fs::read(path).expect("regression input");
    let resp = ApiResponse { status: 200, headers: Default::default(), body: body.into() };
    let (from, to) = (DateTime::from_timestamp(1_714_557_600, 0), DateTime::from_timestamp(1_714_561_200, 0));
    let window = Window { from: from.expect("time"), to: to.expect("time") };
    // Create, status, then the events step gives the item.
    let mut state = None;
    let events = loop {
        let q = Query { window, page: 0, offset: 0, state: state.as_ref(), page_size: 100, now: window.to };
        let page = api.parse(&q, &resp).expect("the source accepts the answer");
        if !page.events.is_empty() {
            break page.events;
        }
        let Next::Page(s) = page.next else { panic!("walk ended without events") };
        state = Some(s);
    };
    let e = event::normalise("sek", api.observer(), &events[0], api.normalise(&events[0]), window.to);
    let h = Harness::new();
    let st = h.st();
    h.rt.block_on(st.append("sek", std::slice::from_ref(&e), &Cursor::default())).expect("append");
    let got = st.journal().read(0, 10, usize::MAX);
    assert!(matches!(&got, Ok(v) if v.len() == 1 && v[0].1.event == e), "journaled event not readable: {got:?}");
}

/// A Sekoia item with a key of many dots (`"a.b.b.…"`, 140 of them; the body
/// itself is flat) is copied by `keep_ecs` (src/sources/sekoia/mod.rs) as an ECS
/// path, and `event::set` (src/event/path.rs) nests one object per dot: the
/// journaled fields nest 141 levels, past what the journal's decoder reads
/// back, so the entry and every one after it stay undelivered.
#[test]
fn sekoia_key_with_many_dots_is_readable_from_the_journal() {
    sekoia_answer_through_the_journal("key_with_many_dots.json");
}

/// A Sekoia item key `x.$serde_json::private::RawValue` becomes the ECS path
/// `x` → `$serde_json::private::RawValue`. serde_json (with `raw_value`, which
/// axum turns on) reads an object whose first key is that token as a raw
/// value, so the journal's decoder refuses the entry (`invalid type: map,
/// expected raw value`); with a string value it would silently replace the
/// object by the string's JSON instead.
#[test]
fn sekoia_key_naming_serde_json_raw_value_is_readable_from_the_journal() {
    sekoia_answer_through_the_journal("key_naming_serde_json_raw_value.json");
}
