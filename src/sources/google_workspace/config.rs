//! The keys of a `type = "google_workspace"` source beyond the common ones,
//! what it checks about them and the limits of Google's Reports API they
//! are checked against.

use crate::settings::secret::{SecretKey, SecretRef};
use crate::settings::Problems;
use crate::sources::common::{SourceCommon, SourceSpec};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "google_workspace"`: the Admin SDK Reports API's activities of
/// one application, read by a service account with domain-wide delegation
/// acting for an administrator (`subject`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleWorkspaceConfig {
    /// The application whose activities are read (`admin`, `login`,
    /// `token`, `saml`, `drive`, `groups`, `user_accounts`, …): one source
    /// per application.
    #[serde(default)]
    pub application: Option<String>,
    /// The administrator the service account acts for (domain-wide
    /// delegation), e.g. `reports-reader@example.com`.
    #[serde(default)]
    pub subject: Option<String>,
    /// The service account's JSON key, inline (`"${GOOGLE_SA_KEY}"`).
    #[serde(default)]
    pub key: Option<SecretRef>,
    /// File holding the service account's JSON key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Base URL of the API (`https://admin.googleapis.com`).
    #[serde(default)]
    pub url: Option<String>,
    /// Token endpoint, when not the key file's `token_uri`.
    #[serde(default)]
    pub token_url: Option<String>,
}

/// The Admin SDK's API.
pub const GOOGLE_ADMIN_API: &str = "https://admin.googleapis.com";
/// Google's largest `maxResults` on activities.list.
pub const GOOGLE_MAX_PAGE_SIZE: u32 = 1000;

impl SourceSpec for GoogleWorkspaceConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("key", self.key.as_ref(), self.key_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        Some(self.url.as_deref().unwrap_or(GOOGLE_ADMIN_API))
    }
    fn validate(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        p.url(at, self.url());
        if let Some(t) = &self.token_url {
            p.check_url(format!("{at}.token_url"), t);
        }
        p.secret(at, "key", self.key.is_some() || self.key_file.is_some());
        match self.application.as_deref() {
            None => p.add(format!("{at}.application"), "is required (admin, login, token, saml, drive, …)"),
            Some(a) if a.is_empty() || !a.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
                p.add(format!("{at}.application"), "must be a Reports API application name (admin, login, drive, …)")
            }
            Some(_) => {}
        }
        match self.subject.as_deref() {
            None => p.add(
                format!("{at}.subject"),
                "is required: the administrator the service account acts for (domain-wide delegation)",
            ),
            Some(s) if !s.contains('@') => p.add(format!("{at}.subject"), "must be an administrator's email address"),
            Some(_) => {}
        }
        if common.page_size.is_some_and(|n| n > GOOGLE_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "Google allows at most 1000");
        }
    }
}
