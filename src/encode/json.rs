//! The event as compact JSON: the body of file (JSON lines), HEC and syslog
//! outputs with `payload = "json"`.
//!
//! [`Payload::Normalised`] writes the ECS document with the raw event as the
//! string `event.original`; [`Payload::Raw`] writes the API's JSON untouched
//! (or, if it is not JSON, as one JSON string).
//!
//! The output never holds a raw CR or LF, by construction: serde_json's
//! compact writer puts no whitespace between tokens and escapes every control
//! character inside strings (`\n`, `\r`, `\u0000`…). That makes it safe as a
//! JSON line and in LF-framed syslog. U+2028 and U+2029 are written as they
//! are; they are not line breaks to any syslog receiver or JSON-lines reader.
//! Key order is kept (`preserve_order`), so output is stable for tests and
//! diffs.

use serde_json::Value;

use crate::event::{Event, Payload};

/// The representation `payload` asks for, as compact JSON bytes.
pub fn encode(event: &Event, payload: Payload) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * event.raw.len() + 256);
    encode_into(event, payload, &mut out);
    out
}

/// [`encode`], appending to `out` so a batch can reuse one buffer.
pub fn encode_into(event: &Event, payload: Payload, out: &mut Vec<u8>) {
    match payload {
        // Streamed: no copy of the field map, the raw event escaped once.
        Payload::Normalised => event.write_document(out),
        Payload::Raw => write_value(&event.payload(payload), &event.raw, out),
    }
}

/// Serialising a [`Value`] into a `Vec` cannot fail: keys are strings,
/// numbers are finite and the writer is infallible. Should it ever fail, the
/// raw text is sent (as a JSON string) rather than nothing or half a document.
fn write_value(value: &Value, raw: &str, out: &mut Vec<u8>) {
    let start = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        write_fallback(raw, out);
    }
}

/// `raw` as a JSON string, control characters replaced by spaces, written
/// without serde_json so that it cannot fail.
fn write_fallback(raw: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in raw.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if matches!(c, '"' | '\\') {
            out.push(b'\\');
        }
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::fixtures::{self, HOSTILE};
    use serde_json::json;

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn golden_normalised_and_raw() {
        let e = fixtures::login();
        assert_eq!(
            text(encode(&e, Payload::Normalised)),
            r#"{"event":{"id":"ev-1","action":"login","outcome":"failure","category":["authentication"],"original":"{\"id\":\"ev-1\"}"},"user":{"name":"bob","id":"u-7"},"source":{"ip":"10.0.0.1"},"labels":{"source":"opencti"},"message":"login by bob (failure)"}"#
        );
        assert_eq!(text(encode(&e, Payload::Raw)), r#"{"id":"ev-1"}"#);
        let mut bad = e.clone();
        bad.raw = "not json\n".into();
        assert_eq!(text(encode(&bad, Payload::Raw)), r#""not json\n""#);
    }

    #[test]
    fn golden_hostile_values() {
        let out = text(encode(&fixtures::event(json!({"user": {"name": HOSTILE}})), Payload::Normalised));
        assert_eq!(
            out,
            r#"{"user":{"name":"a\"b]c\\d|e=f\tg\r\nh Zoë 日本"},"event":{"original":"{\"id\":\"ev-1\"}"}}"#
        );
    }

    #[test]
    fn compact_json_never_holds_a_raw_line_break() {
        let mut e = fixtures::huge();
        e.raw = format!("{{\n  \"pretty\": \"{}\",\r\n  \"ctl\": \"\\u0000\\u001f\"\n}}\n", "x".repeat(70_000));
        for payload in [Payload::Normalised, Payload::Raw] {
            let out = encode(&e, payload);
            assert!(!out.iter().any(|b| matches!(b, b'\r' | b'\n')), "{payload:?}");
            let back: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, e.payload(payload), "round-trips");
        }
        assert!(encode(&e, Payload::Normalised).len() > 3 * 64 * 1024);
    }

    #[test]
    fn fallback_writes_a_json_string() {
        // serde_json cannot fail on a Value, so the fallback is tested alone.
        let mut out = b"prefix".to_vec();
        write_fallback("a\"b\\c\nd\u{7f}é", &mut out);
        assert_eq!(text(out.split_off(6)), r#""a\"b\\c d é""#);
        assert_eq!(out, b"prefix", "appends after what was there");
        let mut out = Vec::new();
        write_fallback("x\"\\", &mut out);
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), json!("x\"\\"));
    }
}
