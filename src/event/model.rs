//! The event model: what the journal stores and every output encodes.

use super::fields::{message_of, unreadable_fields};
use super::path::{get, set};
use super::template::Template;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

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
    pub(super) fields: Fields,
    /// Where the output sending this copy counts it for its completeness
    /// manifests (`auditrelay.*` in the document); set by the output's
    /// driver, never journaled.
    pub window: Option<WindowTag>,
}

/// The manifest window an output put an event in: `auditrelay.output`,
/// `auditrelay.window` and `auditrelay.index` in the document it sends
/// (see `crate::manifest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowTag {
    /// The output's name.
    pub output: std::sync::Arc<str>,
    /// The window's sequence number (per source × output, from 1).
    pub window: u64,
    /// The event's position in its window (from 0).
    pub index: u64,
}

impl WindowTag {
    /// The tag as the `auditrelay` object of the document.
    pub fn value(&self) -> Value {
        serde_json::json!({ "output": &*self.output, "window": self.window, "index": self.index })
    }

    /// [`WindowTag::value`] as compact JSON, written without building it
    /// (once per event sent).
    pub fn write(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        out.extend_from_slice(b"{\"output\":");
        // Strings always serialise into a Vec.
        let _ = serde_json::to_writer(&mut *out, &*self.output);
        let _ = write!(out, ",\"window\":{},\"index\":{}}}", self.window, self.index);
    }
}

/// The ECS fields: a map built by a source, or the journaled text of the
/// document, parsed into a map only when a field is asked for.
#[derive(Clone)]
pub(super) enum Fields {
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
        Event { source, id, timestamp, raw, fields: Fields::Built(fields), window: None }
    }

    /// An event read from the journal: its fields stay JSON text until a
    /// field is asked for.
    pub fn journaled(source: String, id: String, timestamp: DateTime<Utc>, template: Template, raw: String) -> Event {
        Event {
            source,
            id,
            timestamp,
            raw,
            fields: Fields::Journaled { template, parsed: OnceLock::new() },
            window: None,
        }
    }

    /// The same event with its fields rendered as they are journaled (the
    /// map is dropped): done where events are built, in parallel, so the
    /// journal writer only copies bytes.
    pub fn into_journaled(self) -> Event {
        match self.fields {
            Fields::Built(map) => {
                let template = Template::of(&map);
                let window = self.window;
                Event { window, ..Event::journaled(self.source, self.id, self.timestamp, template, self.raw) }
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
        if let Some(tag) = &self.window {
            doc.insert("auditrelay".into(), tag.value());
        }
        Value::Object(doc)
    }

    /// Write [`Event::document`] as compact JSON: the journaled text of the
    /// fields with the raw event spliced in as `event.original`, no parsing;
    /// the window tag, when there is one, goes last.
    pub fn write_document(&self, out: &mut Vec<u8>) {
        self.write_document_with(&self.raw, out);
    }

    /// [`Event::write_document`] with `original` as `event.original`
    /// instead of the raw event (a manifest digest puts the raw event's
    /// hash there).
    pub fn write_document_with(&self, original: &str, out: &mut Vec<u8>) {
        let start = out.len();
        self.template().splice(original, out);
        if let Some(tag) = &self.window {
            if out.len() > start + 1 && out.last() == Some(&b'}') {
                out.pop();
                if out.len() > start + 1 {
                    out.push(b',');
                }
                out.extend_from_slice(b"\"auditrelay\":");
                tag.write(out);
                out.push(b'}');
            }
        }
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
