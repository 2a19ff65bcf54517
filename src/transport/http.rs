//! The HTTP client every source and the HEC output use: rustls with the
//! configured TLS settings, a request timeout, a user agent, and a bounded
//! body reader.

use super::origin::Redirects;
use super::tls::{client_config, TlsError};
use crate::settings::TlsConfig;
use std::time::Duration;

/// The `User-Agent` auditrelay sends.
pub const USER_AGENT: &str = concat!("auditrelay/", env!("CARGO_PKG_VERSION"));

/// This agent's name in a fleet, added to its `User-Agent`.
static AGENT_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Name this agent in every `User-Agent` from now on
/// (`auditrelay/<version> (<name>)`): APIs and receivers can tell the
/// agents of a fleet apart. Only the first call counts.
pub fn set_agent_name(name: &str) {
    let _ = AGENT_NAME.set(format!("{USER_AGENT} ({name})"));
}

/// The `User-Agent` this process sends.
pub fn user_agent() -> &'static str {
    AGENT_NAME.get().map_or(USER_AGENT, String::as_str)
}

/// Longest wait for a TCP connection (the request `timeout` when shorter).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Build a client that follows only the `redirects` given (a source's API
/// requests: within its origins; the token endpoint, HEC, etcd: none).
pub fn client(tls: Option<&TlsConfig>, timeout: Duration, redirects: Redirects) -> Result<reqwest::Client, TlsError> {
    if tls.is_some_and(|t| t.insecure_skip_verify) {
        tracing::warn!("tls.insecure_skip_verify = true: certificates are NOT verified; anyone on the path can read and alter this traffic");
    }
    let config = client_config(tls)?;
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(timeout)
        .connect_timeout(timeout.min(CONNECT_TIMEOUT))
        .user_agent(user_agent())
        .redirect(redirects.policy())
        .build()
        .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit.
    #[error("response larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The connection failed while reading.
    #[error("reading the response: {0}")]
    Read(#[from] reqwest::Error),
}

/// Read a response body, refusing more than `limit` bytes without reading
/// them all into memory.
pub async fn read_body(mut resp: reqwest::Response, limit: u64) -> Result<bytes::Bytes, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if buf.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// An error followed by its causes (`outer: cause: root cause`), each
/// cause only when the text so far does not already say it. reqwest's own
/// message is only "error sending request"; the reason (a certificate that
/// expired or names another host, a refused connection, a timeout) is in
/// its sources, and an operator needs it in the log.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let m = c.to_string();
        if !m.is_empty() && !text.contains(&m) {
            text.push_str(": ");
            text.push_str(&m);
        }
        cause = c.source();
    }
    text
}

/// The URL without its query string and credentials, for logs and errors.
pub fn redact_url(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// A short, printable excerpt of a body for an error message.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if body.len() > 200 {
        format!("{clean}…")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a TLS failure was logged as only "error sending request".
    #[test]
    fn error_chain_names_the_cause_reqwest_hides() {
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request")]
        struct Outer(#[source] std::io::Error);
        let cause = std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid peer certificate: UnknownIssuer");
        assert_eq!(error_chain(&Outer(cause)), "error sending request: invalid peer certificate: UnknownIssuer");
    }
}
