//! `opencti`: the Activity (and optionally History) log of an OpenCTI
//! platform through GraphQL `audits`, oldest first, filtered on
//! `timestamp` to the poll window and paged with Relay cursors
//! (`pageInfo.endCursor` / `hasNextPage`).
//!
//! OpenCTI answers GraphQL errors with HTTP 200 and an `errors[]` array;
//! those fail the poll with the error named (a missing "Security activity"
//! capability or Enterprise Edition is spelled out). Each node's `raw_data`
//! (the stored document, a JSON string) is forwarded as the raw event; a node
//! without a readable `raw_data` is forwarded itself. The activity manager
//! indexes events late (it batches a Redis stream every few seconds), hence
//! the default `lookback` of 60 s.
//!
//! The `timestamp` filter is a guess (OpenCTI documents `FilterGroup` keys
//! for knowledge, not for the Activity log), and a filter that matches
//! nothing would look exactly like a quiet platform. So a window that comes
//! back empty is followed by guard requests
//! ([`api::guard_state`](super::api::guard_state)) that ask, without
//! trusting the range filter, whether an audit indexed in time (older than
//! the window's end less [`INDEXING_DELAY`]) lies in the window:
//!
//! 1. [`NEWEST`]: the newest [`GUARD_ROWS`] audits, unfiltered, newest first.
//!    One inside the window: the filter is wrong. The rows reach back past
//!    the window's start, or are all there is: the window is truly empty.
//!    Otherwise (a catch-up window further back, or a busy platform): step 2.
//! 2. [`BEFORE_END`]: the newest audit at or before that bound (the `lte`
//!    filter alone, newest first). Inside the window, or after the bound
//!    (the filter ignored): the filter is wrong. Older: the window is truly
//!    empty. No row: step 3, as a filter that matches nothing answers none.
//! 3. [`OLDEST`]: the oldest audit, unfiltered. At or before the bound: step
//!    2 should have found it, the filter is wrong. Otherwise the window lies
//!    before the whole log.
//!
//! A wrong filter fails the poll naming it, and the cursor stays. This
//! costs one to three requests per empty window and also runs in
//! `check --connect`. There is no key to change the filter; the message
//! says so.
//!
//! With `include_history = true` OpenCTI does not fail for a type the
//! token may not read: `computeAuditTypes` (`domain/log.ts`) drops History
//! without `KNOWLEDGE` and Activity without `SETTINGS_SECURITYACTIVITY`
//! and throws `ForbiddenAccess` only when nothing is left, so half the log
//! would be missing without a word. So the first walk of the process, and
//! again every [`CAPABILITY_RECHECK`], begins with `me { capabilities {
//! name } }` ([`CAPABILITIES`]); a token lacking the capability a
//! configured type needs fails the poll (and `check --connect`) naming it.
//! The check reads capabilities as OpenCTI's `isUserHasCapability` does:
//! `BYPASS` grants all, otherwise a held name containing the required one
//! (`KNOWLEDGE_KNUPDATE` holds `KNOWLEDGE`). Without `include_history` a
//! missing `SETTINGS_SECURITYACTIVITY` is already OpenCTI's own
//! `ForbiddenAccess`, explained by [`explain_errors`].

pub mod config;

use super::api::{
    guard_of, guard_state, json_body, ApiPage, ApiRequest, ApiResponse, Defaults, Next, Query, ShapeError, SourceApi,
    Verdict,
};
use super::auth::Auth;
use super::common::UrlAndToken;
use super::{ceil_to, endpoint, floor_to, utc_time};
use crate::event::{Normalised, Observer};
use crate::settings::secret::Env;
use crate::settings::Problem;
pub use config::{OpenctiConfig, MAX_PAGE_SIZE};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// User names remembered from `user { id name }`, which `raw_data` lacks.
const MAX_USERS: usize = 10_000;

/// Rows the guard reads, newest first.
pub const GUARD_ROWS: u32 = 100;
/// How late the activity manager may index an event (it batches a Redis
/// stream every few seconds): a newer event the filtered query did not
/// return may simply not have been indexed yet, so the guard ignores it.
pub const INDEXING_DELAY: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// The guard's steps (module doc; several rows a step here, and the end
/// less [`INDEXING_DELAY`], so its verdict is its own).
use super::api::window_guard::{BEFORE_END, NEWEST, OLDEST};

