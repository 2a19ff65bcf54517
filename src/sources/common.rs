//! The keys every `[[source]]` has, whatever its type ([`SourceCommon`]),
//! and what each type's struct says about itself beyond its keys
//! ([`SourceSpec`]), which the registry ([`super::kinds`]) dispatches to.
//! The required keys of a connector, checked once by its `Validate` impl
//! into the `Required` value its `build` takes, are often its URL and one
//! token ([`UrlAndToken`]).

use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::units::{Dur, Rate, Size, StartAt};
use crate::settings::{HttpUrl, Origin, Problems, TlsConfig};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The keys every `[[source]]` has, whatever its type.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCommon {
    /// Time between polls once caught up.
    #[serde(default)]
    pub interval: Option<Dur>,
    /// Where a source without a cursor starts: RFC 3339 or a duration back.
    #[serde(default)]
    pub start_at: Option<StartAt>,
    /// Events asked for per request.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Requests to this API, e.g. `"5/s"`.
    #[serde(default)]
    pub rate_limit: Option<Rate>,
    /// Events younger than this are left for the next poll.
    #[serde(default)]
    pub lag: Option<Dur>,
    /// Re-ask this far behind the cursor; ids already taken are dropped.
    #[serde(default)]
    pub lookback: Option<Dur>,
    /// Request timeout.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Larger responses are refused.
    #[serde(default)]
    pub max_response_size: Option<Size>,
    /// Outputs this source's events go to; every output by default.
    #[serde(default)]
    pub outputs: Option<Vec<String>>,
    /// TLS settings for the API connection.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Extra HTTP headers on every request.
    #[serde(default)]
    pub headers: Option<Headers>,
    /// Longest time window asked for in one poll (catch-up is split).
    #[serde(default)]
    pub max_window: Option<Dur>,
    /// Origins (`https://host:port`) besides the configured `url`'s that
    /// the API may send the source to (a `Link`, a `next` URL, a redirect)
    /// and that then receive its credentials. None by default.
    #[serde(default)]
    pub allowed_origins: Option<Vec<Origin>>,
    /// Most pages one poll takes (a runaway API is stopped there).
    #[serde(default)]
    pub max_pages: Option<u64>,
    /// Longest one poll runs.
    #[serde(default)]
    pub max_poll_time: Option<Dur>,
}

/// A source's `headers`: names and values as configured. A value can carry
/// a tenant id or, against the rules `check` applies, a key, so `Debug`
/// (and everything that logs a config) shows the names only, and a value of
/// the wrong type is reported without quoting it (read as a
/// [`SecretRef`]).
#[derive(Clone, PartialEq, Default)]
pub struct Headers(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, SecretRef>::deserialize(d)?;
        Ok(Headers(map.into_iter().map(|(k, v)| (k, v.0)).collect()))
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.keys().map(|k| (k, "[redacted]"))).finish()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// What a source type's struct says about itself beyond its keys. Its
/// own keys are checked by its [`crate::settings::Validate`] impl, into
/// what its connector is built from.
pub trait SourceSpec {
    /// Report what the vendor's API asks of the keys every source has (a
    /// page size it allows at most). `at` is the source's key path
    /// (`source[2]`).
    fn limits(&self, _at: &str, _common: &SourceCommon, _p: &mut Problems) {}
    /// The API's URL as configured, or its default (`check --connect`
    /// tries to reach it); `None` when unset or when it makes no requests.
    fn url(&self) -> Option<&url::Url>;
    /// The request header that carries the credentials, which a configured
    /// header of the same name would collide with (`None`: no credentials).
    fn credential_header(&self) -> Option<&str> {
        Some("authorization")
    }
    /// The keys holding its credentials (none: it sends none).
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        Vec::new()
    }
    /// Whether the source makes HTTP requests at all (the demo does not, so
    /// `headers`, `tls`, `timeout`, … are errors there).
    fn makes_requests(&self) -> bool {
        true
    }
}

/// The required keys of a connector that needs only its API's `url` and a
/// `token` (or `token_file`), both checked as present.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlAndToken {
    /// The API's URL.
    pub url: HttpUrl,
    /// The token, set inline or by file.
    pub token: SetSecret,
}

impl UrlAndToken {
    /// `url` (reported as `"is required"`) and `token` (or `token_file`)
    /// of the source at `at`, when both are set.
    pub fn validate(
        at: &str,
        url: Option<&HttpUrl>,
        token: Option<&SecretRef>,
        token_file: Option<&std::path::PathBuf>,
        p: &mut Problems,
    ) -> Option<Self> {
        let url = p.required(at, "url", url, "is required");
        let token = SecretKey::new("token", token, token_file).require(at, p);
        Some(UrlAndToken { url: url?.clone(), token: token? })
    }
}
