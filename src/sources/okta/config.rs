//! The keys of a `type = "okta"` source beyond the common ones, what it
//! checks about them and the limits of Okta's API they are checked against.

use crate::settings::secret::{SecretKey, SecretRef};
use crate::settings::{HttpUrl, Problems, Validate};
use crate::sources::common::{SourceCommon, SourceSpec, UrlAndToken};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "okta"`: the token goes in `Authorization: SSWS <token>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    /// The Okta org, `https://ORG.okta.com` (not the `-admin` console).
    #[serde(default)]
    pub url: Option<HttpUrl>,
    /// API token of a read-only administrator.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// Okta's largest `limit` on `/api/v1/logs`.
pub const OKTA_MAX_PAGE_SIZE: u32 = 1000;

impl Validate for OktaConfig {
    type Valid = UrlAndToken;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<UrlAndToken> {
        let valid = UrlAndToken::validate(at, self.url.as_ref(), self.token.as_ref(), self.token_file.as_ref(), p);
        let org = self.url.as_ref().and_then(|u| u.host_str()).and_then(|h| h.split('.').next());
        if org.is_some_and(|org| org.ends_with("-admin")) {
            p.add(format!("{at}.url"), "is the Admin Console's address; the API is at the org's, without -admin");
            return None;
        }
        valid
    }
}

impl SourceSpec for OktaConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        self.url.as_deref()
    }
    fn limits(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        if common.page_size.is_some_and(|n| n > OKTA_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "Okta allows at most 1000");
        }
    }
}
