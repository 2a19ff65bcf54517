//! Reading a config file so that *every* problem comes out in one run:
//! the text is parsed to a TOML value first, then `[agent]` and each
//! `[[source]]` and `[[output]]` table on its own. A key that fails (an
//! unknown key, a bad duration, a wrong type) is reported with its path,
//! set aside and the table read again without it, so the problems of the
//! other keys and tables are found too, and validation then runs on what
//! was read. Each problem names the line it is on ([`annotate_lines`]).
//!
//! A `[[source]]` or `[[output]]` table is read in two passes: its `name`,
//! `type` and common keys first, then the rest into the struct of its type
//! ([`super::source`]).

use super::model::{AgentConfig, Config};
use super::output::{OutputCommon, OutputConfig, OutputKind};
use super::source::{SourceCommon, SourceConfig, SourceKind};
use super::Problem;
use serde::de::{DeserializeOwned, Visitor};
use serde::Deserialize;
use serde_path_to_error::Segment;
use toml::Value;

/// Keys set aside in one table before it is given up (a table can only
/// have so many keys; this bounds the loop).
const MAX_RETRIES: usize = 64;

/// The configuration as far as it could be read, every problem found
/// while reading it (before validation), and whether a whole `[[source]]`
/// or `[[output]]` table had to be dropped (a required key missing, an
/// unknown `type`).
pub fn read(text: &str) -> (Config, Vec<Problem>, bool) {
    let mut problems = Vec::new();
    let mut cfg = Config::default();
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let mut message = e.message().trim().to_owned();
            if let Some(span) = e.span() {
                message = format!("{message} (line {})", line_at(text, span.start));
            }
            problems.push(Problem { path: "(file)".into(), message });
            return (cfg, problems, true);
        }
    };
    let mut table = table;
    if let Some(value) = table.remove("agent") {
        if let Some(a) = table_of::<AgentConfig>("agent", value, &mut problems) {
            cfg.agent = a;
        }
    }
    let tables = |v: &Value| v.as_array().map_or(1, Vec::len);
    let mut dropped = false;
    if let Some(value) = table.remove("source") {
        let n = tables(&value);
        cfg.sources = array_of("source", value, &mut problems, read_source);
        dropped |= cfg.sources.len() != n;
    }
    if let Some(value) = table.remove("cluster") {
        cfg.cluster = table_of::<super::cluster::ClusterConfig>("cluster", value, &mut problems);
    }
    if let Some(value) = table.remove("output") {
        let n = tables(&value);
        cfg.outputs = array_of("output", value, &mut problems, read_output);
        dropped |= cfg.outputs.len() != n;
    }
    for other in table.keys() {
        problems.push(Problem {
            path: other.to_owned(),
            message: format!(
                "unknown field `{other}`: the file has [agent], [[source]], [[output]] and [cluster] (config.example.toml lists every key)"
            ),
        });
    }
    (cfg, problems, dropped)
}

fn array_of<T>(
    name: &str,
    value: Value,
    problems: &mut Vec<Problem>,
    read: fn(&str, Value, &mut Vec<Problem>) -> Option<T>,
) -> Vec<T> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| read(&format!("{name}[{i}]"), item, problems))
            .collect(),
        other => {
            problems.push(Problem {
                path: name.to_owned(),
                message: format!("is a {}, not a list of tables; write [[{name}]]", other.type_str()),
            });
            Vec::new()
        }
    }
}

fn read_source(at: &str, value: Value, problems: &mut Vec<Problem>) -> Option<SourceConfig> {
    let (name, type_name, common, rest) = split_component::<SourceCommon>(at, value, problems)?;
    let kind = type_name.and_then(|t| SourceKind::read(&t, at, rest, problems));
    Some(SourceConfig { name: name?, common: common?, kind: kind? })
}

fn read_output(at: &str, value: Value, problems: &mut Vec<Problem>) -> Option<OutputConfig> {
    let (name, type_name, common, rest) = split_component::<OutputCommon>(at, value, problems)?;
    let kind = type_name.and_then(|t| OutputKind::read(&t, at, rest, problems));
    Some(OutputConfig { name: name?, common: common?, kind: kind? })
}

/// The first pass over a `[[source]]` or `[[output]]` table: its `name`,
/// its `type`, its common keys `C` (each `None` when it could not be read,
/// the problem reported), and the table of the remaining keys.
type Split<C> = (Option<String>, Option<String>, Option<C>, Value);

