//! `okta`: the Okta System Log, `GET {org}/api/v1/logs`, authenticated with
//! an API token in `Authorization: SSWS <token>`.
//!
//! Each walk asks for its window as one *bounded* request (Okta's System
//! Log reference, "Request types"): `since` and `until` (RFC 3339, whole
//! milliseconds, the window's start rounded down and its end up),
//! `sortOrder=ASCENDING` and `limit` (at most 1000). A bounded request's
//! events are filtered by `published` and guaranteed in `published` order,
//! which is what the poller's cursor needs; a *polling* request (no
//! `until`) filters by an internal persistence time and may answer out of
//! `published` order, so it is not used.
//!
//! Pages follow the `Link: <…>; rel="next"` header. A bounded walk's last
//! page has none, but a polling query's `next` always exists, the last page
//! of events is followed by empty ones with the same cursor (a poll-forever
//! link), so the walk also ends on an empty page instead of following
//! `next` into the poller's pagination-loop check. A short page with a
//! `next` is followed: the reference calls a page with `next` not the last,
//! and the cost is one request that answers `[]`. A `next` on another
//! origin is refused by the poller before the token goes there.
//!
//! Nothing is guessed but the shape, and it is checked on every page: the
//! answer must be a JSON array of LogEvent objects (an Okta error object
//! fails the poll with its `errorCode` and `errorSummary`), each event's
//! `published` inside the asked bounds and not older than the one before
//! it (the bounds or the sort ignored fail the poll, naming the event).
//! With no filter expression and no keyword, an empty answer can only mean
//! an empty window: there is no silent-empty guard to run.
//!
//! Okta's rate limits (`X-Rate-Limit-Limit/Remaining/Reset`, a 429 without
//! `Retry-After`) are read by the poller for every source
//! (`poller::fetch`): a spent quota holds the next request until the reset.

pub mod config;

use super::api::{json_body, ApiPage, ApiRequest, ApiResponse, Defaults, Next, Query, ShapeError, SourceApi, Verdict};
use super::auth::Auth;
use super::common::UrlAndToken;
use super::{ceil_to, endpoint, floor_to, utc_time};
use crate::event::{rfc3339, Normalised, Observer};
use crate::settings::secret::{Env, Secret};
use crate::settings::Problem;
use chrono::{DateTime, Utc};
pub use config::{OktaConfig, OKTA_MAX_PAGE_SIZE};
use serde_json::{json, Value};
use std::time::Duration;

/// Events younger than this are left for the next poll: Okta notes that a
/// bounded request may miss events that are delayed (rarely).
const DEFAULT_LAG: Duration = Duration::from_secs(60);
/// Each walk asks again this far behind the cursor, for the delayed ones.
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(60);
/// Longest window of one walk (a catch-up over Okta's 90 days of retention).
const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Tolerance on the bounds check: Okta's times are whole milliseconds.
const BOUNDS_SLACK: chrono::Duration = chrono::Duration::seconds(1);

/// The Okta hooks.
#[derive(Debug)]
pub struct Okta {
    logs: url::Url,
}

/// Build from config: `url` (`https://ORG.okta.com`) and `token` (or
/// `token_file`).
pub fn build(
    _cfg: &OktaConfig,
    required: UrlAndToken,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> super::Built {
    let token = required.token.resolve(at, env, problems)?;
    let value = Secret::new(format!("SSWS {}", token.expose()));
    Some((Box::new(Okta::new(&required.url)), Auth::Header { name: "Authorization".into(), value }))
}

super::connector!(OktaConfig => build);

impl Okta {
    /// Hooks for the org at `base`.
    pub fn new(base: &url::Url) -> Self {
        Okta { logs: endpoint(base, "api/v1/logs") }
    }
}

/// The bounds a window is asked with: whole milliseconds, covering it.
fn bounds(q: &Query<'_>) -> (DateTime<Utc>, DateTime<Utc>) {
    let ms = chrono::Duration::milliseconds(1);
    (floor_to(q.window.from, ms), ceil_to(q.window.to, ms))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// ECS `event.type` of an action's last word (`user.lifecycle.create`).
fn verb_type(event_type: &str) -> &'static str {
    let verb = event_type.rsplit('.').next().unwrap_or_default();
    if verb.contains("create") || verb == "add" || verb == "generate" {
        "creation"
    } else if verb.contains("delete") || verb == "remove" || verb == "revoke" {
        "deletion"
    } else if ["update", "activate", "deactivate", "suspend", "unsuspend", "reactivate", "rotate", "change", "lock"]
        .iter()
        .any(|v| verb.contains(v))
    {
        "change"
    } else {
        "info"
    }
}

/// ECS `event.category` and `event.type` by `eventType` family, after the
/// per-type table of Elastic's Okta integration
/// (`packages/okta/data_stream/system/elasticsearch/ingest_pipeline/ecs_category_type.yml`)
/// reduced to its families. Families not listed get neither.
fn classify(event_type: &str) -> Option<(&'static str, Vec<&'static str>)> {
    let family = |p: &str| event_type.starts_with(p);
    Some(match event_type {
        "user.session.start" => ("authentication", vec!["start"]),
        "user.session.end" => ("authentication", vec!["end"]),
        // The sign-on policy's verdict on a login, not a policy change.
        "policy.evaluate_sign_on" => ("authentication", vec!["info"]),
        _ if family("user.session.") || family("user.authentication.") || family("user.mfa.") => {
            ("authentication", vec!["info"])
        }
        _ if family("app.oauth2.") => ("authentication", vec!["info"]),
        _ if family("user.lifecycle.") || family("user.account.") => ("iam", vec!["user", verb_type(event_type)]),
        _ if family("application.user_membership.") => ("iam", vec!["user", "change"]),
        _ if family("group.user_membership.") => ("iam", vec!["group", "change"]),
        _ if family("group.") => ("iam", vec!["group", verb_type(event_type)]),
        _ if family("policy.") || family("system.") || family("application.") || family("app.") => {
            ("configuration", vec![verb_type(event_type)])
        }
        _ => return None,
    })
}

/// ECS `event.outcome` of `outcome.result`.
fn outcome(result: Option<&str>) -> &'static str {
    match result {
        Some("SUCCESS") => "success",
        Some("FAILURE" | "DENY") => "failure",
        _ => "unknown",
    }
}

