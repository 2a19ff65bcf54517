//! The ECS reading of a Slack audit `action`: its `event.outcome`, and its
//! `event.category` and `event.type` by action family.

/// `event.outcome`: failure when the action says it failed or was
/// blocked (`user_login_failed`, `file_downloaded_blocked`), else success.
pub(super) fn outcome(action: &str) -> &'static str {
    if ["failed", "blocked", "denied", "rejected"].iter().any(|w| action.contains(w)) {
        "failure"
    } else {
        "success"
    }
}

/// ECS `event.category` and `event.type` of an action, after the table of
/// Elastic's Slack integration
/// (`packages/slack/data_stream/audit/elasticsearch/ingest_pipeline/default.yml`)
/// widened to the families of Slack's action list. An action of no family
/// gets no category and type `info`.
pub(super) fn classify(action: &str) -> (Option<&'static str>, Vec<&'static str>) {
    let has = |w: &str| action.contains(w);
    // Deletion first: `app_uninstalled` holds `installed`.
    let verb = if has("deleted") || has("removed") || has("deactivated") || has("uninstalled") {
        "deletion"
    } else if has("created") || has("added") || has("uploaded") || has("installed") {
        "creation"
    } else {
        "change"
    };
    match action {
        "user_login" => (Some("authentication"), vec!["start"]),
        "user_login_failed" => (Some("authentication"), vec!["start"]),
        _ if action.starts_with("user_logout") || action.starts_with("user_session_") => {
            (Some("authentication"), vec!["end"])
        }
        "file_downloaded" | "file_downloaded_blocked" => (Some("file"), vec!["access"]),
        // Channel membership is group membership.
        _ if action.starts_with("user_channel_") || action.starts_with("guest_channel_") => {
            (Some("iam"), vec!["group", "change"])
        }
        _ if action.contains("channel") => (Some("configuration"), vec![verb]),
        _ if action.starts_with("file_") => (Some("file"), vec![if verb == "change" { "info" } else { verb }]),
        _ if action.starts_with("role_")
            || action.starts_with("user_")
            || action.starts_with("guest_")
            || action == "owner_transferred"
            || action.contains("usergroup") =>
        {
            if action.contains("usergroup") {
                (Some("iam"), vec!["group", "change"])
            } else {
                (Some("iam"), vec!["user", verb])
            }
        }
        _ if action.starts_with("app_")
            || action.starts_with("org_app_")
            || action.starts_with("bot_token_")
            || action.starts_with("workspace_")
            || action.starts_with("organization_")
            || action.starts_with("pref.")
            || action.contains("setting")
            || action.starts_with("emoji_")
            || action.starts_with("barrier_")
            || action.starts_with("ekm_")
            || action.starts_with("workflow_") =>
        {
            (Some("configuration"), vec![verb])
        }
        _ => (None, vec!["info"]),
    }
}
