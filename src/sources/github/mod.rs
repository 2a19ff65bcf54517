//! `github`: the audit log of a GitHub organisation
//! (`GET /orgs/{org}/audit-log`) or enterprise
//! (`GET /enterprises/{enterprise}/audit-log`), GitHub Enterprise Cloud's
//! REST API or GitHub Enterprise Server's (`https://HOST/api/v3`), read
//! with a token holding `read:audit_log` in `Authorization: Bearer`.
//!
//! Each walk asks for its window oldest first: `phrase=created:>=FROM
//! created:<=TO` (the audit log search's `created` qualifier, times as
//! `YYYY-MM-DDTHH:MM:SS+00:00`, whole seconds: the window is widened to
//! them and the poller drops what lies outside), `include=all` (web and Git
//! events; Git events are kept seven days only), `order=asc`,
//! `per_page` (at most 100). Pages follow the `Link: <…>; rel="next"`
//! header (an `after` cursor), same origin only. Each event's id is
//! `_document_id`, its time `@timestamp` (ms since the epoch; older
//! answers have `created_at` only).
//!
//! The phrase syntax is GitHub's documented search syntax, yet a phrase
//! GitHub did not honour would not say so. Events outside the window (the
//! phrase ignored) or out of order (`order` ignored) fail the poll, and a
//! window that comes back empty is checked with unfiltered requests, as
//! Keepnet's are ([`guard_verdict`]): the newest event, then the newest at
//! or before the window's end, then the oldest. An empty log (a new
//! organisation) passes; an event the phrase should have matched fails the
//! poll naming the phrase, and the cursor stays.
//!
//! A wrong `org`, a plan without the audit log API, or a token without the
//! scope answer 404 or 403: each is reported as refused credentials naming
//! the organisation and the scope, never as an empty log. A 403 or 429
//! that says "rate limit" (the secondary limits) is throttling: the poller
//! waits `Retry-After`, or until `X-RateLimit-Reset` when the quota is spent.

pub mod config;

use super::api::{
    guard_of, guard_state, json_body, ApiPage, ApiRequest, ApiResponse, Defaults, Next, Query, ShapeError, SourceApi,
    Verdict,
};
use super::auth::Auth;
use super::{ceil_to, endpoint, floor_to, utc_time};
use crate::event::{Normalised, Observer};
use crate::settings::secret::Env;
use crate::settings::units::Rate;
use crate::settings::Problem;
use chrono::{DateTime, Utc};
pub use config::{AuditLog, GithubConfig, Required, GITHUB_API};
use serde_json::{json, Value};
use std::num::NonZeroU32;
use std::time::Duration;

/// GitHub's largest page.
const PAGE_SIZE: u32 = 100;
/// The audit log endpoints' documented limit: 1,750 queries an hour per
/// user and IP address.
const QUERIES_PER_HOUR: u32 = 1750;
/// Events reach the audit log search shortly after they happen.
const LAG: Duration = Duration::from_secs(60);
/// Re-asked behind the cursor for late events (ids taken are dropped).
const LOOKBACK: Duration = Duration::from_secs(300);
/// Longest window of one walk.
const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The REST API version the requests are written for.
const API_VERSION: &str = "2022-11-28";

/// The guard's steps (module doc).
use super::api::window_guard::{judge, Finding, BEFORE_END, NEWEST, OLDEST};

/// The GitHub hooks.
#[derive(Debug)]
pub struct Github {
    audit: url::Url,
    /// `organization "acme"` or `enterprise "acme"`, for messages.
    scope: String,
}

