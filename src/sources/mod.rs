//! Sources: the hook trait ([`api`]), authentication ([`auth`]), the
//! generic poller ([`poller`]), the keys every source has ([`common`]), the
//! registry of source types ([`kinds`], one line per type) and one folder
//! per API, owning its config, its connector and its tests.

pub mod api;
pub mod atlassian;
pub mod auth;
pub mod cloudflare;
pub mod common;
pub mod demo;
/// The connector kept as documentation (docs/adding-a-connector.md): built
/// for the tests only, not in a release.
#[cfg(test)]
pub mod example;
pub mod github;
pub mod google_workspace;
pub mod guance;
pub mod http_json;
pub mod invicti;
pub mod json;
pub mod keepnet;
pub mod kinds;
pub mod microsoft_365;
pub mod okta;
pub mod onepassword;
pub mod opencti;
pub mod poller;
pub mod sekoia;
pub mod slack;
#[cfg(test)]
pub(crate) mod testkit;

pub use common::{Headers, SourceCommon, SourceSpec};
pub use kinds::SourceKind;

use crate::settings::secret::Env;
use crate::settings::Problem;
use crate::transport::origin::Origins;
use api::SourceApi;
use auth::Auth;
use poller::{Poller, RequestSettings, Settings, SourceContext};
use std::time::Duration;

// Defaults for every source, where neither its connector (`SourceApi::defaults`)
// nor the config says otherwise.
/// Events per request.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// Time between polls once caught up.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Timeout of one API request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Larger API responses are refused.
pub const DEFAULT_MAX_RESPONSE_SIZE: u64 = 32 << 20;

/// Why a poll failed. Every variant names the source; none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The API refused the credentials (HTTP 401/403, or a vendor's equivalent).
    #[error("source {source_name}: {url} refused the credentials (HTTP {status}): {detail}")]
    Auth {
        /// Source name.
        source_name: String,
        /// URL without query.
        url: String,
        /// HTTP status.
        status: u16,
        /// The API's explanation.
        detail: String,
    },
    /// Getting an OAuth2 token failed.
    #[error("source {source_name}: {detail}")]
    Token {
        /// Source name.
        source_name: String,
        /// What failed.
        detail: String,
    },
    /// A client error that retrying will not fix.
    #[error("source {source_name}: {url} answered HTTP {status}: {excerpt}")]
    Http {
        /// Source name.
        source_name: String,
        /// URL without query.
        url: String,
        /// HTTP status.
        status: u16,
        /// Short excerpt of the body.
        excerpt: String,
    },
    /// Throttling, server errors or network failures outlasted the retries of one poll.
    #[error("source {source_name}: {url} unavailable: {detail}")]
    Unavailable {
        /// Source name.
        source_name: String,
        /// URL without query.
        url: String,
        /// The last failure.
        detail: String,
    },
    /// The response was larger than `max_response_size`.
    #[error("source {source_name}: {url} sent a response larger than max_response_size ({limit} bytes)")]
    TooLarge {
        /// Source name.
        source_name: String,
        /// URL without query.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The body was not JSON or not the expected shape.
    #[error("source {source_name}: unexpected response from {url}: {detail}")]
    Shape {
        /// Source name.
        source_name: String,
        /// URL without query.
        url: String,
        /// What was wrong, with a short excerpt.
        detail: String,
    },
    /// A request would have taken the credentials to another origin (an
    /// API-given URL or a redirect); nothing was sent there.
    #[error("source {source_name}: refused to send a request to {origin}: {why}; credentials go only to the configured url's origin (list another in allowed_origins to permit it)")]
    ForeignOrigin {
        /// Source name.
        source_name: String,
        /// The refused origin (`scheme://host:port`).
        origin: String,
        /// How the source was pointed there.
        why: String,
    },
    /// One walk reached its page or time limit: an API that keeps handing
    /// out new pages. What it took is kept; the next poll goes on from
    /// the cursor.
    #[error("source {source_name}: one poll reached {limit} and stopped; the API keeps handing out new pages (a runaway API, or raise the limit for a very long catch-up)")]
    Runaway {
        /// Source name.
        source_name: String,
        /// The limit reached.
        limit: String,
    },
    /// The API returned the same page or cursor again.
    #[error("source {source_name}: pagination loop: {detail}")]
    Loop {
        /// Source name.
        source_name: String,
        /// What repeated.
        detail: String,
    },
    /// The state database failed (fatal).
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Shutdown was requested.
    #[error("cancelled")]
    Cancelled,
}

pub(crate) use crate::transport::http::endpoint;

/// A vendor's time: RFC 3339, or ISO 8601 without a zone read as UTC
/// (vendors that leave the zone out; each connector says where it assumes
/// this).
pub(crate) fn utc_time(v: Option<&serde_json::Value>) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = v?.as_str()?.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc())
}

/// `t` rounded up to a whole `unit` (a time filter with coarser precision
/// than the window must not cut the window's end short).
pub(crate) fn ceil_to(t: chrono::DateTime<chrono::Utc>, unit: chrono::Duration) -> chrono::DateTime<chrono::Utc> {
    use chrono::DurationRound;
    match t.duration_trunc(unit) {
        Ok(down) if down == t => t,
        Ok(down) => down + unit,
        Err(_) => t,
    }
}

/// `t` rounded down to a whole `unit`.
pub(crate) fn floor_to(t: chrono::DateTime<chrono::Utc>, unit: chrono::Duration) -> chrono::DateTime<chrono::Utc> {
    use chrono::DurationRound;
    t.duration_trunc(unit).unwrap_or(t)
}

/// A connector's hooks and authentication, built from its config.
pub type Built = Option<(Box<dyn SourceApi>, Auth)>;

