//! The registry of source types: one line per type, naming its `type`, its
//! config struct (in the connector's folder, `sources/<vendor>/config.rs`)
//! and what the type is. A new connector is its folder and its line here
//! (`docs/adding-a-connector.md`).

use super::atlassian::AtlassianConfig;
use super::cloudflare::CloudflareConfig;
use super::common::SourceSpec;
use super::demo::DemoConfig;
#[cfg(test)]
use super::example::ExampleConfig;
use super::github::GithubConfig;
use super::google_workspace::GoogleWorkspaceConfig;
use super::guance::GuanceConfig;
use super::http_json::HttpJsonConfig;
use super::invicti::InvictiConfig;
use super::keepnet::KeepnetConfig;
use super::microsoft_365::Microsoft365Config;
use super::okta::OktaConfig;
use super::onepassword::OnepasswordConfig;
use super::opencti::OpenctiConfig;
use super::sekoia::SekoiaConfig;
use super::slack::SlackConfig;
use super::{BuildCtx, Built};
use crate::settings::registry::kinds;

kinds! { SourceKind: SourceSpec, "source", BuildCtx<'_> => Built;
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
    /// Cloudflare account audit logs.
    Cloudflare(CloudflareConfig) = "cloudflare",
    /// Atlassian organisation audit log (Admin API events).
    Atlassian(AtlassianConfig) = "atlassian",
    /// Microsoft 365 Management Activity API (unified audit log).
    Microsoft365(Microsoft365Config) = "microsoft_365",
    /// Any JSON API.
    HttpJson(HttpJsonConfig) = "http_json",
    /// Built-in generator of sample events.
    Demo(DemoConfig) = "demo",
    /// The connector kept as documentation (`sources/example/`), a type
    /// of the tests only: users cannot configure it.
    #[cfg(test)]
    Example(ExampleConfig) = "example",
}
