//! `onepassword`: the 1Password Events API's audit events,
//! `POST {url}/api/v2/auditevents` (`https://events.1password.com`, or the
//! `.ca`, `.eu` or `ent.` server of the account's region), read with an
//! Events Reporting bearer token that has the `auditevents` feature.
//!
//! The cursor is carried in the request body. Each walk opens its window
//! with a *reset cursor*, `{"limit", "start_time", "end_time"}` (RFC 3339,
//! the window's bounds), then sends back the answer's `cursor` alone,
//! `{"cursor": …}`, while `has_more` is true (1Password's Events API
//! reference, "ResetCursor" and "Cursor"; Elastic's integration pages the
//! same way: `packages/1password/data_stream/audit_events/agent/stream/httpjson.yml.hbs`).
//! Items are `items[]`, each with a `uuid` and a `timestamp` (RFC 3339,
//! nanoseconds).
//!
//! The reference does not promise an order within a window, so the source
//! declares it newest first (`order() = Desc`): the poller reads each
//! closed window whole, every id taken, before its cursor moves, which is
//! correct in any order.
//!
//! Checked on every page, failing the poll loudly with the cursor kept:
//! the answer is an object with an `items` array (and a `cursor` while
//! `has_more`), each item an object with a `uuid` and an `action`, each
//! `timestamp` inside the asked bounds (1Password ignoring them fails the
//! poll, naming the item). A 401 is a refused token; a 403 a token without
//! the `auditevents` feature; 429 is throttling, retried after its
//! `Retry-After` by the poller.
//!
//! The silent-empty guard: the time bounds in the reset cursor are the one
//! guess. A window that comes back empty asks once for the first item from
//! the window's start with no end bound; if it lies inside the window, the
//! bounds were not applied as sent and the poll fails. A positive walk
//! settles the guard, a quiet one is asked again after an hour
//! ([`GuardSchedule`]).

pub mod config;

use super::api::{
    guard_of, guard_state, json_body, ApiPage, ApiRequest, ApiResponse, Defaults, GuardSchedule, Next, Order, Query,
    ShapeError, SourceApi, Verdict,
};
use super::auth::Auth;
use super::{endpoint, utc_time};
use crate::event::{Normalised, Observer};
use crate::settings::secret::{Env, SetSecret};
use crate::settings::units::Rate;
use crate::settings::Problem;
use chrono::{DateTime, Utc};
pub use config::{OnepasswordConfig, ONEPASSWORD_MAX_PAGE_SIZE, ONEPASSWORD_SERVERS};
use serde_json::{json, Value};
use std::num::NonZeroU32;
use std::time::Duration;

/// The Events API allows 600 requests a minute and 30,000 an hour per
/// token: 500 a minute keeps under both.
const CALLS_PER_MINUTE: u32 = 500;
/// Events may reach the API a little after they happen.
const DEFAULT_LAG: Duration = Duration::from_secs(60);
/// Re-asked behind the cursor for late events (ids taken are dropped).
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(120);
/// Longest window of one walk: a window is held open until read whole, so
/// a catch-up over the 120 days the API keeps is read in days.
const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Tolerance on the bounds check.
const BOUNDS_SLACK: chrono::Duration = chrono::Duration::seconds(1);
/// The guard step: the first item from the window's start, no end bound.
const FROM_START: &str = "from_start_unbounded";

/// The 1Password hooks.
#[derive(Debug)]
pub struct Onepassword {
    events: url::Url,
    guard: GuardSchedule,
}

