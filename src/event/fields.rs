//! What every event carries whatever its source, shared by the event
//! ([`super::model`]) and its normalisation ([`super::normalise`]): the
//! one-line `message`, the fields of an event whose journaled fields
//! cannot be read back, and the time format of `@timestamp`.

use super::path::{get, set};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// `message`, or a one-liner made from the action, user and outcome.
pub(super) fn message_of(fields: &Map<String, Value>) -> String {
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

/// RFC 3339 UTC with as many fractional digits as the time carries (none,
/// milli, micro or nano), `Z` suffix.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
