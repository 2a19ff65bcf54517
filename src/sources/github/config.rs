//! The keys of a `type = "github"` source beyond the common ones, what it
//! checks about them and the limits of GitHub's API they are checked
//! against.

use crate::settings::secret::{SecretKey, SecretRef};
use crate::settings::Problems;
use crate::sources::common::{SourceCommon, SourceSpec};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "github"`: the audit log of one organisation or one enterprise
/// (exactly one of `org` and `enterprise`), read with a token that has
/// `read:audit_log`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// Base URL of the REST API (`https://HOST/api/v3` for GitHub Enterprise Server).
    #[serde(default)]
    pub url: Option<String>,
    /// The organisation's login (`/orgs/{org}/audit-log`).
    #[serde(default)]
    pub org: Option<String>,
    /// The enterprise's slug (`/enterprises/{enterprise}/audit-log`).
    #[serde(default)]
    pub enterprise: Option<String>,
    /// Personal access token or app token with `read:audit_log`.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// GitHub's REST API.
pub const GITHUB_API: &str = "https://api.github.com";
/// GitHub's largest audit log page.
const GITHUB_MAX_PAGE_SIZE: u32 = 100;

impl SourceSpec for GithubConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        Some(self.url.as_deref().unwrap_or(GITHUB_API))
    }
    fn validate(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        p.url(at, Some(self.url.as_deref().unwrap_or(GITHUB_API)));
        p.secret(at, "token", self.token.is_some() || self.token_file.is_some());
        match (&self.org, &self.enterprise) {
            (None, None) => p.add(format!("{at}.org"), "is required (or enterprise)"),
            (Some(_), Some(_)) => {
                p.add(format!("{at}.enterprise"), "cannot be set with org: a source reads one audit log")
            }
            _ => {}
        }
        for (key, v) in [("org", &self.org), ("enterprise", &self.enterprise)] {
            let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
            if v.as_deref().is_some_and(|v| v.is_empty() || !v.chars().all(ok)) {
                p.add(format!("{at}.{key}"), "must be a GitHub login or slug (letters, digits, '-')");
            }
        }
        if common.page_size.is_some_and(|n| n > GITHUB_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "GitHub allows at most 100");
        }
    }
}
