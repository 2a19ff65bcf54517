//! `cloudflare`: the audit log of a Cloudflare account, v1
//! `GET {url}/client/v4/accounts/{account_id}/audit_logs`
//! (`https://api.cloudflare.com`), read with an API token that has
//! *Account Settings Read* in `Authorization: Bearer`.
//!
//! v1, not v2 (`/logs/audit`): v1's permission is documented, its records
//! are the ones Elastic's integration maps and tests
//! (`packages/cloudflare/data_stream/audit`), and its paging is plain page
//! numbers, where v2's cursor is in `result_info.cursor` by the docs and
//! in `result_info.cursors.after` by the SDKs
//! (`docs/connectors/research/cloudflare.md`).
//!
//! Each walk asks for its window as `since` and `before` (RFC 3339 whole
//! seconds), `direction=asc`, `per_page` and `page` (from 1). Cloudflare
//! does not say whether the bounds are inclusive ("newer than", "older
//! than"), so each is widened by a second; the poller drops what lies
//! outside the window. The next page is asked while a page is full (as
//! Elastic's CEL input does) and `result_info.total_pages`, when sent, is
//! not reached. Records are `result[]`, each with an `id` (a UUID) and a
//! `when` (RFC 3339 UTC, with or without a fraction).
//!
//! Checked on every page, failing the poll loudly with the cursor kept:
//! the answer is the v4 envelope with `success` not false and a `result`
//! array (`{"success": false, "errors": [...]}` names the codes), each
//! record an object with an `id` and an `action` object, each `when`
//! inside the asked bounds and not older than the one before it (the
//! bounds or `direction` ignored fail the poll, naming the record).
//!
//! Credentials: Cloudflare answers a token that is invalid or lacks the
//! permission with **403** and error code 10000 ("Authentication error"),
//! and a malformed `Authorization` header with 400 and code 6003/6111;
//! both are refused credentials ([`SourceApi::verdict`]) saying what the
//! token needs. A 429 is throttling, retried after its `Retry-After`; the
//! `Ratelimit: "default";r=…;t=…` header every answer carries is read by
//! the poller (`poller::fetch`), so a spent quota holds the next request
//! until its reset instead of locking the account's API out for five
//! minutes.
//!
//! The silent-empty guard: `since`/`before` as RFC 3339 is the one guess
//! (the reference's wording; Elastic sends the same). A window that comes
//! back empty asks once for the newest record, unfiltered; if it lies
//! inside the window, the filter did not work as sent and the poll fails.
//! A positive walk settles the guard, a quiet one is asked again after an
//! hour ([`GuardSchedule`]).

mod actions;
pub mod config;

use super::api::{
    guard_of, guard_state, json_body, ApiPage, ApiRequest, ApiResponse, Defaults, GuardSchedule, Next, Query,
    ShapeError, SourceApi, Verdict,
};
use super::auth::Auth;
use super::{ceil_to, endpoint, floor_to, utc_time};
use crate::event::{rfc3339, Normalised, Observer};
use crate::settings::secret::Env;
use crate::settings::units::Rate;
use crate::settings::Problem;
use actions::classify;
use chrono::{DateTime, Utc};
pub use config::{CloudflareConfig, Required, CLOUDFLARE_API, CLOUDFLARE_MAX_PAGE_SIZE};
use serde_json::{json, Value};
use std::num::NonZeroU32;
use std::time::Duration;

/// Records per request by default: Elastic's integration asks for 100.
const DEFAULT_PAGE_SIZE: u32 = 100;
/// Cloudflare allows 1200 requests per 5 minutes per user, counted with the
/// dashboard's and every other token's: 200 a minute leaves a sixth.
const CALLS_PER_MINUTE: u32 = 200;
/// Records may reach the API a little after they happen.
const DEFAULT_LAG: Duration = Duration::from_secs(60);
/// Re-asked behind the cursor for late records (ids taken are dropped).
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(120);
/// Longest window of one walk (a catch-up over the 18 months kept).
const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The widening of each bound: their inclusivity is undocumented.
const BOUND_SLACK: chrono::Duration = chrono::Duration::seconds(1);
/// The guard step: the newest record, unfiltered.
const NEWEST: &str = "newest_unfiltered";

/// Error codes meaning the token cannot read the audit log, with what to do.
const CREDENTIAL_ERRORS: [(u64, &str); 4] = [
    (10000, "the API token is not valid (mistyped, expired, revoked) or lacks Account Settings Read on this account"),
    (6003, "the credentials are malformed: token must be an API token, sent as Authorization: Bearer"),
    (6111, "the Authorization header is malformed: token must be an API token (not a Global API Key)"),
    (9109, "the API token is not valid for this account (Unauthorized to access requested resource)"),
];

