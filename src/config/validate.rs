//! The pure validation pass: every problem in the file, each with its key
//! path (`source[2].url: ...`), before any IO.

use super::model::{AuthConfig, Config, OutputConfig, OutputType, PaginationConfig, SourceConfig, SourceType};
use std::collections::HashSet;
use std::fmt;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `source[2].url`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { path: path.into(), message: message.into() });
    }
}

const SOURCE_COMMON: &[&str] = &[
    "interval",
    "start_at",
    "page_size",
    "rate_limit",
    "lag",
    "lookback",
    "timeout",
    "max_response_size",
    "outputs",
    "tls",
    "headers",
    "max_window",
];

/// Keys each source type accepts beyond the common ones.
fn source_keys(kind: SourceType) -> &'static [&'static str] {
    match kind {
        SourceType::Opencti => &["url", "token", "token_file", "include_history"],
        SourceType::Sekoia => &["url", "token", "token_file", "query"],
        SourceType::Invicti => &["url", "user_id", "user_id_file", "token", "token_file"],
        SourceType::Keepnet => &["url", "client_id", "client_secret", "client_secret_file"],
        SourceType::Guance => &["url", "token", "token_file", "query"],
        SourceType::HttpJson => &[
            "url",
            "method",
            "body",
            "auth",
            "events",
            "id",
            "timestamp",
            "timestamp_format",
            "params",
            "pagination",
            "order",
            "fields",
        ],
        SourceType::Demo => &["rate"],
    }
}

/// The type-specific keys a source sets.
fn source_set_keys(s: &SourceConfig) -> Vec<&'static str> {
    let pairs: [(&'static str, bool); 22] = [
        ("url", s.url.is_some()),
        ("token", s.token.is_some()),
        ("token_file", s.token_file.is_some()),
        ("user_id", s.user_id.is_some()),
        ("user_id_file", s.user_id_file.is_some()),
        ("client_id", s.client_id.is_some()),
        ("client_secret", s.client_secret.is_some()),
        ("client_secret_file", s.client_secret_file.is_some()),
        ("method", s.method.is_some()),
        ("body", s.body.is_some()),
        ("auth", s.auth.is_some()),
        ("events", s.events.is_some()),
        ("id", s.id.is_some()),
        ("timestamp", s.timestamp.is_some()),
        ("timestamp_format", s.timestamp_format.is_some()),
        ("params", s.params.is_some()),
        ("pagination", s.pagination.is_some()),
        ("order", s.order.is_some()),
        ("fields", s.fields.is_some()),
        ("rate", s.rate.is_some()),
        ("include_history", s.include_history.is_some()),
        ("query", s.query.is_some()),
    ];
    pairs.iter().filter(|(_, set)| *set).map(|(k, _)| *k).collect()
}

/// Keys each output type accepts beyond the common ones.
fn output_keys(kind: OutputType) -> &'static [&'static str] {
    match kind {
        OutputType::SplunkHec => &[
            "url",
            "token",
            "token_file",
            "index",
            "sourcetype",
            "source",
            "ack",
            "ack_timeout",
            "max_in_flight",
            "compression",
            "timeout",
        ],
        OutputType::Syslog => &[
            "address",
            "transport",
            "format",
            "framing",
            "facility",
            "app_name",
            "max_message_size",
            "truncate",
            "timeout",
        ],
        OutputType::Qradar => {
            &["address", "transport", "framing", "facility", "max_message_size", "truncate", "delimiter"]
        }
        OutputType::File => &["path"],
    }
}

