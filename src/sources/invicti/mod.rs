//! `invicti`: the Invicti Enterprise (formerly Netsparker Enterprise)
//! activity log, `GET /api/1.0/auditlogs/list` with HTTP Basic (user id and
//! API token), `page`/`pageSize` (at most 200) and an inclusive
//! `startDate`/`endDate` range in `MM/dd/yyyy HH:mm:ss`.
//!
//! The list is newest first with no sort parameter, so the source reads
//! each closed window `[cursor - lookback, now - lag]` completely before its
//! cursor moves (`order() = Desc`): the poller keeps the window open, with
//! the ids taken so far, until the last page.
//!
//! Neither the zone of `startDate`/`endDate` nor that of `CreatedAt` is
//! documented; both are taken as UTC, and every walk checks it. The walk
//! starts with the newest page without dates; the logs of that page inside
//! the window must come back from the dated pages, and every log the dated
//! pages return must lie inside the dates asked for (give or take the
//! second of precision). A different reading breaks one or the other: the
//! poll fails saying so, and as the window stays open until its last page
//! nothing is skipped. This costs one request per poll.

pub mod config;
pub mod types;

use super::api::{
    json_body, ApiPage, ApiRequest, ApiResponse, Defaults, Next, Order, Query, ShapeError, SourceApi, Verdict,
};
use super::auth::Auth;
use super::{endpoint, floor_to, utc_time};
use crate::event::{Normalised, Observer};
use crate::settings::secret::Env;
use crate::settings::Problem;
use chrono::{DateTime, Utc};
pub use config::{InvictiConfig, Required, MAX_PAGE_SIZE};
use serde_json::{json, Value};
use std::time::Duration;

const DATE_FORMAT: &str = "%m/%d/%Y %H:%M:%S";

/// The Invicti hooks.
#[derive(Debug)]
pub struct Invicti {
    list: url::Url,
}

/// Build from config: `url` (`https://www.netsparkercloud.com` or an
/// on-premises host, with or without `/api/1.0`), `user_id`, `token`.
pub fn build(
    _cfg: &InvictiConfig,
    required: Required,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> Option<(Box<dyn SourceApi>, Auth)> {
    let user = required.user_id.resolve(at, env, problems);
    let token = required.token.resolve(at, env, problems);
    Some((Box::new(Invicti::new(&required.url)), Auth::Basic { user: user?, password: token? }))
}

super::connector!(InvictiConfig => build);

impl Invicti {
    /// Hooks for the API at `base`.
    pub fn new(base: &url::Url) -> Self {
        let mut base = base.clone();
        let trimmed = base.path().trim_end_matches('/').trim_end_matches("/api/1.0").to_owned();
        base.set_path(&trimmed);
        Invicti { list: endpoint(&base, "api/1.0/auditlogs/list") }
    }

    /// The range the API is asked for: the window widened by a second on
    /// each side, so neither the second precision nor an exclusive reading
    /// of either bound can cut it short.
    fn range(q: &Query<'_>) -> (DateTime<Utc>, DateTime<Utc>) {
        let sec = chrono::Duration::seconds(1);
        (floor_to(q.window.from, sec) - sec, floor_to(q.window.to, sec) + sec)
    }

    fn url(&self, page: u64, size: u32, range: Option<(DateTime<Utc>, DateTime<Utc>)>) -> url::Url {
        let mut url = self.list.clone();
        let mut pairs = url.query_pairs_mut();
        pairs.append_pair("page", &page.to_string()).append_pair("pageSize", &size.clamp(1, MAX_PAGE_SIZE).to_string());
        if let Some((start, end)) = range {
            pairs
                .append_pair("startDate", &start.format(DATE_FORMAT).to_string())
                .append_pair("endDate", &end.format(DATE_FORMAT).to_string());
        }
        drop(pairs);
        url
    }
}

/// Where a walk is: the page to ask for, and the ids the unfiltered newest
/// page placed inside the window that the dated pages have not shown yet.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Walk {
    page: u64,
    expect: Vec<(String, String)>,
}

