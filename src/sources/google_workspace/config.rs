//! The keys of a `type = "google_workspace"` source beyond the common ones,
//! what it checks about them and the limits of Google's Reports API they
//! are checked against.

use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::{HttpUrl, Problems, Validate};
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
    #[serde(default = "default_url")]
    pub url: HttpUrl,
    /// Token endpoint, when not the key file's `token_uri`.
    #[serde(default)]
    pub token_url: Option<HttpUrl>,
}

/// The Admin SDK's API.
pub const GOOGLE_ADMIN_API: &str = "https://admin.googleapis.com";
/// Google's largest `maxResults` on activities.list.
pub const GOOGLE_MAX_PAGE_SIZE: u32 = 1000;

fn default_url() -> HttpUrl {
    HttpUrl::known(GOOGLE_ADMIN_API)
}

/// The required keys of a `google_workspace` source, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// The application whose activities are read.
    pub application: String,
    /// The administrator the service account acts for.
    pub subject: String,
    /// The service account's JSON key.
    pub key: SetSecret,
}

impl Validate for GoogleWorkspaceConfig {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        let key = SecretKey::new("key", self.key.as_ref(), self.key_file.as_ref()).require(at, p);
        let application = match self.application.as_deref() {
            None => p.required(at, "application", None::<&String>, "is required (admin, login, token, saml, drive, …)"),
            Some(a) if a.is_empty() || !a.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
                p.add(format!("{at}.application"), "must be a Reports API application name (admin, login, drive, …)");
                None
            }
            Some(_) => self.application.as_ref(),
        };
        let subject = match self.subject.as_deref() {
            None => p.required(
                at,
                "subject",
                None::<&String>,
                "is required: the administrator the service account acts for (domain-wide delegation)",
            ),
            Some(s) if !s.contains('@') => {
                p.add(format!("{at}.subject"), "must be an administrator's email address");
                None
            }
            Some(_) => self.subject.as_ref(),
        };
        Some(Required { application: application?.clone(), subject: subject?.clone(), key: key? })
    }
}

impl SourceSpec for GoogleWorkspaceConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("key", self.key.as_ref(), self.key_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        Some(&self.url)
    }
    fn limits(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        if common.page_size.is_some_and(|n| n > GOOGLE_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "Google allows at most 1000");
        }
    }
}