fn output_set_keys(o: &OutputConfig) -> Vec<&'static str> {
    let pairs: [(&'static str, bool); 21] = [
        ("url", o.url.is_some()),
        ("token", o.token.is_some()),
        ("token_file", o.token_file.is_some()),
        ("index", o.index.is_some()),
        ("sourcetype", o.sourcetype.is_some()),
        ("source", o.source.is_some()),
        ("ack", o.ack.is_some()),
        ("ack_timeout", o.ack_timeout.is_some()),
        ("max_in_flight", o.max_in_flight.is_some()),
        ("compression", o.compression.is_some()),
        ("timeout", o.timeout.is_some()),
        ("address", o.address.is_some()),
        ("transport", o.transport.is_some()),
        ("format", o.format.is_some()),
        ("framing", o.framing.is_some()),
        ("facility", o.facility.is_some()),
        ("app_name", o.app_name.is_some()),
        ("max_message_size", o.max_message_size.is_some()),
        ("truncate", o.truncate.is_some()),
        ("delimiter", o.delimiter.is_some()),
        ("path", o.path.is_some()),
    ];
    pairs.iter().filter(|(_, set)| *set).map(|(k, _)| *k).collect()
}

/// Check the whole configuration; an empty list means it is valid.
pub fn validate(cfg: &Config) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    if cfg.agent.max_journal_size.bytes() < 1 << 20 {
        p.add("agent.max_journal_size", "must be at least 1MiB");
    }
    if cfg.agent.log_level.parse::<tracing_subscriber::EnvFilter>().is_err() {
        p.add("agent.log_level", format!("{:?} is not a log filter (try \"info\" or \"debug\")", cfg.agent.log_level));
    }
    if cfg.sources.is_empty() {
        p.add("source", "no [[source]] is configured; add one (type = \"demo\" to try it out)");
    }
    if cfg.outputs.is_empty() {
        p.add("output", "no [[output]] is configured; add one (type = \"file\", path = \"-\" prints events)");
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
    p.0
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

fn check_url(p: &mut Problems, path: String, url: &str) {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        Ok(u) => p.add(path, format!("{url:?} must be an http:// or https:// URL with a host, not {}", u.scheme())),
        Err(e) => p.add(path, format!("{url:?} is not a URL ({e})")),
    }
}

fn check_pointer(p: &mut Problems, path: String, pointer: &str) {
    if !(pointer.is_empty() || pointer.starts_with('/')) {
        p.add(path, format!("{pointer:?} is not a JSON pointer; it starts with '/' (e.g. \"/data/items\")"));
    }
}

fn validate_source(p: &mut Problems, at: &str, s: &SourceConfig, outputs: &HashSet<&str>) {
    let allowed = source_keys(s.kind);
    for key in source_set_keys(s) {
        if !allowed.contains(&key) {
            p.add(format!("{at}.{key}"), format!("is not a key of a {} source", s.kind.as_str()));
        }
    }
    debug_assert!(SOURCE_COMMON.iter().all(|k| !allowed.contains(k)));
    if s.kind != SourceType::Demo {
        match &s.url {
            Some(u) => check_url(p, format!("{at}.url"), u),
            None => p.add(format!("{at}.url"), "is required"),
        }
    }
    let need_secret = |p: &mut Problems, key: &str, set: bool| {
        if !set {
            p.add(format!("{at}.{key}"), format!("is required (or {key}_file)"));
        }
    };
    match s.kind {
        SourceType::Opencti | SourceType::Sekoia | SourceType::Guance => {
            need_secret(p, "token", s.token.is_some() || s.token_file.is_some());
            if s.kind == SourceType::Opencti && s.page_size.is_some_and(|n| n > 5000) {
                p.add(format!("{at}.page_size"), "OpenCTI allows at most 5000");
            }
        }
        SourceType::Invicti => {
            need_secret(p, "user_id", s.user_id.is_some() || s.user_id_file.is_some());
            need_secret(p, "token", s.token.is_some() || s.token_file.is_some());
            if s.page_size.is_some_and(|n| n > 200) {
                p.add(format!("{at}.page_size"), "Invicti allows at most 200");
            }
        }
        SourceType::Keepnet => {
            if s.client_id.is_none() {
                p.add(format!("{at}.client_id"), "is required");
            }
            need_secret(p, "client_secret", s.client_secret.is_some() || s.client_secret_file.is_some());
        }
        SourceType::HttpJson => validate_http_json(p, at, s),
        SourceType::Demo => {}
    }
    if s.page_size == Some(0) {
        p.add(format!("{at}.page_size"), "must be at least 1");
    }
    if s.interval.is_some_and(|d| d.get().is_zero()) {
        p.add(format!("{at}.interval"), "must be longer than 0s");
    }
    if s.timeout.is_some_and(|d| d.get().is_zero()) {
        p.add(format!("{at}.timeout"), "must be longer than 0s");
    }
    if s.max_window.is_some_and(|d| d.get() < std::time::Duration::from_secs(1)) {
        p.add(format!("{at}.max_window"), "must be at least 1s");
    }
    if s.max_response_size.is_some_and(|n| n.bytes() < 1024) {
        p.add(format!("{at}.max_response_size"), "must be at least 1KiB");
    }
    if let Some(list) = &s.outputs {
        for (j, name) in list.iter().enumerate() {
            if !outputs.contains(name.as_str()) {
                p.add(format!("{at}.outputs[{j}]"), format!("no output is named {name:?}"));
            }
        }
    }
    if let Some(tls) = &s.tls {
        validate_tls(p, &format!("{at}.tls"), tls);
    }
    validate_headers(p, at, s);
}