/// Build from config: `org` or `enterprise`, `token` (or `token_file`) and
/// `url` (`https://api.github.com`).
pub fn build(
    cfg: &GithubConfig,
    required: Required,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> super::Built {
    let token = required.token.resolve(at, env, problems)?;
    let api = match &required.log {
        AuditLog::Org(org) => Github::org(&cfg.url, org),
        AuditLog::Enterprise(enterprise) => Github::enterprise(&cfg.url, enterprise),
    };
    Some((Box::new(api), Auth::Bearer(token)))
}

super::connector!(GithubConfig => build);

impl Github {
    /// Hooks for an organisation's audit log.
    pub fn org(base: &url::Url, org: &str) -> Self {
        Github { audit: endpoint(base, &format!("orgs/{org}/audit-log")), scope: format!("organization {org:?}") }
    }

    /// Hooks for an enterprise's audit log.
    pub fn enterprise(base: &url::Url, slug: &str) -> Self {
        let audit = endpoint(base, &format!("enterprises/{slug}/audit-log"));
        Github { audit, scope: format!("enterprise {slug:?}") }
    }

    fn url(&self, phrase: Option<String>, order: &str, per_page: u32) -> url::Url {
        let mut url = self.audit.clone();
        let mut pairs = url.query_pairs_mut();
        if let Some(p) = phrase {
            pairs.append_pair("phrase", &p);
        }
        pairs.append_pair("include", "all").append_pair("order", order).append_pair("per_page", &per_page.to_string());
        drop(pairs);
        url
    }
}

fn get(url: url::Url) -> ApiRequest {
    let mut req = ApiRequest::get(url);
    req.headers.push(("accept".into(), "application/vnd.github+json".into()));
    req.headers.push(("x-github-api-version".into(), API_VERSION.into()));
    req
}

/// The window widened to whole seconds (the `created` qualifier's unit).
fn bounds(q: &Query<'_>) -> (DateTime<Utc>, DateTime<Utc>) {
    let s = chrono::Duration::seconds(1);
    (floor_to(q.window.from, s), ceil_to(q.window.to, s))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// An event's time: `@timestamp`, else `created_at`; ms since the epoch
/// (or a date text, as exports write it).
fn event_time(e: &Value) -> Option<DateTime<Utc>> {
    let v = e.get("@timestamp").filter(|v| !v.is_null()).or_else(|| e.get("created_at"))?;
    match v {
        Value::Number(n) => DateTime::from_timestamp_millis(n.as_i64()?),
        other => utc_time(Some(other)),
    }
}

fn named(e: &Value, at: DateTime<Utc>) -> String {
    let id = e.get("_document_id").cloned().unwrap_or(Value::Null);
    format!("({id}, {} at {})", e["action"].as_str().unwrap_or("?"), at.to_rfc3339())
}

/// The `rel="next"` target of a `Link` header (RFC 8288).
fn link_next(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers.get_all(reqwest::header::LINK).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).find_map(
        |part| {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            let next = pieces.any(|p| matches!(p.trim().to_ascii_lowercase().as_str(), "rel=\"next\"" | "rel=next"));
            next.then(|| target.trim_start_matches('<').trim_end_matches('>').to_owned())
        },
    )
}

/// The guard's verdict on a step's row (module doc): `Ok(None)` when the
/// window is truly empty, `Ok(Some(step))` when another step must tell.
fn guard_verdict(
    step: &str,
    rows: &[Value],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Option<&'static str>, ShapeError> {
    let row = rows.first().and_then(|e| Some((e, event_time(e)?)));
    let wrong = |what: String| {
        ShapeError(format!(
            "phrase \"created:>={} created:<={}\" matched nothing, yet {what}: GitHub did not honour the created \
             qualifier as sent; nothing was taken and the cursor stays",
            stamp(from),
            stamp(to)
        ))
    };
    let row_named = || row.map(|(e, at)| named(e, at)).unwrap_or_default();
    match judge(step, row.map(|(_, at)| at), from, to) {
        Finding::Empty => Ok(None),
        Finding::Ask(next) => Ok(Some(next)),
        Finding::Inside => Err(wrong(format!("the newest event {} lies inside the window", row_named()))),
        Finding::BoundIgnored => {
            Err(wrong(format!("asked for created:<={} alone, GitHub answered {}", stamp(to), row_named())))
        }
        Finding::Missed => Err(wrong(format!(
            "the oldest event {} lies at or before the window's end and created:<={} alone matched nothing",
            row_named(),
            stamp(to)
        ))),
    }
}

impl SourceApi for Github {
    fn observer(&self) -> Observer {
        Observer { vendor: "GitHub", product: "GitHub audit log" }
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            page_size: PAGE_SIZE,
            rate_limit: NonZeroU32::new(QUERIES_PER_HOUR).map(|count| Rate { count, per: Duration::from_secs(3600) }),
            lag: LAG,
            lookback: LOOKBACK,
            max_window: Some(MAX_WINDOW),
            ..Defaults::default()
        }
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        let (from, to) = bounds(q);
        match guard_of(q.state) {
            Some(NEWEST) => return Ok(get(self.url(None, "desc", 1))),
            Some(BEFORE_END) => return Ok(get(self.url(Some(format!("created:<={}", stamp(to))), "desc", 1))),
            Some(OLDEST) => return Ok(get(self.url(None, "asc", 1))),
            _ => {}
        }
        if let Some(next) = q.state.and_then(|s| s["next"].as_str()) {
            let url = self.audit.join(next).map_err(|e| ShapeError(format!("Link header URL {next:?}: {e}")))?;
            return Ok(get(url));
        }
        let phrase = format!("created:>={} created:<={}", stamp(from), stamp(to));
        Ok(get(self.url(Some(phrase), "asc", q.page_size.min(PAGE_SIZE))))
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        let Value::Array(rows) = body else {
            return Err(ShapeError(format!(
                "the audit log of {} is not a JSON array: {}",
                self.scope,
                crate::transport::http::excerpt(&resp.body)
            )));
        };
        let (from, to) = bounds(q);
        if let Some(step) = guard_of(q.state) {
            let next = guard_verdict(step, &rows, from, to)?.map_or(Next::Done, |s| Next::Page(guard_state(s)));
            return Ok(ApiPage::parsed(Vec::new(), next));
        }
        let slack = chrono::Duration::seconds(1);
        let mut last = q.state.and_then(|s| s["last"].as_i64()).and_then(DateTime::from_timestamp_millis);
        for e in &rows {
            let Some(at) = event_time(e) else { continue }; // the poller reports an untimed event
            if at < from - slack || at > to + slack {
                return Err(ShapeError(format!(
                    "asked for created:>={} created:<={} and got {}: GitHub ignored the phrase; nothing was taken",
                    stamp(from),
                    stamp(to),
                    named(e, at)
                )));
            }
            if last.is_some_and(|l| at < l) {
                return Err(ShapeError(format!(
                    "asked for order=asc and got {} after a later event: the order was ignored; nothing more was taken",
                    named(e, at)
                )));
            }
            last = Some(at);
        }
        let next = match link_next(&resp.headers) {
            Some(url) if !rows.is_empty() => {
                Next::Page(json!({ "next": url, "last": last.map(|t| t.timestamp_millis()) }))
            }
            _ if q.state.is_none() && rows.is_empty() => Next::Page(guard_state(NEWEST)),
            _ => Next::Done,
        };
        Ok(ApiPage::parsed(rows, next))
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |k: &str| raw.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
        let text = |k: &str| match raw.get(k) {
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(v)) if !v.is_empty() => Some(v.clone()),
            _ => None,
        };
        let mut n =
            Normalised { id: s("_document_id").map(str::to_owned), timestamp: event_time(raw), ..Default::default() };
        let action = s("action").unwrap_or_default();
        let (category, kind) = classify(action, s("operation_type"));
        n.put_str("event.action", Some(action))
            .put_str("event.outcome", Some(outcome(action)))
            .put("event.category", Some(json!(category)))
            .put("event.type", Some(json!([kind])))
            .put_str("user.name", s("actor"))
            .put_str("user.id", text("actor_id").as_deref())
            .put_str("user.target.name", s("user"))
            .put_str("source.ip", s("actor_ip"))
            .put_str("source.geo.country_iso_code", raw.pointer("/actor_location/country_code").and_then(Value::as_str))
            .put_str("user_agent.original", s("user_agent"))
            .put_str("organization.name", s("org").or(s("business")))
            .put_str("github.org", s("org"))
            .put_str("github.repo", s("repo").or(s("repository")))
            .put_str("github.user", s("user"))
            .put_str("github.team", s("team"))
            .put_str("github.business", s("business"))
            .put_str("github.operation_type", s("operation_type"));
        n
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        let detail = crate::transport::http::excerpt(body);
        if matches!(status, 403 | 429) && detail.to_ascii_lowercase().contains("rate limit") {
            // Secondary limits (and a spent quota): the poller waits
            // `Retry-After`, or until `X-RateLimit-Reset`.
            return Some(Verdict::Throttled(None));
        }
        let scope = &self.scope;
        let why = match status {
            401 => "the token is not valid (mistyped, expired or revoked)".to_owned(),
            403 => format!(
                "the token may not read the audit log of {scope}: it needs the read:audit_log scope (or the \
                 organization/enterprise administration read permission of a fine-grained or app token), an owner \
                 or enterprise admin behind it, and SAML SSO authorisation where the organization enforces it"
            ),
            404 => format!(
                "GitHub answers 404 when {scope} does not exist, is not on GitHub Enterprise Cloud (the audit log API \
                 needs it), or the token cannot see it: check the org/enterprise key and that the token has \
                 read:audit_log"
            ),
            _ => return None,
        };
        Some(Verdict::Auth(format!("{detail}; {why}")))
    }
}