impl SourceApi for Invicti {
    fn observer(&self) -> Observer {
        Observer { vendor: "Invicti", product: "Invicti Enterprise" }
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            page_size: MAX_PAGE_SIZE,
            lag: Duration::from_secs(60),
            lookback: Duration::from_secs(300),
            max_window: Some(Duration::from_secs(24 * 3600)),
            ..Defaults::default()
        }
    }

    fn order(&self) -> Order {
        Order::Desc
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        match q.state {
            // Each walk starts with the newest page, undated: the check on
            // the zone the API reads dates in (see `parse`).
            None => Ok(ApiRequest::get(self.url(1, q.page_size, None))),
            Some(s) => {
                let walk: Walk =
                    serde_json::from_value(s.clone()).map_err(|e| ShapeError(format!("walk state: {e}")))?;
                Ok(ApiRequest::get(self.url(walk.page, q.page_size, Some(Invicti::range(q)))))
            }
        }
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        let excerpt = || crate::transport::http::excerpt(&resp.body);
        let list =
            body["List"].as_array().ok_or_else(|| ShapeError(format!("no List in the answer: {}", excerpt())))?;
        let more = body["HasNextPage"].as_bool();
        let more = more.ok_or_else(|| ShapeError(format!("no HasNextPage in the answer: {}", excerpt())))?;
        let id = |e: &Value| e["Id"].as_str().unwrap_or_default().to_owned();
        let Some(state) = q.state else {
            // The newest logs that fall inside the window must come back
            // from the dated query; if not, the API reads the dates in
            // another zone (a silent gap otherwise).
            let expect = list
                .iter()
                .filter(|e| utc_time(e.get("CreatedAt")).is_some_and(|t| q.window.from <= t && t <= q.window.to))
                .map(|e| (id(e), e["CreatedAt"].as_str().unwrap_or_default().to_owned()))
                .collect();
            let walk = serde_json::to_value(Walk { page: 1, expect }).unwrap_or_default();
            return Ok(ApiPage::parsed(Vec::new(), Next::Page(walk)));
        };
        let mut walk: Walk =
            serde_json::from_value(state.clone()).map_err(|e| ShapeError(format!("walk state: {e}")))?;
        let (start, end) = Invicti::range(q);
        let shown = DATE_FORMAT;
        let asked = format!("asked for {} to {} (UTC)", start.format(shown), end.format(shown));
        // The spec words the filter as `MM/dd/yyyy 00:00:00` to
        // `23:59:59`: an API that filters by whole days answers rows of
        // those days outside the asked seconds, which the walk drops. Rows
        // of other days mean the filter was not applied as asked.
        let (first_day, last_day) = (start.date_naive(), end.date_naive());
        for e in list {
            walk.expect.retain(|(x, _)| *x != id(e));
            let Some(at) = utc_time(e.get("CreatedAt")) else { continue };
            if at.date_naive() < first_day || at.date_naive() > last_day {
                return Err(ShapeError(format!(
                    "{asked} and got {} created at {}, on another day: the API did not filter by the dates asked for \
                     (it may read them in another time zone than UTC); nothing was taken",
                    e["Id"], e["CreatedAt"]
                )));
            }
        }
        let next = match (more, list.is_empty()) {
            (false, _) => match walk.expect.first() {
                None => Next::Done,
                Some((x, at)) => {
                    return Err(ShapeError(format!(
                        "{asked} and did not get {x} created at {at} (UTC), which the newest page places inside that \
                         range: the API filtered by other dates (it may read them in another time zone than UTC); \
                         nothing was taken"
                    )))
                }
            },
            (true, true) => return Err(ShapeError(format!("page {} is empty but HasNextPage is true", walk.page))),
            (true, false) => {
                walk.page += 1;
                Next::Page(serde_json::to_value(&walk).unwrap_or_default())
            }
        };
        Ok(ApiPage::parsed(list.clone(), next))
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |k: &str| raw.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
        let mut n = Normalised {
            id: s("Id").map(str::to_owned),
            timestamp: utc_time(raw.get("CreatedAt")),
            ..Default::default()
        };
        let action = s("Type").unwrap_or_default();
        let (category, kind, outcome) = types::classify(action);
        n.put_str("event.action", Some(action))
            .put_str("event.outcome", Some(outcome))
            .put("event.category", Some(json!([category])))
            .put("event.type", Some(json!(kind)))
            .put_str("invicti.endpoint_type", s("EndpointType"))
            .put_str("user.id", s("UserId"))
            .put_str("user.name", s("UserName"))
            .put_str("user.email", s("UserEmail"))
            .put_str("organization.id", s("AccountId"))
            .put_str("message", s("Message"));
        n
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        (status == 401 || status == 403).then(|| {
            Verdict::Auth(format!(
                "{}; check user_id and token (the API token under your profile's API Settings) and that the user may \
                 view activity logs",
                crate::transport::http::excerpt(body)
            ))
        })
    }
}

#[cfg(test)]
mod tests;
