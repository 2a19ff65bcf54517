//! ArcSight Common Event Format (CEF) records, a body for syslog outputs.
//!
//! ```text
//! CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|key=value key=value ...
//! CEF:0|auditrelay|auditrelay|0.1.0|login|login by bob (failure)|7|rt=1787400000123 suser=bob ...
//! ```
//!
//! - Header fields escape `\` and `|` with a backslash; CR and LF, which the
//!   header cannot carry, become spaces. Each field is cut to its ArcSight
//!   length before escaping (vendor and product 63, version 31, signature id
//!   1023, name 512). The limits are counted in bytes, ending on a char
//!   boundary: never more than ArcSight's character count, whatever the
//!   script.
//! - Extension values escape `\` and `=` with a backslash and write CR and LF
//!   as `\r` and `\n`; `|` needs no escape there. NUL, which has no escape,
//!   becomes a space anywhere in the record. The record never holds a raw
//!   line break, so it is safe in LF-framed syslog.
//! - SignatureID is `event.action` (stable, never translated); Name is the
//!   `message`; Severity is 7 for a failure, 3 for a success, 5 otherwise.
//! - Extension keys come from ECS, in a fixed order, each only when present:
//!   `rt` (epoch ms), `suser` (user.name or user.email), `suid` (user.id),
//!   `src` (source.ip, only when it is an IP address), `outcome`, `act`,
//!   `cat` (event.category, arrays joined with `,`),
//!   `requestClientApplication` (user_agent.original), `externalId`
//!   (event.id), `cs1Label=source cs1=` (labels.source) and `msg` last, so a
//!   receiver that truncates long lines loses the least.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::{field_text, siem_severity, source_ip, truncate, Device};
use crate::event::Event;

/// Longest Device Vendor and Device Product, in bytes.
pub const VENDOR_MAX: usize = 63;
/// Longest Device Version, in bytes.
pub const VERSION_MAX: usize = 31;
/// Longest Device Event Class ID (our SignatureID), in bytes.
pub const SIGNATURE_MAX: usize = 1023;
/// Longest Name, in bytes.
pub const NAME_MAX: usize = 512;

/// One CEF record.
pub fn encode(event: &Event, device: &Device) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + event.raw.len());
    encode_into(event, device, &mut out);
    out
}

/// [`encode`], appending to `out` so a batch can reuse one buffer.
pub fn encode_into(event: &Event, device: &Device, out: &mut Vec<u8>) {
    let message = event.message();
    let action = event.action();
    let name = if message.is_empty() { action } else { message.as_str() };

    let mut s = String::with_capacity(256 + message.len());
    s.push_str("CEF:0");
    for (field, max) in [
        (device.vendor.as_str(), VENDOR_MAX),
        (device.product.as_str(), VENDOR_MAX),
        (device.version.as_str(), VERSION_MAX),
        (action, SIGNATURE_MAX),
        (name, NAME_MAX),
    ] {
        s.push('|');
        escape_header(&mut s, truncate(field, max));
    }
    // Writing into a String cannot fail.
    let _ = write!(s, "|{}|", siem_severity(event.outcome()));

    let user = field_text(event, "user.name").or_else(|| field_text(event, "user.email"));
    let extension: [(&str, Option<Cow<'_, str>>); 12] = [
        ("rt", Some(Cow::Owned(event.epoch_millis().to_string()))),
        ("suser", user),
        ("suid", field_text(event, "user.id")),
        ("src", source_ip(event).map(|ip| Cow::Owned(ip.to_string()))),
        ("outcome", Some(Cow::Borrowed(event.outcome()))),
        ("act", Some(Cow::Borrowed(action))),
        ("cat", field_text(event, "event.category")),
        ("requestClientApplication", field_text(event, "user_agent.original")),
        ("externalId", Some(Cow::Borrowed(event.id.as_str()))),
        ("cs1Label", Some(Cow::Borrowed("source"))),
        ("cs1", field_text(event, "labels.source").or(Some(Cow::Borrowed(event.source.as_str())))),
        ("msg", Some(Cow::Borrowed(message.as_str()))),
    ];
    let mut first = true;
    for (key, value) in extension {
        let Some(value) = value.filter(|v| !v.is_empty()) else { continue };
        if !first {
            s.push(' ');
        }
        first = false;
        s.push_str(key);
        s.push('=');
        escape_extension(&mut s, &value);
    }
    out.extend_from_slice(s.as_bytes());
}

/// Header escaping: `\` → `\\`, `|` → `\|`, CR, LF and NUL → space.
fn escape_header(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' | '\0' => out.push(' '),
            c => out.push(c),
        }
    }
}

