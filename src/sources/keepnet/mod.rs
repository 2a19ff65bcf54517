//! `keepnet`: the Keepnet Labs (Human Risk Management platform) audit log,
//! `POST /api/audit-logs/search`, authenticated with OAuth2 client
//! credentials (`POST /connect/token`, form-encoded, `scope=api1`; the
//! token lives an hour and has no refresh token, so it is fetched again
//! before it expires and once more after a 401).
//!
//! Keepnet's conventions: never a null `filter`, `searchInputTextValue` or
//! `orderBy`, always an explicit `ascending`. Each request asks for the
//! window oldest first with a `LogDate >= from` and `LogDate <= to` filter
//! group and pages with `pageNumber` until `totalNumberOfPages`. Both
//! envelopes the docs show are read (`data`/`status`/`validationMessages`
//! and `isSuccess`/`data`/`messages`).
//!
//! The filter's field name, the sort field and the zone of `logDate` are
//! not documented. A wrong guess shows in the answer: events outside the
//! window (filter ignored, or another zone) or not oldest first (sort
//! ignored). Either fails the poll, naming what was seen, rather than
//! letting the cursor skip anything.
//!
//! A filter that matches nothing at all would look exactly like a quiet
//! tenant, so a window that comes back empty is followed by guard requests
//! ([`api::guard_state`](super::api::guard_state)) that ask, without
//! trusting the `LogDate` range, whether any log lies in the window:
//!
//! 1. [`NEWEST`]: the newest log, unfiltered (one row, newest first). Inside
//!    the window: the filter is wrong. Older than the window, or no log at
//!    all: the window is truly empty. Newer (a catch-up window, days back):
//!    step 2.
//! 2. [`BEFORE_END`]: the newest log at or before the window's end (the
//!    `LogDate <=` item alone, newest first). Inside the window, or after
//!    its end (the item ignored): the filter is wrong. Older: the window is
//!    truly empty. No row: step 3, as a filter that matches nothing
//!    answers no row too.
//! 3. [`OLDEST`]: the oldest log, unfiltered. At or before the window's end:
//!    step 2 should have found it, the filter is wrong. Otherwise the window
//!    lies before the whole log.
//!
//! A wrong filter fails the poll naming it, and the cursor stays. This
//! costs one to three requests per empty window and also runs in
//! `check --connect`.

pub mod config;

use super::api::{
    guard_of, guard_state, json_body, ApiPage, ApiRequest, ApiResponse, Defaults, Next, Query, ShapeError, SourceApi,
    Verdict,
};
use super::auth::{Auth, OAuth2};
use super::{ceil_to, endpoint, floor_to, utc_time};
use crate::event::{rfc3339, Normalised, Observer};
use crate::settings::secret::Env;
use crate::settings::Problem;
use chrono::{DateTime, Utc};
pub use config::{KeepnetConfig, Required};
use serde_json::{json, Value};
use std::time::Duration;

/// The Keepnet hooks.
#[derive(Debug)]
pub struct Keepnet {
    search: url::Url,
}

/// Build from config: `url` (`https://api.keepnetlabs.com`), `client_id`,
/// `client_secret`. Resellers add `headers = { "X-KEEPNET-Company-Id" = … }`.
pub fn build(
    _cfg: &KeepnetConfig,
    required: Required,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> Option<(Box<dyn SourceApi>, Auth)> {
    let id = required.client_id.resolve(at, env, problems);
    let secret = required.client_secret.resolve(at, env, problems);
    let base = &required.url;
    let oauth = OAuth2::new(endpoint(base, "connect/token"), id?, secret?, Some("api1".into()));
    Some((Box::new(Keepnet::new(base)), Auth::OAuth2(oauth)))
}

super::connector!(KeepnetConfig => build);

impl Keepnet {
    /// Hooks for the API at `base`.
    pub fn new(base: &url::Url) -> Self {
        Keepnet { search: endpoint(base, "api/audit-logs/search") }
    }
}

/// A field in camelCase, or in PascalCase (both are in use).
fn field<'a>(v: &'a Value, camel: &str) -> Option<&'a Value> {
    v.get(camel).filter(|x| !x.is_null()).or_else(|| {
        let mut pascal = camel.to_owned();
        pascal[..1].make_ascii_uppercase();
        v.get(&pascal).filter(|x| !x.is_null())
    })
}

