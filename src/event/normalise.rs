//! Normalisation: from a raw API event and what its connector read from
//! it ([`Normalised`]) to the journaled [`Event`], with the fields every
//! event carries, the hashed id when the API gives none, and the document
//! rendered straight to its journal text.

use super::fields::{message_of, rfc3339};
use super::model::Event;
use super::path::{get, set};
use super::template::{json, Hole, Template};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

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
pub(super) fn build(paths: Paths, time: String, id: &str, source: &str, observer: Observer) -> Map<String, Value> {
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
pub(super) fn render(paths: &Paths, time: &str, id: &str, source: &str, observer: Observer) -> Option<Template> {
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

/// Deepest nesting kept in the ECS fields; deeper values are kept as their
/// JSON text. The journal reads fields back with serde_json, whose recursion
/// limit is 128: an event nested past it could be journaled but never read,
/// and would block its outputs.
pub(super) const MAX_DEPTH: usize = 64;

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
