//! `atlassian`: the audit log of an Atlassian organisation, the Admin
//! API's `GET {url}/admin/v1/orgs/{org_id}/events`
//! (`https://api.atlassian.com`), read with an organisation API key in
//! `Authorization: Bearer`.
//!
//! Each walk asks for its window as `from` and `to` (Unix epoch
//! milliseconds, the window's start rounded down and its end up) and
//! `limit`, then follows `links.next`, a full URL carrying the API's
//! `cursor` (Atlassian's "Query audit log events" reference; the admin
//! SDKs' `EventPage`), until a page has none. A `links.next` on another
//! origin is refused by the poller before the key goes there; a page with
//! only `meta.next` is followed by sending that cursor with the window's
//! bounds. Events are `data[]`, each with an `id` (a UUID) and
//! `attributes.time` (ISO 8601 UTC, with or without a fraction).
//!
//! The events come newest first and the order cannot be chosen, so the
//! source declares it (`order() = Desc`): the poller reads each closed
//! window whole, every id taken, before its cursor moves.
//!
//! Checked on every page, failing the poll loudly with the cursor kept:
//! the answer is an object with a `data` array (a JSON:API `errors` body
//! names its codes), each event an object with an `id` and an
//! `attributes.action`, each `attributes.time` inside the asked bounds
//! (Atlassian ignoring `from`/`to` fails the poll, naming the event). A
//! 401 is a refused key, a 403 a key that may not read the audit log, a
//! 404 an `org_id` the key does not belong to ([`SourceApi::verdict`]); a
//! 429 is throttling, retried after `Retry-After` or at the ISO 8601
//! `X-RateLimit-Reset` the poller reads for every source (`poller::fetch`).
//!
//! The silent-empty guard: `from`/`to` in milliseconds is the one guess
//! (the SDKs' parameter docs and Atlassian's migration guide say so; one
//! SDK sends seconds). A window that comes back empty asks once for the
//! newest event, unfiltered; if it lies inside the window, the filter did
//! not work as sent and the poll fails. A positive walk settles the
//! guard, a quiet one is asked again after an hour ([`GuardSchedule`]).

mod actions;
pub mod config;

use super::api::{
    guard_of, guard_state, json_body, ApiPage, ApiRequest, ApiResponse, Defaults, GuardSchedule, Next, Order, Query,
    ShapeError, SourceApi, Verdict,
};
use super::auth::Auth;
use super::{ceil_to, endpoint, floor_to, utc_time};
use crate::event::{Normalised, Observer};
use crate::settings::secret::Env;
use crate::settings::units::Rate;
use crate::settings::Problem;
use actions::{classify, outcome};
use chrono::{DateTime, Utc};
pub use config::{AtlassianConfig, Required, ATLASSIAN_API, ATLASSIAN_MAX_PAGE_SIZE};
use serde_json::{json, Value};
use std::num::NonZeroU32;
use std::time::Duration;

/// Events per request by default: the page size of the SDK fixture's
/// answer (`meta.page_size`).
const DEFAULT_PAGE_SIZE: u32 = 100;
/// `/events` allows 10 requests a minute per user and per API path (its
/// reference, since May 2025).
const CALLS_PER_MINUTE: u32 = 10;
/// Events may reach the audit log a little after they happen.
const DEFAULT_LAG: Duration = Duration::from_secs(60);
/// Re-asked behind the cursor for late events (ids taken are dropped).
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(120);
/// Longest window of one walk: a newest-first window is held open until
/// read whole, so a catch-up over the 180 days kept is read in days.
const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Tolerance on the bounds check.
const BOUNDS_SLACK: chrono::Duration = chrono::Duration::seconds(1);
/// The guard step: the newest event, unfiltered.
const NEWEST: &str = "newest_unfiltered";

/// The Atlassian hooks.
#[derive(Debug)]
pub struct Atlassian {
    events: url::Url,
    org_id: String,
    guard: GuardSchedule,
}

