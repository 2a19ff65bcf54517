//! The event model: the raw JSON an API returned plus a normalised view in
//! Elastic Common Schema (ECS) field names.
//!
//! An [`Event`] is what the journal stores and what every output encodes. The
//! ECS view is a nested JSON object (`{"user": {"name": "bob"}}`), built with
//! the dotted-path helpers [`set`] and [`get`]. The raw event is kept as JSON
//! text and only spliced into the document as `event.original` when an output
//! renders it, so it is stored once.
//!
//! An event read back from the journal carries its fields as the JSON text
//! that was journaled (a [`Template`]: the document without `event.original`
//! and where that goes). HEC and file outputs copy that text and splice in
//! the escaped raw event, so the fields are never parsed on the way out; the
//! map is only built when something asks for a field (syslog, CEF, LEEF).

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One audit event, as journaled and delivered.
#[derive(Clone, Serialize, Deserialize)]
#[serde(from = "EventRepr", into = "EventRepr")]
pub struct Event {
    /// `labels.source`: the `name` of the configured source.
    pub source: String,
    /// `event.id`: the API's own id, or a stable hash of the raw event.
    pub id: String,
    /// `@timestamp`: when the action happened.
    pub timestamp: DateTime<Utc>,
    /// The raw event exactly as the API returned it, as JSON text.
    pub raw: String,
    /// The normalised ECS document, without `event.original`.
    fields: Fields,
}

/// The ECS fields: a map built by a source, or the journaled text of the
/// document, parsed into a map only when a field is asked for.
#[derive(Clone)]
enum Fields {
    Built(Map<String, Value>),
    Journaled { template: Template, parsed: OnceLock<Map<String, Value>> },
}

/// The serialised shape of an [`Event`] (dead letters are stored as JSON).
#[derive(Clone, Serialize, Deserialize)]
struct EventRepr {
    source: String,
    id: String,
    timestamp: DateTime<Utc>,
    fields: Map<String, Value>,
    raw: String,
}

impl From<EventRepr> for Event {
    fn from(r: EventRepr) -> Self {
        Event::new(r.source, r.id, r.timestamp, r.fields, r.raw)
    }
}

impl From<Event> for EventRepr {
    fn from(e: Event) -> Self {
        let fields = e.fields().clone();
        EventRepr { source: e.source, id: e.id, timestamp: e.timestamp, fields, raw: e.raw }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("source", &self.source)
            .field("id", &self.id)
            .field("timestamp", &self.timestamp)
            .field("fields", self.fields())
            .field("raw", &self.raw)
            .finish()
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
            && self.id == other.id
            && self.timestamp == other.timestamp
            && self.raw == other.raw
            && self.fields() == other.fields()
    }
}

/// Where `event.original` goes in a [`Template`], and what surrounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Hole {
    /// Before the closing brace of a non-empty `event` object:
    /// `,"original":…`.
    AfterEventFields = 0,
    /// Inside an empty `event` object: `"original":…`.
    EmptyEvent = 1,
    /// Before the closing brace of a document without an `event` object:
    /// `,"event":{"original":…}`.
    AfterFields = 2,
    /// Inside an empty document: `"event":{"original":…}`.
    EmptyDocument = 3,
}

impl Hole {
    /// The hole a journal frame names, if the byte is one.
    pub fn from_byte(b: u8) -> Option<Hole> {
        match b {
            0 => Some(Hole::AfterEventFields),
            1 => Some(Hole::EmptyEvent),
            2 => Some(Hole::AfterFields),
            3 => Some(Hole::EmptyDocument),
            _ => None,
        }
    }

    fn before(self) -> &'static [u8] {
        match self {
            Hole::AfterEventFields => b",\"original\":",
            Hole::EmptyEvent => b"\"original\":",
            Hole::AfterFields => b",\"event\":{\"original\":",
            Hole::EmptyDocument => b"\"event\":{\"original\":",
        }
    }

    fn after(self) -> &'static [u8] {
        match self {
            Hole::AfterEventFields | Hole::EmptyEvent => b"",
            Hole::AfterFields | Hole::EmptyDocument => b"}",
        }
    }
}

/// The ECS fields as compact JSON (a valid object, `event.original` left
/// out) plus the byte offset where the raw event goes: the normalised
/// document is `text[..at]`, the hole's opening, the raw event as a JSON
/// string, the hole's closing, `text[at..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: Vec<u8>,
    at: usize,
    hole: Hole,
}

impl Template {
    /// Render a field map. A non-object `event` value is left out: the
    /// document's `event` is the object that carries `event.original`, as
    /// [`set`] would make it.
    pub fn of(fields: &Map<String, Value>) -> Template {
        let mut text = Vec::with_capacity(512);
        text.push(b'{');
        let mut hole = None;
        let mut first = true;
        for (k, v) in fields {
            if k == "event" && !v.is_object() {
                continue;
            }
            if !first {
                text.push(b',');
            }
            first = false;
            json(&mut text, k);
            text.push(b':');
            match v {
                Value::Object(inner) if k == "event" => {
                    text.push(b'{');
                    let mut empty = true;
                    for (ik, iv) in inner.iter().filter(|(ik, _)| *ik != "original") {
                        if !empty {
                            text.push(b',');
                        }
                        empty = false;
                        json(&mut text, ik);
                        text.push(b':');
                        json(&mut text, iv);
                    }
                    hole = Some((text.len(), if empty { Hole::EmptyEvent } else { Hole::AfterEventFields }));
                    text.push(b'}');
                }
                _ => json(&mut text, v),
            }
        }
        let (at, hole) = hole.unwrap_or((text.len(), if first { Hole::EmptyDocument } else { Hole::AfterFields }));
        text.push(b'}');
        Template { text, at, hole }
    }

