//! The HTTP clients: shared by the sources per TLS setting ([`Clients`]),
//! or of their own (the HEC output, etcd); rustls with the configured TLS
//! settings, a user agent, and a bounded body reader.

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

/// Build a client of its own that follows only the `redirects` given (the
/// HEC output and etcd: none). Sources share theirs ([`Clients`]).
pub fn client(tls: Option<&TlsConfig>, timeout: Duration, redirects: Redirects) -> Result<reqwest::Client, TlsError> {
    build(tls, Some(timeout), redirects.policy())
}

/// Idle connections a shared client keeps per host: enough for the
/// requests a busy agent has in flight to one API (the sources' fetch
/// slots), without thousands of idle sockets after a catch-up.
pub const POOL_IDLE_PER_HOST: usize = 16;

/// The clients the sources of one build share: one per distinct `tls`
/// setting (CA, client certificate, server name, verification), each with
/// its connection pool and rustls root store, instead of two per source.
/// Such a client follows no redirect (each source follows its own with
/// `transport::redirect::send`) and has no timeout of its own (each request
/// carries its source's). A new build (a reload) makes new clients, so a
/// CA file changed on disk is read again.
#[derive(Default)]
pub struct Clients {
    built: std::sync::Mutex<Vec<(TlsConfig, reqwest::Client)>>,
}

impl Clients {
    /// The client for `tls`, built on first use.
    pub fn get(&self, tls: Option<&TlsConfig>) -> Result<reqwest::Client, TlsError> {
        let key = tls.cloned().unwrap_or_default();
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, c)) = built.iter().find(|(k, _)| *k == key) {
            return Ok(c.clone());
        }
        let client = build(tls, None, reqwest::redirect::Policy::none())?;
        built.push((key, client.clone()));
        Ok(client)
    }

    /// How many distinct clients were built.
    pub fn len(&self) -> usize {
        self.built.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none was built yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn build(
    tls: Option<&TlsConfig>,
    timeout: Option<Duration>,
    redirects: reqwest::redirect::Policy,
) -> Result<reqwest::Client, TlsError> {
    if tls.is_some_and(|t| t.insecure_skip_verify) {
        tracing::warn!("tls.insecure_skip_verify = true: certificates are NOT verified; anyone on the path can read and alter this traffic");
    }
    let config = client_config(tls)?;
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .connect_timeout(timeout.map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT)))
        .user_agent(user_agent())
        .redirect(redirects)
        .referer(false)
        .pool_max_idle_per_host(POOL_IDLE_PER_HOST);
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b.build().map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))
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
    let mut limit = descriptor_limit(e);
    while let Some(c) = cause {
        let m = c.to_string();
        if !m.is_empty() && !text.contains(&m) {
            text.push_str(": ");
            text.push_str(&m);
        }
        limit = limit.or_else(|| descriptor_limit(c));
        cause = c.source();
    }
    if let Some(limit) = limit {
        text.push_str(" (");
        text.push_str(&limit);
        text.push(')');
    }
    text
}

/// Which limit a failure for want of file descriptors hit, in words an
/// operator can act on: the process's (`LimitNOFILE=` in the unit, with
/// its value) or the system's.
pub fn descriptor_limit(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    match e.downcast_ref::<std::io::Error>()?.raw_os_error()? {
        EMFILE => {
            let soft = std::fs::read_to_string("/proc/self/limits").ok().and_then(|l| {
                l.lines().find(|l| l.starts_with("Max open files"))?.split_whitespace().nth(3).map(str::to_owned)
            });
            Some(format!(
                "the agent's open-file limit of {} descriptors is reached: raise LimitNOFILE= in the unit, or ulimit -n",
                soft.as_deref().unwrap_or("?")
            ))
        }
        ENFILE => Some("the system's open-file limit is reached (sysctl fs.file-max)".into()),
        _ => None,
    }
}

/// `base` with `path` appended to its path (`https://h/api` + `v1/x` =
/// `https://h/api/v1/x`); a base that already ends with `path` is kept.
pub fn endpoint(base: &url::Url, path: &str) -> url::Url {
    let mut u = base.clone();
    let head = u.path().trim_end_matches('/').to_owned();
    let tail = path.trim_matches('/');
    if !head.ends_with(&format!("/{tail}")) {
        u.set_path(&format!("{head}/{tail}"));
    }
    u.set_query(None);
    u
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

    /// Sources with the same TLS settings share one client (one pool, one
    /// root store); other settings get their own.
    #[test]
    fn clients_are_one_per_tls_setting() {
        let clients = Clients::default();
        assert!(clients.is_empty());
        clients.get(None).unwrap();
        clients.get(Some(&TlsConfig::default())).unwrap();
        assert_eq!(clients.len(), 1, "no tls table is the default table");
        let named = TlsConfig { server_name: Some("api.example.com".into()), ..TlsConfig::default() };
        clients.get(Some(&named)).unwrap();
        clients.get(Some(&named)).unwrap();
        assert_eq!(clients.len(), 2);
    }

    /// Out of descriptors, the error says which limit and where to raise it.
    #[test]
    fn error_chain_names_the_descriptor_limit_hit() {
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request")]
        struct Outer(#[source] std::io::Error);
        let text = error_chain(&Outer(std::io::Error::from_raw_os_error(24)));
        assert!(text.contains("open-file limit of ") && text.contains("LimitNOFILE="), "{text}");
        assert!(!text.contains("limit of ?"), "the soft limit is read: {text}");
        let text = error_chain(&Outer(std::io::Error::from_raw_os_error(23)));
        assert!(text.contains("system's open-file limit"), "{text}");
        assert!(!error_chain(&Outer(std::io::Error::from_raw_os_error(111))).contains("limit"));
    }

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
