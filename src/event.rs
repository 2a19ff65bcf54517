//! The event model: the raw JSON an API returned plus a normalised view in
//! Elastic Common Schema (ECS) field names.
//!
//! An [`Event`] is what the journal stores and what every output encodes. The
//! ECS view is a nested JSON object (`{"user": {"name": "bob"}}`), built with
//! the dotted-path helpers [`set`] and [`get`]. The raw event is kept as JSON
//! text and only spliced into the document as `event.original` when an output
//! renders it, so it is stored once.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One audit event, as journaled and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `labels.source`: the `name` of the configured source.
    pub source: String,
    /// `event.id`: the API's own id, or a stable hash of the raw event.
    pub id: String,
    /// `@timestamp`: when the action happened.
    pub timestamp: DateTime<Utc>,
    /// The normalised ECS document, without `event.original`.
    pub fields: Map<String, Value>,
    /// The raw event exactly as the API returned it, as JSON text.
    pub raw: String,
}

/// Which representation an output sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// The normalised ECS document, with the raw event in `event.original`.
    #[default]
    Normalised,
    /// The API's JSON untouched.
    Raw,
}

impl Event {
    /// The ECS document an output sends by default: the normalised fields
    /// plus `event.original`.
    pub fn document(&self) -> Value {
        let mut doc = self.fields.clone();
        set(&mut doc, "event.original", Value::String(self.raw.clone()));
        Value::Object(doc)
    }

    /// Write [`Event::document`] as compact JSON without copying the field
    /// map: `event.original` is appended to the `event` object as it is
    /// written. Byte-for-byte what `serde_json::to_writer(document())` gives.
    pub fn write_document(&self, out: &mut Vec<u8>) {
        fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
            // Serialising strings and `Value`s into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, v);
        }
        out.push(b'{');
        let mut wrote_original = false;
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json(out, k);
            out.push(b':');
            match v {
                Value::Object(inner) if k == "event" => {
                    out.push(b'{');
                    for (j, (ik, iv)) in inner.iter().filter(|(ik, _)| *ik != "original").enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        json(out, ik);
                        out.push(b':');
                        json(out, iv);
                    }
                    if inner.keys().any(|ik| ik != "original") {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"\"original\":");
                    json(out, &self.raw);
                    out.push(b'}');
                    wrote_original = true;
                }
                _ => json(out, v),
            }
        }
        if !wrote_original {
            if !self.fields.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"event\":{\"original\":");
            json(out, &self.raw);
            out.push(b'}');
        }
        out.push(b'}');
    }

    /// The representation `payload` asks for.
    pub fn payload(&self, payload: Payload) -> Value {
        match payload {
            Payload::Normalised => self.document(),
            Payload::Raw => serde_json::from_str(&self.raw).unwrap_or_else(|_| Value::String(self.raw.clone())),
        }
    }

    /// A string field of the ECS view by dotted path (`user.name`).
    pub fn str_field(&self, path: &str) -> Option<&str> {
        get(&self.fields, path).and_then(Value::as_str)
    }

    /// `event.action`, or `"event"` when the source did not say.
    pub fn action(&self) -> &str {
        self.str_field("event.action").unwrap_or("event")
    }

    /// `event.outcome`: `success`, `failure` or `unknown`.
    pub fn outcome(&self) -> &str {
        self.str_field("event.outcome").unwrap_or("unknown")
    }

    /// `message`, or a one-liner made from the action, user and outcome.
    pub fn message(&self) -> String {
        if let Some(m) = self.str_field("message") {
            return m.to_owned();
        }
        let user = self
            .str_field("user.name")
            .or_else(|| self.str_field("user.email"))
            .or_else(|| self.str_field("user.id"))
            .unwrap_or("unknown user");
        format!("{} by {} ({})", self.action(), user, self.outcome())
    }

    /// `@timestamp` in epoch seconds with a fraction, as HEC's `time` wants.
    pub fn epoch_seconds(&self) -> f64 {
        self.timestamp.timestamp() as f64 + f64::from(self.timestamp.timestamp_subsec_nanos()) / 1e9
    }

    /// `@timestamp` in epoch milliseconds (LEEF `devTime`, CEF `rt`).
    pub fn epoch_millis(&self) -> i64 {
        self.timestamp.timestamp_millis()
    }

    /// An approximate encoded size, for batching by bytes.
    pub fn approx_size(&self) -> usize {
        // The raw event is sent once inside the document; the ECS fields are
        // usually smaller than the raw. A cheap upper-bound guess is enough
        // for batching decisions.
        self.raw.len() * 2 + 256
    }
}

