//! RFC 5424 syslog messages around an already encoded body (JSON or CEF).
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA SP MSG
//! <132>1 2026-08-22T12:00:00.123456Z host auditrelay - login [auditrelay@32473 source="opencti" id="ev-1"] {...}
//! ```
//!
//! - TIMESTAMP is RFC 3339 UTC with microseconds and `Z`, as Vector writes it.
//! - Header fields are PRINTUSASCII: any other character (space, control,
//!   non-ASCII) becomes `_`, each field is cut to its RFC length (HOSTNAME
//!   255, APP-NAME 48, PROCID 128, MSGID 32), and an empty one is `-`.
//! - MSGID is `event.action`, so receivers can filter on it.
//! - STRUCTURED-DATA carries the source name and event id in a private SD-ID
//!   `auditrelay@<PEN>`; values escape `"`, `\` and `]` (§6.3.3).
//! - No BOM before MSG: Vector emits none, rsyslog and syslog-ng take UTF-8
//!   without it, and rsyslog would keep the BOM bytes inside `%msg%`.
//!
//! The body is copied as is: the JSON and CEF encoders never put a raw CR or
//! LF in it, and octet-counting framing carries any byte anyway.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::{header_time, header_token, SyslogHeader};
use crate::event::Event;

/// IANA Private Enterprise Number 32473, reserved for documentation
/// (RFC 5612); the default until a real PEN is configured.
pub const DEFAULT_PEN: u32 = 32473;

/// Longest HOSTNAME (RFC 5424 §6.2.4).
pub const HOSTNAME_MAX: usize = 255;
/// Longest APP-NAME (§6.2.5).
pub const APP_NAME_MAX: usize = 48;
/// Longest PROCID (§6.2.6).
pub const PROCID_MAX: usize = 128;
/// Longest MSGID (§6.2.7).
pub const MSGID_MAX: usize = 32;

/// The structured-data element to write: `[auditrelay@<pen> source="…" id="…"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdOptions {
    /// The IANA Private Enterprise Number in the SD-ID.
    pub pen: u32,
}

impl Default for SdOptions {
    fn default() -> Self {
        Self { pen: DEFAULT_PEN }
    }
}

/// One RFC 5424 message. `sd: None` writes STRUCTURED-DATA as `-`; an empty
/// `body` writes no MSG (and no space before it).
pub fn encode(event: &Event, header: &SyslogHeader, body: &[u8], sd: Option<SdOptions>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    encode_into(event, header, body, sd, &mut out);
    out
}

/// [`encode`], appending to `out` so a batch can reuse one buffer.
pub fn encode_into(event: &Event, header: &SyslogHeader, body: &[u8], sd: Option<SdOptions>, out: &mut Vec<u8>) {
    let mut head = String::with_capacity(128);
    // Writing into a String cannot fail.
    let _ = write!(head, "<{}>1 ", header.pri(event));
    write_timestamp(&mut head, event.timestamp);
    for (field, max) in [
        (header.hostname.as_str(), HOSTNAME_MAX),
        (header.app_name.as_str(), APP_NAME_MAX),
        (header.procid.as_str(), PROCID_MAX),
        (event.action(), MSGID_MAX),
    ] {
        head.push(' ');
        head.push_str(&header_token(field, max));
    }
    head.push(' ');
    match sd {
        Some(sd) => {
            let id = format!("auditrelay@{}", sd.pen);
            write_sd_element(&mut head, &id, &[("source", &event.source), ("id", &event.id)]);
        }
        None => head.push('-'),
    }
    out.extend_from_slice(head.as_bytes());
    if !body.is_empty() {
        out.push(b' ');
        out.extend_from_slice(body);
    }
}

/// TIMESTAMP: `YYYY-MM-DDThh:mm:ss.ffffffZ`, or `-` for a year RFC 3339
/// cannot write (before 0000 or after 9999).
fn write_timestamp(out: &mut String, ts: DateTime<Utc>) {
    let ts = header_time(ts);
    if !(0..=9999).contains(&ts.year()) {
        out.push('-');
        return;
    }
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        ts.year(),
        ts.month(),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        ts.nanosecond() / 1000
    );
}

