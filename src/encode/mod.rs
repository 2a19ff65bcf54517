//! Pure encoders: one [`Event`] in, the bytes of one message out.
//!
//! | module | message |
//! | --- | --- |
//! | [`json`] | the event (or the raw API JSON) as compact JSON, the body of HEC, file and syslog outputs |
//! | [`cef`] | an ArcSight CEF record, the other syslog body |
//! | [`rfc5424`] | an RFC 5424 syslog message around a JSON or CEF body |
//! | [`rfc3164`] | a BSD (RFC 3164) syslog message around a JSON or CEF body |
//! | [`leef`] | a LEEF 2.0 record, and the BSD-style syslog line QRadar expects |
//!
//! Nothing here does IO or enforces sizes: framing (octet counting or a
//! trailing LF), batching and message size limits belong to the transport.
//! Every encoder is total: any event, however hostile its values, gives a
//! well-formed message and never panics. Where a format has no way to carry a
//! character (a newline in a syslog header, the delimiter in a LEEF value) it
//! is replaced, never passed through to corrupt the framing.
//!
//! Shared by the encoders: the syslog header settings ([`SyslogHeader`],
//! [`Facility`], [`Severity`], defined in `syslog.rs` and re-exported here),
//! the device identity of CEF and LEEF headers ([`Device`]), the config
//! [`ParseError`] and small text helpers, which live in this file rather than
//! a `util.rs` because every encoder needs them.
// Tests index freely; the encoders themselves never do.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod cef;
pub mod json;
pub mod leef;
pub mod rfc3164;
pub mod rfc5424;
mod syslog;

#[cfg(test)]
mod fixtures;

pub use syslog::{Facility, Severity, SyslogHeader};

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Timelike, Utc};
use serde_json::Value;

use crate::event::{self, Event};

/// A configuration value an encoder cannot use, e.g. facility `"local9"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was being parsed (`"syslog facility"`).
    pub what: &'static str,
    /// The rejected input, cut to 64 bytes.
    pub input: String,
    /// What would have been accepted.
    pub expected: &'static str,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, input: &str, expected: &'static str) -> Self {
        Self { what, input: truncate(input, 64).to_owned(), expected }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} {:?}: expected {}", self.what, self.input, self.expected)
    }
}

impl std::error::Error for ParseError {}

/// The device named in CEF and LEEF headers. QRadar and ArcSight key their
/// parsers on vendor and product, so they stay fixed per output; the platform
/// an event came from travels in the extension (`labels.source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Device Vendor (CEF ≤63 bytes) / LEEF Vendor.
    pub vendor: String,
    /// Device Product (CEF ≤63 bytes) / LEEF Product.
    pub product: String,
    /// Device Version (CEF ≤31 bytes) / LEEF Version.
    pub version: String,
}

impl Default for Device {
    fn default() -> Self {
        Self {
            vendor: "auditrelay".to_owned(),
            product: "auditrelay".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char
/// boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// A syslog header token: at most `max` PRINTUSASCII characters (33..=126),
/// anything else replaced by `_`, `-` (NILVALUE) when empty.
pub(crate) fn header_token(s: &str, max: usize) -> String {
    let t: String = s.chars().take(max).map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect();
    if t.is_empty() {
        "-".to_owned()
    } else {
        t
    }
}

/// A field of the ECS view as text: strings as they are, numbers and
/// booleans printed, arrays of those joined with `,`. Empty gives `None`.
pub(crate) fn field_text<'a>(event: &'a Event, path: &str) -> Option<Cow<'a, str>> {
    let text = match event::get(event.fields(), path)? {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Array(items) => {
            let parts: Vec<Cow<'_, str>> = items.iter().filter_map(scalar_text).collect();
            Cow::Owned(parts.join(","))
        }
        other => scalar_text(other)?,
    };
    (!text.is_empty()).then_some(text)
}

fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) if !s.is_empty() => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// `source.ip` when it is an IP address. CEF `src` and LEEF `src`/`identSrc`
/// are typed as addresses, and a receiver may reject the whole event for a
/// bad one, so anything else is left out.
pub(crate) fn source_ip(event: &Event) -> Option<IpAddr> {
    event.str_field("source.ip").and_then(|s| s.trim().parse().ok())
}

