//! One request: the rate limit, the send, and the classification of what
//! came back (success, throttled, refused credentials, a transient failure
//! to retry with backoff or `Retry-After`, or a final error).
//!
//! The vendors' own rate-limit headers are read for every source:
//! `X-Rate-Limit-Remaining`/`X-Rate-Limit-Reset` (Okta), their
//! `X-RateLimit-*` spelling (GitHub and many others; Atlassian's reset is
//! an ISO 8601 time) and the IETF draft's structured `RateLimit: "name";
//! r=REMAINING;t=SECONDS` (Cloudflare). A throttled answer
//! without `Retry-After` waits for the reset; an answer that says the quota
//! is spent (`Remaining: 0`) holds the source's next request until the
//! reset, so that the quota is not overrun in the first place.

use super::{Clock, SourceContext};
use crate::retry::Backoff;
use crate::settings::units::Rate;
use crate::sources::api::{ApiRequest, ApiResponse, Body, SourceApi, Verdict};
use crate::sources::auth::{Auth, AuthError};
use crate::sources::SourceError;
use crate::telemetry::metrics::name as metric;
use crate::telemetry::metrics::Metrics;
use crate::transport::http::{error_chain, excerpt, read_body, redact_url, BodyError};
use crate::transport::origin::{show, Origins, RedirectRefused, Redirects};
use crate::transport::redirect::{self, SendError};
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Attempts per request within one poll before the poll gives up (the next
/// poll tries again from the same cursor).
const ATTEMPTS: u32 = 5;
/// First and longest wait between the attempts of a request.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// See [`BACKOFF_FIRST`].
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Longest `Retry-After` honoured within a poll.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(900);
/// When the rate-limit window resets: Okta's spelling, then the common one.
const RESET_HEADERS: [&str; 2] = ["x-rate-limit-reset", "x-ratelimit-reset"];
/// Requests left in the rate-limit window, in both spellings.
const REMAINING_HEADERS: [&str; 2] = ["x-rate-limit-remaining", "x-ratelimit-remaining"];
/// The IETF draft's structured header (draft-ietf-httpapi-ratelimit-headers,
/// as Cloudflare sends it): `"default";r=50;t=30`, the remaining quota `r`
/// and the seconds `t` until the window resets.
const STRUCTURED_HEADER: &str = "ratelimit";
/// A reset value at or above this is a Unix time in seconds (Okta, GitHub);
/// below it, seconds to wait (the delta form some APIs send). Unix time
/// passed 10^9 in 2001, and no window lasts 31 years.
const RESET_EPOCH_FLOOR: u64 = 1_000_000_000;

/// How a source's requests are made, with vendor defaults applied.
#[derive(Debug, Clone)]
pub struct RequestSettings {
    /// Request timeout (set on each request, redirects included).
    pub timeout: Duration,
    /// Larger responses are refused.
    pub max_response_size: u64,
    /// Requests per period.
    pub rate_limit: Option<Rate>,
    /// The configured `headers`, sent on every API request (values marked
    /// sensitive: `Debug` does not show them).
    pub headers: reqwest::header::HeaderMap,
    /// Where requests may go: the configured `url`'s origin and
    /// `allowed_origins`; a URL elsewhere is refused before it is sent.
    pub origins: Origins,
}

/// Makes one source's requests: its client, credentials, rate limiter and
/// the API's quota, apart from the walk that decides what to ask.
pub struct Fetcher {
    /// The source's name, for errors, logs and metrics.
    name: String,
    request: RequestSettings,
    /// The vendor's hooks: local answers and the verdict on a status.
    api: Arc<dyn SourceApi>,
    /// Shared with the sources of the same TLS settings: follows no
    /// redirect itself (see `redirects`).
    client: reqwest::Client,
    /// The redirects API requests follow: within the source's origins.
    redirects: Redirects,
    auth: Auth,
    limiter: Option<DefaultDirectRateLimiter>,
    /// Until when the API's own rate-limit quota is spent (a response said
    /// `X-Rate-Limit-Remaining: 0`): requests wait for its reset.
    quota_reset: std::sync::Mutex<Option<tokio::time::Instant>>,
    metrics: Arc<Metrics>,
    clock: Clock,
}

impl Fetcher {
    /// The fetcher of source `name`, on the agent's metrics and clock.
    pub fn new(
        name: &str,
        request: RequestSettings,
        api: Arc<dyn SourceApi>,
        client: reqwest::Client,
        auth: Auth,
        ctx: &SourceContext,
    ) -> Fetcher {
        let limiter = request.rate_limit.and_then(|r| {
            Quota::with_period(r.interval())
                .map(|q| DefaultDirectRateLimiter::direct(q.allow_burst(std::num::NonZeroU32::MIN)))
        });
        let redirects = Redirects::Within(request.origins.clone());
        Fetcher {
            name: name.to_owned(),
            request,
            api,
            client,
            redirects,
            auth,
            limiter,
            quota_reset: std::sync::Mutex::new(None),
            metrics: ctx.metrics.clone(),
            clock: ctx.clock.clone(),
        }
    }

    /// Send one request with the rate limit, retrying throttling, server
    /// errors and network failures a few times within the poll.
    pub async fn fetch(&self, req: &ApiRequest, cancel: &CancellationToken) -> Result<ApiResponse, SourceError> {
        Ok(self.fetch_in(req, cancel, None).await?.0)
    }

    /// [`Fetcher::fetch`], each attempt's send in one of `slots` (the
    /// agent's fetch slots, `FETCH_SLOTS`): the slot of the answer comes
    /// with it, to be held until the answer is a page in hand.
    pub(super) async fn fetch_in(
        &self,
        req: &ApiRequest,
        cancel: &CancellationToken,
        slots: Option<&Arc<Semaphore>>,
    ) -> Result<(ApiResponse, Option<OwnedSemaphorePermit>), SourceError> {
        let name = self.name.as_str();
        let url = redact_url(&req.url);
        if let Some(resp) = self.api.local(req, (self.clock)()) {
            return Ok((resp, None));
        }
        if !self.request.origins.permits(&req.url) {
            return Err(SourceError::ForeignOrigin {
                source_name: name.into(),
                origin: show(&req.url),
                why: "the API pointed the source there (a Link or next URL)".into(),
            });
        }
        let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_MAX);
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(limiter) = &self.limiter {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                    _ = limiter.until_ready() => {}
                }
            }
            self.wait_for_quota(cancel).await?;
            let slot = match slots {
                Some(s) => tokio::select! {
                    _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                    p = s.clone().acquire_owned() => Some(p.map_err(|_| SourceError::Cancelled)?),
                },
                None => None,
            };
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                r = self.send(req) => r,
            };
            if let Ok(resp) = &outcome {
                self.note_quota(&resp.headers);
            }
            let (retry_in, failure) = match outcome {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    self.count(resp.status);
                    return Ok((resp, slot));
                }
                Ok(resp) => {
                    self.count(resp.status);
                    let status = resp.status;
                    // A spent quota is throttling whatever the status says
                    // (GitHub answers 403 with `X-RateLimit-Remaining: 0`):
                    // never refused credentials.
                    let spent = matches!(status, 403 | 429) && quota_left(&resp.headers) == Some(0);
                    let verdict =
                        if spent { Some(Verdict::Throttled(None)) } else { self.api.verdict(status, &resp.body) };
                    let now = (self.clock)();
                    let retry_after = retry_after(&resp.headers, now).or_else(|| rate_limit_reset(&resp.headers, now));
                    let failure = format!("HTTP {status}: {}", excerpt(&resp.body));
                    match verdict {
                        Some(Verdict::Accept) => return Ok((resp, slot)),
                        Some(Verdict::Throttled(d)) => (Some(d.or(retry_after)), failure),
                        Some(Verdict::Auth(detail)) => {
                            return Err(SourceError::Auth { source_name: name.into(), url, status, detail })
                        }
                        None if status == 401 || status == 403 => {
                            if let (Auth::OAuth2(o), false) = (&self.auth, renewed) {
                                o.invalidate().await;
                                renewed = true;
                                continue;
                            }
                            return Err(SourceError::Auth {
                                source_name: name.into(),
                                url,
                                status,
                                detail: excerpt(&resp.body),
                            });
                        }
                        None if status == 429 || status == 503 => (Some(retry_after), failure),
                        None if status == 408 || status >= 500 => (Some(None), failure),
                        None => {
                            return Err(SourceError::Http {
                                source_name: name.into(),
                                url,
                                status,
                                excerpt: excerpt(&resp.body),
                            })
                        }
                    }
                }
                Err(FetchFailure::TooLarge(limit)) => {
                    return Err(SourceError::TooLarge { source_name: name.into(), url, limit })
                }
                Err(FetchFailure::Auth(e)) => {
                    return Err(SourceError::Token { source_name: name.into(), detail: e.to_string() })
                }
                Err(FetchFailure::Redirect(r)) => {
                    return Err(SourceError::ForeignOrigin {
                        source_name: name.into(),
                        origin: r.origin,
                        why: r.why.into(),
                    })
                }
                Err(FetchFailure::Network(detail)) => (Some(None), detail),
            };
            drop(slot);
            if attempt >= ATTEMPTS {
                return Err(SourceError::Unavailable { source_name: name.into(), url, detail: failure });
            }
            let delay = match retry_in.flatten() {
                Some(d) => d.min(MAX_RETRY_AFTER),
                None => backoff.next_delay(),
            };
            self.metrics.add(metric::RETRIES, &[("source", name)], 1);
            tracing::warn!(source = %name, url = %url, "request failed ({failure}); retrying in {delay:?}");
            tokio::select! {
                _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Wait while a response said the API's quota is spent, until its reset.
    async fn wait_for_quota(&self, cancel: &CancellationToken) -> Result<(), SourceError> {
        let until = *self.quota_reset.lock().unwrap_or_else(|p| p.into_inner());
        let Some(until) = until.filter(|u| *u > tokio::time::Instant::now()) else { return Ok(()) };
        tokio::select! {
            _ = cancel.cancelled() => Err(SourceError::Cancelled),
            _ = tokio::time::sleep_until(until) => Ok(()),
        }
    }

    /// Read a response's rate-limit headers: no request left means the next
    /// waits for the window's reset (at most [`MAX_RETRY_AFTER`]).
    fn note_quota(&self, headers: &reqwest::header::HeaderMap) {
        if quota_left(headers) != Some(0) {
            return;
        }
        let Some(delay) = rate_limit_reset(headers, (self.clock)()) else { return };
        let delay = delay.min(MAX_RETRY_AFTER);
        *self.quota_reset.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now() + delay);
        let name = self.name.as_str();
        tracing::info!(source = %name, "the API's rate limit is spent (no request remaining); waiting {delay:?} for its reset");
    }

    fn count(&self, status: u16) {
        let s = status.to_string();
        self.metrics.add(metric::REQUESTS, &[("source", &self.name), ("status", &s)], 1);
    }

    async fn send(&self, req: &ApiRequest) -> Result<ApiResponse, FetchFailure> {
        // The configured headers first: the connector's own and the
        // credentials come after (validation refuses a configured header
        // that they would set).
        let mut rb = self
            .client
            .request(req.method.clone(), req.url.clone())
            .timeout(self.request.timeout)
            .headers(self.request.headers.clone());
        for (k, v) in &req.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        match &req.body {
            Some(Body::Json(v)) => rb = rb.json(v),
            Some(Body::Text(t)) => {
                rb = rb.header(reqwest::header::CONTENT_TYPE, "application/json").body(t.clone());
            }
            None => {}
        }
        let rb = self.auth.apply(&self.client, self.request.timeout, rb).await.map_err(FetchFailure::Auth)?;
        let network = |e: reqwest::Error| FetchFailure::Network(error_chain(&e.without_url()));
        let resp =
            redirect::send(&self.client, rb.build().map_err(network)?, &self.redirects).await.map_err(|e| match e {
                SendError::Refused(r) => FetchFailure::Redirect(r),
                SendError::Http(e) => network(e),
            })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = read_body(resp, self.request.max_response_size).await.map_err(|e| match e {
            BodyError::TooLarge { limit } => FetchFailure::TooLarge(limit),
            BodyError::Read(e) => FetchFailure::Network(error_chain(&e.without_url())),
        })?;
        Ok(ApiResponse { status, headers, body })
    }
}