/// The Cloudflare hooks.
#[derive(Debug)]
pub struct Cloudflare {
    logs: url::Url,
    account_id: String,
    guard: GuardSchedule,
}

/// Build from config: `url` (`https://api.cloudflare.com`) and the
/// checked `account_id` and `token` (or `token_file`), which is resolved.
pub fn build(
    cfg: &CloudflareConfig,
    required: Required,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> super::Built {
    let token = required.token.resolve(at, env, problems)?;
    Some((Box::new(Cloudflare::new(&cfg.url, &required.account_id)), Auth::Bearer(token)))
}

super::connector!(CloudflareConfig => build);

impl Cloudflare {
    /// Hooks for `account_id`'s audit log at `base`.
    pub fn new(base: &url::Url, account_id: &str) -> Self {
        let logs = endpoint(base, &format!("client/v4/accounts/{account_id}/audit_logs"));
        Cloudflare { logs, account_id: account_id.to_owned(), guard: GuardSchedule::default() }
    }

    fn url(&self, pairs: &[(&str, String)]) -> url::Url {
        let mut url = self.logs.clone();
        url.query_pairs_mut().extend_pairs(pairs);
        url
    }
}

/// The bounds a window is asked with: whole seconds, each widened by
/// [`BOUND_SLACK`].
fn bounds(q: &Query<'_>) -> (DateTime<Utc>, DateTime<Utc>) {
    let s = chrono::Duration::seconds(1);
    (floor_to(q.window.from, s) - BOUND_SLACK, ceil_to(q.window.to, s) + BOUND_SLACK)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn named(e: &Value) -> String {
    format!("{} ({} at {})", e["id"], e.pointer("/action/type").and_then(Value::as_str).unwrap_or("?"), e["when"])
}

/// What the v4 envelope's `errors` say: `code message` pairs, and the
/// hint of the first credential error among them.
fn errors_of(body: &Value) -> (String, Option<&'static str>) {
    let errors = body.get("errors").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let codes = |e: &Value| {
        let chain = e.get("error_chain").and_then(Value::as_array).into_iter().flatten();
        std::iter::once(e.clone()).chain(chain.cloned()).collect::<Vec<_>>()
    };
    let all: Vec<Value> = errors.iter().flat_map(codes).collect();
    let text = all
        .iter()
        .map(|e| format!("{} {}", e["code"], e["message"].as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("; ");
    let hint = all.iter().find_map(|e| {
        let code = e["code"].as_u64()?;
        CREDENTIAL_ERRORS.iter().find(|(c, _)| *c == code).map(|(_, h)| *h)
    });
    (text, hint)
}

impl SourceApi for Cloudflare {
    fn observer(&self) -> Observer {
        Observer { vendor: "Cloudflare", product: "Cloudflare audit logs" }
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

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        if guard_of(q.state) == Some(NEWEST) {
            return Ok(ApiRequest::get(self.url(&[("direction", "desc".into()), ("per_page", "1".into())])));
        }
        let (since, before) = bounds(q);
        let page = q.state.and_then(|s| s["page"].as_u64()).unwrap_or(1);
        Ok(ApiRequest::get(self.url(&[
            ("since", stamp(since)),
            ("before", stamp(before)),
            ("direction", "asc".into()),
            ("per_page", q.page_size.clamp(1, CLOUDFLARE_MAX_PAGE_SIZE).to_string()),
            ("page", page.to_string()),
        ])))
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        let excerpt = || crate::transport::http::excerpt(&resp.body);
        if body.get("success") == Some(&Value::Bool(false)) {
            let (errors, hint) = errors_of(&body);
            let hint = hint.map(|h| format!(": the credentials were refused; {h}")).unwrap_or_default();
            return Err(ShapeError(format!("Cloudflare answered success=false ({errors}){hint}")));
        }
        let records = body
            .get("result")
            .and_then(Value::as_array)
            .ok_or_else(|| ShapeError(format!("expected the v4 envelope with a result array, got: {}", excerpt())))?;
        for (i, e) in records.iter().enumerate() {
            if !e.is_object() || e.get("id").is_none() || !e.get("action").is_some_and(Value::is_object) {
                return Err(ShapeError(format!(
                    "record {i} of the answer is not an audit log (no id or no action object): {}",
                    crate::transport::http::excerpt(e.to_string().as_bytes())
                )));
            }
        }
        let (since, before) = bounds(q);
        if guard_of(q.state) == Some(NEWEST) {
            return match records.first().and_then(|e| Some((e, utc_time(e.get("when"))?))) {
                Some((e, at)) if q.window.from <= at && at <= q.window.to => {
                    self.guard.wrong();
                    Err(ShapeError(format!(
                        "since={} before={} matched nothing, yet the newest record {} lies inside that range: \
                         Cloudflare did not filter by when as sent; nothing was taken and the cursor stays",
                        stamp(since),
                        stamp(before),
                        named(e)
                    )))
                }
                _ => Ok(ApiPage::parsed(Vec::new(), Next::Done)),
            };
        }
        let mut last = q.state.and_then(|s| utc_time(s.get("last")));
        for e in records {
            // A record without a readable time is the poller's to set aside.
            let Some(at) = utc_time(e.get("when")) else { continue };
            if at < since || at > before {
                return Err(ShapeError(format!(
                    "asked for since={} before={} and got {}: Cloudflare did not bound the answer by when; nothing \
                     was taken",
                    stamp(since),
                    stamp(before),
                    named(e)
                )));
            }
            if last.is_some_and(|l| at < l) {
                return Err(ShapeError(format!(
                    "asked for direction=asc and got {} after a later record: the answer is not oldest first; \
                     nothing more was taken",
                    named(e)
                )));
            }
            last = Some(at);
        }
        if !records.is_empty() {
            self.guard.settle();
        }
        let page = q.state.and_then(|s| s["page"].as_u64()).unwrap_or(1);
        let asked = u64::from(q.page_size.clamp(1, CLOUDFLARE_MAX_PAGE_SIZE));
        let total_pages = body.pointer("/result_info/total_pages").and_then(Value::as_u64);
        let next = if records.len() as u64 >= asked && total_pages.is_none_or(|t| page < t) {
            Next::Page(json!({ "page": page + 1, "last": last.map(rfc3339) }))
        } else if records.is_empty() && q.state.is_none() && self.guard.take_if_due(q.window.to) {
            Next::Page(guard_state(NEWEST))
        } else {
            Next::Done
        };
        Ok(ApiPage::parsed(records.clone(), next))
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |p: &str| raw.pointer(p).and_then(Value::as_str).filter(|v| !v.is_empty());
        let j = |p: &str| raw.pointer(p).filter(|v| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()));
        let mut n =
            Normalised { id: s("/id").map(str::to_owned), timestamp: utc_time(raw.get("when")), ..Default::default() };
        let action = s("/action/type").map(str::to_lowercase).unwrap_or_default();
        let (category, types) = classify(&action);
        if let Some(category) = category {
            n.put("event.category", json!([category]));
        }
        let outcome = match raw.pointer("/action/result") {
            Some(Value::Bool(true)) => "success",
            Some(Value::Bool(false)) => "failure",
            _ => "unknown",
        };
        n.put_str("event.action", Some(&action))
            .put("event.type", json!(types))
            .put_str("event.outcome", Some(outcome))
            .put_str("event.provider", s("/interface"))
            .put_str("event.reason", s("/action/info"))
            .put_str("user.id", s("/actor/id"))
            .put_str("user.name", s("/actor/email"))
            .put_str("user.email", s("/actor/email"))
            .put_str("source.ip", s("/actor/ip"))
            .put_str("organization.id", Some(&self.account_id))
            .put_str("cloudflare.actor.type", s("/actor/type"))
            .put_str("cloudflare.resource.id", s("/resource/id"))
            .put_str("cloudflare.resource.type", s("/resource/type"))
            .put_str("cloudflare.owner.id", s("/owner/id"))
            .put_str("cloudflare.zone.name", s("/metadata/zone_name"))
            .put("cloudflare.metadata", j("/metadata").cloned())
            .put_str("cloudflare.old_value", s("/oldValue"))
            .put_str("cloudflare.new_value", s("/newValue"))
            .put("cloudflare.old_value_json", j("/oldValueJson").cloned())
            .put("cloudflare.new_value_json", j("/newValueJson").cloned());
        n
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        if status == 429 {
            return None; // throttling: the poller waits `Retry-After`
        }
        let parsed: Value = serde_json::from_slice(body).unwrap_or_default();
        let (errors, hint) = errors_of(&parsed);
        let detail = |h: &str| {
            let said = if errors.is_empty() { crate::transport::http::excerpt(body) } else { errors.clone() };
            format!("{said}; {h}")
        };
        match (hint, status) {
            (Some(h), _) => Some(Verdict::Auth(detail(h))),
            (None, 401 | 403) => Some(Verdict::Auth(detail(CREDENTIAL_ERRORS[0].1))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