/// The 0-10 severity CEF and LEEF use: failure 7 (high), success 3 (low),
/// anything else 5 (medium).
pub(crate) fn siem_severity(outcome: &str) -> u8 {
    match outcome {
        "failure" => 7,
        "success" => 3,
        _ => 5,
    }
}

/// The time to write in a syslog header: a leap second (which chrono keeps as
/// nanoseconds ≥ 10⁹) becomes the last instant of second 59, since RFC 5424
/// forbids `:60` and BSD parsers reject it.
pub(crate) fn header_time(ts: DateTime<Utc>) -> DateTime<Utc> {
    if ts.nanosecond() >= 1_000_000_000 {
        ts.with_nanosecond(999_999_999).unwrap_or(ts)
    } else {
        ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn helpers_cut_on_char_boundaries() {
        assert_eq!(truncate("Zoë", 3), "Zo");
        assert_eq!(truncate("日本", 2), "");
        assert_eq!(header_token("a b\u{7f}é", 10), "a_b__");
        assert_eq!(header_token("", 10), "-");
        let e = fixtures::event(json!({"event": {"category": ["iam", 3, true, null]}, "n": 5, "o": {}}));
        assert_eq!(field_text(&e, "event.category").as_deref(), Some("iam,3,true"));
        assert_eq!(field_text(&e, "n").as_deref(), Some("5"));
        assert_eq!(field_text(&e, "o"), None);
    }

    /// A small deterministic fuzz: random hostile strings everywhere, every
    /// encoder, no panic and no raw line break in any message.
    #[test]
    fn encoders_never_panic_and_never_break_lines() {
        const PALETTE: [char; 24] = [
            'a', 'Z', '0', ' ', '\t', '\r', '\n', '\0', '"', '\\', ']', '[', '|', '=', '^', 'ë', '日', '\u{2028}',
            '\u{7f}', '\u{1b}', '😀', '-', '@', ':',
        ];
        let mut seed: u64 = 0x5eed;
        let mut next = move |n: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        let text = |next: &mut dyn FnMut(usize) -> usize| -> String {
            let len = next(40);
            (0..len).map(|_| PALETTE[next(PALETTE.len())]).collect()
        };
        let delimiters = [leef::Delimiter::TAB, "^".parse().unwrap(), "x1F".parse().unwrap(), "|".parse().unwrap()];
        for _ in 0..300 {
            let outcome = ["success", "failure", "unknown"][next(3)].to_owned();
            let mut e = fixtures::event(json!({
                "event": {"action": text(&mut next), "outcome": outcome, "category": [text(&mut next), 1]},
                "user": {"name": text(&mut next), "email": text(&mut next), "id": text(&mut next)},
                "source": {"ip": if next(2) == 0 { "192.0.2.1".to_owned() } else { text(&mut next) }},
                "user_agent": {"original": text(&mut next)}, "url": {"original": text(&mut next)},
                "labels": {"source": text(&mut next)}, "message": text(&mut next)
            }));
            e.source = text(&mut next);
            e.id = text(&mut next);
            let header = SyslogHeader {
                facility: Facility::new(next(24) as u8).unwrap(),
                severity: None,
                hostname: text(&mut next),
                app_name: text(&mut next),
                procid: text(&mut next),
            };
            let device = Device { vendor: text(&mut next), product: text(&mut next), version: text(&mut next) };
            let delimiter = delimiters[next(delimiters.len())];
            let json = json::encode(&e, crate::event::Payload::Normalised);
            let cef = cef::encode(&e, &device);
            let messages = [
                rfc5424::encode(&e, &header, &json, Some(rfc5424::SdOptions::default())),
                rfc5424::encode(&e, &header, &cef, None),
                rfc3164::encode(&e, &header, &cef),
                leef::qradar_message(&e, &header, &device, delimiter),
                json,
                cef,
            ];
            for m in messages {
                assert!(!m.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)), "{}", String::from_utf8_lossy(&m));
                assert!(std::str::from_utf8(&m).is_ok());
            }
        }
    }
}