    /// A template read back from the journal, checked: the text is one JSON
    /// object and the hole sits on a closing brace of the right kind. `None`
    /// when it is not (the caller falls back to parsing).
    pub fn from_parts(text: Vec<u8>, at: usize, hole: Hole) -> Option<Template> {
        let brace = text.get(at) == Some(&b'}');
        let opened = at.checked_sub(1).and_then(|i| text.get(i)) == Some(&b'{');
        let empty = matches!(hole, Hole::EmptyEvent | Hole::EmptyDocument);
        let top_level = matches!(hole, Hole::AfterFields | Hole::EmptyDocument);
        let shape = brace && opened == empty && (!top_level || at + 1 == text.len());
        let object = text.first() == Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(&text).is_ok();
        (shape && object).then_some(Template { text, at, hole })
    }

    /// The fields' JSON text (`event.original` left out).
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Byte offset of the hole in [`Template::text`].
    pub fn at(&self) -> usize {
        self.at
    }

    /// What surrounds the raw event at the hole.
    pub fn hole(&self) -> Hole {
        self.hole
    }

    /// Append the normalised document with `raw` as `event.original`.
    pub fn splice(&self, raw: &str, out: &mut Vec<u8>) {
        let (head, tail) = self.text.split_at(self.at.min(self.text.len()));
        out.reserve(self.text.len() + raw.len() + raw.len() / 8 + 32);
        out.extend_from_slice(head);
        out.extend_from_slice(self.hole.before());
        json(out, raw);
        out.extend_from_slice(self.hole.after());
        out.extend_from_slice(tail);
    }
}

/// Append `v` as compact JSON.
fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Serialising strings and `Value`s into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Which representation an output sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// The normalised ECS document, with the raw event in `event.original`.
    #[default]
    Normalised,
    /// The API's JSON untouched.
    Raw,
}

impl Event {
    /// An event with the fields a source built.
    pub fn new(source: String, id: String, timestamp: DateTime<Utc>, fields: Map<String, Value>, raw: String) -> Event {
        Event { source, id, timestamp, raw, fields: Fields::Built(fields) }
    }

    /// An event read from the journal: its fields stay JSON text until a
    /// field is asked for.
    pub fn journaled(source: String, id: String, timestamp: DateTime<Utc>, template: Template, raw: String) -> Event {
        Event { source, id, timestamp, raw, fields: Fields::Journaled { template, parsed: OnceLock::new() } }
    }

    /// The same event with its fields rendered as they are journaled (the
    /// map is dropped): done where events are built, in parallel, so the
    /// journal writer only copies bytes.
    pub fn into_journaled(self) -> Event {
        match self.fields {
            Fields::Built(map) => {
                let template = Template::of(&map);
                Event::journaled(self.source, self.id, self.timestamp, template, self.raw)
            }
            Fields::Journaled { .. } => self,
        }
    }

    /// The normalised ECS fields, without `event.original`.
    pub fn fields(&self) -> &Map<String, Value> {
        match &self.fields {
            Fields::Built(map) => map,
            Fields::Journaled { template, parsed } => parsed.get_or_init(|| {
                serde_json::from_slice(template.text()).unwrap_or_else(|e| {
                    unreadable_fields(&self.source, &self.id, self.timestamp, &format!("ECS fields unreadable: {e}"))
                })
            }),
        }
    }

    /// Replace the ECS fields.
    pub fn set_fields(&mut self, fields: Map<String, Value>) {
        self.fields = Fields::Built(fields);
    }