/// How long a capability check holds before a walk checks again (a role
/// can be changed on the platform at any time).
pub const CAPABILITY_RECHECK: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// The capability check's query.
pub const CAPABILITIES: &str = "query AuditrelayCapabilities { me { capabilities { name } } }";
/// The walk's state after the capability check: the first audits page.
const CHECKED: &str = "capabilities_checked";
/// The capability `computeAuditTypes` requires for each type.
const NEEDS: [(&str, &str); 2] = [("Activity", "SETTINGS_SECURITYACTIVITY"), ("History", "KNOWLEDGE")];

/// The guard's query: no filter, newest first.
const NEWEST_QUERY: &str = "query AuditrelayNewestAudits($types: [String!], $first: Int) {
  audits(types: $types, first: $first, orderBy: timestamp, orderMode: desc) {
    pageInfo { endCursor hasNextPage }
    edges { node { id timestamp } }
  }
}";

/// The guard's query bounded by the window's end: newest first.
const BEFORE_END_QUERY: &str =
    "query AuditrelayAuditsBeforeEnd($types: [String!], $first: Int, $filters: FilterGroup) {
  audits(types: $types, first: $first, orderBy: timestamp, orderMode: desc, filters: $filters) {
    pageInfo { endCursor hasNextPage }
    edges { node { id timestamp } }
  }
}";

/// The guard's query for the oldest audit: no filter, oldest first.
const OLDEST_QUERY: &str = "query AuditrelayOldestAudits($types: [String!], $first: Int) {
  audits(types: $types, first: $first, orderBy: timestamp, orderMode: asc) {
    pageInfo { endCursor hasNextPage }
    edges { node { id timestamp } }
  }
}";

const QUERY: &str = "query AuditrelayAudits($types: [String!], $first: Int, $after: ID, $filters: FilterGroup) {
  audits(types: $types, first: $first, after: $after, orderBy: timestamp, orderMode: asc, filters: $filters) {
    pageInfo { endCursor hasNextPage }
    edges { node { id entity_type event_type event_scope event_status timestamp user_id user { id name }
                   context_data { entity_id entity_name entity_type message } raw_data } }
  }
}";

/// The OpenCTI hooks.
#[derive(Debug)]
pub struct OpenCti {
    url: url::Url,
    types: Vec<&'static str>,
    users: Mutex<HashMap<String, String>>,
    /// The window end of the last capability check that passed.
    checked: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
}

