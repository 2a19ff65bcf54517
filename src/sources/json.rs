//! Reading JSON bodies fast: [`split`] parses a body except its array of
//! events, which it only checks and leaves as text ([`Unparsed`]) so the
//! poller can build the events' trees in parallel parts; [`parse_value`]
//! builds a tree with maps sized up front; [`parse_wanted`] builds only
//! what a connector's mapping reads ([`Wanted`]); [`Pointer`] is a JSON
//! pointer read once. Everything here takes bytes and knows nothing of
//! HTTP or of the connectors.

use serde_json::Value;

/// Events of a response left as JSON text: each a byte range of the body
/// holding one syntactically valid JSON value.
#[derive(Debug, Clone)]
pub struct Unparsed {
    body: bytes::Bytes,
    spans: Vec<std::ops::Range<usize>>,
    /// When the body was not UTF-8: the body as sent and the positions of
    /// its bytes that are not (`body` has `?` there).
    original: Option<std::sync::Arc<(bytes::Bytes, Vec<usize>)>>,
}

impl Unparsed {
    /// How many events.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The JSON text of event `i`.
    pub fn text(&self, i: usize) -> &[u8] {
        &self.body[self.spans[i].clone()]
    }

    /// Event `i`, parsed. The text is valid JSON, but may still nest deeper
    /// than serde_json reads.
    pub fn parse(&self, i: usize) -> Result<Value, serde_json::Error> {
        parse_value(self.text(i))
    }

    /// Events `range`, sharing the body.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Unparsed {
        Unparsed { body: self.body.clone(), spans: self.spans[range].to_vec(), original: self.original.clone() }
    }

    /// Event `i`'s bytes as the API sent them, when they are not UTF-8
    /// (its [`Unparsed::text`] then holds `?` for each such byte).
    pub fn not_utf8(&self, i: usize) -> Option<&[u8]> {
        let (sent, bad) = self.original.as_deref()?;
        let span = self.spans[i].clone();
        let first = bad.partition_point(|&b| b < span.start);
        bad.get(first).is_some_and(|&b| b < span.end).then(|| &sent[span])
    }
}

/// Parse `body` except the array of events at `pointer` (a JSON pointer
/// through objects only, `""` for the whole body): its elements are only
/// checked and left as text, and the array in the returned body is empty.
/// Building a `Value` tree is most of the cost of reading a page; this lets
/// the poller do it in parallel parts. When the pointer does not name an
/// array (or goes through an array index), the whole body is parsed and
/// `None` returned.
///
/// A body that is not UTF-8 is read with each offending byte taken as `?`
/// (the positions stay those of the body): one event with a bad byte must
/// not make the whole page unreadable. Such events say so
/// ([`Unparsed::not_utf8`]) and keep their bytes as sent; the poller sets
/// them aside.
pub fn split(body: &bytes::Bytes, pointer: &str) -> Result<(Value, Option<Unparsed>), serde_json::Error> {
    let first = split_utf8(body, pointer);
    if first.is_ok() || std::str::from_utf8(body).is_ok() {
        return first;
    }
    let (repaired, bad) = mark_invalid_utf8(body);
    let (tree, unparsed) = split_utf8(&repaired, pointer)?;
    let original = Some(std::sync::Arc::new((body.clone(), bad)));
    Ok((tree, unparsed.map(|u| Unparsed { original, ..u })))
}

/// `body` with each byte that is not UTF-8 replaced by `?`, and their
/// positions.
fn mark_invalid_utf8(body: &[u8]) -> (bytes::Bytes, Vec<usize>) {
    let mut out = body.to_vec();
    let mut bad = Vec::new();
    let mut at = 0;
    while let Err(e) = std::str::from_utf8(&out[at..]) {
        let from = at + e.valid_up_to();
        let to = e.error_len().map_or(out.len(), |n| from + n);
        for (k, b) in out.iter_mut().enumerate().take(to).skip(from) {
            *b = b'?';
            bad.push(k);
        }
        at = to;
    }
    (out.into(), bad)
}

