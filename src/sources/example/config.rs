//! The keys of the `type = "example"` source (registered in the tests only)
//! and what it checks about them.

use crate::settings::secret::{SecretKey, SecretRef};
use crate::settings::{HttpUrl, Problems, Validate};
use crate::sources::common::{SourceSpec, UrlAndToken};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "example"`: the connector kept as documentation
/// (`sources/example/`, `docs/adding-a-connector.md`); registered in the
/// tests only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleConfig {
    /// Base URL of the API.
    #[serde(default)]
    pub url: Option<HttpUrl>,
    /// API token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl Validate for ExampleConfig {
    type Valid = UrlAndToken;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<UrlAndToken> {
        UrlAndToken::validate(at, self.url.as_ref(), self.token.as_ref(), self.token_file.as_ref(), p)
    }
}

impl SourceSpec for ExampleConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        self.url.as_deref()
    }
}
