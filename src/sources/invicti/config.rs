//! The keys of a `type = "invicti"` source beyond the common ones, what it
//! checks about them and the limits of Invicti Enterprise's API they are
//! checked against.

use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::{HttpUrl, Problems, Validate};
use crate::sources::common::{SourceCommon, SourceSpec};
use serde::Deserialize;
use std::path::PathBuf;

/// `type = "invicti"`: HTTP Basic with a user id and a token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvictiConfig {
    /// Base URL of Invicti Enterprise.
    #[serde(default)]
    pub url: Option<HttpUrl>,
    /// API user id.
    #[serde(default)]
    pub user_id: Option<SecretRef>,
    /// File holding the user id.
    #[serde(default)]
    pub user_id_file: Option<PathBuf>,
    /// API token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// Largest `pageSize` the API accepts.
pub const MAX_PAGE_SIZE: u32 = 200;

/// The required keys of an `invicti` source, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// Base URL of Invicti Enterprise.
    pub url: HttpUrl,
    /// API user id.
    pub user_id: SetSecret,
    /// API token.
    pub token: SetSecret,
}

impl Validate for InvictiConfig {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        let url = p.required(at, "url", self.url.as_ref(), "is required");
        let user_id = SecretKey::new("user_id", self.user_id.as_ref(), self.user_id_file.as_ref()).require(at, p);
        let token = SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref()).require(at, p);
        Some(Required { url: url?.clone(), user_id: user_id?, token: token? })
    }
}

impl SourceSpec for InvictiConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![
            SecretKey::new("user_id", self.user_id.as_ref(), self.user_id_file.as_ref()),
            SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref()),
        ]
    }
    fn url(&self) -> Option<&url::Url> {
        self.url.as_deref()
    }
    fn limits(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        if common.page_size.is_some_and(|n| n > MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "Invicti allows at most 200");
        }
    }
}
