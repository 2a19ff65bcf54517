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
//! ([`super::source`]). One table is read by [`crate::settings::table`].

use super::model::{AgentConfig, Config};
use super::output::OutputConfig;
use super::source::SourceConfig;
use crate::outputs::{OutputCommon, OutputKind};
use crate::settings::table::{clean, field_names, table_of};
use crate::settings::Problem;
use crate::sources::{SourceCommon, SourceKind};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::Value;

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
            let mut problem = Problem::new("(file)", e.message().trim());
            problem.line = e.span().map(|span| line_at(text, span.start));
            problems.push(problem);
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
        problems.push(Problem::new(other.to_owned(), format!(
                "unknown field `{other}`: the file has [agent], [[source]], [[output]] and [cluster] (config.example.toml lists every key)"
            )));
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
            problems.push(Problem::new(
                name.to_owned(),
                format!("is a {}, not a list of tables; write [[{name}]]", other.type_str()),
            ));
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
        problems.push(Problem::new(at.to_owned(), format!("is a {}, not a table", value.type_str())));
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
        problems.push(Problem::new(path, format!("missing field `{key}`")));
        return None;
    };
    String::deserialize(value).map_err(|e| problems.push(Problem::new(path, clean(e.to_string())))).ok()
}

/// The 1-based line of byte offset `at`.
fn line_at(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// Give each problem whose line is not known yet the line of the key its
/// path names, else of its table's header.
pub fn annotate_lines(text: &str, problems: &mut [Problem]) {
    for p in problems.iter_mut().filter(|p| p.line.is_none()) {
        p.line = line_of(text, &p.path);
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
