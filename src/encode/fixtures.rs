//! Fixed events for the encoders' golden tests.
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use crate::event::Event;

/// Every character some format must escape or replace.
pub const HOSTILE: &str = "a\"b]c\\d|e=f\tg\r\nh Zoë 日本";

/// An event at 2026-08-22T12:00:00.123456789Z (nanoseconds, to check that
/// encoders cut to their own precision) with these ECS fields.
pub fn event(fields: Value) -> Event {
    let fields = fields.as_object().cloned().unwrap_or_default();
    Event::new(
        "opencti".into(),
        "ev-1".into(),
        Utc.timestamp_opt(1_787_400_000, 123_456_789).unwrap(),
        fields,
        r#"{"id":"ev-1"}"#.into(),
    )
}

/// A login by bob from 10.0.0.1 that failed.
pub fn login() -> Event {
    event(json!({
        "event": {"id": "ev-1", "action": "login", "outcome": "failure", "category": ["authentication"]},
        "user": {"name": "bob", "id": "u-7"},
        "source": {"ip": "10.0.0.1"},
        "labels": {"source": "opencti"},
        "message": "login by bob (failure)"
    }))
}

/// The same shape with [`HOSTILE`] in user.name, event.action and message.
pub fn hostile() -> Event {
    event(json!({
        "event": {"id": "ev-1", "action": HOSTILE, "outcome": "success"},
        "user": {"name": HOSTILE},
        "source": {"ip": "not an ip"},
        "labels": {"source": "opencti"},
        "message": HOSTILE
    }))
}

/// A 64 KiB message, user name and action made of [`HOSTILE`] repeated.
pub fn huge() -> Event {
    let big: String = HOSTILE.repeat(64 * 1024 / HOSTILE.len() + 1);
    event(json!({
        "event": {"action": big, "outcome": "failure"},
        "user": {"name": big},
        "message": big
    }))
}