/// Common keys a demo source would ignore: it makes no HTTP request.
const DEMO_IGNORES: &[&str] = &["headers", "tls", "timeout", "max_response_size", "rate_limit"];

/// Headers the agent sets on every request, whatever the source.
const AGENT_HEADERS: &[&str] = &["host", "content-length", "content-type", "transfer-encoding"];

/// The header carrying a source type's credentials, which a configured
/// header of the same name would collide with.
fn credential_header(s: &SourceConfig) -> Option<&str> {
    match (s.kind, &s.auth) {
        (SourceType::Opencti | SourceType::Sekoia | SourceType::Invicti | SourceType::Keepnet, _) => {
            Some("authorization")
        }
        (SourceType::Guance, _) => Some("df-api-key"),
        (SourceType::HttpJson, Some(AuthConfig::Header { name, .. })) => Some(name.as_str()),
        (SourceType::HttpJson, Some(_)) => Some("authorization"),
        (SourceType::HttpJson, None) | (SourceType::Demo, _) => None,
    }
}

/// `headers` go on every API request of every connector; a header the
/// source would not send as configured is an error, never silently dropped.
fn validate_headers(p: &mut Problems, at: &str, s: &SourceConfig) {
    let sets = |key: &str| match key {
        "headers" => s.headers.is_some(),
        "tls" => s.tls.is_some(),
        "timeout" => s.timeout.is_some(),
        "max_response_size" => s.max_response_size.is_some(),
        "rate_limit" => s.rate_limit.is_some(),
        _ => false,
    };
    if s.kind == SourceType::Demo {
        for key in DEMO_IGNORES.iter().filter(|k| sets(k)) {
            p.add(format!("{at}.{key}"), "is not a key of a demo source: it makes no HTTP requests");
        }
        return;
    }
    let credential = credential_header(s);
    for (name, value) in s.headers.iter().flatten() {
        let path = format!("{at}.headers.{name}");
        // The value may be a key: never quoted back.
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
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
                    s.kind.as_str()
                ),
            );
        }
    }
}