    /// The fields as journal text with the place of `event.original`:
    /// borrowed when the event came from the journal.
    pub fn template(&self) -> Cow<'_, Template> {
        match &self.fields {
            Fields::Built(map) => Cow::Owned(Template::of(map)),
            Fields::Journaled { template, .. } => Cow::Borrowed(template),
        }
    }

    /// The ECS document an output sends by default: the normalised fields
    /// plus `event.original`.
    pub fn document(&self) -> Value {
        let mut doc = self.fields().clone();
        set(&mut doc, "event.original", Value::String(self.raw.clone()));
        Value::Object(doc)
    }

    /// Write [`Event::document`] as compact JSON: the journaled text of the
    /// fields with the raw event spliced in as `event.original`, no parsing.
    pub fn write_document(&self, out: &mut Vec<u8>) {
        self.template().splice(&self.raw, out);
    }

    /// The representation `payload` asks for.
    pub fn payload(&self, payload: Payload) -> Value {
        match payload {
            Payload::Normalised => self.document(),
            Payload::Raw => serde_json::from_str(&self.raw).unwrap_or_else(|_| Value::String(self.raw.clone())),
        }
    }

    /// A string field of the ECS view by dotted path (`user.name`).
    pub fn str_field(&self, path: &str) -> Option<&str> {
        get(self.fields(), path).and_then(Value::as_str)
    }

    /// `event.action`, or `"event"` when the source did not say.
    pub fn action(&self) -> &str {
        self.str_field("event.action").unwrap_or("event")
    }

    /// `event.outcome`: `success`, `failure` or `unknown`.
    pub fn outcome(&self) -> &str {
        self.str_field("event.outcome").unwrap_or("unknown")
    }

    /// `message`, or a one-liner made from the action, user and outcome.
    pub fn message(&self) -> String {
        message_of(self.fields())
    }

    /// `@timestamp` in epoch seconds with a fraction, as HEC's `time` wants.
    pub fn epoch_seconds(&self) -> f64 {
        self.timestamp.timestamp() as f64 + f64::from(self.timestamp.timestamp_subsec_nanos()) / 1e9
    }

    /// `@timestamp` in epoch milliseconds (LEEF `devTime`, CEF `rt`).
    pub fn epoch_millis(&self) -> i64 {
        self.timestamp.timestamp_millis()
    }

    /// An approximate encoded size, for batching by bytes.
    pub fn approx_size(&self) -> usize {
        // The raw event is sent once inside the document; the ECS fields are
        // usually smaller than the raw. A cheap upper-bound guess is enough
        // for batching decisions.
        self.raw.len() * 2 + 256
    }
}

/// The facts a source knows about one raw event, turned into an [`Event`] by
/// [`normalise`].
#[derive(Debug, Default)]
pub struct Normalised {
    /// The API's own id, if it has one.
    pub id: Option<String>,
    /// When the action happened.
    pub timestamp: Option<DateTime<Utc>>,
    /// ECS fields by dotted path, e.g. `("user.name", "bob")`.
    pub fields: Paths,
}

/// ECS fields by dotted path, in the order a source set them. The nested
/// document is only made when the event is journaled, as text, with no map
/// of maps in between (see [`normalise_text`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Paths(Vec<(String, Value)>);

impl Paths {
    /// Set a field by dotted path: what an earlier path set at or below it
    /// is replaced, as [`set`] replaces it in a map.
    pub fn set(&mut self, path: &str, value: Value) {
        self.0.push((path.to_owned(), value));
    }

    /// The value at a dotted path of the document the paths build, as
    /// [`get`] finds it in that document.
    pub fn get(&self, path: &str) -> Option<Value> {
        for (p, v) in self.0.iter().rev() {
            if p == path {
                return Some(v.clone());
            }
            if let Some(rest) = below(path, p) {
                return v.as_object().and_then(|m| get(m, rest)).cloned();
            }
            if below(p, path).is_some() {
                // An object made of paths: build the document to read it.
                return get(&self.clone().into_map(), path).cloned();
            }
        }
        None
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The nested document, as [`set`] builds it path by path.
    pub fn into_map(self) -> Map<String, Value> {
        let mut map = Map::with_capacity(self.0.len());
        for (path, value) in self.0 {
            set(&mut map, &path, value);
        }
        map
    }
}

/// The rest of dotted path `path` below `prefix`, when `prefix` is a path
/// of its objects (`below("user.name", "user") == Some("name")`).
fn below<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?.strip_prefix('.')
}

impl Normalised {
    /// Set an ECS field by dotted path when the value is present and not
    /// empty.
    pub fn put(&mut self, path: &str, value: impl Into<Option<Value>>) -> &mut Self {
        if let Some(v) = value.into() {
            let empty = v.is_null() || v.as_str().is_some_and(str::is_empty);
            if !empty {
                self.fields.set(path, v);
            }
        }
        self
    }

    /// Set a string field from an optional `&str`.
    pub fn put_str(&mut self, path: &str, value: Option<&str>) -> &mut Self {
        self.put(path, value.map(|s| Value::String(s.to_owned())))
    }
}

/// The vendor and product an event came from.
#[derive(Debug, Clone, Copy)]
pub struct Observer {
    /// `observer.vendor`
    pub vendor: &'static str,
    /// `observer.product`
    pub product: &'static str,
}

/// Build the journaled event: fills `event.id` (hashing the raw event when
/// the API has no id), `@timestamp`, `labels.source`, `observer.*` and
/// defaults for `event.outcome` and `message`.
pub fn normalise(source: &str, observer: Observer, raw: &Value, n: Normalised, fallback_time: DateTime<Utc>) -> Event {
    normalise_text(source, observer, raw, None, n, fallback_time)
}

