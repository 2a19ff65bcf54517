//! IBM QRadar LEEF 2.0 records, and the syslog line QRadar receives them in.
//!
//! ```text
//! LEEF:2.0|Vendor|Product|Version|EventID|x09|devTime=1787400000123<TAB>cat=authentication<TAB>...
//! <132>Aug 22 12:00:00 relay01 LEEF:2.0|...          (qradar_message)
//! ```
//!
//! **LEEF has no escaping.** IBM's parser splits the header on every `|`,
//! ends a key at the first `=` and a value at the next delimiter, with no
//! backslash handling. So nothing here escapes; instead, what would break a
//! record is replaced: `|` in header fields becomes `_`, and the delimiter,
//! CR, LF and NUL become spaces, in header fields and values alike.
//! `=` may stay in values. A record is therefore always one line, and a value
//! can never spill into another key.
//!
//! - The delimiter is tab by default, written in the header as `x09`; any
//!   other is configured with [`Delimiter::from_str`] and written as hex too.
//! - EventID is `event.action`, at most 255 bytes; EventID plus `cat`
//!   (`event.category`, else the action; also ≤255) is the QID map key, so
//!   both stay stable.
//! - `devTime` is epoch milliseconds, 13 digits, which QRadar reads without a
//!   `devTimeFormat`. A time outside 2001-09-09 … 2286-11-20 cannot be written
//!   that way and is left out (QRadar then uses the syslog header time).
//! - Keys appear once each, in a fixed order: the predefined ones (`devTime`,
//!   `cat`, `sev`, `usrName`, `src`, `identSrc`, `url`), then custom keys
//!   (`action`, `outcome`, `eventId`, `userId`, `userEmail`, `userAgent`,
//!   `sourceName`) and `message` last, so a QRadar that truncates a long
//!   payload (often at 4096 bytes) loses only the message. Empty values are
//!   left out, as QRadar drops them anyway.

use std::borrow::Cow;
use std::str::FromStr;

use super::{field_text, rfc3164, siem_severity, source_ip, truncate, Device, ParseError, SyslogHeader};
use crate::event::Event;

/// Longest EventID, `cat` and `usrName`, in bytes (`cat` joins EventID in
/// QRadar's QID map key, so it gets the same bound).
pub const EVENT_ID_MAX: usize = 255;

/// The LEEF 2.0 attribute delimiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiter(char);

const DELIMITER_EXPECTED: &str = "one character or its hex code (x5E, 0x5E, 1-4 hex digits), \
     not a letter, digit, space, '=', CR, LF or NUL";

impl Delimiter {
    /// Tab, LEEF's default and the only delimiter of LEEF 1.0.
    pub const TAB: Self = Self('\t');

    /// A delimiter of this character. Rejected: letters and digits (they would
    /// be blanked out of every value), space (it could not be replaced), `=`
    /// (it ends keys), CR, LF and NUL (they end lines), and characters beyond
    /// U+FFFF (the header cannot name them in 4 hex digits).
    pub fn new(c: char) -> Result<Self, ParseError> {
        let bad = c.is_alphanumeric() || matches!(c, ' ' | '=' | '\r' | '\n' | '\0') || u32::from(c) > 0xFFFF;
        if bad {
            Err(ParseError::new("LEEF delimiter", &c.to_string(), DELIMITER_EXPECTED))
        } else {
            Ok(Self(c))
        }
    }

    /// The delimiter character.
    pub fn as_char(self) -> char {
        self.0
    }

    /// The header's DelimiterCharacter field: `x` and the code in upper-case
    /// hex, at least two digits (`x09`, `x5E`, `xA6`). Hex keeps `|` and
    /// control characters out of the header.
    pub fn header_value(self) -> String {
        format!("x{:02X}", u32::from(self.0))
    }
}

impl Default for Delimiter {
    fn default() -> Self {
        Self::TAB
    }
}

impl FromStr for Delimiter {
    type Err = ParseError;

    /// Parses a single character (`"^"`) or a hex code as LEEF writes it:
    /// `x` or `0x` and 1-4 hex digits (`"x09"`, `"0x5E"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError::new("LEEF delimiter", s, DELIMITER_EXPECTED);
        let mut chars = s.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            return Self::new(c).map_err(|_| err());
        }
        let lower = s.to_ascii_lowercase();
        let hex = lower.strip_prefix("0x").or_else(|| lower.strip_prefix('x')).ok_or_else(err)?;
        if hex.is_empty() || hex.len() > 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err());
        }
        let code = u32::from_str_radix(hex, 16).map_err(|_| err())?;
        char::from_u32(code).ok_or_else(err).and_then(|c| Self::new(c).map_err(|_| err()))
    }
}