/// `event.outcome`: failure when the action says it failed, was denied or
/// rejected (`protected_branch.rejected_ref_update`), else success.
fn outcome(action: &str) -> &'static str {
    let a = action.to_ascii_lowercase();
    if ["fail", "denied", "deny", "reject"].iter().any(|w| a.contains(w)) {
        "failure"
    } else {
        "success"
    }
}

/// ECS `event.category` and `event.type` of an action
/// (`category.operation`), with GitHub's `operation_type` when given.
fn classify(action: &str, operation_type: Option<&str>) -> (Vec<&'static str>, &'static str) {
    let (prefix, op) = action.split_once('.').unwrap_or((action, ""));
    let credential = prefix == "personal_access_token"
        || prefix.starts_with("oauth_")
        || prefix == "org_credential_authorization"
        || prefix == "ssh_certificate_authority";
    let people = ["member", "invite", "owner", "collaborator", "block_user", "admin", "maintainer"];
    let category = if prefix == "git" {
        vec!["web"]
    } else if credential {
        vec!["iam", "authentication"]
    } else if matches!(prefix, "team" | "role" | "members_can_create_pages") && !op.contains("repository")
        || people.iter().any(|w| op.contains(w))
    {
        vec!["iam"]
    } else {
        vec!["configuration"]
    };
    let kind = match (operation_type, op) {
        (Some("create" | "restore"), _) => "creation",
        (Some("remove"), _) => "deletion",
        (Some("modify" | "transfer"), _) => "change",
        (Some("access"), _) => "access",
        (_, "clone" | "fetch") => "access",
        (_, o) if o.contains("create") || o.starts_with("add") || o.starts_with("invite") => "creation",
        (_, o) if o.contains("destroy") || o.contains("delete") || o.starts_with("remove") => "deletion",
        _ => "change",
    };
    (category, kind)
}

#[cfg(test)]
mod tests;