/// [`normalise`] for an event whose JSON text the API sent is at hand:
/// `sent` is [`as_sent`] of the bytes `raw` was parsed from, and becomes
/// `event.original` (when it is `None`, a pretty-printed or non-UTF-8
/// text, `raw` is written compact). An id made by hashing is always the
/// hash of the compact text, so it does not depend on how the event was
/// read.
pub fn normalise_text(
    source: &str,
    observer: Observer,
    raw: &Value,
    sent: Option<&str>,
    n: Normalised,
    fallback_time: DateTime<Utc>,
) -> Event {
    // `to_string` writes to a buffer directly (`Display` goes through a
    // formatter, several times slower); it cannot fail for a `Value`.
    let compact = || serde_json::to_string(raw).unwrap_or_else(|_| raw.to_string());
    let raw_text = sent.map_or_else(compact, str::to_owned);
    let id = n.id.filter(|s| !s.is_empty()).unwrap_or_else(|| match sent {
        Some(_) => hash_id(&compact()),
        None => hash_id(&raw_text),
    });
    let timestamp = n.timestamp.unwrap_or(fallback_time);
    let time = rfc3339(timestamp);
    if let Some(template) = render(&n.fields, &time, &id, source, observer) {
        return Event::journaled(source.to_owned(), id, timestamp, template, raw_text);
    }
    let fields = build(n.fields, time, &id, source, observer);
    Event::new(source.to_owned(), id, timestamp, fields, raw_text)
}

/// The ECS document of an event, without `event.original`: the source's
/// fields (sanitised) and what the agent sets, `@timestamp` (`time`) first.
fn build(paths: Paths, time: String, id: &str, source: &str, observer: Observer) -> Map<String, Value> {
    let mut fields = Map::with_capacity(paths.0.len() + 4);
    let time = Value::String(time);
    fields.insert("@timestamp".into(), time.clone());
    fields.extend(paths.into_map());
    // A vendor key under `@timestamp.` must not replace the event's time
    // (insert keeps the key first and overwrites the value).
    fields.insert("@timestamp".into(), time);
    sanitise(&mut fields, 1);
    set(&mut fields, "event.id", Value::String(id.to_owned()));
    if get(&fields, "event.outcome").is_none() {
        set(&mut fields, "event.outcome", Value::String("unknown".into()));
    }
    set(&mut fields, "labels.source", Value::String(source.to_owned()));
    set(&mut fields, "observer.vendor", Value::String(observer.vendor.to_owned()));
    set(&mut fields, "observer.product", Value::String(observer.product.to_owned()));
    if get(&fields, "message").and_then(Value::as_str).is_none() {
        let m = message_of(&fields);
        set(&mut fields, "message", Value::String(m));
    }
    fields
}

/// The journaled text of the document [`normalise_text`] builds from
/// `paths`, written straight from them: the same bytes as [`build`] and
/// [`Template::of`], without a map per object, a key per field and a
/// second pass. `None` when the paths touch what the agent sets
/// (`@timestamp`, `event.id`, `labels`, `observer`, a `message` that is not
/// a string, the `event` object itself), set one field twice, or hold a
/// value the map-building path sanitises; that path is then taken.
fn render(paths: &Paths, time: &str, id: &str, source: &str, observer: Observer) -> Option<Template> {
    let entries = &paths.0;
    // The objects the paths make, in the order they were first set. A path
    // that meets another (the same field twice, or one inside the other)
    // or needs sanitising is left to `build`.
    enum Node<'a> {
        Leaf(&'a Value),
        Branch(Vec<(&'a str, Node<'a>)>),
    }
    let mut root: Vec<(&str, Node)> = Vec::with_capacity(entries.len() + 4);
    for (p, v) in entries {
        let mut level = &mut root;
        let mut depth = 1;
        let mut segments = p.split('.').peekable();
        while let Some(key) = segments.next() {
            depth += 1;
            if depth >= MAX_DEPTH || key == RAW_VALUE_TOKEN {
                return None;
            }
            let found = level.iter().position(|(k, _)| *k == key);
            if segments.peek().is_none() {
                if found.is_some() || !plain(v, depth) {
                    return None;
                }
                level.push((key, Node::Leaf(v)));
                break;
            }
            let at = found.unwrap_or_else(|| {
                level.push((key, Node::Branch(Vec::new())));
                level.len() - 1
            });
            let Node::Branch(next) = &mut level[at].1 else { return None };
            level = next;
        }
    }
    // What the agent sets is not the source's.
    let mut outcome_set = false;
    for (k, node) in &root {
        let agent_sets = match (*k, node) {
            ("@timestamp" | "labels" | "observer", _) | ("event", Node::Leaf(_)) => true,
            ("event", Node::Branch(inner)) => {
                outcome_set = inner.iter().any(|(k, _)| *k == "outcome");
                inner.iter().any(|(k, _)| matches!(*k, "id" | "original"))
            }
            ("message", Node::Leaf(v)) => !v.is_string(),
            ("message", Node::Branch(_)) => true,
            _ => false,
        };
        if agent_sets {
            return None;
        }
    }
    fn write(out: &mut Vec<u8>, nodes: &[(&str, Node)]) {
        for (i, (k, node)) in nodes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json(out, *k);
            out.push(b':');
            match node {
                Node::Leaf(v) => json(out, *v),
                Node::Branch(inner) => {
                    out.push(b'{');
                    write(out, inner);
                    out.push(b'}');
                }
            }
        }
    }
    // A string field of the document, as `get` finds it there.
    let field = |path: &str| {
        entries.iter().find_map(|(p, v)| match below(path, p) {
            _ if p == path => v.as_str(),
            Some(rest) => v.as_object().and_then(|m| get(m, rest)).and_then(Value::as_str),
            None => None,
        })
    };
    let event_fields = |out: &mut Vec<u8>, inner: &[(&str, Node)]| {
        write(out, inner);
        if !inner.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(b"\"id\":");
        json(out, id);
        if !outcome_set {
            out.extend_from_slice(b",\"outcome\":\"unknown\"");
        }
    };

    let mut text = Vec::with_capacity(512);
    text.extend_from_slice(b"{\"@timestamp\":");
    json(&mut text, time);
    let mut at = None;
    for (k, node) in &root {
        text.push(b',');
        json(&mut text, *k);
        text.push(b':');
        match node {
            Node::Branch(inner) if *k == "event" => {
                text.push(b'{');
                event_fields(&mut text, inner);
                at = Some(text.len());
                text.push(b'}');
            }
            Node::Leaf(v) => json(&mut text, *v),
            Node::Branch(inner) => {
                text.push(b'{');
                write(&mut text, inner);
                text.push(b'}');
            }
        }
    }
    if at.is_none() {
        text.extend_from_slice(b",\"event\":{");
        event_fields(&mut text, &[]);
        at = Some(text.len());
        text.push(b'}');
    }
    text.extend_from_slice(b",\"labels\":{\"source\":");
    json(&mut text, source);
    text.extend_from_slice(b"},\"observer\":{\"vendor\":");
    json(&mut text, observer.vendor);
    text.extend_from_slice(b",\"product\":");
    json(&mut text, observer.product);
    text.push(b'}');
    if field("message").is_none() {
        let user = field("user.name").or_else(|| field("user.email")).or_else(|| field("user.id"));
        let action = field("event.action").unwrap_or("event");
        let outcome = field("event.outcome").unwrap_or("unknown");
        text.extend_from_slice(b",\"message\":");
        json(&mut text, &format!("{action} by {} ({outcome})", user.unwrap_or("unknown user")));
    }
    text.push(b'}');
    Some(Template { text, at: at.unwrap_or(0), hole: Hole::AfterEventFields })
}

