//! The keys of a `type = "splunk_hec"` output beyond the common ones and
//! what it checks about them.

use crate::outputs::common::{cleartext_url, JsonPayload, OutputSpec};
use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::units::Dur;
use crate::settings::{HttpUrl, Problem, Problems, Validate};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "splunk_hec"`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// Base URL, e.g. `https://splunk:8088`.
    #[serde(default)]
    pub url: Option<HttpUrl>,
    /// HEC token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the HEC token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Index.
    #[serde(default)]
    pub index: Option<String>,
    /// Sourcetype.
    #[serde(default)]
    pub sourcetype: Option<String>,
    /// Source; the event's source name by default.
    #[serde(default)]
    pub source: Option<String>,
    /// Indexer acknowledgement.
    #[serde(default)]
    pub ack: Option<bool>,
    /// Resend a batch not acknowledged by then.
    #[serde(default)]
    pub ack_timeout: Option<Dur>,
    /// Batches sent before the first is confirmed (default 1).
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    /// Gzip request bodies (default true).
    #[serde(default)]
    pub compression: Option<bool>,
    /// HTTP request timeout.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// `normalised` (default, ECS with `event.original`), `json` (the same) or `raw`.
    #[serde(default)]
    pub payload: JsonPayload,
}

/// The required keys of a `splunk_hec` output, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// Base URL.
    pub url: HttpUrl,
    /// HEC token.
    pub token: SetSecret,
}

impl Validate for SplunkHecConfig {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        let before = p.0.len();
        let url = p.required(at, "url", self.url.as_ref(), "is required (e.g. \"https://splunk.example.com:8088\")");
        let token = SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref()).require(at, p);
        if self.ack_timeout.is_some_and(|d| d.get() < std::time::Duration::from_secs(1)) {
            p.add(format!("{at}.ack_timeout"), "must be at least 1s");
        }
        if self.max_in_flight.is_some_and(|n| !(1..=64).contains(&n)) {
            p.add(format!("{at}.max_in_flight"), "must be between 1 and 64");
        }
        let required = Required { url: url?.clone(), token: token? };
        (p.0.len() == before).then_some(required)
    }
}

impl OutputSpec for SplunkHecConfig {
    fn sends_documents(&self) -> bool {
        self.payload != JsonPayload::Raw
    }
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn warnings(&self, at: &str) -> Vec<Problem> {
        cleartext_url(at, self.url.as_ref(), "the HEC token")
    }
}