/// Build from config: `url` (the platform; `/graphql` is appended), `token`,
/// `include_history`.
pub fn build(
    cfg: &OpenctiConfig,
    required: UrlAndToken,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> Option<(Box<dyn SourceApi>, Auth)> {
    let token = required.token.resolve(at, env, problems)?;
    let api = OpenCti::new(&required.url, cfg.include_history.unwrap_or(false));
    Some((Box::new(api), Auth::Bearer(token)))
}

super::connector!(OpenctiConfig => build);

impl OpenCti {
    /// Hooks for the platform at `base`.
    pub fn new(base: &url::Url, include_history: bool) -> Self {
        let types = if include_history { vec!["Activity", "History"] } else { vec!["Activity"] };
        OpenCti { url: endpoint(base, "graphql"), types, users: Mutex::new(HashMap::new()), checked: Mutex::new(None) }
    }

    fn remember_user(&self, node: &Value) {
        let (Some(id), Some(name)) = (node.pointer("/user/id"), node.pointer("/user/name")) else { return };
        let (Some(id), Some(name)) = (id.as_str(), name.as_str()) else { return };
        if let Ok(mut users) = self.users.lock() {
            if users.len() >= MAX_USERS {
                users.clear();
            }
            users.insert(id.to_owned(), name.to_owned());
        }
    }

    fn user_name(&self, id: &str) -> Option<String> {
        self.users.lock().ok()?.get(id).cloned()
    }

    /// Whether this walk begins with the capability check: only several
    /// types can be narrowed silently, and a passed check holds for
    /// [`CAPABILITY_RECHECK`].
    fn capabilities_due(&self, q: &Query<'_>) -> bool {
        let last = self.checked.lock().map(|c| *c).unwrap_or(None);
        q.state.is_none() && self.types.len() > 1 && last.is_none_or(|at| q.window.to - at >= CAPABILITY_RECHECK)
    }

    /// The capability check's verdict on `me.capabilities`.
    fn check_capabilities(&self, q: &Query<'_>, me: &Value) -> Result<(), ShapeError> {
        let held: Vec<&str> = me["capabilities"]
            .as_array()
            .ok_or_else(|| ShapeError(format!("me.capabilities missing from the answer: {me}")))?
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        // As OpenCTI's `isUserHasCapability` (utils/access.ts) reads them.
        let has = |need: &str| held.iter().any(|h| *h == "BYPASS" || h.contains(need));
        let missing: Vec<String> = NEEDS
            .iter()
            .filter(|(kind, need)| self.types.contains(kind) && !has(need))
            .map(|(kind, need)| format!("{need} (for {kind})"))
            .collect();
        if !missing.is_empty() {
            return Err(ShapeError(format!(
                "the token lacks the capability {}: OpenCTI would silently leave those audits out \
                 (computeAuditTypes); give the account's role that capability (Settings > Security > Roles; \
                 SETTINGS_SECURITYACTIVITY is \"Security activity\", KNOWLEDGE is \"Access knowledge\") or \
                 set include_history = false; nothing was taken",
                missing.join(" and ")
            )));
        }
        if let Ok(mut c) = self.checked.lock() {
            *c = Some(q.window.to);
        }
        Ok(())
    }
}

/// The Relay cursor the walk's state carries, if any (the capability and
/// guard steps carry none).
fn after(state: Option<&Value>) -> Option<&str> {
    state?.as_str()
}

/// Explain a GraphQL `errors[]`, naming what the account lacks when it is
/// a permission error.
pub fn explain_errors(errors: &[Value]) -> String {
    let first = errors.first().cloned().unwrap_or(Value::Null);
    let name = first["name"].as_str().or(first["extensions"]["code"].as_str()).unwrap_or("error");
    let message = first["message"].as_str().unwrap_or("(no message)");
    let key = name.to_ascii_lowercase().replace('_', "");
    let n = errors.len();
    if key.contains("authrequired") || key.contains("unauthenticated") {
        return format!(
            "OpenCTI refused the credentials (GraphQL error {name}: {message}); check `token` (the API token in the \
             user's profile)"
        );
    }
    let hint = if key.contains("forbidden") {
        "; the account needs the \"Security activity\" capability (SETTINGS_SECURITYACTIVITY, plus KNOWLEDGE for \
         include_history) and the platform needs Enterprise Edition"
    } else {
        ""
    };
    format!("OpenCTI answered GraphQL error {name}: {message}{hint} ({n} error(s))")
}

impl SourceApi for OpenCti {
    fn observer(&self) -> Observer {
        Observer { vendor: "Filigran", product: "OpenCTI" }
    }

    fn defaults(&self) -> Defaults {
        Defaults { page_size: 500, lookback: Duration::from_secs(60), ..Defaults::default() }
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        let guard = |query: &str, variables: Value| {
            Ok(ApiRequest::post_json(self.url.clone(), json!({ "query": query, "variables": variables })))
        };
        match guard_of(q.state) {
            Some(NEWEST) => return guard(NEWEST_QUERY, json!({ "types": self.types, "first": GUARD_ROWS })),
            Some(BEFORE_END) => {
                let filters = json!({
                    "mode": "and",
                    "filterGroups": [],
                    "filters": [{ "key": ["timestamp"], "operator": "lte", "values": [value(checked_to(q))], "mode": "or" }],
                });
                return guard(BEFORE_END_QUERY, json!({ "types": self.types, "first": 1, "filters": filters }));
            }
            Some(OLDEST) => return guard(OLDEST_QUERY, json!({ "types": self.types, "first": 1 })),
            _ => {}
        }
        if self.capabilities_due(q) {
            return Ok(ApiRequest::post_json(self.url.clone(), json!({ "query": CAPABILITIES })));
        }
        let (from, to) = bounds(q);
        let filters = json!({
            "mode": "and",
            "filterGroups": [],
            "filters": [
                { "key": ["timestamp"], "operator": "gte", "values": [value(from)], "mode": "or" },
                { "key": ["timestamp"], "operator": "lte", "values": [value(to)], "mode": "or" },
            ],
        });
        let variables = json!({
            "types": self.types,
            "first": q.page_size.min(MAX_PAGE_SIZE),
            "after": after(q.state),
            "filters": filters,
        });
        Ok(ApiRequest::post_json(self.url.clone(), json!({ "query": QUERY, "variables": variables })))
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        if let Some(errors) = body.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()) {
            return Err(ShapeError(explain_errors(errors)));
        }
        let excerpt = || crate::transport::http::excerpt(&resp.body);
        if let Some(me) = body.pointer("/data/me").filter(|_| self.capabilities_due(q)) {
            self.check_capabilities(q, me)?;
            return Ok(ApiPage::parsed(Vec::new(), Next::Page(json!({ "step": CHECKED }))));
        }
        let audits = body.pointer("/data/audits").filter(|a| a.is_object());
        let audits = audits.ok_or_else(|| ShapeError(format!("no data.audits in the answer: {}", excerpt())))?;
        let edges =
            audits["edges"].as_array().ok_or_else(|| ShapeError(format!("audits.edges missing: {}", excerpt())))?;
        if let Some(step) = guard_of(q.state) {
            let more = audits.pointer("/pageInfo/hasNextPage").and_then(Value::as_bool).unwrap_or(true);
            let next = match guard_verdict(q, step, edges, more)? {
                Some(next) => Next::Page(guard_state(next)),
                None => Next::Done,
            };
            return Ok(ApiPage::parsed(Vec::new(), next));
        }
        let more = audits.pointer("/pageInfo/hasNextPage").and_then(Value::as_bool);
        let more = more.ok_or_else(|| ShapeError(format!("audits.pageInfo.hasNextPage missing: {}", excerpt())))?;
        let mut events = Vec::with_capacity(edges.len());
        for (i, edge) in edges.iter().enumerate() {
            let node = edge.get("node").filter(|n| n.is_object());
            let node = node.ok_or_else(|| ShapeError(format!("edge {i} has no node: {}", excerpt())))?;
            self.remember_user(node);
            events.push(raw_event(node));
        }
        let next = match (more, audits.pointer("/pageInfo/endCursor").and_then(Value::as_str)) {
            // Nothing in the whole window: check the filter (module doc).
            (false, _) if events.is_empty() && after(q.state).is_none() => Next::Page(guard_state(NEWEST)),
            (false, _) => Next::Done,
            (true, _) if events.is_empty() => {
                // Following it could spin, and stopping could skip what it
                // announces; fail and retry the window next interval.
                return Err(ShapeError("OpenCTI sent an empty page with hasNextPage = true".into()));
            }
            (true, Some(c)) if !c.is_empty() => Next::Page(Value::String(c.to_owned())),
            (true, _) => return Err(ShapeError("OpenCTI sent hasNextPage = true without an endCursor".into())),
        };
        Ok(ApiPage::parsed(events, next))
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |p: &str| raw.pointer(p).and_then(Value::as_str).filter(|v| !v.is_empty());
        let mut n = Normalised {
            id: s("/internal_id").or(s("/id")).map(str::to_owned),
            timestamp: utc_time(raw.get("timestamp")),
            ..Default::default()
        };
        let kind = s("/event_type");
        let scope = s("/event_scope").or(kind);
        let user_id = s("/user_id").or(s("/user/id"));
        let name = s("/user/name")
            .map(str::to_owned)
            .or_else(|| user_id.and_then(|id| self.user_name(id)))
            .or_else(|| s("/context_data/username").map(str::to_owned));
        let outcome = match s("/event_status").unwrap_or("success") {
            _ if scope == Some("unauthorized") => "failure",
            "error" => "failure",
            "success" => "success",
            _ => "unknown",
        };
        let entity = s("/context_data/entity_type").unwrap_or_default();
        let (category, kind_ecs) = classify(kind.unwrap_or_default(), scope.unwrap_or_default(), entity);
        n.put_str("event.action", scope)
            .put_str("event.outcome", Some(outcome))
            .put("event.category", category.map(|c| json!([c])))
            .put("event.type", kind_ecs.map(|t| json!([t])))
            .put_str(
                "event.dataset",
                s("/entity_type").map(|t| format!("opencti.{}", t.to_ascii_lowercase())).as_deref(),
            )
            .put_str("user.id", user_id)
            .put_str("user.name", name.as_deref())
            .put_str("opencti.event_type", kind)
            .put_str("opencti.event_access", s("/event_access"))
            .put_str("opencti.entity.id", s("/context_data/entity_id").or(s("/context_data/id")))
            .put_str("opencti.entity.type", Some(entity))
            .put_str("opencti.entity.name", s("/context_data/entity_name"));
        if let Some(m) = s("/context_data/message") {
            let who = name.as_deref().or(user_id);
            n.put_str("message", Some(&who.map_or_else(|| m.to_owned(), |w| format!("{w} {m}"))));
        }
        n
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let errors = v.get("errors")?.as_array().filter(|e| !e.is_empty())?;
        (status == 401 || status == 403).then(|| Verdict::Auth(explain_errors(errors)))
    }
}

