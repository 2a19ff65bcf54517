//! The ECS reading of an Atlassian audit `action` (`group_created`,
//! `user_removed_from_site`, `policy_deleted`, `jira_issue_viewed`…): its
//! `event.outcome`, `event.category` and `event.type`. Elastic has no
//! pipeline for the organisation audit log; the families are the action
//! names' own words (inferred, see `docs/connectors/atlassian.md`).

/// `event.outcome`: failure when the action says it failed or was
/// blocked, else success (the schema has no outcome).
pub(super) fn outcome(action: &str) -> &'static str {
    if ["failed", "failure", "blocked", "denied", "rejected"].iter().any(|w| action.contains(w)) {
        "failure"
    } else {
        "success"
    }
}

/// ECS `event.type` of the action's verb.
fn verb(action: &str) -> &'static str {
    let has = |w: &str| action.split('_').any(|p| p == w);
    if ["viewed", "downloaded", "exported", "accessed", "searched", "read"].iter().any(|w| has(w)) {
        "access"
    } else if ["deleted", "removed", "revoked", "deactivated", "disabled"].iter().any(|w| has(w)) {
        "deletion"
    } else if ["created", "added", "invited"].iter().any(|w| has(w)) {
        "creation"
    } else {
        "change"
    }
}

/// ECS `event.category` and `event.type`: logins are authentication,
/// users, groups, API tokens, roles and access grants iam (`user` or
/// `group`), views and exports accesses (no category), the rest
/// (policies, domains, settings, apps) configuration.
pub(super) fn classify(action: &str) -> (Option<&'static str>, Vec<&'static str>) {
    let kind = verb(action);
    let has = |w: &str| action.contains(w);
    if has("logged_out") || has("logout") {
        return (Some("authentication"), vec!["end"]);
    }
    if has("login") || has("logged_in") || has("log_in") || has("sign_in") {
        return (Some("authentication"), vec!["start"]);
    }
    match action {
        _ if kind == "access" => (None, vec!["access"]),
        _ if action.starts_with("group_") || has("_group") => (Some("iam"), vec!["group", kind]),
        _ if action.starts_with("user_")
            || has("api_token")
            || has("api_key")
            || has("role")
            || has("admin")
            || has("access_")
            || has("permission") =>
        {
            (Some("iam"), vec!["user", kind])
        }
        _ => (Some("configuration"), vec![kind]),
    }
}
