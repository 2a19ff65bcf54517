//! Redirects followed by the agent rather than by reqwest. A source's
//! client is shared with every source of the same TLS settings
//! ([`super::http::Clients`]), so it cannot carry one source's redirect
//! policy: it follows nothing, and [`send`] follows a redirect only when
//! the source's own rule ([`Redirects::judge`], `origin.rs`) allows it.
//!
//! What is followed is what reqwest (through tower-http) would follow:
//! 301 and 302 turn a `POST` into a `GET` without its body, 303 turns
//! anything but `HEAD` into a `GET` without its body (the body's
//! `Content-*` headers go with it), 307 and 308 repeat the request as it
//! was; a redirect without a readable `Location` is the answer. When the
//! origin changes (to one `allowed_origins` lists) `Authorization`,
//! `Cookie` and `Proxy-Authorization` are dropped as reqwest drops them.
//! No `Referer` is sent: the previous URL's query can hold a key.
//! The request's timeout bounds the whole chain, as a client's did.

use super::origin::{RedirectRefused, Redirects};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};

/// Why [`send`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A redirect the rule refused; nothing was sent there.
    #[error(transparent)]
    Refused(#[from] RedirectRefused),
    /// The request itself failed (connection, TLS, timeout).
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// Send `req` with `client` (which follows no redirect), following the
/// redirects `redirects` allows.
pub async fn send(
    client: &reqwest::Client,
    mut req: reqwest::Request,
    redirects: &Redirects,
) -> Result<reqwest::Response, SendError> {
    let started = tokio::time::Instant::now();
    let timeout = req.timeout().copied();
    let mut previous: Vec<url::Url> = Vec::new();
    loop {
        let again = req.try_clone();
        let from = req.url().clone();
        let resp = client.execute(req).await?;
        let status = resp.status();
        let (Some(mut next), Some(to)) = (again, redirect_target(&resp, &from)) else { return Ok(resp) };
        previous.push(from);
        redirects.judge(&to, &previous)?;
        let payload_goes = match status {
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => next.method() == Method::POST,
            StatusCode::SEE_OTHER => true,
            _ => false,
        };
        if payload_goes {
            if next.method() != Method::HEAD {
                *next.method_mut() = Method::GET;
            }
            *next.body_mut() = None;
            drop_payload_headers(next.headers_mut());
        }
        if previous.last().is_some_and(|p| p.origin() != to.origin()) {
            drop_credentials(next.headers_mut());
        }
        if let Some(t) = timeout {
            // What is left of the whole request's time (at least a moment,
            // so an expired budget fails as a timeout, not a panic).
            *next.timeout_mut() = Some(t.saturating_sub(started.elapsed()).max(std::time::Duration::from_millis(1)));
        }
        *next.url_mut() = to;
        req = next;
    }
}

/// Where a redirect response points, resolved against the URL asked;
/// `None` when `resp` is no redirect reqwest would follow, or has no
/// readable `Location`.
fn redirect_target(resp: &reqwest::Response, from: &url::Url) -> Option<url::Url> {
    let follows = matches!(
        resp.status(),
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    );
    if !follows {
        return None;
    }
    let location = resp.headers().get(header::LOCATION)?.to_str().ok()?;
    from.join(location).ok()
}

fn drop_payload_headers(headers: &mut HeaderMap) {
    for h in [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::CONTENT_ENCODING, header::TRANSFER_ENCODING] {
        headers.remove(h);
    }
}

fn drop_credentials(headers: &mut HeaderMap) {
    for h in [header::AUTHORIZATION, header::COOKIE, header::PROXY_AUTHORIZATION, header::WWW_AUTHENTICATE] {
        headers.remove(h);
    }
    headers.remove("cookie2");
}

#[cfg(test)]
mod tests;
