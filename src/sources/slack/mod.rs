//! `slack`: the Audit Logs API of a Slack Enterprise Grid organisation,
//! `GET {url}/audit/v1/logs` (`https://api.slack.com`), read with an
//! org-level user token (`xoxp-…`, installed on the organisation by its
//! Owner, with the `auditlogs:read` scope) in `Authorization: Bearer`.
//!
//! Each walk asks for its window as `oldest` and `latest` (Unix seconds,
//! both inclusive in Slack's SDKs: the window's start rounded down and its
//! end up) and `limit` (at most 9999), then follows
//! `response_metadata.next_cursor` as `cursor` (with the same bounds)
//! until it is empty. Events are `entries[]`, each with an `id` and a
//! `date_create` in Unix seconds.
//!
//! Slack does not document the order; Elastic's integration reads the
//! first entry of a page as the newest. The source declares it newest
//! first (`order() = Desc`): the poller reads each closed window
//! completely, with every id taken, before its cursor moves, which is
//! correct whatever order the pages come in, so the order is not checked.
//!
//! Checked on every page, failing the poll loudly with the cursor kept:
//! the answer is an object with `ok` not false and an `entries` array
//! (`{"ok": false, "error": …}` names the error and, for a credential
//! error, what the token needs), each entry an object with an `id` and
//! an `action`, and each `date_create` inside the asked bounds (Slack
//! ignoring `oldest`/`latest` fails the poll, naming the entry). An
//! error status whose body names a token or plan error (`invalid_auth`,
//! `not_allowed_token_type`, `missing_scope`, `feature_not_enabled`, …)
//! is refused credentials ([`SourceApi::verdict`]); a 429 is throttling,
//! retried after its `Retry-After` by the poller.
//!
//! The silent-empty guard: `oldest`/`latest` in seconds is the one guess
//! (every SDK says so, no reference page shows a request). A window that
//! comes back empty asks once for the newest entry, unfiltered; if it lies
//! inside the window, the filter did not work as sent and the poll fails.
//! The guard stops once a filtered walk has returned entries
//! ([`GuardSchedule`]), and a quiet one is asked again after an hour.

mod actions;
pub mod config;

use super::api::{
    guard_of, guard_state, json_body, ApiPage, ApiRequest, ApiResponse, Defaults, GuardSchedule, Next, Order, Query,
    ShapeError, SourceApi, Verdict,
};
use super::auth::Auth;
use super::{ceil_to, endpoint, floor_to};
use crate::event::{Normalised, Observer};
use crate::settings::secret::{Env, SetSecret};
use crate::settings::units::Rate;
use crate::settings::Problem;
use actions::{classify, outcome};
use chrono::{DateTime, Utc};
pub use config::{SlackConfig, SLACK_API, SLACK_MAX_PAGE_SIZE};
use serde_json::{json, Value};
use std::num::NonZeroU32;
use std::time::Duration;

/// Events per request by default (Slack allows up to 9999).
const DEFAULT_PAGE_SIZE: u32 = 1000;
/// The Audit Logs API is Tier 3: 50 calls a minute for the whole
/// organisation (methods reference, "Rate limits").
const CALLS_PER_MINUTE: u32 = 50;
/// Audit events may reach the API a little after they happen.
const DEFAULT_LAG: Duration = Duration::from_secs(60);
/// Re-asked behind the cursor for late events (ids taken are dropped).
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(120);
/// Longest window of one walk: a newest-first window is held open until
/// read whole, so a catch-up is read in days.
const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The guard step: the newest entry, unfiltered.
const NEWEST: &str = "newest_unfiltered";

/// Error codes that mean the token cannot read the audit log, with what
/// to do about each.
const CREDENTIAL_ERRORS: [(&str, &str); 9] = [
    ("invalid_auth", "the token is not valid (mistyped, revoked, or from another organisation)"),
    ("not_authed", "no token reached Slack"),
    ("token_revoked", "the token was revoked (the app was uninstalled or its installer deactivated)"),
    ("token_expired", "the token expired (token rotation is on for the app)"),
    ("account_inactive", "the token's user is deactivated"),
    (
        "not_allowed_token_type",
        "the Audit Logs API takes a user token (xoxp-) of the app installed on the organisation, not a bot token",
    ),
    ("missing_scope", "the token lacks the auditlogs:read user token scope"),
    (
        "feature_not_enabled",
        "the Audit Logs API is only on Enterprise Grid, and the app must be installed on the organisation, not a \
         workspace",
    ),
    ("team_not_authorized", "the app is installed on a workspace; install it on the Enterprise Grid organisation"),
];