/// Build from config: `org_id`, `token` (or `token_file`) and `url`
/// (`https://api.atlassian.com`).
pub fn build(
    cfg: &AtlassianConfig,
    required: Required,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> super::Built {
    let token = required.token.resolve(at, env, problems)?;
    Some((Box::new(Atlassian::new(&cfg.url, &required.org_id)), Auth::Bearer(token)))
}

super::connector!(AtlassianConfig => build);

impl Atlassian {
    /// Hooks for the organisation `org_id` at `base`.
    pub fn new(base: &url::Url, org_id: &str) -> Self {
        let events = endpoint(base, &format!("admin/v1/orgs/{org_id}/events"));
        Atlassian { events, org_id: org_id.to_owned(), guard: GuardSchedule::default() }
    }

    fn url(&self, pairs: &[(&str, String)]) -> url::Url {
        let mut url = self.events.clone();
        url.query_pairs_mut().extend_pairs(pairs);
        url
    }
}

/// The bounds a window is asked with: whole milliseconds, covering it.
fn bounds(q: &Query<'_>) -> (DateTime<Utc>, DateTime<Utc>) {
    let ms = chrono::Duration::milliseconds(1);
    (floor_to(q.window.from, ms), ceil_to(q.window.to, ms))
}

fn event_time(e: &Value) -> Option<DateTime<Utc>> {
    utc_time(e.pointer("/attributes/time"))
}

fn named(e: &Value) -> String {
    let action = e.pointer("/attributes/action").and_then(Value::as_str).unwrap_or("?");
    format!("{} ({action} at {})", e["id"], e.pointer("/attributes/time").unwrap_or(&Value::Null))
}

/// What a JSON:API `{"errors": [{"status", "code", "title", "detail"}]}`
/// body says, when it is one.
fn errors_of(body: &Value) -> Option<String> {
    let errors = body.get("errors")?.as_array()?;
    let said = errors
        .iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
            [s("code"), s("title"), s("detail")]
                .iter()
                .filter(|t| !t.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(": ")
        })
        .collect::<Vec<_>>()
        .join("; ");
    Some(said)
}

/// The first context object of `type`, for the target of an action.
fn context_of<'a>(raw: &'a Value, ty: &str) -> Option<&'a Value> {
    raw.pointer("/attributes/context")?.as_array()?.iter().find(|c| c["type"] == ty)
}