/// Build from config: `token` (or `token_file`) and `url`.
pub fn build(
    cfg: &OnepasswordConfig,
    token: SetSecret,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> super::Built {
    let token = token.resolve(at, env, problems)?;
    Some((Box::new(Onepassword::new(&cfg.url)), Auth::Bearer(token)))
}

super::connector!(OnepasswordConfig => build);

impl Onepassword {
    /// Hooks for the Events API server at `base`.
    pub fn new(base: &url::Url) -> Self {
        Onepassword { events: endpoint(base, "api/v2/auditevents"), guard: GuardSchedule::default() }
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn named(e: &Value) -> String {
    format!("{} ({} at {})", e["uuid"], e["action"].as_str().unwrap_or("?"), e["timestamp"])
}

/// ECS `event.type` of an action: `create` and `join` add, `delete`,
/// `purge`, `trash` and `leave` remove, every other verb (`update`,
/// `suspend`, `reactivate`, `grant`, `revoke`…) changes.
fn action_type(action: &str) -> &'static str {
    match action {
        "create" | "join" => "creation",
        "delete" | "purge" | "trash" | "leave" => "deletion",
        _ => "change",
    }
}

/// ECS `event.category` and `event.type` by `object_type`: users and
/// groups are identity changes, everything else (vaults, items, policies,
/// integrations, the account) configuration, as in Elastic's pipeline.
fn classify(object_type: &str, action: &str) -> (&'static str, Vec<&'static str>) {
    match object_type {
        "user" | "invite" => ("iam", vec!["user", action_type(action)]),
        // `gm`: a group membership.
        "group" | "gm" => ("iam", vec!["group", action_type(action)]),
        _ => ("configuration", vec![action_type(action)]),
    }
}

impl SourceApi for Onepassword {
    fn observer(&self) -> Observer {
        Observer { vendor: "1Password", product: "1Password Events API" }
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            page_size: ONEPASSWORD_MAX_PAGE_SIZE,
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
        let limit = q.page_size.clamp(1, ONEPASSWORD_MAX_PAGE_SIZE);
        let body = match (guard_of(q.state), q.state.and_then(|s| s["cursor"].as_str())) {
            (Some(FROM_START), _) => json!({ "limit": 1, "start_time": stamp(q.window.from) }),
            (_, Some(cursor)) => json!({ "cursor": cursor }),
            _ => json!({ "limit": limit, "start_time": stamp(q.window.from), "end_time": stamp(q.window.to) }),
        };
        Ok(ApiRequest::post_json(self.events.clone(), body))
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        let excerpt = || crate::transport::http::excerpt(&resp.body);
        let items = body
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| ShapeError(format!("expected an object with an items array, got: {}", excerpt())))?;
        for (i, e) in items.iter().enumerate() {
            if !e.is_object() || e.get("uuid").is_none() || e.get("action").is_none() {
                return Err(ShapeError(format!(
                    "item {i} of the answer is not an audit event (no uuid or no action): {}",
                    crate::transport::http::excerpt(e.to_string().as_bytes())
                )));
            }
        }
        let (from, to) = (q.window.from, q.window.to);
        if guard_of(q.state) == Some(FROM_START) {
            return match items.first().and_then(|e| Some((e, utc_time(e.get("timestamp"))?))) {
                Some((e, at)) if from - BOUNDS_SLACK <= at && at <= to => {
                    self.guard.wrong();
                    Err(ShapeError(format!(
                        "start_time={} end_time={} matched nothing, yet the first event from start_time is {}, \
                         inside that range: 1Password did not apply the bounds as sent; nothing was taken and the \
                         cursor stays",
                        stamp(from),
                        stamp(to),
                        named(e)
                    )))
                }
                _ => Ok(ApiPage::parsed(Vec::new(), Next::Done)),
            };
        }
        for e in items {
            // An item without a readable time is the poller's to set aside.
            let Some(at) = utc_time(e.get("timestamp")) else { continue };
            if at < from - BOUNDS_SLACK || at > to + BOUNDS_SLACK {
                return Err(ShapeError(format!(
                    "asked for start_time={} end_time={} and got {}: 1Password did not bound the answer by time; \
                     nothing was taken",
                    stamp(from),
                    stamp(to),
                    named(e)
                )));
            }
        }
        if !items.is_empty() {
            self.guard.settle();
        }
        let more = body.get("has_more").and_then(Value::as_bool).unwrap_or(false);
        let cursor = body.get("cursor").and_then(Value::as_str).filter(|c| !c.is_empty());
        let next = match (more, cursor) {
            (true, Some(cursor)) => Next::Page(json!({ "cursor": cursor })),
            (true, None) => {
                return Err(ShapeError(format!("has_more is true but the answer has no cursor: {}", excerpt())))
            }
            (false, _) if items.is_empty() && q.state.is_none() && self.guard.take_if_due(q.window.to) => {
                Next::Page(guard_state(FROM_START))
            }
            (false, _) => Next::Done,
        };
        Ok(ApiPage::parsed(items.clone(), next))
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |p: &str| raw.pointer(p).and_then(Value::as_str).filter(|v| !v.is_empty());
        let mut n = Normalised {
            id: s("/uuid").map(str::to_owned),
            timestamp: utc_time(raw.get("timestamp")),
            ..Default::default()
        };
        let action = s("/action").unwrap_or_default();
        let (category, types) = classify(s("/object_type").unwrap_or_default(), action);
        let name = s("/actor_details/name");
        n.put("event.category", json!([category]))
            .put("event.type", json!(types))
            .put_str("event.action", Some(action))
            // An audit event records an action that was performed.
            .put_str("event.outcome", Some("success"))
            .put_str("user.id", s("/actor_uuid"))
            .put_str("user.name", name.or(s("/actor_details/email")))
            .put_str("user.full_name", name)
            .put_str("user.email", s("/actor_details/email"))
            .put_str("source.ip", s("/session/ip"))
            .put_str("onepassword.object_type", s("/object_type"))
            .put_str("onepassword.object_uuid", s("/object_uuid"))
            .put("onepassword.object_details", raw.get("object_details").cloned())
            .put_str("onepassword.aux_uuid", s("/aux_uuid"))
            .put("onepassword.aux_id", raw.get("aux_id").cloned())
            .put_str("onepassword.aux_info", s("/aux_info"))
            .put("onepassword.aux_details", raw.get("aux_details").cloned())
            .put("onepassword.session", raw.get("session").cloned())
            .put("onepassword.location", raw.get("location").cloned())
            .put_str("onepassword.actor_type", s("/actor_type"))
            .put_str("onepassword.account_uuid", s("/account_uuid"));
        n
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        let excerpt = crate::transport::http::excerpt(body);
        match status {
            401 => Some(Verdict::Auth(format!(
                "{excerpt}; the bearer token is not valid (mistyped, revoked, or for another region's server)"
            ))),
            403 => Some(Verdict::Auth(format!(
                "{excerpt}; the token lacks the auditevents feature (issue one for audit events in the Events \
                 Reporting integration)"
            ))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
