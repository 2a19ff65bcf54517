//! The keys of a `type = "onepassword"` source beyond the common ones, what
//! it checks about them and the limits of 1Password's Events API they are
//! checked against.

use crate::settings::secret::{SecretKey, SecretRef};
use crate::settings::Problems;
use crate::sources::common::{SourceCommon, SourceSpec};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "onepassword"`: the 1Password Events API's audit events, read
/// with an Events Reporting bearer token that has the `auditevents`
/// feature.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnepasswordConfig {
    /// The account's Events API server: `https://events.1password.com`
    /// (1password.com accounts), `https://events.1password.ca`,
    /// `https://events.1password.eu` or `https://events.ent.1password.com`.
    #[serde(default)]
    pub url: Option<String>,
    /// The Events Reporting integration's bearer token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// 1Password's Events API servers, one per region.
pub const ONEPASSWORD_SERVERS: [&str; 4] = [
    "https://events.1password.com",
    "https://events.1password.ca",
    "https://events.1password.eu",
    "https://events.ent.1password.com",
];
/// 1Password's largest `limit` on an audit-events request.
pub const ONEPASSWORD_MAX_PAGE_SIZE: u32 = 1000;

impl SourceSpec for OnepasswordConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        Some(self.url.as_deref().unwrap_or(ONEPASSWORD_SERVERS[0]))
    }
    fn validate(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        p.url(at, self.url());
        p.secret(at, "token", self.token.is_some() || self.token_file.is_some());
        if common.page_size.is_some_and(|n| n > ONEPASSWORD_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "1Password allows at most 1000");
        }
    }
}