impl SourceApi for Atlassian {
    fn observer(&self) -> Observer {
        Observer { vendor: "Atlassian", product: "Atlassian organization audit log" }
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            page_size: DEFAULT_PAGE_SIZE,
            rate_limit: NonZeroU32::new(CALLS_PER_MINUTE).map(|count| Rate { count, per: Duration::from_secs(60) }),
            lag: DEFAULT_LAG,
            lookback: DEFAULT_LOOKBACK,
            max_window: Some(DEFAULT_MAX_WINDOW),
            ..Defaults::default()
        }
    }

    fn order(&self) -> Order {
        Order::Desc
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        if guard_of(q.state) == Some(NEWEST) {
            return Ok(ApiRequest::get(self.url(&[("limit", "1".into())])));
        }
        if let Some(next) = q.state.and_then(|s| s["next"].as_str()) {
            let url = url::Url::parse(next).map_err(|e| ShapeError(format!("links.next URL {next:?}: {e}")))?;
            return Ok(ApiRequest::get(url));
        }
        let (from, to) = bounds(q);
        let mut pairs = vec![
            ("from", from.timestamp_millis().to_string()),
            ("to", to.timestamp_millis().to_string()),
            ("limit", q.page_size.clamp(1, ATLASSIAN_MAX_PAGE_SIZE).to_string()),
        ];
        if let Some(cursor) = q.state.and_then(|s| s["cursor"].as_str()) {
            pairs.push(("cursor", cursor.to_owned()));
        }
        Ok(ApiRequest::get(self.url(&pairs)))
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        let excerpt = || crate::transport::http::excerpt(&resp.body);
        let Some(data) = body.get("data").and_then(Value::as_array) else {
            return Err(ShapeError(match errors_of(&body) {
                Some(errors) => format!("Atlassian answered errors ({errors})"),
                None => format!("expected an object with a data array, got: {}", excerpt()),
            }));
        };
        for (i, e) in data.iter().enumerate() {
            if !e.is_object() || e.get("id").is_none() || e.pointer("/attributes/action").is_none() {
                return Err(ShapeError(format!(
                    "event {i} of the answer is not an audit event (no id or no attributes.action): {}",
                    crate::transport::http::excerpt(e.to_string().as_bytes())
                )));
            }
        }
        let (from, to) = bounds(q);
        if guard_of(q.state) == Some(NEWEST) {
            return match data.first().and_then(|e| Some((e, event_time(e)?))) {
                Some((e, at)) if from <= at && at <= to => {
                    self.guard.wrong();
                    Err(ShapeError(format!(
                        "from={} to={} matched nothing, yet the newest event {} lies inside that range: Atlassian did \
                         not filter by time in epoch milliseconds as sent; nothing was taken and the cursor stays",
                        from.timestamp_millis(),
                        to.timestamp_millis(),
                        named(e)
                    )))
                }
                _ => Ok(ApiPage::parsed(Vec::new(), Next::Done)),
            };
        }
        for e in data {
            // An event without a readable time is the poller's to set aside.
            let Some(at) = event_time(e) else { continue };
            if at < from - BOUNDS_SLACK || at > to + BOUNDS_SLACK {
                return Err(ShapeError(format!(
                    "asked for from={} to={} and got {}: Atlassian did not bound the answer by time; nothing was \
                     taken",
                    from.timestamp_millis(),
                    to.timestamp_millis(),
                    named(e)
                )));
            }
        }
        if !data.is_empty() {
            self.guard.settle();
        }
        let link = body.pointer("/links/next").and_then(Value::as_str).filter(|n| !n.is_empty());
        let cursor = body.pointer("/meta/next").and_then(Value::as_str).filter(|c| !c.is_empty());
        let next = match (link, cursor) {
            (Some(link), _) => {
                let url = self.events.join(link).map_err(|e| ShapeError(format!("links.next {link:?}: {e}")))?;
                Next::Page(json!({ "next": url.as_str() }))
            }
            (None, Some(cursor)) => Next::Page(json!({ "cursor": cursor })),
            (None, None) if data.is_empty() && q.state.is_none() && self.guard.take_if_due(q.window.to) => {
                Next::Page(guard_state(NEWEST))
            }
            (None, None) => Next::Done,
        };
        Ok(ApiPage::parsed(data.clone(), next))
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |p: &str| raw.pointer(p).and_then(Value::as_str).filter(|v| !v.is_empty());
        let list = |p: &str| raw.pointer(p).filter(|v| v.as_array().is_some_and(|a| !a.is_empty())).cloned();
        let mut n = Normalised { id: s("/id").map(str::to_owned), timestamp: event_time(raw), ..Default::default() };
        let action = s("/attributes/action").unwrap_or_default();
        let (category, types) = classify(action);
        if let Some(category) = category {
            n.put("event.category", json!([category]));
        }
        let user = context_of(raw, "users");
        let group = context_of(raw, "groups");
        let us = |p: &str| user.and_then(|u| u.pointer(p)).and_then(Value::as_str).filter(|v| !v.is_empty());
        let gs = |p: &str| group.and_then(|g| g.pointer(p)).and_then(Value::as_str).filter(|v| !v.is_empty());
        let first = raw.pointer("/attributes/context/0");
        let fs = |p: &str| first.and_then(|c| c.pointer(p)).and_then(Value::as_str).filter(|v| !v.is_empty());
        n.put_str("event.action", Some(action))
            .put("event.type", json!(types))
            .put_str("event.outcome", Some(outcome(action)))
            .put_str("message", s("/message/content"))
            .put_str("user.id", s("/attributes/actor/id"))
            .put_str("user.name", s("/attributes/actor/name"))
            .put_str("user.email", s("/attributes/actor/email").filter(|e| e.contains('@')))
            .put_str("source.ip", s("/attributes/location/ip"))
            .put_str("source.geo.country_name", s("/attributes/location/countryName"))
            .put_str("source.geo.region_name", s("/attributes/location/regionName"))
            .put_str("source.geo.city_name", s("/attributes/location/city"))
            .put_str("user.target.id", us("/id"))
            .put_str("user.target.name", us("/attributes/name"))
            .put_str("user.target.email", us("/attributes/email"))
            .put_str("group.id", gs("/id"))
            .put_str("group.name", gs("/attributes/name"))
            .put_str("organization.id", Some(&self.org_id))
            .put_str("atlassian.target.id", fs("/id"))
            .put_str("atlassian.target.type", fs("/type"))
            .put_str("atlassian.target.name", fs("/attributes/name"))
            .put("atlassian.context", list("/attributes/context"))
            .put("atlassian.container", list("/attributes/container"))
            .put("atlassian.actor.auth", raw.pointer("/attributes/actor/auth").cloned())
            .put("atlassian.actor.on_behalf_of", raw.pointer("/attributes/actor/onBehalfOf").cloned())
            .put_str("atlassian.processed_at", s("/attributes/processedAt"));
        n
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        let errors = serde_json::from_slice::<Value>(body).ok().and_then(|b| errors_of(&b)).filter(|s| !s.is_empty());
        // A 404 without Atlassian's error body is a wrong path (a proxy, a
        // wrong `url`), not the organisation.
        if status == 404 && errors.is_none() {
            return None;
        }
        let said = errors.unwrap_or_else(|| crate::transport::http::excerpt(body));
        let hint = match status {
            401 => "the API key is not valid (mistyped, revoked, or expired: keys last at most a year)",
            403 => {
                "the API key may not read the audit log: use an organisation admin's API key without scopes (or \
                 with read:events:admin); the audit log needs Atlassian Guard Standard"
            }
            404 => "org_id is not the organisation this API key was created in (admin.atlassian.com/o/{org_id})",
            _ => return None,
        };
        Some(Verdict::Auth(format!("{said}; {hint}")))
    }
}

#[cfg(test)]
mod tests;
