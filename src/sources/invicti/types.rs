//! The audit log's `Type` values, as the Invicti Enterprise API's
//! `AuditLogDto.Type` enum lists them (the Swagger snapshot in
//! niaid/netsparker-cloud-js, `src/models/AuditLogDto.ts`), each with its
//! ECS `event.category`, `event.type` and `event.outcome`. docs/connectors/invicti.md's
//! table is this one, grouped.
//!
//! What a type records decides its category, not its wording: a scan
//! that failed (`ScanFailed`) or a report import that failed
//! (`DefectDojoReportImportFailed`) is the scanner's work going wrong —
//! category `vulnerability`, outcome `failure` — not a failed change of
//! configuration. A type the enum does not list yet (a newer Invicti) is
//! read from its wording, with outcome `unknown` unless it says `Failed`.

/// `event.category`, `event.type`, `event.outcome` of one type.
pub type Ecs = (&'static str, &'static [&'static str], &'static str);

const AUTH_START: Ecs = ("authentication", &["start"], "success");
const AUTH_END: Ecs = ("authentication", &["end"], "success");
const AUTH_FAILED: Ecs = ("authentication", &["start"], "failure");
const USER_CREATED: Ecs = ("iam", &["user", "creation"], "success");
const USER_CHANGED: Ecs = ("iam", &["user", "change"], "success");
const USER_DELETED: Ecs = ("iam", &["user", "deletion"], "success");
const USER_INFO: Ecs = ("iam", &["user", "info"], "success");
const USER_ACCESS: Ecs = ("iam", &["user", "access"], "success");
const GROUP_CREATED: Ecs = ("iam", &["group", "creation"], "success");
const GROUP_CHANGED: Ecs = ("iam", &["group", "change"], "success");
const GROUP_DELETED: Ecs = ("iam", &["group", "deletion"], "success");
const IAM_CREATED: Ecs = ("iam", &["creation"], "success");
const IAM_CHANGED: Ecs = ("iam", &["change"], "success");
const IAM_DELETED: Ecs = ("iam", &["deletion"], "success");
const CONF_CREATED: Ecs = ("configuration", &["creation"], "success");
const CONF_CHANGED: Ecs = ("configuration", &["change"], "success");
const CONF_DELETED: Ecs = ("configuration", &["deletion"], "success");
const CONF_INFO: Ecs = ("configuration", &["info"], "success");
const CONF_ACCESS: Ecs = ("configuration", &["access"], "success");
const SCAN: Ecs = ("vulnerability", &["info"], "success");
const SCAN_FAILED: Ecs = ("vulnerability", &["info"], "failure");
const ISSUE_CREATED: Ecs = ("vulnerability", &["creation"], "success");
const ISSUE_CHANGED: Ecs = ("vulnerability", &["change"], "success");
const THROTTLED: Ecs = ("web", &["denied"], "failure");

/// Every documented `Type`, in the enum's order.
pub const TYPES: &[(&str, Ecs)] = &[
    ("Signin", AUTH_START),
    ("Signout", AUTH_END),
    ("Signup", USER_CREATED),
    ("ResentConfirmationEmail", USER_INFO),
    ("EmailConfirmed", USER_CHANGED),
    ("PasswordResetRequested", USER_INFO),
    ("PasswordResetSucceeded", USER_CHANGED),
    ("PasswordChanged", USER_CHANGED),
    ("UserAccountUpdated", USER_CHANGED),
    ("UserCreated", USER_CREATED),
    ("UserUpdated", USER_CHANGED),
    ("AccessTokenReset", USER_CHANGED),
    ("ScanStarted", SCAN),
    ("ScanCancelled", SCAN),
    ("WebsiteGroupCreated", CONF_CREATED),
    ("WebsiteGroupDeleted", CONF_DELETED),
    ("WebsiteGroupUpdated", CONF_CHANGED),
    ("WebsiteCreated", CONF_CREATED),
    ("WebsiteUpdated", CONF_CHANGED),
    ("WebsiteDeleted", CONF_DELETED),
    ("ScheduledScanDeleted", CONF_DELETED),
    ("ScheduledScanCreated", CONF_CREATED),
    ("ScheduledScanUpdated", CONF_CHANGED),
    ("ScanPolicyCreated", CONF_CREATED),
    ("ScanPolicyUpdated", CONF_CHANGED),
    ("ScanPolicyDeleted", CONF_DELETED),
    ("CheckedUpdates", CONF_INFO),
    ("ScanDeleted", CONF_DELETED),
    ("SigninAs", AUTH_START),
    ("TwoFactorAuthenticationDisabled", USER_CHANGED),
    ("TwoFactorAuthenticationConfigured", USER_CHANGED),
    ("TwoFactorAuthenticationRecoveryCodesViewed", USER_ACCESS),
    ("TwoFactorAuthenticationEnforcementChanged", CONF_CHANGED),
    ("SigninWithRecoveryCode", AUTH_START),
    ("IssueCreated", ISSUE_CREATED),
    ("IssueUpdated", ISSUE_CHANGED),
    ("DeleteUser", USER_DELETED),
    ("StartVerification", CONF_INFO),
    ("VerifyOwnership", CONF_CHANGED),
    ("ScanPaused", SCAN),
    ("ScanResumed", SCAN),
    ("AccountLicenseUpdated", CONF_CHANGED),
    ("InvitationLicenseUpdated", USER_CHANGED),
    ("MarkedLateConfirmation", USER_CHANGED),
    ("ConfirmSupportAccessRequest", IAM_CHANGED),
    ("AgentGroupCreated", CONF_CREATED),
    ("AgentGroupUpdated", CONF_CHANGED),
    ("AgentGroupDeleted", CONF_DELETED),
    ("IpRestrictionAdded", CONF_CREATED),
    ("IpRestrictionUpdated", CONF_CHANGED),
    ("IpRestrictionDeleted", CONF_DELETED),
    ("IpRestrictionsStatusChanged", CONF_CHANGED),
    ("RawScanFileRetentionPeriodEnabled", CONF_CHANGED),
    ("RawScanFileRetentionPeriodDisabled", CONF_CHANGED),
    ("AccountUpdated", CONF_CHANGED),
    ("ScanNotificationRuleCreated", CONF_CREATED),
    ("ScanNotificationRuleUpdated", CONF_CHANGED),
    ("ScanNotificationRuleDeleted", CONF_DELETED),
    ("ScanNotificationRulePrioritiesUpdated", CONF_CHANGED),
    ("ReportPolicyCreated", CONF_CREATED),
    ("ReportPolicyUpdated", CONF_CHANGED),
    ("ReportPolicyDeleted", CONF_DELETED),
    ("AgentDeleted", CONF_DELETED),
    ("DeleteAccount", CONF_DELETED),
    ("NsScanImported", SCAN),
    ("AccountsMerged", CONF_CHANGED),
    ("TooManyRequests", THROTTLED),
    ("SupportEditedUser", USER_CHANGED),
    ("AgentsAutoUpdateSettingChanged", CONF_CHANGED),
    ("WebsiteGroupTechContactChanged", CONF_CHANGED),
    ("CreateInvitation", USER_CREATED),
    ("DeleteInvitation", USER_DELETED),
    ("ScanProfileCreated", CONF_CREATED),
    ("ScanProfileUpdated", CONF_CHANGED),
    ("ScanProfileDeleted", CONF_DELETED),
    ("GeneralSettingsUpdated", CONF_CHANGED),
    ("SecuritySettingsUpdated", CONF_CHANGED),
    ("DatabaseSettingsUpdated", CONF_CHANGED),
    ("EmailSettingsUpdated", CONF_CHANGED),
    ("SmsSettingsUpdated", CONF_CHANGED),
    ("CloudProviderUpdated", CONF_CHANGED),
    ("SingleSignOnUpdated", CONF_CHANGED),
    ("IpRestrictionsUpdated", CONF_CHANGED),
    ("TechnologyNotificationChanged", CONF_CHANGED),
    ("LoginAttemptFailed", AUTH_FAILED),
    ("IpRestrictedSessionsStatusChanged", CONF_CHANGED),
    ("U2FSecurityKeyConfigured", USER_CHANGED),
    ("U2FSecurityKeyReConfigured", USER_CHANGED),
    ("AgentTokenReset", CONF_CHANGED),
    ("AddOrUpdateTag", CONF_CHANGED),
    ("EncryptionKeysUpdated", CONF_CHANGED),
    ("EncryptionKeysDownloaded", CONF_ACCESS),
    ("RoleCreated", IAM_CREATED),
    ("RoleUpdated", IAM_CHANGED),
    ("RoleDelete", IAM_DELETED),
    // The 107th value of the spec's enum (niaid/netsparker-cloud-js
    // `specs/netsparker.json`), missing from the model file: a role that
    // limits a member's rights, set or changed.
    ("LimitingRole", IAM_CHANGED),
    ("TeamCreated", GROUP_CREATED),
    ("TeamUpdated", GROUP_CHANGED),
    ("TeamDelete", GROUP_DELETED),
    ("DefectDojoReportImported", SCAN),
    ("DefectDojoReportImportFailed", SCAN_FAILED),
    ("ScanDataRetentionPeriodEnabled", CONF_CHANGED),
    ("ScanDataRetentionPeriodDisabled", CONF_CHANGED),
    ("ScanQueuedAgain", SCAN),
    ("ScanFailed", SCAN_FAILED),
    ("AgentCommandDelete", CONF_DELETED),
    ("ImportWebsite", CONF_CREATED),
];

/// The ECS reading of a `Type`: the table's, else one from its wording.
pub fn classify(kind: &str) -> Ecs {
    if let Some((_, ecs)) = TYPES.iter().find(|(k, _)| *k == kind) {
        return *ecs;
    }
    let has = |w: &str| kind.contains(w);
    let outcome = if has("Fail") { "failure" } else { "unknown" };
    let kind: &'static [&'static str] = if has("Creat") || has("Added") {
        &["creation"]
    } else if has("Delet") || has("Remov") {
        &["deletion"]
    } else if has("Updat") || has("Chang") || has("Reset") {
        &["change"]
    } else {
        &["info"]
    };
    ("configuration", kind, outcome)
}