/// The Slack hooks.
#[derive(Debug)]
pub struct Slack {
    logs: url::Url,
    guard: GuardSchedule,
}

/// Build from config: `token` (or `token_file`) and `url`
/// (`https://api.slack.com`). A bot or app-level token is refused here:
/// Slack would answer `not_allowed_token_type`.
pub fn build(
    cfg: &SlackConfig,
    token: SetSecret,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> super::Built {
    let token = token.resolve(at, env, problems)?;
    if ["xoxb-", "xapp-"].iter().any(|p| token.expose().starts_with(p)) {
        problems.push(Problem::new(
            format!("{at}.token"),
            "is a bot or app-level token; the Audit Logs API takes the org owner's user token (xoxp-) \
             with auditlogs:read",
        ));
        return None;
    }
    Some((Box::new(Slack::new(&cfg.url)), Auth::Bearer(token)))
}

super::connector!(SlackConfig => build);

impl Slack {
    /// Hooks for the API at `base`.
    pub fn new(base: &url::Url) -> Self {
        Slack { logs: endpoint(base, "audit/v1/logs"), guard: GuardSchedule::default() }
    }

    fn url(&self, pairs: &[(&str, String)]) -> url::Url {
        let mut url = self.logs.clone();
        url.query_pairs_mut().extend_pairs(pairs);
        url
    }
}

/// The bounds a window is asked with: whole seconds, covering it.
fn bounds(q: &Query<'_>) -> (DateTime<Utc>, DateTime<Utc>) {
    let s = chrono::Duration::seconds(1);
    (floor_to(q.window.from, s), ceil_to(q.window.to, s))
}

fn event_time(e: &Value) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(e.get("date_create")?.as_i64()?, 0)
}

fn named(e: &Value) -> String {
    format!("{} ({} at {})", e["id"], e["action"].as_str().unwrap_or("?"), e["date_create"])
}

/// What an `{"ok": false, "error": code}` answer means, for messages.
fn error_of(body: &Value) -> Option<String> {
    if body.get("ok") != Some(&Value::Bool(false)) {
        return None;
    }
    let code = body["error"].as_str().unwrap_or("(no error code)");
    let needed = body["needed"].as_str().filter(|n| !n.is_empty());
    let hint = CREDENTIAL_ERRORS.iter().find(|(c, _)| *c == code).map(|(_, h)| *h);
    let mut text = format!("Slack answered ok=false, error {code:?}");
    if let Some(n) = needed {
        text.push_str(&format!(" (needed: {n})"));
    }
    if let Some(h) = hint {
        text.push_str(&format!(": the credentials were refused; {h}"));
    }
    Some(text)
}

