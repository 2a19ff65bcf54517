//! The keys of a `type = "atlassian"` source beyond the common ones, what
//! it checks about them and the limits of Atlassian's Admin API they are
//! checked against.

use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::{HttpUrl, Problems, Validate};
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
    #[serde(default = "default_url")]
    pub url: HttpUrl,
}

/// Atlassian's Admin API.
pub const ATLASSIAN_API: &str = "https://api.atlassian.com";
/// The largest `limit` asked for. Atlassian documents none; collectors
/// are seen asking 500 (inferred).
pub const ATLASSIAN_MAX_PAGE_SIZE: u32 = 500;

/// The required keys of an `atlassian` source, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// The organisation's id.
    pub org_id: String,
    /// The API key.
    pub token: SetSecret,
}

impl Validate for AtlassianConfig {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        let token = SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref()).require(at, p);
        let org_id = match self.org_id.as_deref() {
            None => p.required(
                at,
                "org_id",
                None::<&String>,
                "is required (the organisation's id, in admin.atlassian.com/o/{org_id})",
            ),
            Some(id) if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
                p.add(format!("{at}.org_id"), "must be the organisation's id (letters, digits, '-'), not its name");
                None
            }
            Some(_) => self.org_id.as_ref(),
        };
        Some(Required { org_id: org_id?.clone(), token: token? })
    }
}

fn default_url() -> HttpUrl {
    HttpUrl::known(ATLASSIAN_API)
}

impl SourceSpec for AtlassianConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        Some(&self.url)
    }
    fn limits(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        if common.page_size.is_some_and(|n| n > ATLASSIAN_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "at most 500 per page are asked of Atlassian");
        }
    }
}
