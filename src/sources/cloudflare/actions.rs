//! The ECS reading of a Cloudflare audit `action.type` (lower-cased):
//! its `event.category` and `event.type`.

/// ECS `event.type` of an action's verb: `token_create`, `rec_add` and
/// `API_key_created` create, `rec_del`, `token_revoke` and `delete`
/// delete, `*_view` are accesses, `rec_set`, `change_setting`,
/// `token_roll`, `rotate_api_key`, `*_deployed` and `purge` change.
fn verb(action: &str) -> &'static str {
    let has = |w: &str| action.split('_').any(|p| p.starts_with(w));
    if has("view") || has("get") || has("list") || has("read") {
        "access"
    } else if has("del") || has("revoke") || has("remove") {
        "deletion"
    } else if has("creat") || has("add") || has("invite") {
        "creation"
    } else {
        "change"
    }
}

/// ECS `event.category` and `event.type`, after the lookup table of
/// Elastic's Cloudflare integration
/// (`packages/cloudflare/data_stream/audit/elasticsearch/ingest_pipeline/default.yml`:
/// `login` authentication, `token_create` iam, `rec_del` and
/// `change_setting` configuration) widened to the families of its
/// actions. A login is a CIM start (Elastic types it info); views get no
/// category.
pub(super) fn classify(action: &str) -> (Option<&'static str>, Vec<&'static str>) {
    let kind = verb(action);
    match action {
        "login" => (Some("authentication"), vec!["start"]),
        "logout" => (Some("authentication"), vec!["end"]),
        _ if kind == "access" => (None, vec!["access"]),
        _ if ["token", "api_key", "member", "user", "role", "invite", "password", "tfa", "2fa", "mfa"]
            .iter()
            .any(|w| action.contains(w)) =>
        {
            (Some("iam"), vec![kind])
        }
        _ => (Some("configuration"), vec![kind]),
    }
}
