//! Reading one TOML table so that every problem in it is reported: a key
//! that fails (an unknown key, a bad duration, a wrong type) is reported
//! with its key path, set aside and the table read again without it. The
//! registry of each component's types ([`super::registry`]) reads a type's
//! keys with it; `config` reads the whole file, table by table, with it.

use super::problem::Problem;
use serde::de::{DeserializeOwned, Visitor};
use serde::Deserialize;
use serde_path_to_error::Segment;
use toml::Value;

/// Keys set aside in one table before it is given up (a table can only
/// have so many keys; this bounds the loop).
const MAX_RETRIES: usize = 64;

/// A `type` no registry line declares.
pub fn unknown_type(at: &str, type_name: &str, names: &[&str], problems: &mut Vec<Problem>) {
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    problems.push(Problem::new(
        format!("{at}.type"),
        format!("unknown variant `{type_name}`, expected one of {}", names.join(", ")),
    ));
}

/// Read the keys of a component's type (`what` = `"source"`) into its
/// struct `T`. A key `T` does not declare but another type of the same
/// component does (`others`) is reported as not a key of this type.
pub fn typed_table<T: DeserializeOwned>(
    at: &str,
    value: Value,
    type_name: &str,
    what: &str,
    others: &[&str],
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let first = problems.len();
    let read = table_of::<T>(at, value, problems);
    for p in &mut problems[first..] {
        let unknown = p.message.strip_prefix("unknown field `").and_then(|m| m.split('`').next());
        if unknown.is_some_and(|key| others.contains(&key) && p.path == format!("{at}.{key}")) {
            p.message = format!("is not a key of a {type_name} {what}");
        }
    }
    read
}

/// The keys a struct declares (serde's derive names them when it asks the
/// deserializer for a struct); empty for anything else.
pub fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Names<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Names<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("names only"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Names(&mut fields));
    fields
}

/// A deserializer's message without the TOML value deserializer's
/// "\nin `key`" (the path says it).
pub fn clean(message: String) -> String {
    let mut message = message.trim().to_owned();
    if let Some(cut) = message.find("\nin `") {
        message.truncate(cut);
    }
    message
}

/// Read one table, reporting each failing key and retrying without it.
pub fn table_of<T: DeserializeOwned>(at: &str, mut value: Value, problems: &mut Vec<Problem>) -> Option<T> {
    let mut set_aside: Vec<String> = Vec::new();
    for _ in 0..MAX_RETRIES {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let segments: Vec<Segment> = err.path().iter().cloned().collect();
        let mut message = clean(err.into_inner().to_string());
        let unknown_key = message.starts_with("unknown field `");
        if let Some(cut) = message.find(", expected").filter(|_| unknown_key) {
            message.truncate(cut);
            message.push_str(" (config.example.toml lists every key)");
        }
        // A key that fails to read is removed; a missing required key has
        // nothing to remove and ends the attempt. A field set aside earlier
        // is now "missing": that was reported already.
        let missing = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()).map(str::to_owned);
        let unknown = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()).map(str::to_owned);
        let mut path = path_text(at, &segments);
        if let (Some(key), true) = (&unknown, segments.is_empty()) {
            path = format!("{at}.{key}");
        }
        let already = missing.as_ref().is_some_and(|m| set_aside.iter().any(|s| s == &format!("{path}.{m}")));
        if !already {
            problems.push(Problem::new(missing.as_ref().map_or(path.clone(), |m| format!("{path}.{m}")), message));
        }
        let mut target = segments.clone();
        if let Some(key) = unknown.filter(|_| target.is_empty() || !ends_with_key(&target)) {
            target.push(Segment::Map { key });
        }
        if missing.is_some() || target.is_empty() || !remove(&mut value, &target) {
            return None;
        }
        set_aside.push(path_text(at, &target));
    }
    None
}

fn ends_with_key(segments: &[Segment]) -> bool {
    matches!(segments.last(), Some(Segment::Map { .. }))
}

fn path_text(at: &str, segments: &[Segment]) -> String {
    let mut out = at.to_owned();
    for s in segments {
        match s {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Remove the value at `segments` (map keys and list indexes).
fn remove(value: &mut Value, segments: &[Segment]) -> bool {
    let Some((last, head)) = segments.split_last() else { return false };
    let mut at = value;
    for s in head {
        let next = match (s, at) {
            (Segment::Map { key }, Value::Table(t)) => t.get_mut(key.as_str()),
            (Segment::Seq { index }, Value::Array(a)) => a.get_mut(*index),
            _ => None,
        };
        match next {
            Some(v) => at = v,
            None => return false,
        }
    }
    match (last, at) {
        (Segment::Map { key }, Value::Table(t)) => t.remove(key.as_str()).is_some(),
        (Segment::Seq { index }, Value::Array(a)) if *index < a.len() => {
            a.remove(*index);
            true
        }
        _ => false,
    }
}
