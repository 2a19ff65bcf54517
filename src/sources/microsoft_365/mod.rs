//! `microsoft_365`: the Office 365 Management Activity API of one tenant,
//! `{url}/api/v1.0/{tenant_id}/activity/feed/…` (`https://manage.office.com`),
//! read with an OAuth2 token of the client-credentials grant at
//! `https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`, scope
//! `https://manage.office.com/.default` (the app registration needs the
//! *Office 365 Management APIs* application permission `ActivityFeed.Read`,
//! admin-consented).
//!
//! The API does not list records: it lists **content blobs** by the time
//! they became available (`contentCreated`), each to be fetched at its
//! `contentUri` (on the API's host), holding records of any time before.
//! One source reads every configured content type (default all five), one
//! after the other in each window, under one cursor ([`walk`]):
//!
//! 1. once per run, `POST …/subscriptions/start?contentType=…` (an answer
//!    of 400 with code `AF20024`, "already enabled", is success);
//! 2. `GET …/subscriptions/content?contentType=…&startTime=…&endTime=…`
//!    (UTC, whole seconds, start inclusive and end exclusive), then the
//!    `NextPageUri` header's URL verbatim until none is sent;
//! 3. `GET` each blob's `contentUri`: a JSON array of records.
//!
//! Every request carries `PublisherIdentifier={tenant_id}`. The cursor is
//! one of availability time (`SourceApi::filters_by_arrival`): a window is
//! read whole before it moves to the window's end, every record is kept
//! whatever its `CreationTime`, and the ids taken are kept for `lookback`
//! after the window: a blob listed again is fetched again and its records,
//! deduplicated by `Id`, are not delivered twice. Microsoft documents no
//! delay between `contentCreated` and a blob's listing (**inferred**: the
//! ten minutes re-asked behind the cursor, and a lag of one minute, cover a
//! listing that trails its blobs' `contentCreated`); the records' own delay
//! ("most within an hour", some after days) is the blobs', and does not
//! matter to a cursor of `contentCreated`. A window is at most 24 hours
//! (`max_window` plus `lookback`, checked) and starts at most 167 hours
//! ago: Microsoft keeps blobs for seven days, so a cursor older than that
//! (the agent stopped for a week) skips what expired, with a warning.
//!
//! Checked on every answer, failing the poll loudly with the cursor kept:
//! a listing is a JSON array of blobs (`contentId`, `contentUri`,
//! `contentCreated`), each created inside the asked window (Microsoft
//! ignoring the window fails the poll); a blob is a JSON array of records,
//! each with an `Id` and a `CreationTime`. A `NextPageUri` or a
//! `contentUri` on another origin than `url`'s is refused before the token
//! is sent (`allowed_origins` widens it). The silent-empty guard: after a
//! walk listed no blob at all, the first content type is listed once
//! without a window (Microsoft's last 24 hours); a blob created inside the
//! window fails the poll (the window was not read as sent). A positive walk
//! settles it; a quiet one asks again after an hour.
//!
//! Throttling is code `AF429`, sent with HTTP 403 (Microsoft's
//! troubleshooting guide) or 429: retried, after `Retry-After` when sent.
//! `AF10001` (the permission is missing) and a 401 are refused credentials,
//! saying what the app registration needs.

pub mod config;
mod ecs;
mod walk;

use super::api::{
    json_body, ApiPage, ApiRequest, ApiResponse, Defaults, GuardSchedule, Next, Query, ShapeError, SourceApi, Verdict,
};
use super::auth::{Auth, OAuth2};
use super::{ceil_to, endpoint, floor_to};
use crate::event::{Normalised, Observer};
use crate::settings::secret::{Env, Secret};
use crate::settings::HttpUrl;
use crate::settings::Problem;
use chrono::{DateTime, Utc};
pub use config::{ContentType, Microsoft365Config, Required, LOGIN_AUTHORITY, MANAGE_API, MAX_LIST_WINDOW};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;
use walk::{Blob, Step, Walk};

/// Blobs younger than this are left for the next poll.
const DEFAULT_LAG: Duration = Duration::from_secs(60);
/// Re-listed behind the cursor (availability time), records taken dropped.
pub(crate) const DEFAULT_LOOKBACK: Duration = Duration::from_secs(10 * 60);
/// Time between polls.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Longest window of one walk: a catch-up's window is read whole before
/// the cursor moves, every id taken in it kept meanwhile.
pub(crate) const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(3600);
/// How far back a listing may start: Microsoft's seven days, less five
/// minutes for the request's own delay (as Elastic's integration does).
const RETENTION: chrono::Duration = chrono::Duration::minutes(167 * 60 + 55);
/// Tolerance of the listing's bounds check.
const BOUNDS_SLACK: chrono::Duration = chrono::Duration::seconds(1);
/// "The subscription is already enabled. No property change."
const ALREADY_ENABLED: &str = "AF20024";
/// "Content older than 7 days cannot be retrieved."
const EXPIRED: &str = "AF20051";
/// What the app registration needs, for refused credentials.
const PERMISSION_HINT: &str = "the app registration needs the Office 365 Management APIs application permission \
     ActivityFeed.Read with admin consent (and unified audit logging on in the tenant)";

