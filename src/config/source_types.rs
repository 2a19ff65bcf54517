//! The keys of each vendor's source type beyond the common ones, one struct
//! per type, each denying the keys it does not declare. `http_json`, which
//! has many, is in [`super::http_json`].

use super::http_json::HttpJsonConfig;
use super::registry::kinds;
use super::secret::{SecretKey, SecretRef};
use super::source::{SourceCommon, SourceSpec};
use super::units::Rate;
use super::validate::Problems;
use serde::Deserialize;
use std::path::PathBuf;

// The registry of source types: one line each (a new type adds its line
// here, its struct below and its connector in `sources/`).
kinds! { SourceKind: super::source::SourceSpec, "source";
    /// OpenCTI GraphQL `audits`.
    Opencti(OpenctiConfig) = "opencti",
    /// SEKOIA.IO activity log.
    Sekoia(SekoiaConfig) = "sekoia",
    /// Invicti Enterprise audit log.
    Invicti(InvictiConfig) = "invicti",
    /// Keepnet Labs audit log.
    Keepnet(KeepnetConfig) = "keepnet",
    /// Guance audit events.
    Guance(GuanceConfig) = "guance",
    /// Okta System Log.
    Okta(OktaConfig) = "okta",
    /// GitHub organisation or enterprise audit log.
    Github(GithubConfig) = "github",
    /// Slack Audit Logs API (Enterprise Grid).
    Slack(SlackConfig) = "slack",
    /// 1Password Events API, audit events.
    Onepassword(OnepasswordConfig) = "onepassword",
    /// Google Workspace Admin SDK Reports API, activities.
    GoogleWorkspace(GoogleWorkspaceConfig) = "google_workspace",
    /// Any JSON API.
    HttpJson(HttpJsonConfig) = "http_json",
    /// Built-in generator of sample events.
    Demo(DemoConfig) = "demo",
    /// The connector kept as documentation (`sources/example.rs`), a type
    /// of the tests only: users cannot configure it.
    #[cfg(test)]
    Example(ExampleConfig) = "example",
}

/// `type = "opencti"`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenctiConfig {
    /// Base URL of the OpenCTI platform.
    #[serde(default)]
    pub url: Option<String>,
    /// API token (`${ENV}` or literal).
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Also collect `History` (knowledge changes).
    #[serde(default)]
    pub include_history: Option<bool>,
}

/// OpenCTI's largest page.
const OPENCTI_MAX_PAGE_SIZE: u32 = 5000;

impl SourceSpec for OpenctiConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
    fn validate(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        p.url(at, self.url.as_deref());
        p.secret(at, "token", self.token.is_some() || self.token_file.is_some());
        if common.page_size.is_some_and(|n| n > OPENCTI_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "OpenCTI allows at most 5000");
        }
    }
}

/// `type = "sekoia"`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SekoiaConfig {
    /// Base URL of the SEKOIA.IO API.
    #[serde(default)]
    pub url: Option<String>,
    /// API key (`${ENV}` or literal).
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API key.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The event search term (default: the activity log's dialect term).
    #[serde(default)]
    pub query: Option<String>,
}

impl SourceSpec for SekoiaConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
    fn validate(&self, at: &str, _common: &SourceCommon, p: &mut Problems) {
        p.url(at, self.url.as_deref());
        p.secret(at, "token", self.token.is_some() || self.token_file.is_some());
    }
}

/// `type = "invicti"`: HTTP Basic with a user id and a token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvictiConfig {
    /// Base URL of Invicti Enterprise.
    #[serde(default)]
    pub url: Option<String>,
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

/// Invicti's largest page.
const INVICTI_MAX_PAGE_SIZE: u32 = 200;

impl SourceSpec for InvictiConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![
            SecretKey::new("user_id", self.user_id.as_ref(), self.user_id_file.as_ref()),
            SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref()),
        ]
    }
    fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
    fn validate(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        p.url(at, self.url.as_deref());
        p.secret(at, "user_id", self.user_id.is_some() || self.user_id_file.is_some());
        p.secret(at, "token", self.token.is_some() || self.token_file.is_some());
        if common.page_size.is_some_and(|n| n > INVICTI_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "Invicti allows at most 200");
        }
    }
}

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

/// `type = "guance"`: the API key goes in `DF-API-KEY`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuanceConfig {
    /// Base URL of the Guance OpenAPI.
    #[serde(default)]
    pub url: Option<String>,
    /// API key.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API key.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The DQL query for audit events.
    #[serde(default)]
    pub query: Option<String>,
}

impl SourceSpec for GuanceConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
    fn validate(&self, at: &str, _common: &SourceCommon, p: &mut Problems) {
        p.url(at, self.url.as_deref());
        p.secret(at, "token", self.token.is_some() || self.token_file.is_some());
    }
    fn credential_header(&self) -> Option<&str> {
        Some("df-api-key")
    }
}

