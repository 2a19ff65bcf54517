//! The keys of a `type = "atlassian"` source beyond the common ones, what
//! it checks about them and the limits of Atlassian's Admin API they are
//! checked against.

use crate::settings::secret::{SecretKey, SecretRef};
use crate::settings::Problems;
use crate::sources::common::{SourceCommon, SourceSpec};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "atlassian"`: the audit log of one Atlassian organisation, read
/// with an organisation API key sent as `Authorization: Bearer`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtlassianConfig {
    /// The organisation's id (admin.atlassian.com/o/{org_id}/…):
    /// `/admin/v1/orgs/{org_id}/events`.
    #[serde(default)]
    pub org_id: Option<String>,
    /// An organisation API key (Settings → API keys), created by an
    /// organisation admin.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API key.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Base URL of the API (`https://api.atlassian.com`; `/admin/v1/orgs/…` is appended).
    #[serde(default)]
    pub url: Option<String>,
}

/// Atlassian's Admin API.
pub const ATLASSIAN_API: &str = "https://api.atlassian.com";
/// The largest `limit` asked for. Atlassian documents none; collectors
/// are seen asking 500 (inferred).
pub const ATLASSIAN_MAX_PAGE_SIZE: u32 = 500;

impl SourceSpec for AtlassianConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        Some(self.url.as_deref().unwrap_or(ATLASSIAN_API))
    }
    fn validate(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        p.url(at, self.url());
        p.secret(at, "token", self.token.is_some() || self.token_file.is_some());
        match self.org_id.as_deref() {
            None => {
                p.add(format!("{at}.org_id"), "is required (the organisation's id, in admin.atlassian.com/o/{org_id})")
            }
            Some(id) if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
                p.add(format!("{at}.org_id"), "must be the organisation's id (letters, digits, '-'), not its name")
            }
            Some(_) => {}
        }
        if common.page_size.is_some_and(|n| n > ATLASSIAN_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "at most 500 per page are asked of Atlassian");
        }
    }
}
