//! The keys of a `type = "guance"` source beyond the common ones and what
//! it checks about them.

use crate::settings::secret::{SecretKey, SecretRef};
use crate::settings::{HttpUrl, Problems, Validate};
use crate::sources::common::{SourceSpec, UrlAndToken};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "guance"`: the API key goes in `DF-API-KEY`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuanceConfig {
    /// Base URL of the Guance OpenAPI.
    #[serde(default)]
    pub url: Option<HttpUrl>,
    /// API key.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API key.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The DQL query for audit events.
    #[serde(default)]
    pub query: Option<String>,
}

impl Validate for GuanceConfig {
    type Valid = UrlAndToken;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<UrlAndToken> {
        UrlAndToken::validate(at, self.url.as_ref(), self.token.as_ref(), self.token_file.as_ref(), p)
    }
}

impl SourceSpec for GuanceConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        self.url.as_deref()
    }
    fn credential_header(&self) -> Option<&str> {
        Some("df-api-key")
    }
}