/// `type = "github"`: the audit log of one organisation or one enterprise
/// (exactly one of `org` and `enterprise`), read with a token that has
/// `read:audit_log`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// Base URL of the REST API (`https://HOST/api/v3` for GitHub Enterprise Server).
    #[serde(default)]
    pub url: Option<String>,
    /// The organisation's login (`/orgs/{org}/audit-log`).
    #[serde(default)]
    pub org: Option<String>,
    /// The enterprise's slug (`/enterprises/{enterprise}/audit-log`).
    #[serde(default)]
    pub enterprise: Option<String>,
    /// Personal access token or app token with `read:audit_log`.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// GitHub's REST API.
pub const GITHUB_API: &str = "https://api.github.com";
/// GitHub's largest audit log page.
const GITHUB_MAX_PAGE_SIZE: u32 = 100;

impl SourceSpec for GithubConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        Some(self.url.as_deref().unwrap_or(GITHUB_API))
    }
    fn validate(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        p.url(at, Some(self.url.as_deref().unwrap_or(GITHUB_API)));
        p.secret(at, "token", self.token.is_some() || self.token_file.is_some());
        match (&self.org, &self.enterprise) {
            (None, None) => p.add(format!("{at}.org"), "is required (or enterprise)"),
            (Some(_), Some(_)) => {
                p.add(format!("{at}.enterprise"), "cannot be set with org: a source reads one audit log")
            }
            _ => {}
        }
        for (key, v) in [("org", &self.org), ("enterprise", &self.enterprise)] {
            let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
            if v.as_deref().is_some_and(|v| v.is_empty() || !v.chars().all(ok)) {
                p.add(format!("{at}.{key}"), "must be a GitHub login or slug (letters, digits, '-')");
            }
        }
        if common.page_size.is_some_and(|n| n > GITHUB_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "GitHub allows at most 100");
        }
    }
}

/// `type = "okta"`: the token goes in `Authorization: SSWS <token>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    /// The Okta org, `https://ORG.okta.com` (not the `-admin` console).
    #[serde(default)]
    pub url: Option<String>,
    /// API token of a read-only administrator.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// Okta's largest `limit` on `/api/v1/logs`.
pub const OKTA_MAX_PAGE_SIZE: u32 = 1000;

impl SourceSpec for OktaConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
    fn validate(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        p.url(at, self.url.as_deref());
        p.secret(at, "token", self.token.is_some() || self.token_file.is_some());
        let host =
            self.url.as_deref().and_then(|u| url::Url::parse(u).ok()).and_then(|u| u.host_str().map(str::to_owned));
        if host.as_deref().and_then(|h| h.split('.').next()).is_some_and(|org| org.ends_with("-admin")) {
            p.add(format!("{at}.url"), "is the Admin Console's address; the API is at the org's, without -admin");
        }
        if common.page_size.is_some_and(|n| n > OKTA_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "Okta allows at most 1000");
        }
    }
}

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

/// `type = "onepassword"`: the 1Password Events API's audit events, read
/// with an Events Reporting bearer token that has the `auditevents`
/// feature.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnepasswordConfig {
    /// The account's Events API server: `https://events.1password.com`
    /// (1password.com accounts), `https://events.1password.ca`,
    /// `https://events.1password.eu` or `https://events.ent.1password.com`.
    #[serde(default)]
    pub url: Option<String>,
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

impl SourceSpec for OnepasswordConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        Some(self.url.as_deref().unwrap_or(ONEPASSWORD_SERVERS[0]))
    }
    fn validate(&self, at: &str, common: &SourceCommon, p: &mut Problems) {
        p.url(at, self.url());
        p.secret(at, "token", self.token.is_some() || self.token_file.is_some());
        if common.page_size.is_some_and(|n| n > ONEPASSWORD_MAX_PAGE_SIZE) {
            p.add(format!("{at}.page_size"), "1Password allows at most 1000");
        }
    }
}

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

/// `type = "demo"`: the built-in generator of sample events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Events generated per period (`"10/s"` by default).
    #[serde(default)]
    pub rate: Option<Rate>,
}

impl SourceSpec for DemoConfig {
    fn url(&self) -> Option<&str> {
        None
    }
    fn validate(&self, _at: &str, _common: &SourceCommon, _p: &mut Problems) {}
    fn credential_header(&self) -> Option<&str> {
        None
    }
    fn makes_requests(&self) -> bool {
        false
    }
}

/// `type = "example"`: the connector kept as documentation
/// (`sources/example.rs`, `docs/adding-a-connector.md`); registered in the
/// tests only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleConfig {
    /// Base URL of the API.
    #[serde(default)]
    pub url: Option<String>,
    /// API token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl SourceSpec for ExampleConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
    fn validate(&self, at: &str, _common: &SourceCommon, p: &mut Problems) {
        p.url(at, self.url.as_deref());
        p.secret(at, "token", self.token.is_some() || self.token_file.is_some());
    }
}
