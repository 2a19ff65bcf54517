//! The keys every `[[output]]` has, whatever its type ([`OutputCommon`],
//! with its [`BatchConfig`]), what each type's struct says about itself
//! beyond its keys ([`OutputSpec`]), which the registry
//! ([`super::kinds`]) dispatches to, and the payload vocabulary the
//! `splunk_hec` and `file` outputs share ([`JsonPayload`]).

use crate::event::Payload;
use crate::settings::secret::SecretKey;
use crate::settings::units::{Dur, Size};
use crate::settings::{HttpUrl, Problem, TlsConfig};
use serde::Deserialize;

/// The keys every `[[output]]` has, whatever its type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputCommon {
    /// Events per second at most; 0 = no limit. Pacing delays, never drops.
    #[serde(default)]
    pub max_eps: Option<u32>,
    /// Batch limits.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Longest wait between retries.
    #[serde(default = "default_retry_max_interval")]
    pub retry_max_interval: Dur,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// How often completeness manifests close (`"off"`: none); unset, the
    /// default for an output that sends JSON documents, off for the rest.
    #[serde(default)]
    pub manifest_interval: Option<ManifestInterval>,
}

/// `manifest_interval = "5m"` or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestInterval {
    /// No manifests, no window tags.
    Off,
    /// Close the windows this often.
    Every(Dur),
}

impl<'de> Deserialize<'de> for ManifestInterval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().eq_ignore_ascii_case("off") {
            return Ok(ManifestInterval::Off);
        }
        Dur::parse(&s).map(ManifestInterval::Every).map_err(serde::de::Error::custom)
    }
}

impl OutputCommon {
    /// The manifest interval an output of a type that does (`documents`)
    /// or does not send the JSON document runs with.
    pub fn manifests(&self, documents: bool) -> Option<std::time::Duration> {
        match self.manifest_interval {
            Some(ManifestInterval::Off) => None,
            Some(ManifestInterval::Every(d)) => Some(d.get()),
            None => documents.then_some(crate::manifest::DEFAULT_INTERVAL),
        }
    }
}

/// Longest wait between retries of an output.
pub const DEFAULT_RETRY_MAX_INTERVAL: Dur = Dur::secs(60);

fn default_retry_max_interval() -> Dur {
    DEFAULT_RETRY_MAX_INTERVAL
}

impl Default for OutputCommon {
    fn default() -> Self {
        OutputCommon {
            max_eps: None,
            batch: BatchConfig::default(),
            retry_max_interval: DEFAULT_RETRY_MAX_INTERVAL,
            tls: None,
            manifest_interval: None,
        }
    }
}

/// What an output type's struct says about itself beyond its keys. Its
/// own keys are checked by its [`crate::settings::Validate`] impl, into
/// what its sink is built from.
pub trait OutputSpec {
    /// The keys holding its credentials (none: it sends none).
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        Vec::new()
    }
    /// `max_eps` when the config sets none.
    fn default_max_eps(&self) -> Option<u32> {
        None
    }
    /// Whether it sends each event's JSON document (normalised, with
    /// `event.original`), which completeness manifests need: their window
    /// tag goes in it and their digest is over it.
    fn sends_documents(&self) -> bool {
        false
    }
    /// What `check` warns about in its keys at `at`: settings that work but
    /// send its credentials or the events in the clear.
    fn warnings(&self, _at: &str) -> Vec<Problem> {
        Vec::new()
    }
}

/// The warning for an output whose `url` at `{at}.url` is `http://`:
/// `what` (`"the HEC token"`) and every event travel unencrypted.
pub fn cleartext_url(at: &str, url: Option<&HttpUrl>, what: &str) -> Vec<Problem> {
    url.filter(|u| u.scheme() == "http")
        .map(|_| {
            Problem::new(
                format!("{at}.url"),
                format!("is http://: {what} and every event travel unencrypted; use https://"),
            )
        })
        .into_iter()
        .collect()
}

/// `batch = { max_events, max_bytes, timeout }`
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Events per batch at most.
    #[serde(default = "default_batch_events")]
    pub max_events: usize,
    /// Encoded bytes per batch at most (one larger event is sent alone).
    #[serde(default = "default_batch_bytes")]
    pub max_bytes: Size,
    /// Longest wait for a batch to fill.
    #[serde(default = "default_batch_timeout")]
    pub timeout: Dur,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: default_batch_events(),
            max_bytes: default_batch_bytes(),
            timeout: default_batch_timeout(),
        }
    }
}

fn default_batch_events() -> usize {
    500
}
fn default_batch_bytes() -> Size {
    Size(1 << 20)
}
fn default_batch_timeout() -> Dur {
    Dur::secs(1)
}

/// What a `splunk_hec` or `file` output sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonPayload {
    /// The ECS document with the raw event in `event.original`.
    #[default]
    Normalised,
    /// The same as `normalised`.
    Json,
    /// The API's JSON untouched.
    Raw,
}

impl JsonPayload {
    /// The event's JSON this sends.
    pub fn payload(self) -> Payload {
        match self {
            JsonPayload::Normalised | JsonPayload::Json => Payload::Normalised,
            JsonPayload::Raw => Payload::Raw,
        }
    }
}
