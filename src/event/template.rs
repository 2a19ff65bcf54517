//! The journal's document format: the ECS fields as compact JSON with the
//! place where the raw event goes (`event.original`), so an output copies
//! the text and splices the raw event in without parsing.

use serde::Serialize;
use serde_json::{Map, Value};

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
    pub(super) text: Vec<u8>,
    pub(super) at: usize,
    pub(super) hole: Hole,
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
pub(super) fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Serialising strings and `Value`s into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}