/// Extension escaping: `\` → `\\`, `=` → `\=`, CR → `\r`, LF → `\n`;
/// NUL, which has no escape and ends C strings, → space.
fn escape_extension(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\0' => out.push(' '),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::fixtures;
    use serde_json::json;

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    fn acme() -> Device {
        Device { vendor: "Acme".into(), product: "AuditAgent".into(), version: "1.4".into() }
    }

    #[test]
    fn spec_example_line_shape() {
        // Reference C4: CEF:0|Acme|AuditAgent|1.4|login.failed|User login failed|7|rt=1787400000123 suser=bob
        // src=10.0.0.1 outcome=failure msg=bad pwd
        let e = fixtures::event(json!({
            "event": {"action": "login.failed", "outcome": "failure"},
            "user": {"name": "bob"}, "source": {"ip": "10.0.0.1"}, "message": "User login failed"
        }));
        let out = text(encode(&e, &acme()));
        assert!(
            out.starts_with(
                "CEF:0|Acme|AuditAgent|1.4|login.failed|User login failed|7|rt=1787400000123 suser=bob src=10.0.0.1 outcome=failure "
            ),
            "{out}"
        );
        assert!(out.ends_with(" msg=User login failed"), "{out}");
    }

    #[test]
    fn golden_full_event() {
        let e = fixtures::event(json!({
            "event": {"action": "user-update", "outcome": "success", "category": ["iam", "configuration"]},
            "user": {"email": "ann@example.com", "id": 42},
            "source": {"ip": "2001:db8::1"},
            "user_agent": {"original": "curl/8.0"},
            "labels": {"source": "sekoia"},
            "message": "ann updated a user"
        }));
        assert_eq!(
            text(encode(&e, &acme())),
            "CEF:0|Acme|AuditAgent|1.4|user-update|ann updated a user|3|rt=1787400000123 suser=ann@example.com suid=42 \
             src=2001:db8::1 outcome=success act=user-update cat=iam,configuration requestClientApplication=curl/8.0 \
             externalId=ev-1 cs1Label=source cs1=sekoia msg=ann updated a user"
        );
    }

    #[test]
    fn golden_hostile_values() {
        let device = Device { vendor: "Ac|me\\".into(), product: "x\ny".into(), version: "1=2".into() };
        assert_eq!(
            text(encode(&fixtures::hostile(), &device)),
            "CEF:0|Ac\\|me\\\\|x y|1=2|a\"b]c\\\\d\\|e=f\tg  h Zoë 日本|a\"b]c\\\\d\\|e=f\tg  h Zoë 日本|3|\
             rt=1787400000123 suser=a\"b]c\\\\d|e\\=f\tg\\r\\nh Zoë 日本 outcome=success \
             act=a\"b]c\\\\d|e\\=f\tg\\r\\nh Zoë 日本 externalId=ev-1 cs1Label=source cs1=opencti \
             msg=a\"b]c\\\\d|e\\=f\tg\\r\\nh Zoë 日本"
        );
    }

    #[test]
    fn header_limits_cut_on_char_boundaries() {
        let device = Device { vendor: "é".repeat(40), product: "p".repeat(100), version: "日".repeat(20) };
        let out = text(encode(&fixtures::event(json!({})), &device));
        let fields: Vec<&str> = out.splitn(8, '|').collect();
        assert_eq!(fields[1], "é".repeat(31));
        assert_eq!(fields[2].len(), 63);
        assert_eq!(fields[3], "日".repeat(10));
    }

    #[test]
    fn huge_values_escape_without_line_breaks() {
        let e = fixtures::huge();
        let out = text(encode(&e, &acme()));
        assert!(!out.contains(['\r', '\n']));
        let mut header = String::from("CEF:0|Acme|AuditAgent|1.4|");
        escape_header(&mut header, truncate(e.action(), SIGNATURE_MAX));
        header.push('|');
        escape_header(&mut header, truncate(&e.message(), NAME_MAX));
        header.push_str("|7|rt=1787400000123 suser=");
        assert!(out.starts_with(&header));
        let mut msg = String::from(" msg=");
        escape_extension(&mut msg, &e.message());
        assert!(out.ends_with(&msg), "the message is not truncated");
    }
}