impl SourceApi for Slack {
    fn observer(&self) -> Observer {
        Observer { vendor: "Slack", product: "Slack Audit Logs" }
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
        let (oldest, latest) = bounds(q);
        let mut pairs = vec![
            ("oldest", oldest.timestamp().to_string()),
            ("latest", latest.timestamp().to_string()),
            ("limit", q.page_size.clamp(1, SLACK_MAX_PAGE_SIZE).to_string()),
        ];
        if let Some(cursor) = q.state.and_then(|s| s["cursor"].as_str()) {
            pairs.push(("cursor", cursor.to_owned()));
        }
        Ok(ApiRequest::get(self.url(&pairs)))
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        if let Some(error) = error_of(&body) {
            return Err(ShapeError(error));
        }
        let excerpt = || crate::transport::http::excerpt(&resp.body);
        let entries = body
            .get("entries")
            .and_then(Value::as_array)
            .ok_or_else(|| ShapeError(format!("expected an object with an entries array, got: {}", excerpt())))?;
        for (i, e) in entries.iter().enumerate() {
            if !e.is_object() || e.get("id").is_none() || e.get("action").is_none() {
                return Err(ShapeError(format!(
                    "entry {i} of the answer is not an audit event (no id or no action): {}",
                    crate::transport::http::excerpt(e.to_string().as_bytes())
                )));
            }
        }
        let (oldest, latest) = bounds(q);
        if guard_of(q.state) == Some(NEWEST) {
            return match entries.first().and_then(|e| Some((e, event_time(e)?))) {
                Some((e, at)) if oldest <= at && at <= latest => {
                    self.guard.wrong();
                    Err(ShapeError(format!(
                        "oldest={} latest={} matched nothing, yet the newest entry {} lies inside that range: Slack \
                         did not filter by date_create in Unix seconds as sent; nothing was taken and the cursor \
                         stays",
                        oldest.timestamp(),
                        latest.timestamp(),
                        named(e)
                    )))
                }
                _ => Ok(ApiPage::parsed(Vec::new(), Next::Done)),
            };
        }
        for e in entries {
            // An entry without a readable time is the poller's to set aside.
            let Some(at) = event_time(e) else { continue };
            if at < oldest || at > latest {
                return Err(ShapeError(format!(
                    "asked for oldest={} latest={} and got {}: Slack did not bound the answer by date_create; \
                     nothing was taken",
                    oldest.timestamp(),
                    latest.timestamp(),
                    named(e)
                )));
            }
        }
        if !entries.is_empty() {
            self.guard.settle();
        }
        let cursor = body.pointer("/response_metadata/next_cursor").and_then(Value::as_str).unwrap_or_default();
        let next = if !cursor.is_empty() {
            Next::Page(json!({ "cursor": cursor }))
        } else if entries.is_empty() && q.state.is_none() && self.guard.take_if_due(q.window.to) {
            Next::Page(guard_state(NEWEST))
        } else {
            Next::Done
        };
        Ok(ApiPage::parsed(entries.clone(), next))
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |p: &str| raw.pointer(p).and_then(Value::as_str).filter(|v| !v.is_empty());
        let mut n = Normalised { id: s("/id").map(str::to_owned), timestamp: event_time(raw), ..Default::default() };
        let action = s("/action").unwrap_or_default();
        let (category, kind) = classify(action);
        if let Some(category) = category {
            n.put("event.category", json!([category]));
        }
        let session = match raw.pointer("/context/session_id") {
            Some(Value::Number(v)) => Some(v.to_string()),
            Some(Value::String(v)) => Some(v.clone()),
            _ => None,
        };
        n.put_str("event.action", Some(action))
            .put("event.type", json!(kind))
            .put_str("event.outcome", Some(outcome(action)))
            .put_str("user.id", s("/actor/user/id"))
            .put_str("user.name", s("/actor/user/name"))
            .put_str("user.full_name", s("/actor/user/name"))
            .put_str("user.email", s("/actor/user/email"))
            .put_str("source.ip", s("/context/ip_address"))
            .put_str("user_agent.original", s("/context/ua"))
            .put_str("slack.actor.type", s("/actor/type"))
            .put_str("slack.actor.user.team", s("/actor/user/team"))
            .put("slack.entity", raw.get("entity").cloned())
            .put("slack.context.location", raw.pointer("/context/location").cloned())
            .put_str("slack.context.session_id", session.as_deref())
            .put("slack.context.app", raw.pointer("/context/app").cloned())
            .put("slack.details", raw.get("details").filter(|d| d.as_object().is_some_and(|o| !o.is_empty())).cloned());
        n
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        if status == 429 {
            return None; // throttling: the poller waits `Retry-After`
        }
        let parsed: Value = serde_json::from_slice(body).ok()?;
        let code = parsed["error"].as_str()?;
        if code == "ratelimited" {
            return Some(Verdict::Throttled(None));
        }
        let credential = CREDENTIAL_ERRORS.iter().any(|(c, _)| *c == code);
        (credential || status == 401 || status == 403).then(|| Verdict::Auth(error_of(&parsed).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests;
