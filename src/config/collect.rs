//! Reading a config file so that *every* problem comes out in one run:
//! the text is parsed to a TOML value first, then `[agent]` and each
//! `[[source]]` and `[[output]]` table on its own. A key that fails (an
//! unknown key, a bad duration, a wrong type) is reported with its path,
//! set aside and the table read again without it, so the problems of the
//! other keys and tables are found too, and validation then runs on what
//! was read. Each problem names the line it is on ([`annotate_lines`]).

use super::model::{AgentConfig, Config, OutputConfig, SourceConfig};
use super::Problem;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use toml::Value;

/// Keys set aside in one table before it is given up (a table can only
/// have so many keys; this bounds the loop).
const MAX_RETRIES: usize = 64;

/// The configuration as far as it could be read, and every problem found
/// while reading it (before validation).
pub fn read(text: &str) -> (Config, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut cfg = Config { agent: AgentConfig::default(), sources: Vec::new(), outputs: Vec::new(), cluster: None };
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let mut message = e.message().trim().to_owned();
            if let Some(span) = e.span() {
                message = format!("{message} (line {})", line_at(text, span.start));
            }
            problems.push(Problem { path: "(file)".into(), message });
            return (cfg, problems);
        }
    };
    let mut table = table;
    if let Some(value) = table.remove("agent") {
        if let Some(a) = table_of::<AgentConfig>("agent", value, &mut problems) {
            cfg.agent = a;
        }
    }
    if let Some(value) = table.remove("source") {
        cfg.sources = array_of::<SourceConfig>("source", value, &mut problems);
    }
    if let Some(value) = table.remove("cluster") {
        cfg.cluster = table_of::<super::cluster::ClusterConfig>("cluster", value, &mut problems);
    }
    if let Some(value) = table.remove("output") {
        cfg.outputs = array_of::<OutputConfig>("output", value, &mut problems);
    }
    for other in table.keys() {
        problems.push(Problem {
            path: other.to_owned(),
            message: format!(
                "unknown field `{other}`: the file has [agent], [[source]], [[output]] and [cluster] (config.example.toml lists every key)"
            ),
        });
    }
    (cfg, problems)
}

fn array_of<T: DeserializeOwned>(name: &str, value: Value, problems: &mut Vec<Problem>) -> Vec<T> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| table_of(&format!("{name}[{i}]"), item, problems))
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

/// Read one table, reporting each failing key and retrying without it.
fn table_of<T: DeserializeOwned>(at: &str, mut value: Value, problems: &mut Vec<Problem>) -> Option<T> {
    let mut set_aside: Vec<String> = Vec::new();
    for _ in 0..MAX_RETRIES {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let segments: Vec<Segment> = err.path().iter().cloned().collect();
        let inner = err.into_inner().to_string();
        let mut message = inner.trim().to_owned();
        // The TOML value deserializer adds "\nin `key`": the path says it.
        if let Some(cut) = message.find("\nin `") {
            message.truncate(cut);
        }
        if let Some(cut) = message.find(", expected one of") {
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