/// One LEEF 2.0 record.
pub fn encode(event: &Event, device: &Device, delimiter: Delimiter) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + event.raw.len());
    encode_into(event, device, delimiter, &mut out);
    out
}

/// [`encode`], appending to `out` so a batch can reuse one buffer.
pub fn encode_into(event: &Event, device: &Device, delimiter: Delimiter, out: &mut Vec<u8>) {
    let mut s = String::with_capacity(256);
    s.push_str("LEEF:2.0|");
    for field in [&device.vendor, &device.product, &device.version, truncate(event.action(), EVENT_ID_MAX)] {
        for c in field.chars() {
            s.push(match c {
                '|' => '_',
                c if c == delimiter.0 || matches!(c, '\r' | '\n' | '\0') => ' ',
                c => c,
            });
        }
        s.push('|');
    }
    s.push_str(&delimiter.header_value());
    s.push('|');

    let millis = event.epoch_millis();
    let dev_time = (1_000_000_000_000..10_000_000_000_000).contains(&millis).then(|| Cow::Owned(millis.to_string()));
    let user = field_text(event, "user.name").or_else(|| field_text(event, "user.email"));
    let ip = source_ip(event).map(|ip| Cow::Owned(ip.to_string()));
    let ident = if user.is_some() { ip.clone() } else { None };
    let message = event.message();
    let category = field_text(event, "event.category").unwrap_or(Cow::Borrowed(event.action()));
    let attributes: [(&str, Option<Cow<'_, str>>); 15] = [
        ("devTime", dev_time),
        ("cat", Some(Cow::Borrowed(truncate(&category, EVENT_ID_MAX)))),
        ("sev", Some(Cow::Owned(siem_severity(event.outcome()).to_string()))),
        ("usrName", user.map(|u| Cow::Owned(truncate(&u, EVENT_ID_MAX).to_owned()))),
        ("src", ip),
        ("identSrc", ident),
        ("url", field_text(event, "url.original")),
        ("action", Some(Cow::Borrowed(event.action()))),
        ("outcome", Some(Cow::Borrowed(event.outcome()))),
        ("eventId", Some(Cow::Borrowed(event.id.as_str()))),
        ("userId", field_text(event, "user.id")),
        ("userEmail", field_text(event, "user.email")),
        ("userAgent", field_text(event, "user_agent.original")),
        ("sourceName", field_text(event, "labels.source").or(Some(Cow::Borrowed(event.source.as_str())))),
        ("message", Some(Cow::Borrowed(message.as_str()))),
    ];
    let mut first = true;
    for (key, value) in attributes {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else { continue };
        if !first {
            s.push(delimiter.0);
        }
        first = false;
        s.push_str(key);
        s.push('=');
        s.extend(value.chars().map(|c| if c == delimiter.0 || matches!(c, '\r' | '\n' | '\0') { ' ' } else { c }));
    }
    out.extend_from_slice(s.as_bytes());
}

/// The line QRadar's syslog listener expects: an RFC 3164 header, a space and
/// the LEEF record, `<PRI>Mmm dd hh:mm:ss host LEEF:2.0|…`. BSD parsers read
/// `LEEF` as the TAG, and QRadar matches the log source on `host`. The
/// RFC 5424 form is avoided: IBM's example of it has no APP-NAME, so a strict
/// parser takes `LEEF:2.0|…` for one.
pub fn qradar_message(event: &Event, header: &SyslogHeader, device: &Device, delimiter: Delimiter) -> Vec<u8> {
    let mut head = String::with_capacity(64);
    rfc3164::write_header(&mut head, header.pri(event), event.timestamp, &header.hostname);
    head.push(' ');
    let mut out = head.into_bytes();
    encode_into(event, device, delimiter, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::fixtures;
    use crate::encode::Facility;
    use serde_json::json;

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    fn acme() -> Device {
        Device { vendor: "Acme".into(), product: "Audit".into(), version: "1.0".into() }
    }

    #[test]
    fn delimiter_parses_chars_and_hex() {
        assert_eq!("^".parse::<Delimiter>().map(Delimiter::as_char), Ok('^'));
        assert_eq!("x5E".parse::<Delimiter>().map(Delimiter::as_char), Ok('^'));
        assert_eq!("0x5e".parse::<Delimiter>().map(Delimiter::as_char), Ok('^'));
        assert_eq!("x9".parse::<Delimiter>(), Ok(Delimiter::TAB));
        assert_eq!("\t".parse::<Delimiter>(), Ok(Delimiter::TAB));
        assert_eq!("0xa6".parse::<Delimiter>().map(Delimiter::header_value), Ok("xA6".into()));
        assert_eq!("|".parse::<Delimiter>().map(Delimiter::header_value), Ok("x7C".into()));
        assert_eq!(Delimiter::default().header_value(), "x09");
        for bad in ["", "x", "0x", "x12345", "xZZ", "a", "=", " ", "x0A", "x3D", "^^", "\u{1F600}"] {
            let err = bad.parse::<Delimiter>().unwrap_err();
            assert!(err.to_string().starts_with("invalid LEEF delimiter"), "{bad:?}: {err}");
        }
        assert_eq!("x".parse::<Delimiter>().unwrap_err().input, "x");
    }

    #[test]
    fn golden_login() {
        assert_eq!(
            text(encode(&fixtures::login(), &acme(), Delimiter::TAB)),
            "LEEF:2.0|Acme|Audit|1.0|login|x09|devTime=1787400000123\tcat=authentication\tsev=7\tusrName=bob\t\
             src=10.0.0.1\tidentSrc=10.0.0.1\taction=login\toutcome=failure\teventId=ev-1\tuserId=u-7\t\
             sourceName=opencti\tmessage=login by bob (failure)"
        );
    }

    #[test]
    fn golden_qradar_message_with_caret() {
        let e = fixtures::event(json!({
            "event": {"action": "GET /v1/me", "outcome": "success"},
            "source": {"ip": "10.0.0.9"}, "url": {"original": "https://x/v1/me?a=b^c"}
        }));
        let header = SyslogHeader { facility: Facility::LOCAL0, hostname: "relay01".into(), ..SyslogHeader::default() };
        let out = text(qradar_message(&e, &header, &acme(), "^".parse().unwrap()));
        assert_eq!(
            out,
            "<133>Aug 22 12:00:00 relay01 LEEF:2.0|Acme|Audit|1.0|GET /v1/me|x5E|devTime=1787400000123^cat=GET /v1/me^\
             sev=3^src=10.0.0.9^url=https://x/v1/me?a=b c^action=GET /v1/me^outcome=success^eventId=ev-1^\
             sourceName=opencti^message=GET /v1/me by unknown user (success)"
        );
    }

    #[test]
    fn golden_hostile_values() {
        let device = Device { vendor: "Ac|me".into(), product: "a\nb".into(), version: "1\t0".into() };
        // Values: tab (the delimiter), CR and LF become spaces; `=`, `|`, `\`, `"` stay.
        let v = "a\"b]c\\d|e=f g  h Zoë 日本";
        let v_header = v.replace('|', "_");
        assert_eq!(
            text(encode(&fixtures::hostile(), &device, Delimiter::TAB)),
            format!(
                "LEEF:2.0|Ac_me|a b|1 0|{v_header}|x09|devTime=1787400000123\tcat={v}\tsev=3\t\
                 usrName={v}\taction={v}\toutcome=success\teventId=ev-1\tsourceName=opencti\tmessage={v}"
            )
        );
    }

    #[test]
    fn every_key_appears_once_and_values_never_break_the_record() {
        let e = fixtures::event(json!({
            "event": {"action": "x", "outcome": "failure", "category": "iam"},
            "user": {"name": "n", "email": "e@x", "id": "i"}, "source": {"ip": "::1"},
            "user_agent": {"original": "ua"}, "url": {"original": "u"}, "message": "m"
        }));
        let out = text(encode(&e, &acme(), Delimiter::TAB));
        let attrs = out.splitn(7, '|').nth(6).unwrap();
        let keys: Vec<&str> = attrs.split('\t').map(|kv| kv.split_once('=').unwrap().0).collect();
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(keys.len(), 15);
        assert_eq!(unique.len(), keys.len(), "{keys:?}");

        let huge = fixtures::huge();
        let out = text(encode(&huge, &acme(), Delimiter::TAB));
        assert!(!out.contains(['\r', '\n']));
        assert_eq!(out.matches('\t').count(), 8, "9 keys, so 8 separators and no tab from a value");
        assert!(out.len() > 2 * 64 * 1024);
        let event_id = out.split('|').nth(4).unwrap();
        assert!(event_id.len() <= EVENT_ID_MAX);
    }

    #[test]
    fn dev_time_needs_thirteen_digits() {
        let mut e = fixtures::login();
        e.timestamp = chrono::DateTime::from_timestamp(999_999_999, 0).unwrap();
        assert!(!text(encode(&e, &acme(), Delimiter::TAB)).contains("devTime"));
    }
}
