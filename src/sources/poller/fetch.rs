//! One request: the rate limit, the send, and the classification of what
//! came back (success, throttled, refused credentials, a transient failure
//! to retry with backoff or `Retry-After`, or a final error).

use super::Poller;
use crate::retry::Backoff;
use crate::sources::api::{ApiRequest, ApiResponse, Body, Verdict};
use crate::sources::auth::{Auth, AuthError};
use crate::sources::SourceError;
use crate::telemetry::metrics::name as metric;
use crate::transport::http::{error_chain, excerpt, read_body, redact_url, BodyError};
use crate::transport::origin::{show, RedirectRefused};
use chrono::{DateTime, Utc};
use std::time::Duration;
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

impl Poller {
    /// Send one request with the rate limit, retrying throttling, server
    /// errors and network failures a few times within the poll.
    pub async fn fetch(&self, req: &ApiRequest, cancel: &CancellationToken) -> Result<ApiResponse, SourceError> {
        let name = self.settings.name.as_str();
        let url = redact_url(&req.url);
        if let Some(resp) = self.api.local(req, (self.ctx.clock)()) {
            return Ok(resp);
        }
        if !self.settings.origins.permits(&req.url) {
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
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                r = self.send(req) => r,
            };
            let (retry_in, failure) = match outcome {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    self.count(resp.status);
                    return Ok(resp);
                }
                Ok(resp) => {
                    self.count(resp.status);
                    let status = resp.status;
                    let verdict = self.api.verdict(status, &resp.body);
                    let retry_after = retry_after(&resp.headers);
                    let failure = format!("HTTP {status}: {}", excerpt(&resp.body));
                    match verdict {
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
            if attempt >= ATTEMPTS {
                return Err(SourceError::Unavailable { source_name: name.into(), url, detail: failure });
            }
            let delay = match retry_in.flatten() {
                Some(d) => d.min(MAX_RETRY_AFTER),
                None => backoff.next_delay(),
            };
            self.ctx.metrics.add(metric::RETRIES, &[("source", name)], 1);
            tracing::warn!(source = %name, url = %url, "request failed ({failure}); retrying in {delay:?}");
            tokio::select! {
                _ = cancel.cancelled() => return Err(SourceError::Cancelled),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn count(&self, status: u16) {
        let s = status.to_string();
        self.ctx.metrics.add(metric::REQUESTS, &[("source", &self.settings.name), ("status", &s)], 1);
    }

    async fn send(&self, req: &ApiRequest) -> Result<ApiResponse, FetchFailure> {
        // The configured headers first: the connector's own and the
        // credentials come after (validation refuses a configured header
        // that they would set).
        let mut rb = self.client.request(req.method.clone(), req.url.clone()).headers(self.settings.headers.clone());
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
        let rb = self.auth.apply(&self.token_client, rb).await.map_err(FetchFailure::Auth)?;
        let resp = rb.send().await.map_err(|e| match RedirectRefused::find(&e) {
            Some(r) => FetchFailure::Redirect(r.clone()),
            None => FetchFailure::Network(error_chain(&e.without_url())),
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = read_body(resp, self.settings.max_response_size).await.map_err(|e| match e {
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

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
}