enum FetchFailure {
    TooLarge(u64),
    Auth(AuthError),
    Redirect(RedirectRefused),
    Network(String),
}

/// `Retry-After` in seconds or as an HTTP date (read against `now`, the
/// source's clock).
fn retry_after(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// The first of `names` present, as text.
fn header<'a>(headers: &'a reqwest::header::HeaderMap, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| headers.get(*n)).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// How long until the vendor's rate-limit window resets
/// (`X-Rate-Limit-Reset`, `X-RateLimit-Reset`): a Unix time in seconds,
/// seconds to wait ([`RESET_EPOCH_FLOOR`]) or an ISO 8601 time (Atlassian);
/// else the `t` of a structured `RateLimit` header. `None` when absent,
/// unreadable or already past (a clock ahead of the vendor's: backoff
/// decides).
fn rate_limit_reset(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let Some(text) = header(headers, &RESET_HEADERS) else {
        return structured(headers, "t").filter(|t| *t > 0).map(Duration::from_secs);
    };
    let at = match text.parse::<u64>() {
        Ok(v) if v < RESET_EPOCH_FLOOR => return (v > 0).then(|| Duration::from_secs(v)),
        Ok(v) => DateTime::from_timestamp(i64::try_from(v).ok()?, 0)?,
        Err(_) => DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc),
    };
    (at - now).to_std().ok().filter(|d| !d.is_zero())
}