fn split_utf8(body: &bytes::Bytes, pointer: &str) -> Result<(Value, Option<Unparsed>), serde_json::Error> {
    let Pointer(Some(path)) = Pointer::parse(pointer) else { return Ok((serde_json::from_slice(body)?, None)) };
    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let tree = serde::de::DeserializeSeed::deserialize(Seek { path: &path, found: &mut found }, &mut de)
        .and_then(|v| de.end().map(|()| v))?;
    let unparsed = found.map(|items| {
        let base = body.as_ptr() as usize;
        let spans = items
            .iter()
            .map(|raw| {
                let at = raw.get().as_ptr() as usize - base;
                at..at + raw.get().len()
            })
            .collect();
        Unparsed { body: body.clone(), spans, original: None }
    });
    Ok((tree, unparsed))
}

/// The `Visitor` methods that read JSON scalars into a `Value`.
macro_rules! json_scalars {
    () => {
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }

        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }

        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }

        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }

        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }

        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
    };
}

/// Parse JSON text into a `Value`, as `serde_json::from_slice` does but
/// with each object's map sized for a typical audit object up front:
/// growing maps key by key (a new allocation and a rehash at 4, 8, 16
/// keys) is much of the cost of reading an event. One difference: a key
/// named like serde_json's private raw-value marker is an ordinary key.
pub fn parse_value(text: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = serde::de::DeserializeSeed::deserialize(Tree, &mut de)?;
    de.end()?;
    Ok(value)
}

/// A JSON pointer (RFC 6901) read once: [`Pointer::find`] finds what
/// `Value::pointer` finds, without unescaping every token on every event.
#[derive(Debug, Clone, PartialEq)]
pub struct Pointer(Option<Vec<String>>);

impl Pointer {
    /// Read a pointer. One `Value::pointer` never follows (not empty and
    /// not starting with `/`) finds nothing.
    pub fn parse(text: &str) -> Pointer {
        if text.is_empty() {
            return Pointer(Some(Vec::new()));
        }
        Pointer(text.strip_prefix('/').map(|p| p.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect()))
    }

    /// The value the pointer names in `v`.
    pub fn find<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        let mut at = v;
        for token in self.0.as_ref()? {
            at = match at {
                Value::Object(m) => m.get(token)?,
                Value::Array(a) => a.get(array_index(token)?)?,
                _ => return None,
            };
        }
        Some(at)
    }
}

/// An array index as RFC 6901 writes it: digits, no sign, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

/// The parts of an event a source's mapping reads, as a tree of object
/// keys: [`parse_wanted`] builds only these into the `Value` and checks and
/// skips the rest, so an event is not turned into a tree of maps and
/// strings only for most of them to be dropped. Built from the JSON
/// pointers the mapping follows ([`Wanted::pointer`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Wanted {
    /// Keys wanted in this object, each with what is wanted below it.
    keys: Vec<(String, Wanted)>,
    /// The whole value is wanted.
    whole: bool,
}

impl Wanted {
    /// Also want the value a JSON pointer (RFC 6901) names, whole: `""` is
    /// the whole event. A pointer `Value::pointer` never follows (one not
    /// starting with `/`) adds nothing. A token that is an array index
    /// wants the whole array (arrays are not pruned).
    pub fn pointer(&mut self, pointer: &str) -> &mut Self {
        self.at(&Pointer::parse(pointer))
    }

    /// [`Wanted::pointer`] for a pointer already read.
    pub fn at(&mut self, pointer: &Pointer) -> &mut Self {
        if let Some(tokens) = &pointer.0 {
            let mut node = &mut *self;
            for token in tokens {
                node = node.child(token);
            }
            node.whole = true;
            node.keys.clear();
        }
        self
    }

    /// Also want a top-level key, whole.
    pub fn key(&mut self, key: &str) -> &mut Self {
        let node = self.child(key);
        node.whole = true;
        node.keys.clear();
        self
    }

    /// The node for `key`, added if new (a whole node wants everything
    /// below already, so it stays as it is).
    fn child(&mut self, key: &str) -> &mut Wanted {
        if self.whole {
            return self;
        }
        let at = match self.keys.iter().position(|(k, _)| k == key) {
            Some(at) => at,
            None => {
                self.keys.push((key.to_owned(), Wanted::default()));
                self.keys.len() - 1
            }
        };
        &mut self.keys[at].1
    }
}

