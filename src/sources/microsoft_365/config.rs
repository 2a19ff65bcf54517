//! The keys of a `type = "microsoft_365"` source beyond the common ones,
//! what it checks about them and the limits of the Office 365 Management
//! Activity API they are checked against.

use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::{HttpUrl, Problems, Validate};
use crate::sources::common::{SourceCommon, SourceSpec};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `type = "microsoft_365"`: the Office 365 Management Activity API of one
/// tenant, read by an Entra ID app registration with the *Office 365
/// Management APIs* application permission `ActivityFeed.Read`
/// (client credentials).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Microsoft365Config {
    /// The tenant's id (a GUID: Entra ID, Overview, "Tenant ID").
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The app registration's Application (client) id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// A client secret of the app registration.
    #[serde(default)]
    pub client_secret: Option<SecretRef>,
    /// File holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// The content types read, each its own subscription (default all five:
    /// `Audit.AzureActiveDirectory`, `Audit.Exchange`, `Audit.SharePoint`,
    /// `Audit.General`, `DLP.All`).
    #[serde(default)]
    pub content_types: Option<Vec<ContentType>>,
    /// Base URL of the API (`https://manage.office.com`; GCC
    /// `https://manage-gcc.office.com`, GCC High `https://manage.office365.us`).
    #[serde(default = "default_url")]
    pub url: HttpUrl,
    /// Token endpoint (`https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`).
    #[serde(default)]
    pub token_url: Option<HttpUrl>,
}

/// A content type of the Management Activity API: one subscription each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum ContentType {
    /// Entra ID (Azure AD) sign-ins and directory changes.
    #[serde(rename = "Audit.AzureActiveDirectory")]
    AzureActiveDirectory,
    /// Exchange admin and mailbox audit.
    #[serde(rename = "Audit.Exchange")]
    Exchange,
    /// SharePoint and OneDrive.
    #[serde(rename = "Audit.SharePoint")]
    SharePoint,
    /// Every other workload (Teams, Power BI, Defender, …).
    #[serde(rename = "Audit.General")]
    General,
    /// DLP events of every workload.
    #[serde(rename = "DLP.All")]
    DlpAll,
}

impl ContentType {
    /// Every content type, the default.
    pub const ALL: [ContentType; 5] = [
        ContentType::AzureActiveDirectory,
        ContentType::Exchange,
        ContentType::SharePoint,
        ContentType::General,
        ContentType::DlpAll,
    ];

    /// The name the API knows it by.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::AzureActiveDirectory => "Audit.AzureActiveDirectory",
            ContentType::Exchange => "Audit.Exchange",
            ContentType::SharePoint => "Audit.SharePoint",
            ContentType::General => "Audit.General",
            ContentType::DlpAll => "DLP.All",
        }
    }
}

/// The Management Activity API (Enterprise plan).
pub const MANAGE_API: &str = "https://manage.office.com";
/// Microsoft Entra ID's token authority; `{tenant}/oauth2/v2.0/token` is appended.
pub const LOGIN_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Longest window one content listing may ask for.
pub const MAX_LIST_WINDOW: Duration = Duration::from_secs(24 * 3600);

impl Microsoft365Config {
    /// The content types read.
    pub fn content_types(&self) -> Vec<ContentType> {
        self.content_types.clone().unwrap_or_else(|| ContentType::ALL.to_vec())
    }
}

/// Whether `id` looks like a GUID (8-4-4-4-12 hex digits).
fn is_guid(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn default_url() -> HttpUrl {
    HttpUrl::known(MANAGE_API)
}

/// The required keys of a `microsoft_365` source, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// The tenant's id, a GUID.
    pub tenant_id: String,
    /// The app registration's Application (client) id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: SetSecret,
}

impl Validate for Microsoft365Config {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        let client_secret =
            SecretKey::new("client_secret", self.client_secret.as_ref(), self.client_secret_file.as_ref())
                .require(at, p);
        let tenant_id = match self.tenant_id.as_deref() {
            None => p.required(at, "tenant_id", None::<&String>, "is required (the tenant's id, a GUID)"),
            Some(id) if !is_guid(id) => {
                p.add(format!("{at}.tenant_id"), "must be the tenant's id, a GUID (not its domain name)");
                None
            }
            Some(_) => self.tenant_id.as_ref(),
        };
        let client_id = match self.client_id.as_deref() {
            None => p.required(at, "client_id", None::<&String>, "is required (the app registration's Application id)"),
            Some(id) if id.trim().is_empty() => {
                p.add(format!("{at}.client_id"), "must not be empty");
                None
            }
            Some(_) => self.client_id.as_ref(),
        };
        let mut types_ok = true;
        if let Some(types) = &self.content_types {
            if types.is_empty() {
                p.add(format!("{at}.content_types"), "must name at least one content type");
                types_ok = false;
            }
            for (i, t) in types.iter().enumerate() {
                if types[..i].contains(t) {
                    p.add(format!("{at}.content_types"), format!("{} is listed twice", t.as_str()));
                    types_ok = false;
                }
            }
        }
        let required =
            Required { tenant_id: tenant_id?.clone(), client_id: client_id?.clone(), client_secret: client_secret? };
        types_ok.then_some(required)
    }
}

impl SourceSpec for Microsoft365Config {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("client_secret", self.client_secret.as_ref(), self.client_secret_file.as_ref())]
    }
    fn url(&self) -> Option<&url::Url> {
        Some(&self.url)
    }
    fn limits(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        let lookback = common.lookback.map_or(super::DEFAULT_LOOKBACK, |d| d.get());
        let window = common.max_window.map_or(super::DEFAULT_MAX_WINDOW, |d| d.get());
        if lookback + window > MAX_LIST_WINDOW {
            p.add(
                format!("{at}.max_window"),
                "max_window plus lookback must be at most 24h: Microsoft lists content at most 24 hours at a time",
            );
        }
    }
}
