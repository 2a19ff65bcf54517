//! The keys of a `type = "onepassword"` source beyond the common ones, what
//! it checks about them and the limits of 1Password's Events API they are
//! checked against.

use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::{HttpUrl, Problems, Validate};
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
    #[serde(default = "default_url")]
    pub url: HttpUrl,
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

fn default_url() -> HttpUrl {
    HttpUrl::known(ONEPASSWORD_SERVERS[0])
}

impl Validate for OnepasswordConfig {
    type Valid = SetSecret;
    /// The token, the one key it requires (`url` has a default).
    fn validate(&self, at: &str, p: &mut Problems) -> Option<SetSecret> {
        SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref()).require(at, p)
    }
}

impl SourceSpec for OnepasswordConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        Some(&self.url)
    }
    fn limits(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        if common.page_size.is_some_and(|n| n > ONEPASSWORD_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "1Password allows at most 1000");
        }
    }
}