/// Parse an event's JSON text keeping only what `wanted` names (see
/// [`Wanted`]): every pointer the wanted tree was built from finds the same
/// value in the result as in [`parse_value`]'s. The rest of the text is
/// checked as JSON but not built, and not depth-limited.
pub fn parse_wanted(text: &[u8], wanted: &Wanted) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = serde::de::DeserializeSeed::deserialize(Prune(wanted), &mut de)?;
    de.end()?;
    Ok(value)
}

/// Reads the parts of a JSON value a [`Wanted`] names (see [`parse_wanted`]).
struct Prune<'w>(&'w Wanted);

impl<'de> serde::de::DeserializeSeed<'de> for Prune<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.whole {
            return d.deserialize_any(Tree);
        }
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Prune<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::with_capacity(self.0.keys.len());
        while let Some(found) = map.next_key_seed(WantedKey(self.0))? {
            match found {
                Some((key, below)) => {
                    let value = map.next_value_seed(Prune(below))?;
                    out.insert(key.clone(), value);
                }
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        serde::de::Visitor::visit_seq(Tree, seq)
    }

    json_scalars!();
}

/// Reads an object key and finds it among the wanted ones, without
/// allocating for the keys that are not.
struct WantedKey<'w>(&'w Wanted);

impl<'de, 'w> serde::de::DeserializeSeed<'de> for WantedKey<'w> {
    type Value = Option<&'w (String, Wanted)>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'w> serde::de::Visitor<'_> for WantedKey<'w> {
    type Value = Option<&'w (String, Wanted)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.keys.iter().find(|(k, _)| k == key))
    }
}

/// Entries an object's map has room for before it grows.
const MAP_ROOM: usize = 8;

/// Reads any JSON value into a `Value` (see [`parse_value`]).
#[derive(Clone, Copy)]
struct Tree;

impl<'de> serde::de::DeserializeSeed<'de> for Tree {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Tree {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::with_capacity(MAP_ROOM);
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Tree)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Tree)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    json_scalars!();
}

