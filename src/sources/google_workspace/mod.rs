//! `google_workspace`: the Admin SDK Reports API's activities of one
//! application, `GET {url}/admin/reports/v1/activity/users/all/applications/{application}`
//! (`https://admin.googleapis.com`), read by a service account with
//! domain-wide delegation.
//!
//! Authentication is the JWT-bearer grant (RFC 7523): the agent signs an
//! assertion with the service account's key (`iss` its `client_email`,
//! `sub` the administrator it acts for, `scope`
//! `admin.reports.audit.readonly`, `aud` the key file's `token_uri`), trades
//! it at the token endpoint for an access token and sends that as
//! `Authorization: Bearer` (`sources::auth::jwt`), renewed before it
//! expires.
//!
//! Each walk asks for its window as `startTime` and `endTime` (RFC 3339,
//! milliseconds) with `maxResults` (at most 1000), then follows
//! `nextPageToken` as `pageToken` with the same bounds. Google lists
//! activities newest first, so the source declares `order() = Desc`: a
//! window is read whole, every id taken, before its cursor moves.
//!
//! An activity's id is `id.time`, `id.uniqueQualifier` and
//! `id.applicationName` together (`uniqueQualifier` tells apart activities
//! of the same time); its time is `id.time`. One activity may hold several
//! `events[]` (a name and parameters each): it is one event here, its
//! `event.action` the first event's name, every name in
//! `google_workspace.event.names`.
//!
//! Checked on every page, failing the poll loudly with the cursor kept:
//! the answer is an object (`kind` `admin#reports#activities`) whose
//! `items`, when present, is an array of activities with an `id.time`,
//! each inside the asked bounds (Google ignoring them fails the poll). The
//! time filter is documented, so there is no silent-empty guard: an answer
//! without `items` is an empty window.
//!
//! Google's data is not immediate: each application's activities reach
//! the API after a lag of minutes to hours ("Data retention and lag
//! times"), so the default `lag` is ten minutes and each walk re-asks the
//! three hours behind its cursor (`lookback`), the ids already taken
//! dropped.

pub mod config;

use super::api::{
    json_body, ApiPage, ApiRequest, ApiResponse, Defaults, Next, Order, Query, ShapeError, SourceApi, Verdict,
};
use super::auth::{jwt, Auth, OAuth2};
use super::{ceil_to, endpoint, floor_to, utc_time};
use crate::event::{Normalised, Observer};
use crate::settings::secret::Env;
use crate::settings::Problem;
use chrono::{DateTime, Utc};
pub use config::{GoogleWorkspaceConfig, Required, GOOGLE_ADMIN_API, GOOGLE_MAX_PAGE_SIZE};
use serde_json::{json, Value};
use std::time::Duration;

/// The read-only scope of the Reports API's audit activities.
pub const SCOPE: &str = "https://www.googleapis.com/auth/admin.reports.audit.readonly";
/// Activities younger than this are left for the next poll.
const DEFAULT_LAG: Duration = Duration::from_secs(10 * 60);
/// Re-asked behind the cursor for activities that reach the API late.
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(3 * 3600);
/// Time between polls.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Longest window of one walk (a catch-up over the 180 days Google keeps).
const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Tolerance on the bounds check: the bounds are sent in milliseconds.
const BOUNDS_SLACK: chrono::Duration = chrono::Duration::seconds(1);

/// The Google Workspace hooks.
#[derive(Debug)]
pub struct GoogleWorkspace {
    activities: url::Url,
    application: String,
}

/// Build from config: `application`, `subject` and the key (`key` or
/// `key_file`), `url` and `token_url` optional.
pub fn build(
    cfg: &GoogleWorkspaceConfig,
    required: Required,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> super::Built {
    let key = required.key.resolve(at, env, problems)?;
    let signer = match jwt::Signer::from_key_file(&key, cfg.token_url.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            let key = if cfg.key_file.is_some() { "key_file" } else { "key" };
            problems.push(Problem::new(format!("{at}.{key}"), e.0));
            return None;
        }
    };
    let oauth = OAuth2::jwt_bearer(signer, Some(required.subject), SCOPE.to_owned());
    Some((Box::new(GoogleWorkspace::new(&cfg.url, &required.application)), Auth::OAuth2(oauth)))
}

