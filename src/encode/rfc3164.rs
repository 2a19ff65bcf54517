//! BSD syslog (RFC 3164) messages around an already encoded body.
//!
//! ```text
//! <PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PROCID]: MSG
//! <132>Aug 22 12:00:00 relay01 auditrelay[4242]: {...}
//! ```
//!
//! - The timestamp is written in **UTC**: the format has no zone and no year,
//!   and an agent on a host in any zone must give the SIEM the same instant.
//!   The day is space-padded (`Jan  5`), as `%b %e %H:%M:%S` in Vector.
//! - TAG is APP-NAME with everything but ASCII letters and digits removed,
//!   cut to 32 (§4.1.3); `auditrelay` if nothing is left. PROCID, reduced the
//!   same way, follows in brackets when present.
//! - CR, LF and NUL in MSG become spaces, so LF- or NUL-framed transports
//!   never see a message split in two; other bytes are kept.
//! - RFC 3164 caps a packet at [`MAX_PACKET_LEN`] bytes. This encoder does not
//!   truncate: the transport knows its limit (UDP or TCP, the receiver's
//!   `maxMessageSize`) and decides.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::{header_time, header_token, SyslogHeader};
use crate::event::Event;

/// The largest packet RFC 3164 §4.1 allows, in bytes; enforced, if at all, by
/// the transport.
pub const MAX_PACKET_LEN: usize = 1024;

/// Longest TAG (RFC 3164 §4.1.3).
pub const TAG_MAX: usize = 32;

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// One RFC 3164 message with `body` as MSG.
pub fn encode(event: &Event, header: &SyslogHeader, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + body.len());
    encode_into(event, header, body, &mut out);
    out
}

/// [`encode`], appending to `out` so a batch can reuse one buffer.
pub fn encode_into(event: &Event, header: &SyslogHeader, body: &[u8], out: &mut Vec<u8>) {
    let mut head = String::with_capacity(64);
    write_header(&mut head, header.pri(event), event.timestamp, &header.hostname);
    head.push(' ');
    head.push_str(&tag(&header.app_name));
    let procid = alphanumeric(&header.procid, 128);
    if !procid.is_empty() {
        head.push('[');
        head.push_str(&procid);
        head.push(']');
    }
    head.push_str(": ");
    out.extend_from_slice(head.as_bytes());
    // CR, LF and NUL are single bytes that never occur inside a multi-byte
    // UTF-8 sequence, so replacing them byte by byte keeps UTF-8 intact.
    out.extend(body.iter().map(|&b| if matches!(b, b'\r' | b'\n' | 0) { b' ' } else { b }));
}

/// `Mmm dd hh:mm:ss` in UTC, the day padded with a space: `Jan  5 09:03:07`.
pub fn timestamp(ts: DateTime<Utc>) -> String {
    let ts = header_time(ts);
    let month = MONTHS.get(ts.month0() as usize).copied().unwrap_or("Jan");
    format!("{month} {:>2} {:02}:{:02}:{:02}", ts.day(), ts.hour(), ts.minute(), ts.second())
}

/// `<PRI>Mmm dd hh:mm:ss HOSTNAME`, the part shared with QRadar's LEEF lines.
/// HOSTNAME is PRINTUSASCII, at most 255 bytes, `-` when empty.
pub(crate) fn write_header(out: &mut String, pri: u8, ts: DateTime<Utc>, hostname: &str) {
    // Writing into a String cannot fail.
    let _ = write!(out, "<{pri}>{} {}", timestamp(ts), header_token(hostname, 255));
}

/// TAG: ASCII letters and digits of `app_name`, at most 32, or `auditrelay`.
fn tag(app_name: &str) -> String {
    let t = alphanumeric(app_name, TAG_MAX);
    if t.is_empty() {
        "auditrelay".to_owned()
    } else {
        t
    }
}

fn alphanumeric(s: &str, max: usize) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::fixtures::{self, HOSTILE};
    use crate::encode::{cef, json, Device, Facility};
    use crate::event::Payload;
    use chrono::TimeZone;

    fn header() -> SyslogHeader {
        SyslogHeader {
            facility: Facility::AUTHPRIV,
            hostname: "relay01".into(),
            procid: "4242".into(),
            ..SyslogHeader::default()
        }
    }

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn golden_login_with_cef_body() {
        let e = fixtures::login();
        let out = text(encode(&e, &header(), &cef::encode(&e, &Device::default())));
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(
            out,
            format!(
                "<84>Aug 22 12:00:00 relay01 auditrelay[4242]: CEF:0|auditrelay|auditrelay|{v}|login|login by bob (failure)|7|\
                 rt=1787400000123 suser=bob suid=u-7 src=10.0.0.1 outcome=failure act=login cat=authentication \
                 externalId=ev-1 cs1Label=source cs1=opencti msg=login by bob (failure)"
            )
        );
    }

    #[test]
    fn day_is_space_padded_and_utc() {
        assert_eq!(timestamp(Utc.with_ymd_and_hms(2026, 1, 5, 9, 3, 7).unwrap()), "Jan  5 09:03:07");
        assert_eq!(timestamp(Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap()), "Dec 31 23:59:59");
    }

    #[test]
    fn golden_hostile_body_and_header() {
        let h = SyslogHeader {
            app_name: "audit-relay.d".into(),
            hostname: "a b".into(),
            procid: String::new(),
            ..header()
        };
        let out = text(encode(&fixtures::hostile(), &h, HOSTILE.as_bytes()));
        assert_eq!(out, "<85>Aug 22 12:00:00 a_b auditrelayd: a\"b]c\\d|e=f\tg  h Zoë 日本");
        let none = SyslogHeader { app_name: "--".into(), ..h };
        assert!(text(encode(&fixtures::hostile(), &none, b"")).ends_with(" a_b auditrelay: "));
    }

    #[test]
    fn huge_json_body_has_no_line_breaks() {
        let e = fixtures::huge();
        let body = json::encode(&e, Payload::Normalised);
        let out = encode(&e, &header(), &body);
        assert!(!out.iter().any(|b| matches!(b, b'\r' | b'\n')));
        assert!(out.len() > 3 * 64 * 1024, "not truncated: {}", out.len());
        assert!(out.starts_with(b"<84>Aug 22 12:00:00 relay01 auditrelay[4242]: {"));
    }
}