/// Whether `v`, at `depth` in the document, is journaled as it is: no
/// object or array as deep as [`MAX_DEPTH`] and no key [`sanitise`]
/// renames.
fn plain(v: &Value, depth: usize) -> bool {
    match v {
        Value::Object(m) => {
            depth < MAX_DEPTH && !m.contains_key(RAW_VALUE_TOKEN) && m.values().all(|x| plain(x, depth + 1))
        }
        Value::Array(a) => depth < MAX_DEPTH && a.iter().all(|x| plain(x, depth + 1)),
        _ => true,
    }
}

/// The text [`normalise_text`] keeps as `event.original` for an event the
/// API sent as `text`: the text itself, unless it spans lines (JSON strings
/// cannot hold a raw line feed, so one in the text is layout) or is not
/// UTF-8; then `None` and the event's tree is written compact.
pub fn as_sent(text: &[u8]) -> Option<&str> {
    if text.contains(&b'\n') {
        return None;
    }
    std::str::from_utf8(text).ok()
}

/// Whether [`normalise_text`] needs the whole event's tree for `n`, whose
/// text [`as_sent`] gave as `sent`: to write it compact, or to hash it when
/// the API gave no id.
pub fn needs_tree(sent: Option<&str>, n: &Normalised) -> bool {
    sent.is_none() || n.id.as_deref().is_none_or(str::is_empty)
}

/// `message`, or a one-liner made from the action, user and outcome.
fn message_of(fields: &Map<String, Value>) -> String {
    let field = |path| get(fields, path).and_then(Value::as_str);
    if let Some(m) = field("message") {
        return m.to_owned();
    }
    let user =
        field("user.name").or_else(|| field("user.email")).or_else(|| field("user.id")).unwrap_or("unknown user");
    let action = field("event.action").unwrap_or("event");
    let outcome = field("event.outcome").unwrap_or("unknown");
    format!("{action} by {user} ({outcome})")
}

/// The fields of an event whose journaled fields cannot be read back: the
/// event is still delivered, with its raw original and the reason in
/// `error.message`, rather than blocking its outputs.
pub fn unreadable_fields(source: &str, id: &str, timestamp: DateTime<Utc>, reason: &str) -> Map<String, Value> {
    let mut m = Map::new();
    set(&mut m, "@timestamp", Value::String(rfc3339(timestamp)));
    set(&mut m, "event.id", Value::String(id.to_owned()));
    set(&mut m, "labels.source", Value::String(source.to_owned()));
    set(&mut m, "error.message", Value::String(reason.to_owned()));
    m
}

/// Deepest nesting kept in the ECS fields; deeper values are kept as their
/// JSON text. The journal reads fields back with serde_json, whose recursion
/// limit is 128: an event nested past it could be journaled but never read,
/// and would block its outputs.
const MAX_DEPTH: usize = 64;