super::connector!(GoogleWorkspaceConfig => build);

impl GoogleWorkspace {
    /// Hooks for `application`'s activities at `base`.
    pub fn new(base: &url::Url, application: &str) -> Self {
        let path = format!("admin/reports/v1/activity/users/all/applications/{application}");
        GoogleWorkspace { activities: endpoint(base, &path), application: application.to_owned() }
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

fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// ECS `event.category` and `event.type` of an application's event, after
/// Elastic's Google Workspace pipelines (one per application, under
/// `packages/google_workspace/data_stream/*/elasticsearch/ingest_pipeline/`)
/// reduced to their rules.
fn classify(application: &str, name: &str, kind: &str) -> (Vec<&'static str>, Vec<&'static str>) {
    // The admin application's names are upper case (`CREATE_USER`), the
    // groups' lower case (`add_user`).
    let lower = name.to_ascii_lowercase();
    let verb = if lower.starts_with("create") || lower.starts_with("add") {
        "creation"
    } else if lower.starts_with("delete") || lower.starts_with("remove") {
        "deletion"
    } else {
        "change"
    };
    match application {
        "login" if name == "logout" => (vec!["authentication", "session"], vec!["end"]),
        "login" if name.starts_with("login_") || name == "risky_sensitive_action_allowed" => {
            (vec!["authentication", "session"], vec!["start"])
        }
        "login" => (vec!["authentication"], vec!["info"]),
        "saml" => (vec!["authentication", "session"], vec!["start"]),
        "admin" if kind.contains("USER") => (vec!["iam"], vec!["user", verb]),
        "admin" if kind.contains("GROUP") => (vec!["iam"], vec!["group", verb]),
        "admin" => (vec!["configuration"], vec![verb]),
        "groups" | "groups_enterprise" => (vec!["iam"], vec!["group", verb]),
        "user_accounts" => (vec!["iam"], vec!["user", "change"]),
        "token" => (vec!["iam"], vec![if name == "revoke" { "deletion" } else { "creation" }]),
        "drive" => (vec!["file"], vec![verb]),
        _ => (vec![], vec!["info"]),
    }
}

/// ECS `event.outcome`: a login's name says whether it failed; another
/// application's activity (a user created, a setting changed) records an
/// action that was done, as 1Password's audit events do.
fn outcome(application: &str, name: &str) -> &'static str {
    match name {
        "login_failure" => "failure",
        "login_success" | "login_verification" | "logout" => "success",
        _ if matches!(application, "login" | "saml") => "unknown",
        _ => "success",
    }
}

impl SourceApi for GoogleWorkspace {
    fn observer(&self) -> Observer {
        Observer { vendor: "Google", product: "Google Workspace" }
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            page_size: GOOGLE_MAX_PAGE_SIZE,
            lag: DEFAULT_LAG,
            lookback: DEFAULT_LOOKBACK,
            interval: DEFAULT_INTERVAL,
            max_window: Some(DEFAULT_MAX_WINDOW),
            ..Defaults::default()
        }
    }