fn validate_http_json(p: &mut Problems, at: &str, s: &SourceConfig) {
    match s.method.as_deref().unwrap_or("GET") {
        "GET" | "POST" => {}
        other => p.add(format!("{at}.method"), format!("{other:?} must be GET or POST")),
    }
    if s.body.is_some() && s.method.as_deref() != Some("POST") {
        p.add(format!("{at}.body"), "a body needs method = \"POST\"");
    }
    match &s.events {
        Some(ptr) => check_pointer(p, format!("{at}.events"), ptr),
        None => p.add(
            format!("{at}.events"),
            "is required: the JSON pointer to the array of events (\"\" when the body is the array)",
        ),
    }
    if let Some(ptr) = &s.id {
        check_pointer(p, format!("{at}.id"), ptr);
    }
    match &s.timestamp {
        Some(ptr) => check_pointer(p, format!("{at}.timestamp"), ptr),
        None => p.add(format!("{at}.timestamp"), "is required: the JSON pointer to each event's time"),
    }
    if let Some(f) = &s.timestamp_format {
        if super::time_format::TimeFormat::parse(f).is_err() {
            p.add(
                format!("{at}.timestamp_format"),
                format!("{f:?} must be rfc3339, unix, unix_ms or a strftime pattern with %"),
            );
        }
    }
    if let Some(fields) = &s.fields {
        for (k, ptr) in fields {
            check_pointer(p, format!("{at}.fields.{k}"), ptr);
        }
    }
    match &s.pagination {
        Some(PaginationConfig::Next { next, param }) => {
            check_pointer(p, format!("{at}.pagination.next"), next);
            if param.is_empty() {
                p.add(format!("{at}.pagination.param"), "must name the query parameter");
            }
        }
        Some(PaginationConfig::Page { .. }) if !uses(s, "{{page}}") => {
            p.add(format!("{at}.pagination"), "type = \"page\" needs {{page}} in params or body")
        }
        Some(PaginationConfig::Offset) if !uses(s, "{{offset}}") => {
            p.add(format!("{at}.pagination"), "type = \"offset\" needs {{offset}} in params or body")
        }
        _ => {}
    }
    match &s.auth {
        Some(AuthConfig::Bearer { token, token_file }) if token.is_none() == token_file.is_none() => {
            p.add(format!("{at}.auth"), "bearer needs exactly one of token or token_file")
        }
        Some(AuthConfig::Basic { password, password_file, .. }) if password.is_none() == password_file.is_none() => {
            p.add(format!("{at}.auth"), "basic needs exactly one of password or password_file")
        }
        Some(AuthConfig::Header { value, value_file, name }) => {
            if value.is_none() == value_file.is_none() {
                p.add(format!("{at}.auth"), "header needs exactly one of value or value_file");
            }
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                p.add(format!("{at}.auth.name"), format!("{name:?} is not a valid header name"));
            }
        }
        Some(AuthConfig::Oauth2 { token_url, client_secret, client_secret_file, .. }) => {
            check_url(p, format!("{at}.auth.token_url"), token_url);
            if client_secret.is_none() == client_secret_file.is_none() {
                p.add(format!("{at}.auth"), "oauth2 needs exactly one of client_secret or client_secret_file");
            }
        }
        _ => {}
    }
}

fn uses(s: &SourceConfig, placeholder: &str) -> bool {
    s.params.as_ref().is_some_and(|m| m.values().any(|v| v.contains(placeholder)))
        || s.body.as_deref().is_some_and(|b| b.contains(placeholder))
        || s.url.as_deref().is_some_and(|u| u.contains(placeholder))
}

fn validate_tls(p: &mut Problems, at: &str, tls: &super::model::TlsConfig) {
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        p.add(at, "cert_file and key_file go together (client certificate for mTLS)");
    }
}

