//! `guance`: Guance Cloud (观测云) / TrueWatch audit events through the
//! OpenAPI DQL query, `POST /api/v1/df/query_data_v1` with the workspace
//! key in `DF-API-KEY`.
//!
//! Each request runs the audit DQL (`query`, default [`DEFAULT_QUERY`])
//! over the poll window as a closed `timeRange` in epoch milliseconds,
//! oldest first, and pages with the `search_after` the previous answer
//! returned. Rows come back as positional arrays aligned with `columns`;
//! each becomes a JSON object, the raw event. DQL refuses long time spans,
//! so a catch-up is split into windows of at most a day.
//!
//! Guance answers throttling (20 requests a minute per key, 200 per
//! workspace) with HTTP 401 and an `errorCode` ending in
//! `CurrentLimiting`: that is a back-off, not a credentials failure.
//!
//! Some tenants keep audit events under `E::` (events) instead of `TAE::`;
//! the `TAE::` query then returns nothing, forever, exactly like a quiet
//! workspace. So the first walk of the process that finds nothing (the
//! history window at start; `check --connect`'s last hour) is followed
//! by one guard request ([`api::guard_state`](super::api::guard_state)):
//! the same window under the other namespace, one row. A row there fails
//! the poll with the `query` to set, and so does every later empty walk
//! until it is set; the cursor stays. Only rows under the query settle it
//! for the process; none under the other namespace leave it to run again
//! on an empty walk an hour later ([`GUARD_RECHECK`](super::api::GUARD_RECHECK);
//! at 20 requests a minute, not on every empty poll), so a quiet first
//! window cannot settle a wrong namespace for good.

pub mod config;

use super::api::{
    guard_of, guard_state, json_body, ApiPage, ApiRequest, ApiResponse, Defaults, GuardSchedule, Next, Query,
    ShapeError, SourceApi, Verdict,
};
use super::auth::Auth;
use super::common::UrlAndToken;
use super::endpoint;
use crate::event::{Normalised, Observer};
use crate::settings::secret::Env;
use crate::settings::units::Rate;
use crate::settings::Problem;
use chrono::{TimeZone, Utc};
pub use config::GuanceConfig;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The DQL of the audit-event docs (`management/audit-event.md`). Older
/// deployments keep audit events in the event namespace: set `query` to
/// ``E::re(`.*`):(`*`){ `df_source` IN ['audit'] }`` there.
pub const DEFAULT_QUERY: &str = "TAE::re(`.*`):(`*`){ `df_source` IN ['audit'] }";

/// The Guance hooks.
#[derive(Debug)]
pub struct Guance {
    url: url::Url,
    query: String,
    /// The same query under the other namespace (`TAE::` ↔ `E::`), when
    /// the query starts with one of them.
    other: Option<String>,
    /// When the namespace guard runs again.
    guard: GuardSchedule,
}

/// The key of a query that still runs (`content.data[0].async_id`), sent
/// back with the next request (GuanceCloud/guance-docs,
/// `query-data-asynchronous.md`: "if the previous answer holds it, this
/// query must carry it").
const ASYNC_ID: &str = "async_id";

/// How long to wait before asking again about a query that still runs.
const RUNNING_WAIT: Duration = Duration::from_secs(2);

/// What a partial answer means for the walk: `None` when the answer is
/// whole. Never ends a window early: a query that still runs is asked
/// again (`is_running` with its `async_id`); a segmented answer
/// (`next_cursor_time` other than -1, which this connector never asks for)
/// and a full page without `search_after` (the rest of the window could
/// not be asked for) fail the poll loudly, the cursor kept. `complete` is
/// not read: the docs' own answer to a finished query says `false`.
fn partial(result: &Value, q: &Query<'_>, events: &[Value], after: Option<&Value>) -> Result<Option<Next>, ShapeError> {
    if result.get("is_running") == Some(&Value::Bool(true)) {
        let id = result.get(ASYNC_ID).and_then(Value::as_str).filter(|id| !id.is_empty());
        let id = id.ok_or_else(|| {
            ShapeError("Guance says the query is still running but gave no async_id to ask again with".into())
        })?;
        if !events.is_empty() {
            return Err(ShapeError(format!(
                "Guance answered {} row(s) of a query that is still running (async_id {id:?}); the window is not taken",
                events.len()
            )));
        }
        let again = json!({ ASYNC_ID: id, "search_after": q.state.and_then(|s| s.get("search_after").cloned().or_else(|| s.is_array().then(|| s.clone()))) });
        return Ok(Some(Next::Wait(RUNNING_WAIT, again)));
    }
    if let Some(t) = result.get("next_cursor_time").filter(|t| !t.is_null() && t.as_i64() != Some(-1)) {
        return Err(ShapeError(format!(
            "Guance answered one segment of the window (next_cursor_time {t}), which this connector does not ask for; \
             the window is not taken: lower max_window"
        )));
    }
    if after.is_none() && events.len() >= q.page_size as usize && q.page_size > 1 {
        return Err(ShapeError(format!(
            "Guance answered a full page ({} rows) without search_after: the rest of the window cannot be asked for; \
             the window is not taken",
            events.len()
        )));
    }
    Ok(None)
}