/// The window as the filter asks for it, in milliseconds (the precision
/// of OpenCTI's timestamps), never cut short.
fn bounds(q: &Query<'_>) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let ms = chrono::Duration::milliseconds(1);
    (floor_to(q.window.from, ms), ceil_to(q.window.to, ms))
}

fn value(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The newest time the guard holds an audit must have been indexed by
/// when the window was asked for ([`INDEXING_DELAY`]).
fn checked_to(q: &Query<'_>) -> chrono::DateTime<chrono::Utc> {
    bounds(q).1 - INDEXING_DELAY
}

/// The guard's verdict on a step's rows (module doc): `Ok(None)` when the
/// window is truly empty, `Ok(Some(step))` when another step must tell.
/// `more`: the step's answer has further pages.
fn guard_verdict(q: &Query<'_>, step: &str, edges: &[Value], more: bool) -> Result<Option<&'static str>, ShapeError> {
    let (from, to) = bounds(q);
    let end = checked_to(q);
    let rows: Vec<(Value, chrono::DateTime<chrono::Utc>)> = edges
        .iter()
        .filter_map(|e| {
            Some((e.pointer("/node/id").cloned().unwrap_or(Value::Null), utc_time(e.pointer("/node/timestamp"))?))
        })
        .collect();
    let wrong = |what: String| {
        ShapeError(format!(
            "the filter timestamp gte {} and timestamp lte {} matched no audit, yet {what}: this OpenCTI does not \
             filter audits on `timestamp` as assumed (FilterGroup, OpenCTI 5.12 or later); no configuration key \
             changes the filter, so upgrade OpenCTI or report it; nothing was taken and the cursor stays",
            value(from),
            value(to)
        ))
    };
    if step != OLDEST {
        if let Some((id, at)) = rows.iter().find(|(_, at)| from <= *at && *at <= end) {
            return Err(wrong(format!("audit {id} (at {}) lies inside it", value(*at))));
        }
    }
    let first = rows.first();
    match step {
        NEWEST if !more || rows.last().is_some_and(|(_, at)| *at < from) => Ok(None),
        NEWEST => Ok(Some(BEFORE_END)),
        BEFORE_END => match first {
            Some((id, at)) if *at > end + chrono::TimeDelta::milliseconds(1) => Err(wrong(format!(
                "asked for timestamp lte {} alone, OpenCTI answered audit {id} (at {})",
                value(end),
                value(*at)
            ))),
            Some(_) => Ok(None),
            None => Ok(Some(OLDEST)),
        },
        _ => match first {
            Some((id, at)) if *at <= end => Err(wrong(format!(
                "the oldest audit {id} (at {}) is at or before {}, where timestamp lte {} alone matched none",
                value(*at),
                value(end),
                value(end)
            ))),
            _ => Ok(None),
        },
    }
}

/// The event to forward: the node's `raw_data` document when it parses and
/// carries the id, the node itself otherwise.
fn raw_event(node: &Value) -> Value {
    let parsed = node["raw_data"].as_str().and_then(|r| serde_json::from_str::<Value>(r).ok());
    match parsed {
        Some(doc) if doc.get("internal_id").is_some_and(|id| *id == node["id"]) && doc.get("timestamp").is_some() => {
            doc
        }
        _ => node.clone(),
    }
}

/// ECS `event.category` and `event.type` from OpenCTI's event type, scope
/// and the entity acted upon.
fn classify(kind: &str, scope: &str, entity: &str) -> (Option<&'static str>, Option<&'static str>) {
    const IAM: &[&str] = &["User", "Group", "Role", "Capability", "Organization", "Session"];
    let change = match scope {
        "create" => Some("creation"),
        "update" => Some("change"),
        "delete" => Some("deletion"),
        "read" | "download" | "search" | "export" => Some("access"),
        _ => None,
    };
    match kind {
        "authentication" => {
            let t = match scope {
                "login" => "start",
                "logout" => "end",
                _ => "info",
            };
            (Some("authentication"), Some(t))
        }
        _ if scope == "unauthorized" => (Some("iam"), Some("info")),
        "mutation" if IAM.contains(&entity) => (Some("iam"), change),
        "mutation" => (Some("configuration"), change),
        "file" => (Some("file"), change.or(Some("info"))),
        "read" => (Some("database"), Some("access")),
        _ => (None, change.or(Some("info"))),
    }
}

#[cfg(test)]
mod tests;
