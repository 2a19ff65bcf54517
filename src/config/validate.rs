//! The pure validation pass: every problem in the file, each with its key
//! path (`source[2].url: ...`), before any IO. What the types already rule
//! out (unknown keys, closed vocabularies, the keys of another type) was
//! reported while reading ([`super::collect`]), a URL among them; this
//! pass checks what crosses keys or tables, and each type's own keys
//! ([`crate::settings::Validate`], the one check of its required keys,
//! whose result its build takes) and the limits its API sets on the common
//! keys ([`crate::sources::SourceSpec::limits`]).

use super::model::Config;
use super::output::OutputConfig;
use super::source::SourceConfig;
use crate::outputs::common::ManifestInterval;
use crate::settings::problem::check_header_name;
use crate::settings::{Problem, Problems, TlsConfig};
use std::collections::HashSet;

/// What validation found, by kind.
#[derive(Debug, Default)]
pub struct Found {
    /// Problems of a key or table by itself.
    pub problems: Vec<Problem>,
    /// Problems of what the file holds as a whole: no source or output at
    /// all, a source naming an output that is not there. A table that
    /// could not be read makes these up, so they wait until every table
    /// reads.
    pub whole: Vec<Problem>,
}

/// Check the whole configuration; an empty list means it is valid.
pub fn validate(cfg: &Config) -> Found {
    let mut p = Problems::default();
    if cfg.agent.max_journal_size.bytes() < 1 << 20 {
        p.add("agent.max_journal_size", "must be at least 1MiB");
    }
    if cfg.agent.log_level.parse::<tracing_subscriber::EnvFilter>().is_err() {
        p.add("agent.log_level", format!("{:?} is not a log filter (try \"info\" or \"debug\")", cfg.agent.log_level));
    }
    if cfg.sources.is_empty() {
        p.add_whole("source", "no [[source]] is configured; add one (type = \"demo\" to try it out)");
    }
    if cfg.outputs.is_empty() {
        p.add_whole("output", "no [[output]] is configured; add one (type = \"file\", path = \"-\" prints events)");
    }
    let output_names: HashSet<&str> = cfg.outputs.iter().map(|o| o.name.as_str()).collect();
    let mut seen = HashSet::new();
    for (i, s) in cfg.sources.iter().enumerate() {
        let at = format!("source[{i}]");
        check_name(&mut p, &at, &s.name, &mut seen, "source");
        validate_source(&mut p, &at, s, &output_names);
    }
    let mut seen = HashSet::new();
    for (i, o) in cfg.outputs.iter().enumerate() {
        let at = format!("output[{i}]");
        check_name(&mut p, &at, &o.name, &mut seen, "output");
        validate_output(&mut p, &at, o);
    }
    let (problems, whole) = p.into_parts();
    Found { problems, whole }
}

fn check_name<'a>(p: &mut Problems, at: &str, name: &'a str, seen: &mut HashSet<&'a str>, what: &str) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        p.add(format!("{at}.name"), format!("{name:?} must be 1-64 characters of A-Z a-z 0-9 _ - ."));
    }
    if !seen.insert(name) {
        p.add(format!("{at}.name"), format!("another {what} is already named {name:?}"));
    }
}

fn validate_source(p: &mut Problems, at: &str, s: &SourceConfig, outputs: &HashSet<&str>) {
    let spec = s.kind.spec();
    s.kind.validate(at, p);
    spec.limits(at, &s.common, p);
    let c = &s.common;
    if c.page_size == Some(0) {
        p.add(format!("{at}.page_size"), "must be at least 1");
    }
    if c.interval.is_some_and(|d| d.get().is_zero()) {
        p.add(format!("{at}.interval"), "must be longer than 0s");
    }
    if c.timeout.is_some_and(|d| d.get().is_zero()) {
        p.add(format!("{at}.timeout"), "must be longer than 0s");
    }
    if c.max_window.is_some_and(|d| d.get() < std::time::Duration::from_secs(1)) {
        p.add(format!("{at}.max_window"), "must be at least 1s");
    }
    if c.max_pages == Some(0) {
        p.add(format!("{at}.max_pages"), "must be at least 1");
    }
    if c.max_poll_time.is_some_and(|d| d.get() < std::time::Duration::from_secs(1)) {
        p.add(format!("{at}.max_poll_time"), "must be at least 1s");
    }
    if c.max_response_size.is_some_and(|n| n.bytes() < 1024) {
        p.add(format!("{at}.max_response_size"), "must be at least 1KiB");
    }
    for (j, origin) in c.allowed_origins.iter().flatten().enumerate() {
        if origin.url().scheme() == "http" && spec.url().is_some_and(|c| c.scheme() == "https") {
            p.add(
                format!("{at}.allowed_origins[{j}]"),
                format!(
                    "{:?} is http:// but the source's url is https://: credentials never go from https to http",
                    origin.url().as_str()
                ),
            );
        }
    }
    for (j, name) in c.outputs.iter().flatten().enumerate() {
        if !outputs.contains(name.as_str()) {
            p.add_whole(format!("{at}.outputs[{j}]"), format!("no output is named {name:?}"));
        }
    }
    if let Some(tls) = &c.tls {
        validate_tls(p, &format!("{at}.tls"), tls);
    }
    validate_headers(p, at, s);
}

