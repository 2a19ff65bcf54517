//! Dotted paths (`user.name`) into nested JSON objects.

use serde_json::{Map, Value};

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
