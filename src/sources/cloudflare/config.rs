//! The keys of a `type = "cloudflare"` source beyond the common ones, what
//! it checks about them and the limits of Cloudflare's API they are checked
//! against.

use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::{HttpUrl, Problems, Validate};
use crate::sources::common::{SourceCommon, SourceSpec};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "cloudflare"`: the audit log of one Cloudflare account, read
/// with an API token that has *Account Settings Read*, sent as
/// `Authorization: Bearer`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflareConfig {
    /// The account's id (32 hex digits, in the dashboard's URL and its
    /// Overview page): `/client/v4/accounts/{account_id}/audit_logs`.
    #[serde(default)]
    pub account_id: Option<String>,
    /// An API token with the Account Settings Read permission on the account.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Base URL of the API (`https://api.cloudflare.com`; `/client/v4/…` is appended).
    #[serde(default = "default_url")]
    pub url: HttpUrl,
}

/// The required keys of a `cloudflare` source, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// The account's id.
    pub account_id: String,
    /// The API token.
    pub token: SetSecret,
}

/// Cloudflare's API.
pub const CLOUDFLARE_API: &str = "https://api.cloudflare.com";
/// The largest `per_page` asked for. Cloudflare documents none for the
/// audit log; 1000 is what its users are seen asking (inferred).
pub const CLOUDFLARE_MAX_PAGE_SIZE: u32 = 1000;

fn default_url() -> HttpUrl {
    HttpUrl::known(CLOUDFLARE_API)
}

impl Validate for CloudflareConfig {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        let token = SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref()).require(at, p);
        let account_id = match self.account_id.as_deref() {
            None => p.required(at, "account_id", None::<&String>, "is required (the account's id, 32 hex digits)"),
            Some(id) if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) => {
                p.add(format!("{at}.account_id"), "must be the account's id (32 hex digits), not its name or e-mail");
                None
            }
            Some(_) => self.account_id.as_ref(),
        };
        Some(Required { account_id: account_id?.clone(), token: token? })
    }
}

impl SourceSpec for CloudflareConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        Some(&self.url)
    }
    fn limits(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        if common.page_size.is_some_and(|n| n > CLOUDFLARE_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "at most 1000 per page are asked of Cloudflare");
        }
    }
}