impl SourceApi for Okta {
    fn observer(&self) -> Observer {
        Observer { vendor: "Okta", product: "Okta System Log" }
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            page_size: OKTA_MAX_PAGE_SIZE,
            lag: DEFAULT_LAG,
            lookback: DEFAULT_LOOKBACK,
            max_window: Some(DEFAULT_MAX_WINDOW),
            ..Defaults::default()
        }
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        if let Some(next) = q.state.and_then(|s| s["next"].as_str()) {
            let url = url::Url::parse(next).map_err(|e| ShapeError(format!("Link rel=\"next\" URL {next:?}: {e}")))?;
            return Ok(ApiRequest::get(url));
        }
        let (since, until) = bounds(q);
        let mut url = self.logs.clone();
        url.query_pairs_mut()
            .append_pair("since", &stamp(since))
            .append_pair("until", &stamp(until))
            .append_pair("limit", &q.page_size.min(OKTA_MAX_PAGE_SIZE).to_string())
            .append_pair("sortOrder", "ASCENDING");
        Ok(ApiRequest::get(url))
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        let excerpt = || crate::transport::http::excerpt(&resp.body);
        let events = match body {
            Value::Array(events) => events,
            Value::Object(o) if o.contains_key("errorCode") => {
                let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                return Err(ShapeError(format!("Okta answered {}: {}", s("errorCode"), s("errorSummary"))));
            }
            other => {
                return Err(ShapeError(format!(
                    "expected a JSON array of LogEvent objects, got {}: {}",
                    kind(&other),
                    excerpt()
                )))
            }
        };
        let (since, until) = bounds(q);
        let mut last = q.state.and_then(|s| utc_time(s.get("last")));
        for (i, e) in events.iter().enumerate() {
            if !e.is_object() || (e.get("uuid").is_none() && e.get("eventType").is_none()) {
                return Err(ShapeError(format!(
                    "element {i} of the answer is not a LogEvent (no uuid, no eventType): {}",
                    crate::transport::http::excerpt(e.to_string().as_bytes())
                )));
            }
            // An event without a readable time is the poller's to set aside.
            let Some(at) = utc_time(e.get("published")) else { continue };
            let id = e.get("uuid").cloned().unwrap_or(Value::Null);
            if at < since - BOUNDS_SLACK || at > until + BOUNDS_SLACK {
                return Err(ShapeError(format!(
                    "asked for since={} until={} and got {id} published at {}: Okta did not bound the answer by \
                     `published`; nothing was taken",
                    stamp(since),
                    stamp(until),
                    stamp(at)
                )));
            }
            if last.is_some_and(|l| at < l) {
                return Err(ShapeError(format!(
                    "asked for sortOrder=ASCENDING and got {id} published at {} after a later event: the answer is \
                     not oldest first; nothing more was taken",
                    stamp(at)
                )));
            }
            last = Some(at);
        }
        let next = match super::http_json::link_next(&resp.headers) {
            // An empty page ends the walk even with a `next` (module doc).
            Some(next) if !events.is_empty() => {
                let next = self.logs.join(&next).map_err(|e| ShapeError(format!("Link rel=\"next\" {next:?}: {e}")))?;
                Next::Page(json!({ "next": next.as_str(), "last": last.map(rfc3339) }))
            }
            _ => Next::Done,
        };
        Ok(ApiPage::parsed(events, next))
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |p: &str| raw.pointer(p).and_then(Value::as_str).filter(|v| !v.is_empty());
        let mut n = Normalised {
            id: s("/uuid").map(str::to_owned),
            timestamp: utc_time(raw.get("published")),
            ..Default::default()
        };
        let event_type = s("/eventType");
        if let Some((category, types)) = event_type.and_then(classify) {
            n.put("event.category", json!([category])).put("event.type", json!(types));
        }
        n.put_str("event.action", event_type)
            .put_str("event.outcome", Some(outcome(s("/outcome/result"))))
            .put_str("event.reason", s("/outcome/reason"))
            .put_str("user.name", s("/actor/alternateId"))
            .put_str("user.full_name", s("/actor/displayName"))
            .put_str("user.id", s("/actor/id"))
            .put_str("okta.actor.type", s("/actor/type"))
            .put_str("source.ip", s("/client/ipAddress"))
            .put_str("user_agent.original", s("/client/userAgent/rawUserAgent"))
            .put_str("okta.outcome.result", s("/outcome/result"))
            .put_str("okta.severity", s("/severity"))
            .put_str("okta.transaction.id", s("/transaction/id"))
            .put_str("okta.authentication_context.external_session_id", s("/authenticationContext/externalSessionId"))
            .put("okta.target", raw.get("target").filter(|t| t.as_array().is_some_and(|a| !a.is_empty())).cloned())
            .put_str("message", s("/displayMessage"));
        n
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        (status == 403).then(|| {
            Verdict::Auth(format!(
                "{}; the token's administrator needs a role that may read the System Log (Read-only Administrator \
                 is enough)",
                crate::transport::http::excerpt(body)
            ))
        })
    }
}

#[cfg(test)]
mod tests;
