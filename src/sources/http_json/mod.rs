//! `http_json`: any JSON API, described in the config: where the events
//! are (`events`, a JSON pointer), each event's id and time, query
//! parameters and body with `{{cursor}}`, `{{now}}`, `{{page}}`,
//! `{{offset}}` and `{{page_size}}` placeholders, and the pagination style.
//!
//! An event without a readable time fails the poll with the event's index
//! and the pointer: a wrong `timestamp` guess is loud, never a silent skip.
//!
//! Times sent in RFC 3339 (`timestamp_format = "rfc3339"`, the default)
//! have the precision of the API's own timestamps: as many fraction digits
//! as the most its events have shown, milliseconds until one is seen
//! ([`FIRST_DIGITS`]). Nanosecond digits, what the agent's clock gives,
//! are refused by many parsers (Python's `strptime`, several Java and .NET
//! ones). `{{cursor}}` is rounded down and `{{now}}` up, so the window is
//! never cut short; ids already taken are dropped. A strftime
//! `timestamp_format` is written exactly as configured.

pub mod config;
pub mod time_format;

use super::api::{
    json_body_split, ApiPage, ApiRequest, ApiResponse, Body, Defaults, Next, Order, Pointer, Query, ShapeError,
    SourceApi, Wanted,
};
use super::auth::{Auth, OAuth2};
use crate::event::{Normalised, Observer};
use crate::settings::secret::Env;
use crate::settings::Problem;
use chrono::{DateTime, Utc};
pub use config::{AuthConfig, HttpAuth, HttpJsonConfig, Method, PaginationConfig, Required, UrlTemplate};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
pub use time_format::TimeFormat;

/// Fraction digits of times sent before the API's own precision is seen.
pub const FIRST_DIGITS: u8 = 3;
/// [`HttpJson::digits`] before any event's time was read.
const NOT_SEEN: u8 = u8::MAX;

/// A configured JSON API.
#[derive(Debug)]
pub struct HttpJson {
    url: String,
    post: bool,
    body: Option<String>,
    params: BTreeMap<String, String>,
    events: String,
    timestamp: String,
    format: TimeFormat,
    pagination: PaginationConfig,
    order: Order,
    /// What the mapping reads of an event.
    wanted: Wanted,
    /// The most fraction digits the API's RFC 3339 times have shown
    /// ([`NOT_SEEN`] before the first).
    digits: AtomicU8,
    /// `id`, `timestamp` and `fields`' pointers, read once.
    id_at: Option<Pointer>,
    time_at: Pointer,
    fields_at: Vec<(String, Pointer)>,
}

/// Build from config and its checked required keys; secrets resolved
/// through `env`.
pub fn build(
    cfg: &HttpJsonConfig,
    required: Required,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> Option<(Box<dyn SourceApi>, Auth)> {
    let auth = match &required.auth {
        None => Auth::None,
        Some(HttpAuth::Bearer(token)) => Auth::Bearer(token.resolve(at, env, problems)?),
        Some(HttpAuth::Basic { username, password }) => Auth::Basic {
            user: crate::settings::secret::Secret::new(username.clone()),
            password: password.resolve(at, env, problems)?,
        },
        Some(HttpAuth::Header { name, value }) => {
            Auth::Header { name: name.clone(), value: value.resolve(at, env, problems)? }
        }
        Some(HttpAuth::Oauth2 { token_url, client_id, client_secret, scope }) => {
            let id = client_id.resolve(at, env, problems);
            let secret = client_secret.resolve(at, env, problems);
            Auth::OAuth2(OAuth2::new(token_url.url().clone(), id?, secret?, scope.clone()))
        }
    };
    Some((Box::new(HttpJson::of(cfg, required)), auth))
}

super::connector!(HttpJsonConfig => build);

impl HttpJson {
    /// The source a checked config describes (secrets are the caller's).
    fn of(cfg: &HttpJsonConfig, required: Required) -> HttpJson {
        let timestamp = required.timestamp;
        let id_at = cfg.id.as_deref().map(Pointer::parse);
        let time_at = Pointer::parse(&timestamp);
        let fields = cfg.fields.iter().flatten();
        let fields_at: Vec<_> = fields.map(|(path, ptr)| (path.clone(), Pointer::parse(ptr))).collect();
        HttpJson {
            url: required.url,
            post: cfg.method == Method::Post,
            body: cfg.body.clone(),
            params: cfg.params.clone().unwrap_or_default(),
            events: required.events,
            format: cfg.timestamp_format.clone().unwrap_or(TimeFormat::Rfc3339),
            pagination: cfg.pagination.clone().unwrap_or(PaginationConfig::None),
            order: cfg.order.unwrap_or_default(),
            wanted: wanted(id_at.as_ref(), &time_at, &fields_at),
            digits: AtomicU8::new(NOT_SEEN),
            id_at,
            time_at,
            fields_at,
            timestamp,
        }
    }

    fn expand(&self, text: &str, q: &Query<'_>) -> String {
        let page = match self.pagination {
            PaginationConfig::Page { start } => start + q.page,
            _ => q.page + 1,
        };
        text.replace("{{cursor}}", &self.write_time(q.window.from, false))
            .replace("{{now}}", &self.write_time(q.window.to, true))
            .replace("{{page}}", &page.to_string())
            .replace("{{offset}}", &q.offset.to_string())
            .replace("{{page_size}}", &q.page_size.to_string())
    }

    /// A time for a request: RFC 3339 with the API's precision (rounded
    /// `up` or down to it), any other format as configured.
    fn write_time(&self, t: DateTime<Utc>, up: bool) -> String {
        if self.format != TimeFormat::Rfc3339 {
            return self.format.write(t);
        }
        let digits = match self.digits.load(Ordering::Relaxed) {
            NOT_SEEN => FIRST_DIGITS,
            d => d,
        };
        let unit = chrono::Duration::nanoseconds(10i64.pow(9 - u32::from(digits)));
        let t = if up { super::ceil_to(t, unit) } else { super::floor_to(t, unit) };
        let whole = t.format("%Y-%m-%dT%H:%M:%S");
        match usize::from(digits) {
            0 => format!("{whole}Z"),
            n => {
                let nanos = format!("{:09}", t.timestamp_subsec_nanos());
                format!("{whole}.{}Z", nanos.get(..n).unwrap_or(&nanos))
            }
        }
    }

    /// Remember the fraction digits of an event's RFC 3339 time.
    fn learn_precision(&self, v: &Value) {
        let Some(text) = v.as_str() else { return };
        let Some((_, clock)) = text.split_once(['T', 't', ' ']) else { return };
        let digits = clock.split_once('.').map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
        let digits = u8::try_from(digits.min(9)).unwrap_or(9);
        let _ = self.digits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| match d {
            NOT_SEEN => Some(digits),
            d if digits > d => Some(digits),
            _ => None,
        });
    }

    fn short_page(&self, n: usize, q: &Query<'_>) -> bool {
        n == 0 || n < q.page_size as usize
    }
}