/// What a connector's `build` is given besides its own config: the
/// source's key path (`source[2]`) for problems, where secrets come from,
/// and the list its problems go to (it returns `None` when it reported one).
pub struct BuildCtx<'a> {
    /// The source's key path.
    pub at: &'a str,
    /// Where `${ENV}` and `*_file` secrets are read.
    pub env: &'a dyn Env,
    /// Where problems go.
    pub problems: &'a mut Vec<Problem>,
}

/// Wires a connector's `build(cfg, required, at, env, problems) -> Built`
/// function to its config type, so that [`build_api`] reaches it through
/// the registry of source types ([`kinds`]): one line in the connector
/// file, `super::connector!(AcmeConfig => build);`. The build is given
/// what the type's [`crate::settings::Validate`] impl made of its required
/// keys (the file was validated when it was loaded, so this finds no
/// problem there; a config that was not is refused with its problems).
macro_rules! connector {
    ($cfg:ty => $build:path) => {
        impl<'a> $crate::settings::Build<$crate::sources::BuildCtx<'a>> for $cfg {
            type Output = $crate::sources::Built;
            fn build(&self, ctx: $crate::sources::BuildCtx<'a>) -> $crate::sources::Built {
                let mut p = $crate::settings::Problems::default();
                let required = $crate::settings::Validate::validate(self, ctx.at, &mut p);
                ctx.problems.extend(p.into_parts().0);
                $build(self, required?, ctx.at, ctx.env, ctx.problems)
            }
        }
    };
}
pub(crate) use connector;

/// Build the vendor hooks and authentication of a source of type `kind`.
/// `at` is its key path (`source[2]`) for problems.
pub fn build_api(kind: &SourceKind, at: &str, env: &dyn Env) -> Result<(Box<dyn SourceApi>, Auth), Vec<Problem>> {
    let mut problems = Vec::new();
    let built = kind.build(BuildCtx { at, env, problems: &mut problems });
    match built {
        Some(b) if problems.is_empty() => Ok(b),
        _ => Err(problems),
    }
}

/// Resolve the secrets of a source of type `kind` (for `check`, when its
/// keys are not valid and it cannot be built), without connecting anywhere.
pub fn check_secrets(kind: &SourceKind, at: &str, env: &dyn Env) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    crate::settings::secret::check_secrets(&kind.spec().secrets(), at, env, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The configured `headers` as sent, each value marked sensitive (a header
/// may carry a key; `Debug` then prints `Sensitive`).
fn header_map(cfg: &SourceCommon, at: &str) -> Result<reqwest::header::HeaderMap, Vec<Problem>> {
    use reqwest::header::{HeaderName, HeaderValue};
    let mut map = reqwest::header::HeaderMap::new();
    let mut problems = Vec::new();
    for (name, value) in cfg.headers.iter().flatten() {
        let path = format!("{at}.headers.{name}");
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            (Ok(n), Ok(mut v)) => {
                v.set_sensitive(true);
                map.insert(n, v);
            }
            (Err(_), _) => problems.push(Problem::new(path, "is not a valid header name")),
            (_, Err(_)) => problems.push(Problem::new(path, "value is not a valid header value")),
        }
    }
    if problems.is_empty() {
        Ok(map)
    } else {
        Err(problems)
    }
}

/// Build a ready-to-run poller from a `[[source]]`: its `name`, the keys
/// every source has and its type's. `at` is its key path (`source[2]`).
pub fn build(
    name: &str,
    common: &SourceCommon,
    kind: &SourceKind,
    at: &str,
    env: &dyn Env,
    ctx: SourceContext,
) -> Result<Poller, Vec<Problem>> {
    let (api, auth) = build_api(kind, at, env)?;
    let d = api.defaults();
    let name = name.to_owned();
    let url = kind.spec().url();
    let cfg = common;
    let settings = Settings {
        name,
        interval: cfg.interval.map_or(d.interval, |x| x.get()),
        start_at: cfg.start_at.clone().unwrap_or_default(),
        page_size: cfg.page_size.unwrap_or(d.page_size),
        lag: cfg.lag.map_or(d.lag, |x| x.get()),
        lookback: cfg.lookback.map_or(d.lookback, |x| x.get()),
        max_window: cfg.max_window.map(|x| x.get()).or(d.max_window),
        max_pages: cfg.max_pages.unwrap_or(poller::DEFAULT_MAX_PAGES),
        max_poll_time: cfg.max_poll_time.map(|d| d.get()).or(d.max_poll_time).unwrap_or(poller::DEFAULT_MAX_POLL_TIME),
    };
    let request = RequestSettings {
        timeout: cfg.timeout.map_or(DEFAULT_TIMEOUT, |x| x.get()),
        max_response_size: cfg.max_response_size.map_or(DEFAULT_MAX_RESPONSE_SIZE, |x| x.bytes()),
        rate_limit: cfg.rate_limit.or(d.rate_limit),
        headers: header_map(cfg, at)?,
        origins: origins(url, cfg),
    };
    let tls_problem = |e: crate::transport::tls::TlsError| vec![Problem::new(format!("{at}.tls"), e.to_string())];
    let client = ctx.http.get(cfg.tls.as_ref()).map_err(tls_problem)?;
    Ok(Poller::new(settings, request, api, client, auth, ctx))
}

/// The origins a source's requests may go to: its `url`'s and
/// `allowed_origins`.
fn origins(url: Option<&url::Url>, cfg: &SourceCommon) -> Origins {
    let also: Vec<url::Url> = cfg.allowed_origins.iter().flatten().map(|o| o.url().clone()).collect();
    Origins::pinned(url, &also)
}