    fn order(&self) -> Order {
        Order::Desc
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        let (from, to) = bounds(q);
        let mut url = self.activities.clone();
        url.query_pairs_mut()
            .append_pair("startTime", &stamp(from))
            .append_pair("endTime", &stamp(to))
            .append_pair("maxResults", &q.page_size.clamp(1, GOOGLE_MAX_PAGE_SIZE).to_string());
        if let Some(token) = q.state.and_then(|s| s["pageToken"].as_str()) {
            url.query_pairs_mut().append_pair("pageToken", token);
        }
        Ok(ApiRequest::get(url))
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        let excerpt = || crate::transport::http::excerpt(&resp.body);
        if !body.is_object() || body.get("error").is_some() {
            return Err(ShapeError(format!("expected an activities object, got: {}", excerpt())));
        }
        let items = match body.get("items") {
            None => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => return Err(ShapeError(format!("items is not an array: {}", excerpt()))),
        };
        let (from, to) = bounds(q);
        for (i, a) in items.iter().enumerate() {
            if !a.is_object() || a.pointer("/id/time").is_none() {
                return Err(ShapeError(format!(
                    "item {i} of the answer is not an activity (no id.time): {}",
                    crate::transport::http::excerpt(a.to_string().as_bytes())
                )));
            }
            // An activity without a readable time is the poller's to set aside.
            let Some(at) = utc_time(a.pointer("/id/time")) else { continue };
            if at < from - BOUNDS_SLACK || at > to + BOUNDS_SLACK {
                return Err(ShapeError(format!(
                    "asked for startTime={} endTime={} and got the activity of {}: Google did not bound the answer \
                     by time; nothing was taken",
                    stamp(from),
                    stamp(to),
                    stamp(at)
                )));
            }
        }
        let next = match body.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            Some(token) => Next::Page(json!({ "pageToken": token })),
            None => Next::Done,
        };
        Ok(ApiPage::parsed(items, next))
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |p: &str| raw.pointer(p).and_then(Value::as_str).filter(|v| !v.is_empty());
        let time = s("/id/time");
        let application = s("/id/applicationName").unwrap_or(&self.application);
        let id = match (time, scalar(raw.pointer("/id/uniqueQualifier"))) {
            (Some(t), Some(q)) => Some(format!("{application}:{t}:{q}")),
            _ => None,
        };
        let mut n = Normalised { id, timestamp: utc_time(raw.pointer("/id/time")), ..Default::default() };
        // Elastic's test inputs carry `events` as one object (a split
        // event); the API sends an array.
        let events: Vec<&Value> = match raw.get("events") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(e @ Value::Object(_)) => vec![e],
            _ => Vec::new(),
        };
        let first = events.first();
        let name = first.and_then(|e| e["name"].as_str()).unwrap_or_default();
        let kind = first.and_then(|e| e["type"].as_str()).unwrap_or_default();
        let (category, types) = classify(application, name, kind);
        if !category.is_empty() {
            n.put("event.category", json!(category));
        }
        let names: Vec<&str> = events.iter().filter_map(|e| e["name"].as_str()).collect();
        n.put("event.type", json!(types))
            .put_str("event.action", Some(name).filter(|n| !n.is_empty()))
            .put_str("event.outcome", Some(outcome(application, name)))
            .put_str("event.provider", Some(application))
            .put_str("user.email", s("/actor/email"))
            .put_str("user.name", s("/actor/email"))
            .put_str("user.id", scalar(raw.pointer("/actor/profileId")).as_deref())
            .put_str("source.ip", s("/ipAddress").map(str::trim).filter(|ip| !ip.is_empty()))
            .put_str("organization.id", scalar(raw.pointer("/id/customerId")).as_deref())
            .put_str("google_workspace.actor.type", s("/actor/callerType"))
            .put_str("google_workspace.event.type", Some(kind).filter(|k| !k.is_empty()))
            .put("google_workspace.event.names", (names.len() > 1).then(|| json!(names)))
            .put("google_workspace.events", (!events.is_empty()).then(|| json!(events)))
            .put_str("google_workspace.owner_domain", s("/ownerDomain"));
        n
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        let excerpt = crate::transport::http::excerpt(body);
        // Google answers some quota errors with a 403 (reason
        // `rateLimitExceeded`, `userRateLimitExceeded`): throttling.
        let parsed: Value = serde_json::from_slice(body).unwrap_or_default();
        let reasons = parsed.pointer("/error/errors").and_then(Value::as_array).cloned().unwrap_or_default();
        if reasons.iter().any(|r| r["reason"].as_str().is_some_and(|r| r.ends_with("ateLimitExceeded"))) {
            return Some(Verdict::Throttled(None));
        }
        match status {
            401 => Some(Verdict::Auth(format!("{excerpt}; the access token was refused"))),
            403 => Some(Verdict::Auth(format!(
                "{excerpt}; the subject must be an administrator allowed to read reports (Reports privilege), and \
                 the service account's client id must be granted {SCOPE} under domain-wide delegation"
            ))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
