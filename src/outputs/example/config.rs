//! The keys of a `type = "example"` output beyond the common ones and what
//! it checks about them.

use crate::outputs::common::{cleartext_url, OutputSpec};
use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::units::Dur;
use crate::settings::{HttpUrl, Problem, Problems, Validate};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "example"`: a made-up HTTP collector (`outputs/example/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleConfig {
    /// The collector's base URL (`https://collector.example.com`).
    #[serde(default)]
    pub url: Option<HttpUrl>,
    /// The ingest token, sent as `Authorization: Bearer`.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// A file holding the token instead.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Longest one request takes.
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// The required keys of an `example` output, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// The collector's base URL.
    pub url: HttpUrl,
    /// The token, set but not yet read.
    pub token: SetSecret,
}

impl Validate for ExampleConfig {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        let url = p.required(at, "url", self.url.as_ref(), "is required (e.g. \"https://collector.example.com\")");
        let token = SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref()).require(at, p);
        Some(Required { url: url?.clone(), token: token? })
    }
}

impl OutputSpec for ExampleConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn sends_documents(&self) -> bool {
        true
    }
    fn warnings(&self, at: &str) -> Vec<Problem> {
        cleartext_url(at, self.url.as_ref(), "the ingest token")
    }
}