/// Headers the agent sets on every request, whatever the source.
const AGENT_HEADERS: &[&str] = &["host", "content-length", "content-type", "transfer-encoding"];

/// `headers` go on every API request of every connector; a header the
/// source would not send as configured is an error, never silently dropped.
/// A source that makes no requests (the demo) takes none of the HTTP keys.
fn validate_headers(p: &mut Problems, at: &str, s: &SourceConfig) {
    let (c, spec) = (&s.common, s.kind.spec());
    if !spec.makes_requests() {
        let http_keys = [
            ("headers", c.headers.is_some()),
            ("tls", c.tls.is_some()),
            ("timeout", c.timeout.is_some()),
            ("max_response_size", c.max_response_size.is_some()),
            ("rate_limit", c.rate_limit.is_some()),
        ];
        for (key, _) in http_keys.iter().filter(|(_, set)| *set) {
            p.add(
                format!("{at}.{key}"),
                format!("is not a key of a {} source: it makes no HTTP requests", s.type_name()),
            );
        }
        return;
    }
    let credential = spec.credential_header();
    for (name, value) in c.headers.iter().flatten() {
        let path = format!("{at}.headers.{name}");
        // The value may be a key: never quoted back.
        if !check_header_name(name) {
            p.add(path, format!("{name:?} is not a valid header name"));
        } else if reqwest::header::HeaderValue::from_str(value).is_err() {
            p.add(path, "the value is not a valid header value (control characters or non-ASCII)");
        } else if AGENT_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            p.add(path, "is set by the agent on every request; remove it");
        } else if credential.is_some_and(|h| h.eq_ignore_ascii_case(name)) {
            p.add(
                path,
                format!(
                    "carries a {} source's credentials, which the agent sets from the credential keys; remove it",
                    s.type_name()
                ),
            );
        }
    }
}

fn validate_tls(p: &mut Problems, at: &str, tls: &TlsConfig) {
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        p.add(at, "cert_file and key_file go together (client certificate for mTLS)");
    }
    if tls.ca_only && tls.ca_file.is_none() {
        p.add(format!("{at}.ca_only"), "trusts ca_file alone, and no ca_file is set: nothing would be trusted");
    }
}

fn validate_output(p: &mut Problems, at: &str, o: &OutputConfig) {
    let c = &o.common;
    if c.batch.max_events == 0 {
        p.add(format!("{at}.batch.max_events"), "must be at least 1");
    }
    if c.batch.max_bytes.bytes() < 1024 {
        p.add(format!("{at}.batch.max_bytes"), "must be at least 1KiB");
    }
    if c.retry_max_interval.get() < std::time::Duration::from_millis(100) {
        p.add(format!("{at}.retry_max_interval"), "must be at least 100ms");
    }
    o.kind.validate(at, p);
    match c.manifest_interval {
        Some(ManifestInterval::Every(_)) if !o.kind.spec().sends_documents() => p.add(
            format!("{at}.manifest_interval"),
            "manifests need the event's JSON document (payload = \"normalised\" or \"json\"); this output sends another format: set \"off\" or change payload",
        ),
        Some(ManifestInterval::Every(d)) if d.get() < crate::manifest::MIN_INTERVAL => {
            p.add(format!("{at}.manifest_interval"), "must be at least 1s (or \"off\")")
        }
        _ => {}
    }
    if let Some(tls) = &c.tls {
        validate_tls(p, &format!("{at}.tls"), tls);
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::AgentConfig;
    use crate::outputs::{OutputCommon, OutputKind};
    use crate::settings::table::field_names;
    use crate::sources::{SourceCommon, SourceKind};

    const EXAMPLE: &str = include_str!("../../config.example.toml");

    #[test]
    fn example_config_is_valid_and_documents_every_key() {
        crate::config::parse(EXAMPLE).unwrap();
        let keys = [
            field_names::<AgentConfig>(),
            field_names::<SourceCommon>(),
            field_names::<OutputCommon>(),
            &SourceKind::all_keys(),
            &OutputKind::all_keys(),
        ]
        .concat();
        assert!(keys.len() > 60, "every key is listed: {keys:?}");
        for key in keys {
            let documented = EXAMPLE.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} "))
                    || l.starts_with(&format!("{key}="))
                    || l.contains(&format!(" {key} "))
            });
            assert!(documented, "config.example.toml does not document `{key}`");
        }
    }
}
