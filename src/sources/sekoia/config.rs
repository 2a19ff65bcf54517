//! The keys of a `type = "sekoia"` source beyond the common ones and what
//! it checks about them.

use crate::settings::secret::{SecretKey, SecretRef};
use crate::settings::{HttpUrl, Problems, Validate};
use crate::sources::common::{SourceSpec, UrlAndToken};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "sekoia"`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SekoiaConfig {
    /// Base URL of the SEKOIA.IO API.
    #[serde(default)]
    pub url: Option<HttpUrl>,
    /// API key (`${ENV}` or literal).
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API key.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The event search term (default: the activity log's dialect term).
    #[serde(default)]
    pub query: Option<String>,
}

impl Validate for SekoiaConfig {
    type Valid = UrlAndToken;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<UrlAndToken> {
        UrlAndToken::validate(at, self.url.as_ref(), self.token.as_ref(), self.token_file.as_ref(), p)
    }
}

impl SourceSpec for SekoiaConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        self.url.as_deref()
    }
}