fn pointer_str(v: &Value, ptr: &Pointer) -> Option<String> {
    match ptr.find(v)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl SourceApi for HttpJson {
    fn observer(&self) -> Observer {
        Observer { vendor: "generic", product: "http_json" }
    }

    fn defaults(&self) -> Defaults {
        Defaults::default()
    }

    fn order(&self) -> Order {
        self.order
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        if let (PaginationConfig::Link, Some(Value::String(next))) = (&self.pagination, q.state) {
            let url = url::Url::parse(next).map_err(|e| ShapeError(format!("Link header URL {next:?}: {e}")))?;
            return Ok(self.finish(url, q));
        }
        let mut url = url::Url::parse(&self.expand(&self.url, q)).map_err(|e| ShapeError(format!("url: {e}")))?;
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &self.params {
                pairs.append_pair(k, &self.expand(v, q));
            }
            if let (PaginationConfig::Next { param, .. }, Some(token)) = (&self.pagination, q.state) {
                let token = token.as_str().map(str::to_owned).unwrap_or_else(|| token.to_string());
                pairs.append_pair(param, &token);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(self.finish(url, q))
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        // The events stay text here; each is parsed, timed and normalised by
        // the poller (a large page in parallel parts), which reports an
        // event without a readable time through `untimed`.
        let (mut body, unparsed) = json_body_split(resp, &self.events)?;
        let events = match body.pointer_mut(&self.events) {
            _ if unparsed.is_some() => Vec::new(),
            Some(Value::Array(a)) => std::mem::take(a),
            Some(Value::Null) => Vec::new(),
            Some(other) => {
                return Err(ShapeError(format!("events pointer {:?} is a {}, not an array", self.events, kind(other))))
            }
            None => {
                return Err(ShapeError(format!(
                    "events pointer {:?} is not in the response: {}",
                    self.events,
                    crate::transport::http::excerpt(&resp.body)
                )))
            }
        };
        let count = events.len() + unparsed.as_ref().map_or(0, |u| u.len());
        let next = match &self.pagination {
            PaginationConfig::None if self.short_page(count, q) => Next::Done,
            PaginationConfig::None => Next::FromCursor,
            PaginationConfig::Page { .. } | PaginationConfig::Offset if self.short_page(count, q) => Next::Done,
            PaginationConfig::Page { .. } | PaginationConfig::Offset => Next::Page(Value::Null),
            PaginationConfig::Next { next, .. } => match body.pointer(next) {
                None | Some(Value::Null) | Some(Value::Bool(false)) => Next::Done,
                Some(Value::String(s)) if s.is_empty() => Next::Done,
                Some(token) => Next::Page(token.clone()),
            },
            PaginationConfig::Link => match link_next(&resp.headers) {
                Some(url) => Next::Page(Value::String(resolve(&self.url, &url))),
                None => Next::Done,
            },
        };
        Ok(ApiPage { events, unparsed, next })
    }

    fn untimed(&self, raw: &Value) -> String {
        let found = self.time_at.find(raw);
        format!(
            "no {:?} time at {:?} (found {}); check `timestamp` and `timestamp_format`",
            format_name(&self.format),
            self.timestamp,
            found.map_or("nothing".to_owned(), |v| crate::transport::http::excerpt(v.to_string().as_bytes()))
        )
    }

    fn wanted(&self) -> Option<&Wanted> {
        Some(&self.wanted)
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let time = self.time_at.find(raw);
        let mut n = Normalised {
            id: self.id_at.as_ref().and_then(|p| pointer_str(raw, p)),
            timestamp: time.and_then(|v| self.format.read(v)),
            ..Default::default()
        };
        if let (Some(v), Some(_), TimeFormat::Rfc3339) = (time, n.timestamp, &self.format) {
            self.learn_precision(v);
        }
        if self.fields_at.is_empty() {
            guess_fields(raw, &mut n);
        }
        for (path, ptr) in &self.fields_at {
            n.put(path, ptr.find(raw).cloned());
        }
        n
    }
}

impl HttpJson {
    fn finish(&self, url: url::Url, q: &Query<'_>) -> ApiRequest {
        let mut req = ApiRequest::get(url);
        if self.post {
            req.method = reqwest::Method::POST;
            req.body = Some(Body::Text(self.body.as_deref().map(|b| self.expand(b, q)).unwrap_or_else(|| "{}".into())));
        }
        req
    }
}

fn format_name(f: &TimeFormat) -> &str {
    match f {
        TimeFormat::Rfc3339 => "rfc3339",
        TimeFormat::Unix => "unix",
        TimeFormat::UnixMs => "unix_ms",
        TimeFormat::Pattern(p) => p,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The `rel="next"` target of a `Link` header (RFC 8288).
pub(crate) fn link_next(headers: &reqwest::header::HeaderMap) -> Option<String> {
    for value in headers.get_all(reqwest::header::LINK) {
        let text = value.to_str().ok()?;
        for part in text.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            let is_next = pieces.any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                return Some(target.trim_start_matches('<').trim_end_matches('>').to_owned());
            }
        }
    }
    None
}

fn resolve(base: &str, target: &str) -> String {
    url::Url::parse(base).and_then(|b| b.join(target)).map(|u| u.to_string()).unwrap_or_else(|_| target.to_owned())
}

/// Keys of common audit APIs, by the ECS field they give, in the order they
/// are tried when no `fields` mapping is set.
const ACTION_KEYS: &[&str] = &["action", "event_type", "eventType", "event", "type", "activity"];
const USER_KEYS: &[&str] = &["user", "actor", "username", "user_name", "userName"];
const IP_KEYS: &[&str] = &["ip", "ip_address", "ipAddress", "source_ip", "client_ip", "remote_addr"];
const USER_AGENT_KEYS: &[&str] = &["user_agent", "userAgent"];
const OUTCOME_KEYS: &[&str] = &["outcome", "status", "result"];
const GUESSED_KEYS: [&[&str]; 5] = [ACTION_KEYS, USER_KEYS, IP_KEYS, USER_AGENT_KEYS, OUTCOME_KEYS];

/// What `normalise` and `untimed` read of an event: the id and time
/// pointers, and the mapped pointers or else the keys `guess_fields` tries.
fn wanted(id: Option<&Pointer>, timestamp: &Pointer, fields: &[(String, Pointer)]) -> Wanted {
    let mut w = Wanted::default();
    w.at(timestamp);
    if let Some(id) = id {
        w.at(id);
    }
    if fields.is_empty() {
        GUESSED_KEYS.iter().flat_map(|keys| keys.iter()).for_each(|k| {
            w.key(k);
        });
    }
    for (_, ptr) in fields {
        w.at(ptr);
    }
    w
}

/// Common field names of audit APIs, used when no `fields` mapping is set.
fn guess_fields(raw: &Value, n: &mut Normalised) {
    let first = |keys: &[&str]| keys.iter().find_map(|k| raw.get(*k).filter(|v| !v.is_null()));
    if let Some(a) = first(ACTION_KEYS) {
        n.put("event.action", a.clone());
    }
    match first(USER_KEYS) {
        Some(Value::String(s)) => {
            n.put_str("user.name", Some(s));
        }
        Some(Value::Object(o)) => {
            let s = |k: &str| o.get(k).and_then(Value::as_str);
            n.put_str("user.name", s("name").or(s("username")));
            n.put_str("user.email", s("email"));
            n.put_str("user.id", s("id"));
        }
        _ => {}
    }
    if let Some(Value::String(ip)) = first(IP_KEYS) {
        n.put_str("source.ip", Some(ip));
    }
    if let Some(Value::String(ua)) = first(USER_AGENT_KEYS) {
        n.put_str("user_agent.original", Some(ua));
    }
    if let Some(Value::String(o)) = first(OUTCOME_KEYS) {
        let outcome = match o.to_ascii_lowercase().as_str() {
            "success" | "succeeded" | "ok" | "allowed" => "success",
            "failure" | "failed" | "fail" | "error" | "denied" => "failure",
            _ => "unknown",
        };
        n.put_str("event.outcome", Some(outcome));
    }
}

#[cfg(test)]
mod tests;