fn bounds(q: &Query<'_>) -> (DateTime<Utc>, DateTime<Utc>) {
    let ms = chrono::Duration::milliseconds(1);
    (floor_to(q.window.from, ms), ceil_to(q.window.to, ms))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The guard's steps (module doc).
use super::api::window_guard::{judge, Finding, BEFORE_END, NEWEST, OLDEST};

/// A one-row search for a guard step: newest first unless `ascending`,
/// with `items` (none: unfiltered, but never a null filter).
fn guard_search(ascending: bool, items: Vec<Value>) -> Value {
    let groups = if items.is_empty() {
        json!([])
    } else {
        json!([{ "condition": "AND", "filterItems": items, "filterGroups": [] }])
    };
    json!({
        "pageNumber": 1,
        "pageSize": 1,
        "orderBy": "LogDate",
        "ascending": ascending,
        "filter": { "condition": "AND", "searchInputTextValue": "", "filterGroups": groups },
    })
}

fn log_date_item(op: &str, t: DateTime<Utc>) -> Value {
    json!({ "fieldName": "LogDate", "operator": op, "value": stamp(t) })
}

/// The guard's verdict on a step's row (module doc): `Ok(None)` when the
/// window is truly empty, `Ok(Some(step))` when another step must tell.
fn guard_verdict(
    step: &str,
    results: &[Value],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Option<&'static str>, ShapeError> {
    let row = results.first().and_then(|e| Some((e, utc_time(field(e, "logDate"))?)));
    let wrong = |what: String| {
        ShapeError(format!(
            "the filter LogDate >= {} and LogDate <= {} matched nothing, yet {what}: Keepnet does not filter on \
             `LogDate` as assumed; nothing was taken and the cursor stays",
            stamp(from),
            stamp(to)
        ))
    };
    let named = |e: &Value, at: DateTime<Utc>| {
        let id = field(e, "resourceId").or(field(e, "logId")).cloned().unwrap_or(Value::Null);
        format!("({id}, logged at {})", stamp(at))
    };
    let row_named = || row.map(|(e, at)| named(e, at)).unwrap_or_default();
    match judge(step, row.map(|(_, at)| at), from, to) {
        Finding::Empty => Ok(None),
        Finding::Ask(next) => Ok(Some(next)),
        Finding::Inside => {
            let which = if step == NEWEST { "overall" } else { "at or before its end" };
            Err(wrong(format!("the newest log {which} {} lies inside it", row_named())))
        }
        Finding::BoundIgnored => {
            Err(wrong(format!("asked for LogDate <= {} alone, Keepnet answered the log {}", stamp(to), row_named())))
        }
        Finding::Missed => Err(wrong(format!(
            "the oldest log {} lies at or before its end and LogDate <= {} alone matched nothing",
            row_named(),
            stamp(to)
        ))),
    }
}

impl SourceApi for Keepnet {
    fn observer(&self) -> Observer {
        Observer { vendor: "Keepnet Labs", product: "Keepnet Human Risk Management" }
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            page_size: 100,
            lag: Duration::from_secs(30),
            lookback: Duration::from_secs(60),
            max_window: Some(Duration::from_secs(24 * 3600)),
            ..Defaults::default()
        }
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        let (from, to) = bounds(q);
        match guard_of(q.state) {
            Some(NEWEST) => return Ok(ApiRequest::post_json(self.search.clone(), guard_search(false, vec![]))),
            Some(BEFORE_END) => {
                let body = guard_search(false, vec![log_date_item("<=", to)]);
                return Ok(ApiRequest::post_json(self.search.clone(), body));
            }
            Some(OLDEST) => return Ok(ApiRequest::post_json(self.search.clone(), guard_search(true, vec![]))),
            _ => {}
        }
        let page = q.state.and_then(|s| s["page"].as_u64()).unwrap_or(1);
        let item = log_date_item;
        let body = json!({
            "pageNumber": page,
            "pageSize": q.page_size,
            "orderBy": "LogDate",
            "ascending": true,
            "filter": {
                "condition": "AND",
                "searchInputTextValue": "",
                "filterGroups": [
                    { "condition": "AND", "filterItems": [item(">=", from), item("<=", to)], "filterGroups": [] }
                ],
            },
        });
        Ok(ApiRequest::post_json(self.search.clone(), body))
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        let excerpt = || crate::transport::http::excerpt(&resp.body);
        let failed = field(&body, "isSuccess").and_then(Value::as_bool) == Some(false)
            || field(&body, "status").and_then(Value::as_str).is_some_and(|s| {
                let s = s.to_ascii_lowercase();
                s.contains("error") || s.contains("fail")
            });
        if failed {
            return Err(ShapeError(format!("Keepnet reported a failure: {}", excerpt())));
        }
        let data = field(&body, "data").filter(|d| d.is_object());
        let results = data.and_then(|d| field(d, "results")).and_then(Value::as_array);
        let (Some(data), Some(results)) = (data, results) else {
            return Err(ShapeError(format!("no data.results in the answer: {}", excerpt())));
        };
        let (from, to) = bounds(q);
        if let Some(step) = guard_of(q.state) {
            let next = match guard_verdict(step, results, from, to)? {
                Some(next) => Next::Page(guard_state(next)),
                None => Next::Done,
            };
            return Ok(ApiPage::parsed(Vec::new(), next));
        }
        let slack = chrono::Duration::seconds(1);
        let mut last = q.state.and_then(|s| utc_time(s.get("last")));
        for e in results {
            let Some(at) = utc_time(field(e, "logDate")) else { continue };
            let id = field(e, "resourceId").or(field(e, "logId")).cloned().unwrap_or(Value::Null);
            if at < from - slack || at > to + slack {
                return Err(ShapeError(format!(
                    "asked for LogDate {} to {} and got {id} logged at {at}: the LogDate filter was ignored or \
                     logDate is not UTC; nothing was taken",
                    stamp(from),
                    stamp(to)
                )));
            }
            if last.is_some_and(|l| at < l) {
                return Err(ShapeError(format!(
                    "asked for oldest first and got {id} logged at {at} after a later event: the LogDate sort was \
                     ignored; nothing more was taken"
                )));
            }
            last = Some(at);
        }
        let page = q.state.and_then(|s| s["page"].as_u64()).unwrap_or(1);
        let more = match field(data, "totalNumberOfPages").and_then(Value::as_u64) {
            Some(pages) => page < pages,
            None => results.len() >= q.page_size as usize,
        };
        let next = if more && !results.is_empty() {
            Next::Page(json!({ "page": page + 1, "last": last.map(rfc3339) }))
        } else if page == 1 && results.is_empty() {
            Next::Page(guard_state(NEWEST))
        } else {
            Next::Done
        };
        Ok(ApiPage::parsed(results.clone(), next))
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |k: &str| field(raw, k).and_then(Value::as_str).filter(|v| !v.is_empty());
        let text = |k: &str| match field(raw, k) {
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(v)) if !v.is_empty() => Some(v.clone()),
            _ => None,
        };
        let mut n = Normalised {
            id: text("resourceId").or_else(|| text("logId")),
            timestamp: utc_time(field(raw, "logDate")),
            ..Default::default()
        };
        let operation = s("operation").map(str::to_ascii_lowercase);
        let kind = match operation.as_deref() {
            Some(o) if o.contains("creat") || o.contains("insert") || o == "add" => "creation",
            Some(o) if o.contains("delet") || o.contains("remov") => "deletion",
            Some(o) if o.contains("updat") || o.contains("modif") || o.contains("edit") => "change",
            _ => "info",
        };
        n.put_str("event.action", operation.as_deref())
            .put_str("event.outcome", Some("success"))
            .put("event.category", Some(json!(["configuration"])))
            .put("event.type", Some(json!([kind])))
            .put_str("user.name", s("userName"))
            .put_str("user.id", text("userId").as_deref())
            .put_str("source.ip", s("ip"))
            .put_str("user_agent.original", s("userAgent"))
            .put_str("keepnet.entity.name", s("entityName"))
            .put_str("keepnet.entity.id", s("entityResourceId"))
            .put_str("organization.id", text("companyId").as_deref())
            .put_str("message", s("auditDescription"));
        n
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        // A 401 is left to the poller, which fetches a new token once.
        (status == 403).then(|| {
            Verdict::Auth(format!(
                "{}; the REST API credential's role may not search the audit log (Company › Company Settings › REST API)",
                crate::transport::http::excerpt(body)
            ))
        })
    }
}

#[cfg(test)]
mod tests;