/// serde_json (with its `raw_value` feature, which axum turns on) gives this
/// key a special meaning when reading a map back.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Make the fields safe to journal and read back: cap the nesting depth and
/// rename keys serde_json would misread.
fn sanitise(map: &mut Map<String, Value>, depth: usize) {
    if map.contains_key(RAW_VALUE_TOKEN) {
        if let Some(v) = map.remove(RAW_VALUE_TOKEN) {
            map.insert(format!("_{RAW_VALUE_TOKEN}"), v);
        }
    }
    for v in map.values_mut() {
        sanitise_value(v, depth + 1);
    }
}

fn sanitise_value(v: &mut Value, depth: usize) {
    let nested = matches!(v, Value::Object(_) | Value::Array(_));
    if nested && depth >= MAX_DEPTH {
        *v = Value::String(v.to_string());
        return;
    }
    match v {
        Value::Object(m) => sanitise(m, depth),
        Value::Array(a) => a.iter_mut().for_each(|x| sanitise_value(x, depth + 1)),
        _ => {}
    }
}

/// A stable id for an event the API gives none for: the SHA-256 of its JSON
/// text, hex, 32 characters.
pub fn hash_id(raw_text: &str) -> String {
    let digest = Sha256::digest(raw_text.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3339 UTC with as many fractional digits as the time carries (none,
/// milli, micro or nano), `Z` suffix.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Read a field of a nested object by dotted path. A key that itself
/// contains a dot (`"@timestamp"` has none, but vendors' flat ECS has
/// `"user.name"` keys) is found too.
pub fn get<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    match map.get(head)? {
        Value::Object(inner) => get(inner, rest),
        _ => None,
    }
}

/// Write a field of a nested object by dotted path, creating the objects on
/// the way and replacing a non-object in the way.
pub fn set(map: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            // Look up before `entry`, which wants an owned key: most calls
            // add to an object that is already there.
            if let Some(Value::Object(inner)) = map.get_mut(head) {
                return set(inner, rest, value);
            }
            let slot = map.entry(head.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                set(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    const OBS: Observer = Observer { vendor: "Acme", product: "Audit" };

    #[test]
    fn normalise_fills_required_fields() {
        let raw = json!({"who": "bob", "what": "login"});
        let mut n = Normalised::default();
        n.put_str("user.name", Some("bob")).put_str("event.action", Some("login"));
        n.timestamp = Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap());
        let e = normalise("src", OBS, &raw, n, Utc::now());
        assert_eq!(e.str_field("event.id"), Some(e.id.as_str()));
        assert_eq!(e.id.len(), 32, "hash id when the API has none");
        assert_eq!(e.str_field("@timestamp"), Some("2024-05-01T10:00:00Z"));
        assert_eq!(e.str_field("labels.source"), Some("src"));
        assert_eq!(e.str_field("observer.vendor"), Some("Acme"));
        assert_eq!(e.outcome(), "unknown");
        assert_eq!(e.message(), "login by bob (unknown)");
        let doc = e.document();
        assert_eq!(doc["event"]["original"], json!(raw.to_string()));
        assert_eq!(e.payload(Payload::Raw), raw);
    }

    #[test]
    fn write_document_matches_document() {
        let raw = json!({"id": 1, "msg": "a \"quote\" and\nnewline"});
        let mut n = Normalised::default();
        n.put_str("event.action", Some("login")).put_str("user.name", Some("bob"));
        n.timestamp = Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap());
        let e = normalise("src", OBS, &raw, n, Utc::now());
        let mut out = Vec::new();
        e.write_document(&mut out);
        assert_eq!(out, serde_json::to_vec(&e.document()).unwrap());
        // Without an `event` object in the fields, one is added.
        let mut bare = e.clone();
        bare.set_fields(Map::new());
        let mut out = Vec::new();
        bare.write_document(&mut out);
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), bare.document());
    }

    #[test]
    fn into_journaled_keeps_the_document_and_the_fields() {
        let raw = json!({"who": "bob", "what": "login", "deep": {"a": [1, 2, {"b": null}]}});
        let mut n = Normalised::default();
        n.put_str("user.name", Some("bob")).put("labels.deep", raw["deep"].clone());
        let built = normalise("src", OBS, &raw, n, Utc::now());
        let frozen = built.clone().into_journaled();
        assert!(matches!(frozen.fields, Fields::Journaled { .. }));
        assert_eq!(frozen, built);
        assert_eq!(frozen.document(), built.document());
        assert_eq!(frozen.clone().into_journaled(), frozen);
    }

    /// An event read from the API's text keeps that text as
    /// `event.original` (numbers, escapes and spacing as sent), except
    /// a pretty-printed one, written compact; a hashed id is the same
    /// whichever way the event was read, and so is everything else.
    #[test]
    fn normalise_text_keeps_the_text_as_sent_and_the_id_of_the_parsed_path() {
        let obs = Observer { vendor: "V", product: "P" };
        let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        for (text, verbatim) in [
            (r#"{"a":1,"b":"x"}"#, true),
            (r#"{"a": 1.0e3, "b": "caf\u00e9", "c": [1, 2]}"#, true),
            ("{\n  \"a\": 1,\n  \"b\": \"x\"\n}", false),
        ] {
            let raw: Value = serde_json::from_str(text).unwrap();
            let compact = serde_json::to_string(&raw).unwrap();
            for id in [None, Some("api-id".to_owned())] {
                let n = || Normalised { id: id.clone(), ..Default::default() };
                let parsed = normalise("s", obs, &raw, n(), t);
                let sent = normalise_text("s", obs, &raw, as_sent(text.as_bytes()), n(), t);
                assert_eq!(sent.raw, if verbatim { text } else { compact.as_str() }, "{text}");
                assert_eq!(parsed.raw, compact);
                assert_eq!(sent.id, parsed.id, "{text}");
                assert_eq!(sent.id, id.clone().unwrap_or_else(|| hash_id(&compact)));
                assert_eq!(sent.fields(), parsed.fields());
                assert_eq!(sent.document()["event"]["original"], Value::String(sent.raw.clone()));
            }
        }
        // Text that is not UTF-8 (never the case for text that parsed) is
        // written compact rather than lost.
        let raw = json!({"a": 1});
        let e = normalise_text("s", obs, &raw, as_sent(b"{\"a\":\xff}"), Normalised::default(), t);
        assert_eq!(e.raw, r#"{"a":1}"#);
    }

    #[test]
    fn hash_id_is_stable_and_distinct() {
        assert_eq!(hash_id("{\"a\":1}"), hash_id("{\"a\":1}"));
        assert_ne!(hash_id("{\"a\":1}"), hash_id("{\"a\":2}"));
    }

    #[test]
    fn timestamps_keep_source_precision() {
        let t = Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap();
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        let e = Event::new("s".into(), "1".into(), t, Map::new(), "{}".into());
        assert!((e.epoch_seconds() - 1_700_000_000.123).abs() < 1e-6);
        assert_eq!(e.epoch_millis(), 1_700_000_000_123);
    }

    #[test]
    fn set_and_get_by_path() {
        let mut m = Map::new();
        set(&mut m, "a.b.c", json!(1));
        set(&mut m, "a.d", json!("x"));
        assert_eq!(get(&m, "a.b.c"), Some(&json!(1)));
        assert_eq!(get(&m, "a.d"), Some(&json!("x")));
        m.insert("user.name".into(), json!("flat"));
        assert_eq!(get(&m, "user.name"), Some(&json!("flat")));
        set(&mut m, "a.d.e", json!(2));
        assert_eq!(get(&m, "a.d.e"), Some(&json!(2)), "a scalar in the way is replaced");
    }
    fn journaled(e: &Event) -> Event {
        let t = e.template().into_owned();
        let t = Template::from_parts(t.text().to_vec(), t.at(), t.hole()).expect("a template of ours passes its check");
        Event::journaled(e.source.clone(), e.id.clone(), e.timestamp, t, e.raw.clone())
    }

    /// The spliced document is the serde document, whatever the fields.
    fn check_splice(fields: Map<String, Value>, raw: &str) {
        let e = Event::new("s".into(), "1".into(), Utc::now(), fields, raw.into());
        let j = journaled(&e);
        let mut spliced = Vec::new();
        j.write_document(&mut spliced);
        let doc: Value = serde_json::from_slice(&spliced).expect("spliced document is JSON");
        assert_eq!(doc, e.document(), "{}", String::from_utf8_lossy(&spliced));
        let mut without = e.fields().clone();
        if let Some(Value::Object(ev)) = without.get_mut("event") {
            ev.remove("original");
        } else {
            without.remove("event");
        }
        assert_eq!(j.fields(), &without, "the journaled text parses back to the fields");
    }

    #[test]
    fn splice_covers_every_hole() {
        check_splice(Map::new(), "{}");
        check_splice(json!({"a": 1}).as_object().unwrap().clone(), "x\"y");
        check_splice(json!({"event": {}}).as_object().unwrap().clone(), "{}");
        check_splice(json!({"event": {"original": "stale"}, "z": [1]}).as_object().unwrap().clone(), "{}");
        check_splice(json!({"a": {"event": {}}, "event": {"id": "1"}, "b": null}).as_object().unwrap().clone(), "\n");
        check_splice(json!({"event": "scalar", "b": 2}).as_object().unwrap().clone(), "r");
        check_splice(json!({"event": "scalar"}).as_object().unwrap().clone(), "r");
    }

    #[test]
    fn damaged_templates_are_refused() {
        let t = Template::of(json!({"event": {"id": "1"}, "a": 2}).as_object().unwrap());
        assert_eq!(t.hole(), Hole::AfterEventFields);
        assert!(Template::from_parts(t.text().to_vec(), t.at(), t.hole()).is_some());
        assert!(Template::from_parts(t.text().to_vec(), t.at() + 1, t.hole()).is_none(), "off the brace");
        assert!(Template::from_parts(t.text().to_vec(), t.at(), Hole::EmptyEvent).is_none(), "wrong kind");
        assert!(Template::from_parts(t.text().to_vec(), t.at(), Hole::AfterFields).is_none(), "not the end");
        assert!(Template::from_parts(t.text().to_vec(), 10_000, t.hole()).is_none(), "past the end");
        let mut cut = t.text().to_vec();
        cut.truncate(t.at() + 1);
        assert!(Template::from_parts(cut, t.at(), t.hole()).is_none(), "not JSON");
        assert!(Template::from_parts(b"[1,{}]".to_vec(), 4, Hole::EmptyDocument).is_none(), "not an object");
        assert_eq!(Hole::from_byte(3), Some(Hole::EmptyDocument));
        assert_eq!(Hole::from_byte(4), None);
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key =
            prop::sample::select(vec!["event", "original", "a", "b\"\\", "ü\n", "", "id"]).prop_map(str::to_owned);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// The document `render` writes is the one `build` makes, byte for
    /// byte, wherever it writes one; the usual vendor mappings take it.
    fn check_render(paths: &Paths) -> bool {
        let (time, id, source) = ("2024-05-01T10:00:00.123Z", "evt-\"1\"", "src\\1");
        let slow = Template::of(&build(paths.clone(), time.to_owned(), id, source, OBS));
        match render(paths, time, id, source, OBS) {
            Some(fast) => {
                assert_eq!(String::from_utf8_lossy(fast.text()), String::from_utf8_lossy(slow.text()), "{paths:?}");
                assert_eq!(fast, slow, "{paths:?}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn render_writes_what_build_makes_for_usual_mappings() {
        let usual: [&[(&str, Value)]; 6] = [
            &[],
            &[("event.action", json!("login")), ("user.name", json!("bob")), ("source.ip", json!("192.0.2.1"))],
            &[("user.email", json!("b@x")), ("event.outcome", json!("failure")), ("event.category", json!(["iam"]))],
            &[
                ("message", json!("as sent")),
                ("user", json!({"id": 7, "name": {"first": "x"}})),
                ("event.kind", json!(1)),
            ],
            &[("user", json!({"name": "nested", "user.name": "dotted"})), ("event.outcome", json!({"x": 1}))],
            &[("a.b.c", json!({"event": {"original": 1}})), ("", json!(null)), ("ü\"", json!([[], {}]))],
        ];
        for fields in usual {
            let mut paths = Paths::default();
            for (p, v) in fields {
                paths.set(p, v.clone());
            }
            assert!(check_render(&paths), "written directly: {paths:?}");
        }
        let special: [&[(&str, Value)]; 9] = [
            &[("@timestamp", json!("x"))],
            &[("event", json!({"a": 1}))],
            &[("event.id", json!("mine"))],
            &[("labels.tenant", json!("t"))],
            &[("message", json!(1))],
            &[("user.name", json!("a")), ("user.name", json!("b"))],
            &[("user", json!({"a": 1})), ("user.name", json!("b"))],
            &[("x", json!({"$serde_json::private::RawValue": 1}))],
            &[("event.original.x", json!(1))],
        ];
        for fields in special {
            let mut paths = Paths::default();
            for (p, v) in fields {
                paths.set(p, v.clone());
            }
            assert!(!check_render(&paths), "left to build: {paths:?}");
        }
        // Either side of the depth `build` caps values at, through values
        // and through paths.
        for (segments, levels) in [(1, 61), (1, 62), (1, 63), (2, 62), (3, 61), (60, 0), (62, 0), (63, 0), (70, 0)] {
            for deep in
                [(0..levels).fold(json!(1), |v, _| json!([v])), (0..levels).fold(json!(1), |v, _| json!({"k": v}))]
            {
                let mut paths = Paths::default();
                paths.set(&vec!["x"; segments].join("."), deep);
                let written = check_render(&paths);
                assert_eq!(written, segments + levels.max(1) < MAX_DEPTH, "{segments} segments, {levels} levels");
            }
        }
    }

    fn paths() -> impl proptest::strategy::Strategy<Value = Paths> {
        use proptest::prelude::*;
        let segment = prop::sample::select(vec![
            "event",
            "id",
            "outcome",
            "action",
            "original",
            "labels",
            "observer",
            "message",
            "@timestamp",
            "user",
            "name",
            "email",
            "x",
            "",
            "$serde_json::private::RawValue",
        ]);
        let path = prop::collection::vec(segment, 1..4).prop_map(|s| s.join("."));
        let value = prop_oneof![
            4 => json_value(),
            1 => ".{0,6}".prop_map(Value::from),
            1 => (0..3usize).prop_map(|k| json!({"name": format!("n{k}"), "$serde_json::private::RawValue": k})),
            1 => (60..70usize).prop_map(|depth| (0..depth).fold(json!(0), |v, _| json!([v]))),
            1 => (60..70usize).prop_map(|depth| (0..depth).fold(json!(0), |v, _| json!({"k": v}))),
        ];
        prop::collection::vec((path, value), 0..8).prop_map(|entries| {
            let mut paths = Paths::default();
            for (p, v) in entries {
                paths.set(&p, v);
            }
            paths
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
        #[test]
        fn render_writes_what_build_makes(paths in paths()) {
            check_render(&paths);
        }

        #[test]
        fn splice_equals_the_serialised_document(v in json_value(), raw in ".{0,12}") {
            if let Value::Object(m) = v {
                check_splice(m, &raw);
            }
        }
    }
}