/// The facts a source knows about one raw event, turned into an [`Event`] by
/// [`normalise`].
#[derive(Debug, Default)]
pub struct Normalised {
    /// The API's own id, if it has one.
    pub id: Option<String>,
    /// When the action happened.
    pub timestamp: Option<DateTime<Utc>>,
    /// ECS fields by dotted path, e.g. `("user.name", "bob")`.
    pub fields: Map<String, Value>,
}

impl Normalised {
    /// Set an ECS field by dotted path when the value is present and not
    /// empty.
    pub fn put(&mut self, path: &str, value: impl Into<Option<Value>>) -> &mut Self {
        if let Some(v) = value.into() {
            let empty = v.is_null() || v.as_str().is_some_and(str::is_empty);
            if !empty {
                set(&mut self.fields, path, v);
            }
        }
        self
    }

    /// Set a string field from an optional `&str`.
    pub fn put_str(&mut self, path: &str, value: Option<&str>) -> &mut Self {
        self.put(path, value.map(|s| Value::String(s.to_owned())))
    }
}

/// The vendor and product an event came from.
#[derive(Debug, Clone, Copy)]
pub struct Observer {
    /// `observer.vendor`
    pub vendor: &'static str,
    /// `observer.product`
    pub product: &'static str,
}

/// Build the journaled event: fills `event.id` (hashing the raw event when
/// the API has no id), `@timestamp`, `labels.source`, `observer.*` and
/// defaults for `event.outcome` and `message`.
pub fn normalise(source: &str, observer: Observer, raw: &Value, n: Normalised, fallback_time: DateTime<Utc>) -> Event {
    let raw_text = raw.to_string();
    let id = n.id.filter(|s| !s.is_empty()).unwrap_or_else(|| hash_id(&raw_text));
    let timestamp = n.timestamp.unwrap_or(fallback_time);
    let mut fields = Map::with_capacity(n.fields.len() + 4);
    fields.insert("@timestamp".into(), Value::String(rfc3339(timestamp)));
    fields.extend(n.fields);
    // A vendor key under `@timestamp.` must not replace the event's time
    // (insert keeps the key first and overwrites the value).
    fields.insert("@timestamp".into(), Value::String(rfc3339(timestamp)));
    sanitise(&mut fields, 1);
    set(&mut fields, "event.id", Value::String(id.clone()));
    if get(&fields, "event.outcome").is_none() {
        set(&mut fields, "event.outcome", Value::String("unknown".into()));
    }
    set(&mut fields, "labels.source", Value::String(source.to_owned()));
    set(&mut fields, "observer.vendor", Value::String(observer.vendor.to_owned()));
    set(&mut fields, "observer.product", Value::String(observer.product.to_owned()));
    let mut event = Event { source: source.to_owned(), id, timestamp, fields, raw: raw_text };
    if event.str_field("message").is_none() {
        let m = event.message();
        set(&mut event.fields, "message", Value::String(m));
    }
    event
}

/// Deepest nesting kept in the ECS fields; deeper values are kept as their
/// JSON text. The journal reads fields back with serde_json, whose recursion
/// limit is 128: an event nested past it could be journaled but never read,
/// and would block its outputs.
const MAX_DEPTH: usize = 64;

/// serde_json (with its `raw_value` feature, which axum turns on) gives this
/// key a special meaning when reading a map back.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Make the fields safe to journal and read back: cap the nesting depth and
/// rename keys serde_json would misread.
fn sanitise(map: &mut Map<String, Value>, depth: usize) {
    if map.contains_key(RAW_VALUE_TOKEN) {
        if let Some(v) = map.remove(RAW_VALUE_TOKEN) {
            map.insert(format!("_{RAW_VALUE_TOKEN}"), v);
        }
    }
    for v in map.values_mut() {
        sanitise_value(v, depth + 1);
    }
}

fn sanitise_value(v: &mut Value, depth: usize) {
    let nested = matches!(v, Value::Object(_) | Value::Array(_));
    if nested && depth >= MAX_DEPTH {
        *v = Value::String(v.to_string());
        return;
    }
    match v {
        Value::Object(m) => sanitise(m, depth),
        Value::Array(a) => a.iter_mut().for_each(|x| sanitise_value(x, depth + 1)),
        _ => {}
    }
}

