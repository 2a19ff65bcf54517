//! The keys of a `type = "slack"` source beyond the common ones, what it
//! checks about them and the limits of Slack's API they are checked
//! against.

use crate::settings::secret::{SecretKey, SecretRef};
use crate::settings::Problems;
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
    #[serde(default)]
    pub url: Option<String>,
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

impl SourceSpec for SlackConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        Some(self.url.as_deref().unwrap_or(SLACK_API))
    }
    fn validate(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        p.url(at, Some(self.url.as_deref().unwrap_or(SLACK_API)));
        p.secret(at, "token", self.token.is_some() || self.token_file.is_some());
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
