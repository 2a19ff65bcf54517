//! The keys of a `type = "opencti"` source beyond the common ones, what it
//! checks about them and the limits of OpenCTI's API they are checked
//! against.

use crate::settings::secret::{SecretKey, SecretRef};
use crate::settings::{HttpUrl, Problems, Validate};
use crate::sources::common::{SourceCommon, SourceSpec, UrlAndToken};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "opencti"`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenctiConfig {
    /// Base URL of the OpenCTI platform.
    #[serde(default)]
    pub url: Option<HttpUrl>,
    /// API token (`${ENV}` or literal).
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Also collect `History` (knowledge changes).
    #[serde(default)]
    pub include_history: Option<bool>,
}

/// Largest `first` OpenCTI accepts (`elasticsearch:max_pagination_result`).
pub const MAX_PAGE_SIZE: u32 = 5000;

impl Validate for OpenctiConfig {
    type Valid = UrlAndToken;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<UrlAndToken> {
        UrlAndToken::validate(at, self.url.as_ref(), self.token.as_ref(), self.token_file.as_ref(), p)
    }
}

impl SourceSpec for OpenctiConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        self.url.as_deref()
    }
    fn limits(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        if common.page_size.is_some_and(|n| n > MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "OpenCTI allows at most 5000");
        }
    }
}
