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
//!
//! One file per concern: `model` (the [`Event`] and what an output asks
//! of it), `template` (the journal's document format, [`Template`]),
//! `normalise` (from a raw API event to an [`Event`]), `fields` (what
//! every event carries: its message, the unreadable-fields marker, the
//! time format) and `path` (dotted paths into nested objects).

mod fields;
mod model;
mod normalise;
mod path;
mod template;

#[cfg(test)]
mod tests;

pub use fields::{rfc3339, unreadable_fields};
pub use model::{Event, Payload};
pub use normalise::{as_sent, hash_id, needs_tree, normalise, normalise_text, Normalised, Observer, Paths};
pub use path::{get, set};
pub use template::{Hole, Template};