/// The Microsoft 365 hooks.
#[derive(Debug)]
pub struct Microsoft365 {
    feed: url::Url,
    tenant: String,
    types: Vec<ContentType>,
    /// Which content types' subscriptions this run has started.
    started: Mutex<Vec<bool>>,
    guard: GuardSchedule,
}

/// The token endpoint of `tenant` at Entra ID.
pub fn token_url(tenant: &str) -> url::Url {
    endpoint(&HttpUrl::known(LOGIN_AUTHORITY), &format!("{tenant}/oauth2/v2.0/token"))
}

/// The scope of a token for the API at `base`: `https://manage.office.com/.default`.
fn scope(base: &url::Url) -> String {
    format!("{}/.default", base.origin().ascii_serialization())
}

/// Build from config: `tenant_id`, `client_id`, `client_secret` (or
/// `client_secret_file`); `content_types`, `url` and `token_url` optional.
pub fn build(
    cfg: &Microsoft365Config,
    required: Required,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> super::Built {
    let secret = required.client_secret.resolve(at, env, problems)?;
    let tenant = &required.tenant_id;
    let token = cfg.token_url.as_deref().cloned().unwrap_or_else(|| token_url(tenant));
    let client_id = Secret::new(required.client_id);
    let oauth = OAuth2::new(token, client_id, secret, Some(scope(&cfg.url)));
    Some((Box::new(Microsoft365::new(&cfg.url, tenant, &cfg.content_types())), Auth::OAuth2(oauth)))
}

super::connector!(Microsoft365Config => build);

impl Microsoft365 {
    /// Hooks for `tenant`'s content `types` at `base`.
    pub fn new(base: &url::Url, tenant: &str, types: &[ContentType]) -> Self {
        Microsoft365 {
            feed: endpoint(base, &format!("api/v1.0/{tenant}/activity/feed")),
            tenant: tenant.to_owned(),
            types: types.to_vec(),
            started: Mutex::new(vec![false; types.len()]),
            guard: GuardSchedule::default(),
        }
    }

    fn is_started(&self, ct: usize) -> bool {
        self.started.lock().unwrap_or_else(|p| p.into_inner()).get(ct).copied().unwrap_or(false)
    }

    fn set_started(&self, ct: usize, on: bool) {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        match started.get_mut(ct) {
            Some(s) => *s = on,
            None if !on => started.iter_mut().for_each(|s| *s = false),
            None => {}
        }
    }

    fn content_type(&self, ct: usize) -> Result<&'static str, ShapeError> {
        self.types.get(ct).map(|t| t.as_str()).ok_or_else(|| ShapeError(format!("no content type {ct}")))
    }

    /// `feed/{path}` with `pairs` and `PublisherIdentifier`.
    fn url(&self, path: &str, pairs: &[(&str, String)]) -> url::Url {
        let mut url = endpoint(&self.feed, path);
        url.query_pairs_mut().extend_pairs(pairs);
        self.with_publisher(url)
    }

    /// An API-given URL with `PublisherIdentifier` added when it has none
    /// (Microsoft asks for it on every call, the content's too).
    fn with_publisher(&self, mut url: url::Url) -> url::Url {
        if !url.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("PublisherIdentifier")) {
            url.query_pairs_mut().append_pair("PublisherIdentifier", &self.tenant);
        }
        url
    }

    /// The listing's bounds for window `q`: whole seconds covering it,
    /// starting at most [`RETENTION`] before `now`; `None` when the whole
    /// window has expired.
    fn bounds(q: &Query<'_>, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let s = chrono::Duration::seconds(1);
        let from = floor_to(q.window.from, s).max(ceil_to(now - RETENTION, s));
        let to = ceil_to(q.window.to, s);
        (from < to).then_some((from, to))
    }

    /// The step that reads content type `ct`, or what follows the last.
    fn next_type(&self, q: &Query<'_>, ct: usize, found: bool) -> Next {
        if ct >= self.types.len() {
            if !found && self.guard.take_if_due(q.window.to) {
                return Next::Page(Walk { ct: 0, step: Step::Guard, found }.to_value());
            }
            return Next::Done;
        }
        let step = if self.is_started(ct) { Step::List { page: None } } else { Step::Start };
        Next::Page(Walk { ct, step, found }.to_value())
    }

    /// The step after content type `ct`'s listing page `page` and its blobs.
    fn after_blobs(&self, q: &Query<'_>, ct: usize, page: Option<String>, found: bool) -> Next {
        match page {
            Some(page) => Next::Page(Walk { ct, step: Step::List { page: Some(page) }, found }.to_value()),
            None => self.next_type(q, ct + 1, found),
        }
    }

    fn parse_start(&self, walk: &Walk, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let ct = self.content_type(walk.ct)?;
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        let enabled = resp.status == 200 && body.get("status").and_then(Value::as_str) == Some("enabled");
        let already = walk::error_code(&resp.body).as_deref() == Some(ALREADY_ENABLED);
        if !enabled && !already {
            return Err(ShapeError(format!(
                "starting the {ct} subscription answered HTTP {}: {}",
                resp.status,
                crate::transport::http::excerpt(&resp.body)
            )));
        }
        self.set_started(walk.ct, true);
        let next = Next::Page(Walk { step: Step::List { page: None }, ..walk.clone() }.to_value());
        Ok(ApiPage::parsed(Vec::new(), next))
    }

    fn parse_list(&self, q: &Query<'_>, walk: &Walk, resp: &ApiResponse, guard: bool) -> Result<ApiPage, ShapeError> {
        let ct = self.content_type(walk.ct)?;
        let body = json_body(resp)?;
        let Some(items) = body.as_array() else {
            return Err(ShapeError(format!(
                "expected the {ct} content listing (a JSON array), got: {}",
                crate::transport::http::excerpt(&resp.body)
            )));
        };
        let listed = walk::blobs(items).map_err(ShapeError)?;
        let Some((from, to)) = Self::bounds(q, q.now) else { return Ok(ApiPage::parsed(Vec::new(), Next::Done)) };
        if guard {
            let inside = listed.iter().find(|(_, at)| at.is_some_and(|at| q.window.from <= at && at <= q.window.to));
            if let Some((blob, _)) = inside {
                self.guard.wrong();
                return Err(ShapeError(format!(
                    "the {ct} listing for startTime={} endTime={} named no blob, yet listed without a window it \
                     names {} created {}, inside that range: Microsoft did not filter by contentCreated as sent; \
                     nothing was taken and the cursor stays",
                    walk::stamp(from),
                    walk::stamp(to),
                    blob.id,
                    blob.created
                )));
            }
            return Ok(ApiPage::parsed(Vec::new(), Next::Done));
        }
        for (blob, at) in &listed {
            let Some(at) = at else {
                return Err(ShapeError(format!(
                    "blob {} has no readable contentCreated ({:?})",
                    blob.id, blob.created
                )));
            };
            if *at < from - BOUNDS_SLACK || *at > to + BOUNDS_SLACK {
                return Err(ShapeError(format!(
                    "asked for the {ct} content of startTime={} endTime={} and got blob {} created {}: Microsoft \
                     did not bound the listing by contentCreated; nothing was taken",
                    walk::stamp(from),
                    walk::stamp(to),
                    blob.id,
                    blob.created
                )));
            }
        }
        // `NextPageUri` (M2 spells it `NextPageUrl`); header names are
        // case-insensitive, which also covers Elastic's `Nextpageuri`.
        let page = ["nextpageuri", "nextpageurl"]
            .iter()
            .find_map(|h| resp.headers.get(*h))
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let found = walk.found || !listed.is_empty();
        if !listed.is_empty() {
            self.guard.settle();
        }
        let blobs: Vec<Blob> = listed.into_iter().map(|(b, _)| b).collect();
        let next = if blobs.is_empty() {
            self.after_blobs(q, walk.ct, page, found)
        } else {
            Next::Page(Walk { ct: walk.ct, step: Step::Fetch { blobs, page }, found }.to_value())
        };
        Ok(ApiPage::parsed(Vec::new(), next))
    }

    fn parse_blob(
        &self,
        q: &Query<'_>,
        walk: &Walk,
        blobs: &[Blob],
        page: &Option<String>,
        resp: &ApiResponse,
    ) -> Result<ApiPage, ShapeError> {
        let ct = self.content_type(walk.ct)?;
        let Some((blob, rest)) = blobs.split_first() else {
            return Ok(ApiPage::parsed(Vec::new(), self.after_blobs(q, walk.ct, page.clone(), walk.found)));
        };
        let next = if rest.is_empty() {
            self.after_blobs(q, walk.ct, page.clone(), walk.found)
        } else {
            let step = Step::Fetch { blobs: rest.to_vec(), page: page.clone() };
            Next::Page(Walk { step, ..walk.clone() }.to_value())
        };
        if resp.status != 200 {
            // Only an expired blob is accepted (`verdict`): its records are
            // gone from the API; say so and go on.
            tracing::warn!(content_type = ct, blob = %blob.id, created = %blob.created,
                "a {ct} content blob expired before it could be fetched (older than 7 days); its records are lost");
            return Ok(ApiPage::parsed(Vec::new(), next));
        }
        let body = json_body(resp)?;
        let Some(records) = body.as_array() else {
            return Err(ShapeError(format!(
                "expected {ct} blob {} to be a JSON array of records, got: {}",
                blob.id,
                crate::transport::http::excerpt(&resp.body)
            )));
        };
        for (i, r) in records.iter().enumerate() {
            if !r.is_object() || r.get("Id").is_none() || r.get("CreationTime").is_none() {
                return Err(ShapeError(format!(
                    "record {i} of {ct} blob {} is not an audit record (no Id or CreationTime): {}",
                    blob.id,
                    crate::transport::http::excerpt(r.to_string().as_bytes())
                )));
            }
        }
        Ok(ApiPage::parsed(records.clone(), next))
    }
}