fn validate_output(p: &mut Problems, at: &str, o: &OutputConfig) {
    let allowed = output_keys(o.kind);
    for key in output_set_keys(o) {
        if !allowed.contains(&key) {
            p.add(format!("{at}.{key}"), format!("is not a key of a {} output", o.kind.as_str()));
        }
    }
    if o.batch.max_events == 0 {
        p.add(format!("{at}.batch.max_events"), "must be at least 1");
    }
    if o.batch.max_bytes.bytes() < 1024 {
        p.add(format!("{at}.batch.max_bytes"), "must be at least 1KiB");
    }
    if o.retry_max_interval.get() < std::time::Duration::from_millis(100) {
        p.add(format!("{at}.retry_max_interval"), "must be at least 100ms");
    }
    let payloads: &[&str] = match o.kind {
        OutputType::Syslog => &["json", "cef", "raw"],
        OutputType::Qradar => &["leef"],
        _ => &["normalised", "json", "raw"],
    };
    if let Some(pl) = &o.payload {
        if !payloads.contains(&pl.as_str()) {
            p.add(format!("{at}.payload"), format!("{pl:?} must be one of {}", payloads.join(", ")));
        }
    }
    match o.kind {
        OutputType::SplunkHec => {
            match &o.url {
                Some(u) => check_url(p, format!("{at}.url"), u),
                None => p.add(format!("{at}.url"), "is required (e.g. \"https://splunk.example.com:8088\")"),
            }
            if o.token.is_none() && o.token_file.is_none() {
                p.add(format!("{at}.token"), "is required (or token_file)");
            }
            if o.ack_timeout.is_some_and(|d| d.get() < std::time::Duration::from_secs(1)) {
                p.add(format!("{at}.ack_timeout"), "must be at least 1s");
            }
            if o.max_in_flight.is_some_and(|n| !(1..=64).contains(&n)) {
                p.add(format!("{at}.max_in_flight"), "must be between 1 and 64");
            }
        }
        OutputType::Syslog | OutputType::Qradar => validate_syslog(p, at, o),
        OutputType::File => {
            if o.path.is_none() {
                p.add(format!("{at}.path"), "is required (\"-\" for stdout)");
            }
        }
    }
    if let Some(tls) = &o.tls {
        validate_tls(p, &format!("{at}.tls"), tls);
    }
}

fn validate_syslog(p: &mut Problems, at: &str, o: &OutputConfig) {
    match &o.address {
        Some(a) => {
            let ok = a
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|n| n > 0));
            if !ok {
                p.add(format!("{at}.address"), format!("{a:?} must be host:port (e.g. \"qradar.example.com:6514\")"));
            }
        }
        None => p.add(format!("{at}.address"), "is required (host:port)"),
    }
    let transport = o.transport.as_deref().unwrap_or("tcp");
    if !matches!(transport, "udp" | "tcp" | "tls") {
        p.add(format!("{at}.transport"), format!("{transport:?} must be udp, tcp or tls"));
    }
    if let Some(f) = &o.format {
        if !matches!(f.as_str(), "rfc5424" | "rfc3164") {
            p.add(format!("{at}.format"), format!("{f:?} must be rfc5424 or rfc3164"));
        }
    }
    if let Some(f) = &o.framing {
        if !matches!(f.as_str(), "octet-counting" | "newline") {
            p.add(format!("{at}.framing"), format!("{f:?} must be octet-counting or newline"));
        } else if transport == "udp" {
            p.add(format!("{at}.framing"), "UDP sends one message per datagram; framing applies to tcp and tls only");
        }
    }
    if let Some(f) = &o.facility {
        if f.parse::<crate::encode::Facility>().is_err() {
            p.add(
                format!("{at}.facility"),
                format!("{f:?} is not a syslog facility (e.g. \"local0\", \"authpriv\" or 0-23)"),
            );
        }
    }
    if let Some(n) = o.max_message_size {
        if n.bytes() < 480 || n.bytes() > 65_507 && transport == "udp" {
            p.add(format!("{at}.max_message_size"), "must be at least 480 bytes (and at most 65507 over UDP)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../config.example.toml");

    #[test]
    fn example_config_is_valid_and_documents_every_key() {
        crate::config::parse(EXAMPLE).unwrap();
        let kinds = [
            SourceType::Opencti,
            SourceType::Sekoia,
            SourceType::Invicti,
            SourceType::Keepnet,
            SourceType::Guance,
            SourceType::HttpJson,
            SourceType::Demo,
        ];
        let outputs = [OutputType::SplunkHec, OutputType::Qradar, OutputType::Syslog, OutputType::File];
        let keys = SOURCE_COMMON
            .iter()
            .chain(kinds.iter().flat_map(|k| source_keys(*k)))
            .chain(outputs.iter().flat_map(|k| output_keys(*k)))
            .chain(["max_eps", "batch", "payload", "retry_max_interval", "tls"].iter())
            .chain(
                ["state_dir", "max_journal_size", "log_format", "log_level", "listen", "shutdown_timeout", "hostname"]
                    .iter(),
            );
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
