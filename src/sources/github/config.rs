//! The keys of a `type = "github"` source beyond the common ones, what it
//! checks about them and the limits of GitHub's API they are checked
//! against.

use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::{HttpUrl, Problems, Validate};
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
    #[serde(default = "default_url")]
    pub url: HttpUrl,
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

/// The audit log a `github` source reads: an organisation's or an
/// enterprise's, by its login or slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditLog {
    /// `org`.
    Org(String),
    /// `enterprise`.
    Enterprise(String),
}

/// The required keys of a `github` source, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// `org` or `enterprise`, exactly one.
    pub log: AuditLog,
    /// The token.
    pub token: SetSecret,
}

impl Validate for GithubConfig {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        let token = SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref()).require(at, p);
        let log = match (&self.org, &self.enterprise) {
            (None, None) => p.required(at, "org", None::<&AuditLog>, "is required (or enterprise)").cloned(),
            (Some(_), Some(_)) => {
                p.add(format!("{at}.enterprise"), "cannot be set with org: a source reads one audit log");
                None
            }
            (Some(org), None) => Some(AuditLog::Org(org.clone())),
            (None, Some(enterprise)) => Some(AuditLog::Enterprise(enterprise.clone())),
        };
        let mut slugs_ok = true;
        for (key, v) in [("org", &self.org), ("enterprise", &self.enterprise)] {
            let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
            if v.as_deref().is_some_and(|v| v.is_empty() || !v.chars().all(ok)) {
                p.add(format!("{at}.{key}"), "must be a GitHub login or slug (letters, digits, '-')");
                slugs_ok = false;
            }
        }
        Some(Required { log: log.filter(|_| slugs_ok)?, token: token? })
    }
}

fn default_url() -> HttpUrl {
    HttpUrl::known(GITHUB_API)
}

impl SourceSpec for GithubConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        Some(&self.url)
    }
    fn limits(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        if common.page_size.is_some_and(|n| n > GITHUB_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "GitHub allows at most 100");
        }
    }
}