impl SourceApi for Microsoft365 {
    fn observer(&self) -> Observer {
        Observer { vendor: "Microsoft", product: "Microsoft 365" }
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            lag: DEFAULT_LAG,
            lookback: DEFAULT_LOOKBACK,
            interval: DEFAULT_INTERVAL,
            max_window: Some(DEFAULT_MAX_WINDOW),
            ..Defaults::default()
        }
    }

    fn filters_by_arrival(&self) -> bool {
        true
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        let walk = match Walk::from_state(q.state) {
            Some(w) => w,
            None if q.state.is_some() => return Err(ShapeError(format!("not a walk state: {:?}", q.state))),
            None => {
                let step = if self.is_started(0) { Step::List { page: None } } else { Step::Start };
                Walk { ct: 0, step, found: false }
            }
        };
        let ct = self.content_type(walk.ct)?;
        let given = |u: &str| {
            url::Url::parse(u)
                .map(|u| self.with_publisher(u))
                .map_err(|e| ShapeError(format!("{u:?} is not a URL ({e})")))
        };
        Ok(match &walk.step {
            Step::Start => {
                let mut req = ApiRequest::get(self.url("subscriptions/start", &[("contentType", ct.into())]));
                req.method = reqwest::Method::POST;
                req
            }
            Step::List { page: Some(page) } => ApiRequest::get(given(page)?),
            Step::List { page: None } => {
                // A window wholly expired is listed from its end: nothing.
                let (from, to) = Self::bounds(q, q.now).unwrap_or((q.window.to, q.window.to));
                ApiRequest::get(self.url(
                    "subscriptions/content",
                    &[("contentType", ct.into()), ("startTime", walk::stamp(from)), ("endTime", walk::stamp(to))],
                ))
            }
            Step::Fetch { blobs, .. } => match blobs.first() {
                Some(b) => ApiRequest::get(given(&b.uri)?),
                None => return Err(ShapeError("no blob left to fetch".into())),
            },
            Step::Guard => ApiRequest::get(self.url("subscriptions/content", &[("contentType", ct.into())])),
        })
    }

    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let walk = match Walk::from_state(q.state) {
            Some(w) => w,
            None => {
                let step = if self.is_started(0) { Step::List { page: None } } else { Step::Start };
                Walk { ct: 0, step, found: false }
            }
        };
        match &walk.step {
            Step::Start => self.parse_start(&walk, resp),
            Step::List { .. } => self.parse_list(q, &walk, resp, false),
            Step::Guard => self.parse_list(q, &walk, resp, true),
            Step::Fetch { blobs, page } => self.parse_blob(q, &walk, blobs, page, resp),
        }
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        ecs::normalise(raw)
    }

    fn verdict(&self, status: u16, body: &[u8]) -> Option<Verdict> {
        let code = walk::error_code(body);
        let excerpt = crate::transport::http::excerpt(body);
        match (status, code.as_deref()) {
            (_, Some("AF429")) => Some(Verdict::Throttled(None)),
            (400, Some(ALREADY_ENABLED | EXPIRED)) => Some(Verdict::Accept),
            // The subscription was stopped (AF20022 none, AF20023
            // disabled): started again on the next poll.
            (_, Some("AF20022" | "AF20023")) => {
                self.set_started(usize::MAX, false);
                None
            }
            // A 401 without a code ("Authorization has been denied") is
            // the poller's: it renews the token once before it reports it.
            (_, Some("AF10001")) | (403, _) => {
                Some(Verdict::Auth(format!("{excerpt}; the token was refused: {PERMISSION_HINT}")))
            }
            (_, Some("AF20010" | "AF20011" | "AF20012" | "AF20013")) => Some(Verdict::Auth(format!(
                "{excerpt}; tenant_id must be the tenant the app registration and its token belong to"
            ))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
