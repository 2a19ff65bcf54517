//! The keys of a `type = "slack"` source beyond the common ones, what it
//! checks about them and the limits of Slack's API they are checked
//! against.

use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::{HttpUrl, Problems, Validate};
use crate::sources::common::{SourceCommon, SourceSpec};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "slack"`: the Audit Logs API of an Enterprise Grid organisation,
/// read with an org-level user token (`xoxp-`) holding `auditlogs:read`,
/// sent as `Authorization: Bearer`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Base URL of the API (`https://api.slack.com`; `/audit/v1/logs` is appended).
    #[serde(default = "default_url")]
    pub url: HttpUrl,
    /// The org owner's user token (`xoxp-…`) with the `auditlogs:read` scope.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// Slack's Audit Logs API.
pub const SLACK_API: &str = "https://api.slack.com";
/// Slack's largest `limit` on `/audit/v1/logs`.
pub const SLACK_MAX_PAGE_SIZE: u32 = 9999;

fn default_url() -> HttpUrl {
    HttpUrl::known(SLACK_API)
}

impl Validate for SlackConfig {
    type Valid = SetSecret;
    /// The token, the one key it requires (`url` has a default).
    fn validate(&self, at: &str, p: &mut Problems) -> Option<SetSecret> {
        SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref()).require(at, p)
    }
}

impl SourceSpec for SlackConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        Some(&self.url)
    }
    fn limits(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        if common.page_size.is_some_and(|n| n > SLACK_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "Slack allows at most 9999");
        }
        // Entries are dated in whole seconds: one dated in the second a
        // window ends may appear after the window was read, dated before
        // the next window's start, unless the lag or lookback covers it.
        let (lag, lookback) = (common.lag.map(|d| d.0), common.lookback.map(|d| d.0));
        let covered = |d: Option<std::time::Duration>| d.is_none_or(|d| d >= std::time::Duration::from_secs(1));
        if !covered(lag) && !covered(lookback) {
            p.add(
                format!("{at}.lag"),
                "Slack dates entries in whole seconds: lag or lookback must be at least 1s, or entries dated in the \
                 second a window ends are missed",
            );
        }
    }
}