/// A stable id for an event the API gives none for: the SHA-256 of its JSON
/// text, hex, 32 characters.
pub fn hash_id(raw_text: &str) -> String {
    let digest = Sha256::digest(raw_text.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3339 UTC with as many fractional digits as the time carries (none,
/// milli, micro or nano), `Z` suffix.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Read a field of a nested object by dotted path. A key that itself
/// contains a dot (`"@timestamp"` has none, but vendors' flat ECS has
/// `"user.name"` keys) is found too.
pub fn get<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    match map.get(head)? {
        Value::Object(inner) => get(inner, rest),
        _ => None,
    }
}

/// Write a field of a nested object by dotted path, creating the objects on
/// the way and replacing a non-object in the way.
pub fn set(map: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            // Look up before `entry`, which wants an owned key: most calls
            // add to an object that is already there.
            if let Some(Value::Object(inner)) = map.get_mut(head) {
                return set(inner, rest, value);
            }
            let slot = map.entry(head.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                set(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    const OBS: Observer = Observer { vendor: "Acme", product: "Audit" };

    #[test]
    fn normalise_fills_required_fields() {
        let raw = json!({"who": "bob", "what": "login"});
        let mut n = Normalised::default();
        n.put_str("user.name", Some("bob")).put_str("event.action", Some("login"));
        n.timestamp = Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap());
        let e = normalise("src", OBS, &raw, n, Utc::now());
        assert_eq!(e.str_field("event.id"), Some(e.id.as_str()));
        assert_eq!(e.id.len(), 32, "hash id when the API has none");
        assert_eq!(e.str_field("@timestamp"), Some("2024-05-01T10:00:00Z"));
        assert_eq!(e.str_field("labels.source"), Some("src"));
        assert_eq!(e.str_field("observer.vendor"), Some("Acme"));
        assert_eq!(e.outcome(), "unknown");
        assert_eq!(e.message(), "login by bob (unknown)");
        let doc = e.document();
        assert_eq!(doc["event"]["original"], json!(raw.to_string()));
        assert_eq!(e.payload(Payload::Raw), raw);
    }

    #[test]
    fn write_document_matches_document() {
        let raw = json!({"id": 1, "msg": "a \"quote\" and\nnewline"});
        let mut n = Normalised::default();
        n.put_str("event.action", Some("login")).put_str("user.name", Some("bob"));
        n.timestamp = Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap());
        let e = normalise("src", OBS, &raw, n, Utc::now());
        let mut out = Vec::new();
        e.write_document(&mut out);
        assert_eq!(out, serde_json::to_vec(&e.document()).unwrap());
        // Without an `event` object in the fields, one is added.
        let bare = Event { fields: Map::new(), ..e.clone() };
        let mut out = Vec::new();
        bare.write_document(&mut out);
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), bare.document());
    }

    #[test]
    fn hash_id_is_stable_and_distinct() {
        assert_eq!(hash_id("{\"a\":1}"), hash_id("{\"a\":1}"));
        assert_ne!(hash_id("{\"a\":1}"), hash_id("{\"a\":2}"));
    }

    #[test]
    fn timestamps_keep_source_precision() {
        let t = Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap();
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        let e = Event { source: "s".into(), id: "1".into(), timestamp: t, fields: Map::new(), raw: "{}".into() };
        assert!((e.epoch_seconds() - 1_700_000_000.123).abs() < 1e-6);
        assert_eq!(e.epoch_millis(), 1_700_000_000_123);
    }

    #[test]
    fn set_and_get_by_path() {
        let mut m = Map::new();
        set(&mut m, "a.b.c", json!(1));
        set(&mut m, "a.d", json!("x"));
        assert_eq!(get(&m, "a.b.c"), Some(&json!(1)));
        assert_eq!(get(&m, "a.d"), Some(&json!("x")));
        m.insert("user.name".into(), json!("flat"));
        assert_eq!(get(&m, "user.name"), Some(&json!("flat")));
        set(&mut m, "a.d.e", json!(2));
        assert_eq!(get(&m, "a.d.e"), Some(&json!(2)), "a scalar in the way is replaced");
    }
}