/// The guard step: the other namespace, one row.
const OTHER_NAMESPACE: &str = "other_namespace";

/// `query` under the other audit namespace.
fn other_namespace(query: &str) -> Option<String> {
    let q = query.trim_start();
    q.strip_prefix("TAE::")
        .map(|rest| format!("E::{rest}"))
        .or_else(|| q.strip_prefix("E::").map(|rest| format!("TAE::{rest}")))
}

/// Build from config: `url` (the site's OpenAPI host, e.g.
/// `https://openapi.guance.com`), `token` (the API key), `query`.
pub fn build(
    cfg: &GuanceConfig,
    required: UrlAndToken,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> Option<(Box<dyn SourceApi>, Auth)> {
    let key = required.token.resolve(at, env, problems)?;
    let api = Guance::new(&required.url, cfg.query.as_deref().unwrap_or(DEFAULT_QUERY));
    Some((Box::new(api), Auth::Header { name: "DF-API-KEY".into(), value: key }))
}

super::connector!(GuanceConfig => build);

impl Guance {
    /// Hooks for the OpenAPI host at `base` running `query`.
    pub fn new(base: &url::Url, query: &str) -> Self {
        Guance {
            url: endpoint(base, "api/v1/df/query_data_v1"),
            query: query.to_owned(),
            other: other_namespace(query),
            guard: GuardSchedule::default(),
        }
    }
}

/// Guance's error code and message from an error body.
fn error_of(body: &Value) -> (String, String) {
    let code = body["errorCode"].as_str().unwrap_or_default().to_owned();
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    (code, message)
}

impl SourceApi for Guance {
    fn observer(&self) -> Observer {
        Observer { vendor: "Guance", product: "Guance Cloud" }
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            page_size: 500,
            rate_limit: Rate::parse("20/m").ok(),
            lag: Duration::from_secs(60),
            lookback: Duration::from_secs(60),
            max_window: Some(Duration::from_secs(24 * 3600)),
            ..Defaults::default()
        }
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        let from = q.window.from.timestamp_millis();
        let to = q.window.to.timestamp_millis() + i64::from(q.window.to.timestamp_subsec_nanos() % 1_000_000 != 0);
        let guard = guard_of(q.state) == Some(OTHER_NAMESPACE);
        let (dql, limit) = match (&self.other, guard) {
            (Some(other), true) => (other, 1),
            _ => (&self.query, q.page_size),
        };
        let mut query = json!({
            "q": dql,
            "timeRange": [from, to],
            "limit": limit,
            "orderby": [{ "time": "asc" }],
            "tz": "UTC",
            "disable_sampling": true,
        });
        // The state: the `search_after` of the page before, or, while a
        // query still runs, `{"async_id", "search_after"}` to ask again.
        let running = q.state.and_then(|s| s.get(ASYNC_ID)).filter(|_| !guard);
        let after = match q.state.filter(|_| !guard) {
            Some(s) if running.is_some() => s.get("search_after").filter(|a| !a.is_null()),
            other => other,
        };
        if let Some(after) = after {
            query["search_after"] = after.clone();
        }
        let mut member = json!({ "qtype": "dql", "query": query });
        if let Some(id) = running {
            member[ASYNC_ID] = id.clone();
        }
        Ok(ApiRequest::post_json(self.url.clone(), json!({ "queries": [member] })))
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        let excerpt = || crate::transport::http::excerpt(&resp.body);
        let (code, message) = error_of(&body);
        if body["success"] == json!(false) || !code.is_empty() {
            return Err(ShapeError(format!("Guance answered error {code:?}: {message}")));
        }
        let result = body.pointer("/content/data/0").or_else(|| body.pointer("/content/0"));
        let result = result.ok_or_else(|| ShapeError(format!("no content.data[0] in the answer: {}", excerpt())))?;
        let series = match result.get("series") {
            Some(Value::Array(s)) => s.as_slice(),
            None | Some(Value::Null) => &[],
            Some(_) => return Err(ShapeError(format!("series is not an array: {}", excerpt()))),
        };
        let mut events = Vec::new();
        for (i, s) in series.iter().enumerate() {
            let columns = s["columns"].as_array();
            let columns = columns.ok_or_else(|| ShapeError(format!("series {i} has no columns: {}", excerpt())))?;
            let names: Vec<&str> = columns.iter().map(|c| c.as_str().unwrap_or_default()).collect();
            for (j, row) in s["values"].as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
                let cells = row.as_array().filter(|r| r.len() == names.len()).ok_or_else(|| {
                    ShapeError(format!("row {j} of series {i} does not match its {} columns: {row}", names.len()))
                })?;
                let obj: Map<String, Value> = names.iter().map(|n| n.to_string()).zip(cells.iter().cloned()).collect();
                events.push(Value::Object(obj));
            }
        }
        if guard_of(q.state) == Some(OTHER_NAMESPACE) {
            if !events.is_empty() {
                self.guard.wrong();
            }
            return match (&self.other, events.first()) {
                // Not settled: every later empty walk fails the same way
                // until `query` is set, so the cursor never passes them.
                (Some(other), Some(_)) => Err(ShapeError(format!(
                    "the query found no audit events between {} and {}, but the same query under the other namespace \
                     did: this workspace keeps them there; set query = {other:?} (the cursor stays)",
                    crate::event::rfc3339(q.window.from),
                    crate::event::rfc3339(q.window.to)
                ))),
                _ => Ok(ApiPage::parsed(Vec::new(), Next::Done)),
            };
        }
        let after = result.get("search_after").filter(|a| a.as_array().is_some_and(|a| !a.is_empty()));
        if let Some(partial) = partial(result, q, &events, after)? {
            return Ok(ApiPage::parsed(events, partial));
        }
        // The first page with rows shows the namespace holds audit events;
        // the first walk without any runs the guard once.
        let first =
            q.state.is_none() || q.state.is_some_and(|s| s.get(ASYNC_ID).is_some() && s["search_after"].is_null());
        if first && !events.is_empty() {
            self.guard.settle();
        }
        if first && events.is_empty() && self.other.is_some() && self.guard.take_if_due(q.window.to) {
            return Ok(ApiPage::parsed(Vec::new(), Next::Page(guard_state(OTHER_NAMESPACE))));
        }
        let next = match after {
            // An empty page ends the walk even with a token: asking again
            // with the same token would only repeat it.
            Some(a) if !events.is_empty() => Next::Page(a.clone()),
            _ => Next::Done,
        };
        Ok(ApiPage::parsed(events, next))
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |k: &str| raw.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
        let ms = raw
            .get("time")
            .or_else(|| raw.get("date"))
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
        let mut n = Normalised {
            id: s("df_event_id").or(s("__docid")).map(str::to_owned),
            timestamp: ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
            ..Default::default()
        };
        let origin = s("df_origin");
        let login = s("df_title").is_some_and(|t| t.to_ascii_lowercase().contains("login") || t.contains("登录"));
        let (category, kind) = if login { ("authentication", "start") } else { ("configuration", "info") };
        n.put_str("event.action", s("df_operation_name").or(s("df_title")).or(s("df_menu")))
            .put("event.category", Some(json!([category])))
            .put("event.type", Some(json!([kind])))
            .put_str("event.provider", origin)
            .put_str("user.id", s("df_user_id"))
            .put_str("user.name", s("df_user_name"))
            .put_str("user.email", s("df_user_email"))
            .put("user.roles", s("df_role_scope").map(|r| json!([r])))
            .put_str("guance.menu", s("df_menu"))
            .put_str("guance.operation_id", s("df_operation_id"))
            .put_str("guance.workspace", s("df_workspace"))
            .put_str("message", s("df_message").or(s("df_title")));
        n
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (code, message) = error_of(&v);
        if code.contains("CurrentLimiting") {
            return Some(Verdict::Throttled(None));
        }
        (status == 401 || status == 403).then(|| {
            Verdict::Auth(format!(
                "{code} {message}; check the API key (Management › API Key) and that it belongs to the workspace"
            ))
        })
    }
}

#[cfg(test)]
mod tests;
