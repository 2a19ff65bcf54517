//! The keys of a `type = "keepnet"` source beyond the common ones and what
//! it checks about them.

use crate::settings::secret::{SecretKey, SecretRef};
use crate::settings::Problems;
use crate::sources::common::{SourceCommon, SourceSpec};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "keepnet"`: OAuth2 client credentials.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepnetConfig {
    /// Base URL of the Keepnet API.
    #[serde(default)]
    pub url: Option<String>,
    /// OAuth2 client id.
    #[serde(default)]
    pub client_id: Option<SecretRef>,
    /// OAuth2 client secret.
    #[serde(default)]
    pub client_secret: Option<SecretRef>,
    /// File holding the OAuth2 client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
}

impl SourceSpec for KeepnetConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("client_secret", self.client_secret.as_ref(), self.client_secret_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
    fn validate(&self, at: &str, _common: &SourceCommon, p: &mut Problems) {
        p.url(at, self.url.as_deref());
        if self.client_id.is_none() {
            p.add(format!("{at}.client_id"), "is required");
        }
        p.secret(at, "client_secret", self.client_secret.is_some() || self.client_secret_file.is_some());
    }
}
