//! The keys of a `type = "keepnet"` source beyond the common ones and what
//! it checks about them.

use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::{HttpUrl, Problems, Validate};
use crate::sources::common::SourceSpec;
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "keepnet"`: OAuth2 client credentials.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepnetConfig {
    /// Base URL of the Keepnet API.
    #[serde(default)]
    pub url: Option<HttpUrl>,
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

/// The required keys of a `keepnet` source, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// Base URL of the Keepnet API.
    pub url: HttpUrl,
    /// OAuth2 client id.
    pub client_id: SetSecret,
    /// OAuth2 client secret.
    pub client_secret: SetSecret,
}

impl Validate for KeepnetConfig {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        let url = p.required(at, "url", self.url.as_ref(), "is required");
        let client_id = p.required(at, "client_id", self.client_id.as_ref(), "is required");
        let client_secret =
            SecretKey::new("client_secret", self.client_secret.as_ref(), self.client_secret_file.as_ref())
                .require(at, p);
        Some(Required {
            url: url?.clone(),
            client_id: SetSecret::value("client_id", client_id?),
            client_secret: client_secret?,
        })
    }
}

impl SourceSpec for KeepnetConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("client_secret", self.client_secret.as_ref(), self.client_secret_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        self.url.as_deref()
    }
}