/// A parameter (`r`, `t`) of the first item of a structured `RateLimit`
/// header, as a whole number.
fn structured(headers: &reqwest::header::HeaderMap, key: &str) -> Option<u64> {
    let item = header(headers, &[STRUCTURED_HEADER])?.split(',').next()?;
    item.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim() == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Requests left in the vendor's rate-limit window, when it says.
fn quota_left(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    match header(headers, &REMAINING_HEADERS) {
        Some(v) => v.parse().ok(),
        None => structured(headers, "r"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (reqwest::header::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    #[test]
    fn rate_limit_reset_reads_unix_times_and_deltas_in_both_spellings() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let okta = headers(&[("x-rate-limit-reset", "1700000042"), ("x-rate-limit-remaining", "0")]);
        assert_eq!(rate_limit_reset(&okta, now), Some(Duration::from_secs(42)));
        assert_eq!(quota_left(&okta), Some(0));
        let github = headers(&[("x-ratelimit-reset", "1700000005"), ("x-ratelimit-remaining", "12")]);
        assert_eq!(rate_limit_reset(&github, now), Some(Duration::from_secs(5)));
        assert_eq!(quota_left(&github), Some(12));
        assert_eq!(rate_limit_reset(&headers(&[("x-ratelimit-reset", "30")]), now), Some(Duration::from_secs(30)));
        // Past (the clock is ahead of the vendor's), zero, garbage, absent: backoff decides.
        for v in ["1699999990", "1700000000", "0", "soon"] {
            assert_eq!(rate_limit_reset(&headers(&[("x-rate-limit-reset", v)]), now), None, "{v}");
        }
        assert_eq!(rate_limit_reset(&HeaderMap::new(), now), None);
        assert_eq!(quota_left(&HeaderMap::new()), None);
    }

    /// Atlassian's `X-RateLimit-Reset` is an ISO 8601 time in UTC (its
    /// Admin API reference, "Rate limits").
    #[test]
    fn rate_limit_reset_reads_an_iso_8601_time() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let atlassian = headers(&[("x-ratelimit-reset", "2023-11-14T22:13:50Z"), ("x-ratelimit-remaining", "0")]);
        assert_eq!(rate_limit_reset(&atlassian, now), Some(Duration::from_secs(30)));
        let past = headers(&[("x-ratelimit-reset", "2023-11-14T22:13:00Z")]);
        assert_eq!(rate_limit_reset(&past, now), None);
    }

    /// Cloudflare's `Ratelimit: "default";r=50;t=30` (its API reference,
    /// "Rate limits"): `r` remaining, `t` seconds to the reset.
    #[test]
    fn the_structured_ratelimit_header_feeds_the_quota() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let cf = headers(&[("ratelimit", "\"default\";r=0;t=30"), ("ratelimit-policy", "\"burst\";q=100;w=60")]);
        assert_eq!(quota_left(&cf), Some(0));
        assert_eq!(rate_limit_reset(&cf, now), Some(Duration::from_secs(30)));
        let left = headers(&[("ratelimit", "\"default\";r=50;t=12, \"other\";r=0;t=99")]);
        assert_eq!(quota_left(&left), Some(50), "the first item");
        assert_eq!(rate_limit_reset(&left, now), Some(Duration::from_secs(12)));
        assert_eq!(quota_left(&headers(&[("ratelimit", "\"default\"")])), None);
        // The X- headers win when both are sent.
        let both = headers(&[("ratelimit", "\"default\";r=0;t=30"), ("x-ratelimit-remaining", "5")]);
        assert_eq!(quota_left(&both), Some(5));
    }
}