/// Reads a JSON value into a `Value`, except the array at `path`, whose
/// elements it leaves as borrowed raw text in `found` (the last array at
/// that path wins, as the last duplicate key does in a `Value`).
///
/// A visitor of its own rather than [`Tree`] with an optional path: that
/// made [`Tree`] sized and every event's parse about 30 % slower
/// (`cargo bench --bench hot -- parse`: 4.1 -> 5.5 ms per 1,000 events).
struct Seek<'p, 'f, 'de> {
    path: &'p [String],
    found: &'f mut Option<Vec<&'de serde_json::value::RawValue>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Seek<'_, '_, 'de> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Seek<'_, '_, 'de> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::with_capacity(MAP_ROOM);
        while let Some(key) = map.next_key::<String>()? {
            let value = match self.path.split_first() {
                Some((head, rest)) if *head == key => {
                    *self.found = None;
                    map.next_value_seed(Seek { path: rest, found: &mut *self.found })?
                }
                _ => map.next_value_seed(Tree)?,
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.path.is_empty() {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(raw) = seq.next_element::<&'de serde_json::value::RawValue>()? {
                items.push(raw);
            }
            *self.found = Some(items);
            return Ok(Value::Array(Vec::new()));
        }
        serde::de::Visitor::visit_seq(Tree, seq)
    }

    json_scalars!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::api::{json_body, json_body_split, ApiResponse};
    use serde_json::json;

    fn resp(body: &str) -> ApiResponse {
        ApiResponse { status: 200, headers: Default::default(), body: bytes::Bytes::copy_from_slice(body.as_bytes()) }
    }

    /// The split body with its events parsed and put back, for comparing
    /// with a whole parse.
    fn rejoined(body: &str, pointer: &str) -> (Value, bool) {
        let (mut rest, unparsed) = json_body_split(&resp(body), pointer).unwrap();
        let Some(text) = unparsed else { return (rest, false) };
        let events: Vec<Value> = (0..text.len()).map(|i| text.parse(i).unwrap()).collect();
        match rest.pointer_mut(pointer) {
            Some(Value::Array(a)) if a.is_empty() => *a = events,
            other => panic!("the events array is left empty in the body, found {other:?}"),
        }
        (rest, true)
    }

    #[test]
    fn events_are_left_as_text_and_the_rest_is_parsed() {
        let body = r#" {"next_cursor": "c2", "data": {"total": 3, "items": [ {"id": 1, "a": [1, {"b": "x\"y"}]},
            "s", 2.5e3, null, {"nested": {"items": [9]}} ], "after": true}, "items": [7]} "#;
        let (rest, unparsed) = json_body_split(&resp(body), "/data/items").unwrap();
        let text = unparsed.unwrap();
        let texts: Vec<&str> = (0..text.len()).map(|i| std::str::from_utf8(text.text(i)).unwrap()).collect();
        assert_eq!(
            texts,
            [r#"{"id": 1, "a": [1, {"b": "x\"y"}]}"#, r#""s""#, "2.5e3", "null", r#"{"nested": {"items": [9]}}"#],
            "each event is its own text, as sent"
        );
        assert_eq!(text.parse(2).unwrap(), json!(2500.0));
        assert_eq!(rest, json!({"next_cursor": "c2", "data": {"total": 3, "items": [], "after": true}, "items": [7]}));
        assert_eq!(text.slice(1..3).len(), 2);
        assert_eq!(text.slice(1..3).parse(1).unwrap(), json!(2500.0));

        for (body, pointer) in [
            (body, "/data/items"),
            (r#"[{"id": 1}, {"id": 2}]"#, ""),
            (r#"{"a/b": {"m~n": [1, 2]}}"#, "/a~1b/m~0n"),
            (r#"{"items": [1], "items": [2, 3]}"#, "/items"),
            (r#"{"items": [], "n": -1, "u": 18446744073709551615, "f": 0.1, "e": {}}"#, "/items"),
        ] {
            let (got, split) = rejoined(body, pointer);
            assert!(split, "{pointer} names an array in {body}");
            assert_eq!(got, json_body(&resp(body)).unwrap(), "{body}");
        }
    }

    #[test]
    fn a_pointer_that_names_no_array_parses_the_whole_body() {
        for (body, pointer) in [
            (r#"{"data": {"items": {"a": 1}}}"#, "/data/items"),
            (r#"{"data": {}}"#, "/data/items"),
            (r#"{"data": [{"items": [1]}]}"#, "/data/0/items"),
            (r#"{"items": [1], "items": null}"#, "/items"),
            (r#"{"items": [1]}"#, "items"),
            (r#""text""#, "/items"),
        ] {
            let (got, split) = rejoined(body, pointer);
            assert!(!split, "{pointer} in {body}");
            assert_eq!(got, json_body(&resp(body)).unwrap(), "{body}");
        }
    }

    #[test]
    fn a_broken_body_is_refused_as_a_whole_parse_refuses_it() {
        for body in [
            "<html>proxy</html>",
            r#"{"data": {"items": [{"id": 1}, {"id": ]}}"#,
            r#"{"data": {"items": [1]}} trailing"#,
            "{\"data\": {\"items\": [\"\\ud800 lone\", \"\u{7f}\"]}, \"x\": tru}",
            "",
        ] {
            let whole = json_body(&resp(body)).unwrap_err().0;
            let split = json_body_split(&resp(body), "/data/items").unwrap_err().0;
            assert!(split.contains("body is not JSON") && split.contains(&body[..body.len().min(10)]), "{split}");
            assert_eq!(split.split(" (").next(), whole.split(" (").next(), "{body}");
        }
    }

    /// Bytes that are not UTF-8 inside one event leave the page readable:
    /// that event says so and keeps its bytes as sent, its neighbours read
    /// as usual; the whole-tree reader takes them as U+FFFD. Outside any
    /// string they are still a broken body.
    #[test]
    fn bytes_that_are_not_utf8_spoil_only_their_event() {
        let mut bad = br#"{"data": {"items": [{"s": "ok"}, {"s": "#.to_vec();
        bad.extend_from_slice(&[b'"', 0xff, 0xfe, b'"', b'}', b',', b'3', b']', b'}', b'}']);
        let resp = ApiResponse { status: 200, headers: Default::default(), body: bad.clone().into() };
        let (_, unparsed) = json_body_split(&resp, "/data/items").unwrap();
        let u = unparsed.unwrap();
        assert_eq!(u.len(), 3);
        assert_eq!(u.not_utf8(0), None);
        assert_eq!(u.not_utf8(1), Some(&[b'{', b'"', b's', b'"', b':', b' ', b'"', 0xff, 0xfe, b'"', b'}'][..]));
        assert_eq!(u.not_utf8(2), None);
        assert_eq!(u.parse(2).unwrap(), serde_json::json!(3));
        assert_eq!(json_body(&resp).unwrap()["data"]["items"][1]["s"], "\u{fffd}\u{fffd}");
        let mut outside = br#"{"data": {"items": [1]}, "#.to_vec();
        outside.extend_from_slice(&[0xff, b'}']);
        let resp = ApiResponse { status: 200, headers: Default::default(), body: outside.into() };
        assert!(json_body_split(&resp, "/data/items").is_err());
    }

    /// `parse_value` reads what `serde_json::from_slice` reads, into the
    /// same `Value` (key order and duplicate keys included), and refuses
    /// what it refuses.
    #[test]
    fn parse_value_reads_as_serde_json_does() {
        let texts = [
            r#"{"b": 1, "a": [true, false, null], "c": {"x": -1, "y": 18446744073709551615, "z": 1.5e300}}"#,
            r#"{"k": 1, "k": 2, "j": "\u00e9\n\"", "e": {}, "l": [], "n": -0.0, "m": 0.1}"#,
            r#"[1, "two", {"three": [3]}]"#,
            r#"  "text"  "#,
            "12345678901234567890123",
            r#"{"$serde_json::private::Number": 1}"#,
            r#"{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": 9, "j": 10, "k": 11}"#,
        ];
        for text in texts {
            let want: Value = serde_json::from_str(text).unwrap();
            let got = parse_value(text.as_bytes()).unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), want.to_string(), "same order: {text}");
        }
        for text in ["", "{", r#"{"a": 1,}"#, "1e400", "[1] 2", "\"\\x\"", "nul"] {
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
            assert!(parse_value(text.as_bytes()).is_err(), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse_value(deep.as_bytes()).unwrap_err().to_string().contains("recursion limit"));
        // serde_json's own reading turns this one into the string's JSON.
        let marker = r#"{"$serde_json::private::RawValue": "[1]"}"#;
        assert_eq!(parse_value(marker.as_bytes()).unwrap(), json!({"$serde_json::private::RawValue": "[1]"}));
    }

    /// `parse_wanted` builds what the pointers name, as `parse_value`
    /// does, and skips the rest; arrays on the way are kept whole.
    #[test]
    fn parse_wanted_builds_only_what_the_pointers_name() {
        let text = r#"{"id": "e1", "time": 1, "actor": {"name": "bob", "ip": "10.0.0.1", "tags": ["x"]},
            "big": {"deep": [[[[1]]]], "s": "\u00e9\"\n"}, "list": [{"a": 1}, {"b": 2}], "a/b": {"c~d": 3},
            "id\u0031": "escaped key", "dup": 1, "dup": 2}"#;
        let mut w = Wanted::default();
        for p in ["/id", "/actor/name", "/list/1/b", "/a~1b/c~0d", "/id1", "/dup", "/missing/x", "no-slash"] {
            w.pointer(p);
        }
        let got = parse_wanted(text.as_bytes(), &w).unwrap();
        assert_eq!(
            got,
            json!({"id": "e1", "actor": {"name": "bob"}, "list": [{"a": 1}, {"b": 2}], "a/b": {"c~d": 3},
                   "id1": "escaped key", "dup": 2})
        );
        assert_eq!(
            got.to_string(),
            r#"{"id":"e1","actor":{"name":"bob"},"list":[{"a":1},{"b":2}],"a/b":{"c~d":3},"id1":"escaped key","dup":2}"#
        );

        // A whole value wins over the pointers below it, either way round.
        let mut w = Wanted::default();
        w.pointer("/actor/name").pointer("/actor").pointer("/actor/ip");
        assert_eq!(
            parse_wanted(text.as_bytes(), &w).unwrap()["actor"],
            json!({"name": "bob", "ip": "10.0.0.1", "tags": ["x"]})
        );
        let mut w = Wanted::default();
        w.key("big").pointer("");
        assert_eq!(parse_wanted(text.as_bytes(), &w).unwrap(), parse_value(text.as_bytes()).unwrap());
        assert_eq!(parse_wanted(text.as_bytes(), &Wanted::default()).unwrap(), json!({}));
        assert_eq!(parse_wanted(b" [1, {\"a\": 2}] ", &Wanted::default()).unwrap(), json!([1, {"a": 2}]));
        assert_eq!(parse_wanted(b"\"text\"", &Wanted::default()).unwrap(), json!("text"));

        // Unwanted values are checked as JSON text but not built: no depth
        // limit there, and a number is not converted (as the page's split
        // does not); broken text is refused wherever it is.
        let deep = format!(r#"{{"id": 1, "x": {}{}}}"#, "[".repeat(200), "]".repeat(200));
        let mut w = Wanted::default();
        w.pointer("/id");
        assert_eq!(parse_wanted(deep.as_bytes(), &w).unwrap(), json!({"id": 1}));
        assert_eq!(parse_wanted(br#"{"id": 1, "x": 1e400}"#, &w).unwrap(), json!({"id": 1}));
        assert!(parse_wanted(br#"{"id": 1e400, "x": 1}"#, &w).is_err());
        for text in
            ["", "{", r#"{"a": 1,}"#, r#"{"x": [1] 2}"#, r#"{"x": "\x"}"#, "nul", r#"{"id": 1} 2"#, r#"{"x": tru}"#]
        {
            assert!(parse_wanted(text.as_bytes(), &w).is_err(), "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_pointer_finds_what_value_pointer_finds(
            v in json_value(),
            tokens in proptest::collection::vec(
                proptest::sample::select(KEYS.iter().copied().chain(["1", "01", "+1", "-0", "00", "~1", "~0x", "~"]).collect::<Vec<_>>()),
                0..4,
            ),
            prefix in proptest::sample::select(vec!["/", "", "x"]),
        ) {
            let text = format!("{prefix}{}", tokens.join("/"));
            let escaped = pointer_of(&tokens);
            for p in [text.as_str(), escaped.as_str()] {
                proptest::prop_assert_eq!(Pointer::parse(p).find(&v), v.pointer(p), "{}", p);
            }
        }

        #[test]
        fn parse_wanted_finds_what_parse_value_finds(
            v in json_value(),
            pointers in proptest::collection::vec(proptest::collection::vec(proptest::sample::select(KEYS.to_vec()), 0..4), 0..5),
        ) {
            let pointers: Vec<String> = pointers
                .iter()
                .map(|tokens| pointer_of(tokens))
                .collect();
            let mut w = Wanted::default();
            for p in &pointers {
                w.pointer(p);
            }
            for text in [serde_json::to_string(&v).unwrap(), serde_json::to_string_pretty(&v).unwrap()] {
                let got = parse_wanted(text.as_bytes(), &w).unwrap();
                for p in &pointers {
                    proptest::prop_assert_eq!(got.pointer(p), v.pointer(p), "{}", p);
                }
                if pointers.is_empty() && v.is_object() {
                    proptest::prop_assert_eq!(&got, &json!({}));
                }
            }
        }

        #[test]
        fn parse_value_round_trips_any_value(v in json_value()) {
            let text = serde_json::to_string(&v).unwrap();
            proptest::prop_assert_eq!(parse_value(text.as_bytes()).unwrap(), v.clone());
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            proptest::prop_assert_eq!(parse_value(pretty.as_bytes()).unwrap(), v);
        }
    }

    /// The JSON pointer to the keys `tokens`, escaped.
    fn pointer_of(tokens: &[&str]) -> String {
        tokens.iter().map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1"))).collect()
    }

    /// Object keys of the generated values, and the tokens of the
    /// generated pointers.
    const KEYS: [&str; 8] = ["a", "b\"\\", "ü\n", "", "id", "$serde_json::private::RawValue", "x/y~z", "0"];

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 12, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..12)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }
}