fn split_component<C: DeserializeOwned>(at: &str, value: Value, problems: &mut Vec<Problem>) -> Option<Split<C>> {
    let Value::Table(mut table) = value else {
        problems.push(Problem { path: at.to_owned(), message: format!("is a {}, not a table", value.type_str()) });
        return None;
    };
    let name = required_string(at, "name", table.remove("name"), problems);
    let type_name = required_string(at, "type", table.remove("type"), problems);
    let common_keys = field_names::<C>();
    let (common, rest): (toml::Table, toml::Table) =
        table.into_iter().partition(|(k, _)| common_keys.contains(&k.as_str()));
    let common = table_of::<C>(at, Value::Table(common), problems);
    Some((name, type_name, common, Value::Table(rest)))
}

fn required_string(at: &str, key: &str, value: Option<Value>, problems: &mut Vec<Problem>) -> Option<String> {
    let path = format!("{at}.{key}");
    let Some(value) = value else {
        problems.push(Problem { path, message: format!("missing field `{key}`") });
        return None;
    };
    String::deserialize(value).map_err(|e| problems.push(Problem { path, message: clean(e.to_string()) })).ok()
}

/// A `type` no registry line declares.
pub(crate) fn unknown_type(at: &str, type_name: &str, names: &[&str], problems: &mut Vec<Problem>) {
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    problems.push(Problem {
        path: format!("{at}.type"),
        message: format!("unknown variant `{type_name}`, expected one of {}", names.join(", ")),
    });
}

/// Read the keys of a component's type (`what` = `"source"`) into its
/// struct `T`. A key `T` does not declare but another type of the same
/// component does (`others`) is reported as not a key of this type.
pub(crate) fn typed_table<T: DeserializeOwned>(
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
fn clean(message: String) -> String {
    let mut message = message.trim().to_owned();
    if let Some(cut) = message.find("\nin `") {
        message.truncate(cut);
    }
    message
}

/// Read one table, reporting each failing key and retrying without it.
fn table_of<T: DeserializeOwned>(at: &str, mut value: Value, problems: &mut Vec<Problem>) -> Option<T> {
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
            problems.push(Problem { path: missing.as_ref().map_or(path.clone(), |m| format!("{path}.{m}")), message });
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

/// The 1-based line of byte offset `at`.
fn line_at(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// Append ` (line N)` to each problem that does not name its line yet: the
/// line of the key its path names, else of its table's header.
pub fn annotate_lines(text: &str, problems: &mut [Problem]) {
    for p in problems.iter_mut() {
        if p.message.contains("(line ") {
            continue;
        }
        if let Some(line) = line_of(text, &p.path) {
            p.message = format!("{} (line {line})", p.message);
        }
    }
}

/// Where `path` (`source[2].interval`, `agent.listen`, `output[0]`) is
/// written: the key's line within its table, else the table's header.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let (table, rest) = path.split_once('.').unwrap_or((path, ""));
    let (name, index) = match table.split_once('[') {
        Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()?),
        None => (table, 0),
    };
    let lines: Vec<&str> = text.lines().collect();
    let header = |l: &str| -> Option<String> {
        let l = l.trim();
        let inner = l
            .strip_prefix("[[")
            .and_then(|x| x.split("]]").next())
            .or_else(|| l.strip_prefix('[')?.split(']').next())?;
        Some(inner.trim().to_owned())
    };
    let start = lines.iter().enumerate().filter(|(_, l)| header(l).as_deref() == Some(name)).nth(index)?.0;
    let sub = format!("{name}.");
    let end = lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .find(|(_, l)| header(l).is_some_and(|h| !h.starts_with(&sub)))
        .map_or(lines.len(), |(i, _)| i);
    let key = rest.split(['.', '[']).next().unwrap_or_default();
    if !key.is_empty() {
        for (i, l) in lines.iter().enumerate().take(end).skip(start + 1) {
            let l = l.trim_start().trim_start_matches('"');
            if l.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with(['=', '.', '"'])) {
                return Some(i + 1);
            }
            if header(l).is_some_and(|h| h == format!("{name}.{key}")) {
                // A sub-table (`[source.tls]`): the next key within it.
                let inner = rest.split(['.', '[']).nth(1).unwrap_or_default();
                let found =
                    lines.iter().enumerate().take(end).skip(i + 1).take_while(|(_, l)| header(l).is_none()).find(
                        |(_, l)| {
                            let l = l.trim_start().trim_start_matches('"');
                            !inner.is_empty()
                                && l.strip_prefix(inner).is_some_and(|r| r.trim_start().starts_with(['=', '"']))
                        },
                    );
                return Some(found.map_or(i, |(j, _)| j) + 1);
            }
        }
    }
    Some(start + 1)
}