/// One SD-ELEMENT. `sd_id` and the names are trusted constants; values are
/// escaped.
fn write_sd_element(out: &mut String, sd_id: &str, params: &[(&str, &str)]) {
    out.push('[');
    out.push_str(sd_id);
    for (name, value) in params {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        escape_sd_value(out, value);
        out.push('"');
    }
    out.push(']');
}

/// PARAM-VALUE escaping (§6.3.3): `"`, `\` and `]` get a backslash. CR, LF
/// and NUL, which the grammar allows but LF- or NUL-framed transports do not,
/// become spaces.
fn escape_sd_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' | '\0' => out.push(' '),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::fixtures::{self, HOSTILE};
    use crate::encode::{Facility, Severity};
    use chrono::TimeZone;
    use serde_json::json;

    fn header() -> SyslogHeader {
        SyslogHeader {
            facility: Facility::LOCAL0,
            hostname: "relay01.example.com".into(),
            procid: "4242".into(),
            ..SyslogHeader::default()
        }
    }

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn golden_login_with_json_body() {
        let out = encode(&fixtures::login(), &header(), br#"{"a":1}"#, Some(SdOptions::default()));
        assert_eq!(
            text(out),
            r#"<132>1 2026-08-22T12:00:00.123456Z relay01.example.com auditrelay 4242 login [auditrelay@32473 source="opencti" id="ev-1"] {"a":1}"#
        );
    }

    #[test]
    fn golden_nil_values_and_no_msg() {
        let h = SyslogHeader { app_name: String::new(), severity: Some(Severity::Informational), ..header() };
        let mut e = fixtures::event(json!({}));
        e.timestamp = Utc.with_ymd_and_hms(2026, 1, 5, 9, 3, 7).unwrap();
        let out = encode(&e, &SyslogHeader { hostname: String::new(), procid: String::new(), ..h }, b"", None);
        assert_eq!(text(out), "<134>1 2026-01-05T09:03:07.000000Z - - - event -");
    }

    #[test]
    fn golden_hostile_values() {
        let h = SyslogHeader { hostname: "my host\n".into(), app_name: "audit relay".into(), ..header() };
        let out = encode(&fixtures::hostile(), &h, "msg Zoë".as_bytes(), Some(SdOptions { pen: 1 }));
        let mut e = fixtures::hostile();
        e.source = HOSTILE.into();
        let sd = text(encode(&e, &h, b"", Some(SdOptions { pen: 1 })));
        assert_eq!(
            text(out),
            r#"<133>1 2026-08-22T12:00:00.123456Z my_host_ audit_relay 4242 a"b]c\d|e=f_g__h_Zo____ [auditrelay@1 source="opencti" id="ev-1"] msg Zoë"#
        );
        assert!(sd.ends_with(r#"[auditrelay@1 source="a\"b\]c\\d|e=f	g  h Zoë 日本" id="ev-1"]"#), "{sd}");
    }

    #[test]
    fn spec_example_sd_escaping() {
        // The reference's [T] line, parsed by rsyslog and syslog-ng as a"b]c\d.
        let mut s = String::new();
        write_sd_element(&mut s, "ex@32473", &[("user", "a\"b]c\\d")]);
        assert_eq!(s, r#"[ex@32473 user="a\"b\]c\\d"]"#);
    }

    #[test]
    fn huge_values_are_cut_in_the_header_and_kept_in_sd() {
        let mut e = fixtures::huge();
        e.id = fixtures::HOSTILE.repeat(4000);
        let out = text(encode(&e, &header(), b"x", Some(SdOptions::default())));
        assert!(!out.contains(['\r', '\n']));
        let msgid = out.split(' ').nth(5).unwrap();
        assert_eq!(msgid.len(), MSGID_MAX);
        assert!(out.len() > e.id.len());
    }

    #[test]
    fn leap_second_and_odd_years_stay_valid() {
        let mut e = fixtures::login();
        e.timestamp = Utc.with_ymd_and_hms(2016, 12, 31, 23, 59, 59).unwrap().with_nanosecond(1_500_000_000).unwrap();
        let out = text(encode(&e, &header(), b"", None));
        assert!(out.contains(" 2016-12-31T23:59:59.999999Z "), "{out}");
        e.timestamp = Utc.with_ymd_and_hms(12000, 1, 1, 0, 0, 0).unwrap();
        assert!(text(encode(&e, &header(), b"", None)).starts_with("<132>1 - relay01"));
    }
}
