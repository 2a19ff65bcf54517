use super::*;
use crate::sources::testkit::{self, t, window};

/// Four lines of Elastic's Google Workspace login pipeline test input,
/// verbatim (elastic/integrations,
/// `packages/google_workspace/data_stream/login/_dev/test/pipeline/test-login.log`,
/// commit 20ecb2c14f28614e81ff6b61362550f66c0e1cc9): a suspicious login
/// warning, a failed login, a logout, and a 2025 login verification with
/// string `profileId` and `uniqueQualifier`. Elastic's inputs carry
/// `events` as one object (split by its input); the API's `items[]`
/// elements carry an array, as in the Reports API reference's `Activity`
/// resource, so the page below wraps each in one.
const ELASTIC_SAMPLE: &str = include_str!("elastic_google_workspace_login_test.log");

fn sample() -> Vec<Value> {
    ELASTIC_SAMPLE.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The sample as the API sends it: `events` an array.
fn as_api(mut a: Value) -> Value {
    let e = a["events"].take();
    a["events"] = json!([e]);
    a
}

fn api() -> GoogleWorkspace {
    GoogleWorkspace::new(&url::Url::parse(GOOGLE_ADMIN_API).unwrap(), "login")
}

fn query(state: Option<&Value>) -> Query<'_> {
    testkit::query(window("2020-10-01T00:00:00.0005Z", "2025-03-01T00:00:00Z"), state, 1000)
}

fn page(items: &[Value], next: Option<&str>) -> ApiResponse {
    let mut body = json!({ "kind": "admin#reports#activities", "etag": "\"abc\"", "items": items });
    if let Some(n) = next {
        body["nextPageToken"] = json!(n);
    }
    testkit::resp(200, &body)
}

const PEM: &str = include_str!("../../../tests/fixtures/test-only-rsa-2048.pem");

/// A `google_workspace` source's own keys, its key inline.
fn keys() -> String {
    let key = json!({
        "type": "service_account", "private_key_id": "k1", "private_key": PEM,
        "client_email": "reports@example.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token",
    });
    format!(
        "application = \"login\"\nsubject = \"admin@example.com\"\nkey = {}\n",
        toml::Value::String(key.to_string())
    )
}

#[test]
fn the_registry_builds_a_jwt_bearer_grant_for_the_subject_and_checks_the_keys() {
    let cfg: GoogleWorkspaceConfig = testkit::keys(&keys()).unwrap();
    let env = crate::settings::secret::tests::FakeEnv::default();
    let (api, auth) = testkit::build(&cfg, &env).unwrap();
    let Auth::OAuth2(o) = &auth else { panic!("oauth2") };
    assert_eq!(o.token_url.as_str(), "https://oauth2.googleapis.com/token");
    assert_eq!(o.scope.as_deref(), Some(SCOPE));
    let crate::sources::auth::Grant::JwtBearer { subject, .. } = &o.grant else { panic!("jwt bearer") };
    assert_eq!(subject.as_deref(), Some("admin@example.com"));
    assert!(!format!("{auth:?}").contains("MII"), "the key never shows in Debug");
    assert_eq!(api.order(), Order::Desc);
    let req = api.request(&query(None)).unwrap();
    assert_eq!(
        req.url.as_str(),
        "https://admin.googleapis.com/admin/reports/v1/activity/users/all/applications/login?\
         startTime=2020-10-01T00%3A00%3A00.000Z&endTime=2025-03-01T00%3A00%3A00.000Z&maxResults=1000"
    );

    let problems = testkit::problems::<GoogleWorkspaceConfig>;
    let p =
        problems(&keys().replace("application = \"login\"\n", "").replace("subject = \"admin@example.com\"\n", ""), "");
    assert!(p.iter().any(|m| m.contains("source[0].application: is required")), "{p:?}");
    assert!(p.iter().any(|m| m.contains("source[0].subject: is required")), "{p:?}");
    let p = problems(&keys().replace("admin@example.com", "admin"), "page_size = 1001");
    assert!(p.iter().any(|m| m.contains("source[0].page_size: Google allows at most 1000")), "{p:?}");
    assert!(p.iter().any(|m| m.contains("source[0].subject: must be an administrator's email")), "{p:?}");

    let broken: GoogleWorkspaceConfig = testkit::keys(&keys().replace("BEGIN PRIVATE KEY", "BEGIN NOTHING")).unwrap();
    let Err(err) = testkit::build(&broken, &env) else { panic!("a bad key") };
    let text = format!("{err:?}");
    assert!(text.contains("source[0].key") && text.contains("private_key"), "{text}");
    assert!(!text.contains("MII"), "the key's text is never shown: {text}");
}

#[test]
fn pages_follow_next_page_token_with_the_same_bounds() {
    let a = api();
    let items: Vec<Value> = sample().into_iter().map(as_api).collect();
    let p = a.parse(&query(None), &page(&items[..2], Some("tok-2"))).unwrap();
    assert_eq!(p.events.len(), 2);
    let Next::Page(state) = p.next else { panic!("a next page") };
    let req = a.request(&query(Some(&state))).unwrap();
    assert!(req.url.as_str().contains("startTime=2020-10-01T00%3A00%3A00.000Z&endTime="), "{}", req.url);
    assert!(req.url.as_str().ends_with("&pageToken=tok-2"), "{}", req.url);
    let last = a.parse(&query(Some(&state)), &page(&items[2..], None)).unwrap();
    assert_eq!(last.next, Next::Done);
    // No `items`: an empty window.
    let empty = a.parse(&query(None), &testkit::resp(200, &json!({ "kind": "admin#reports#activities" }))).unwrap();
    assert!(empty.events.is_empty() && empty.next == Next::Done);
}

#[test]
fn the_recorded_activities_map_to_ecs() {
    let a = api();
    let raws: Vec<Value> = sample().into_iter().map(as_api).collect();
    let docs = testkit::documents(&a, "gw", &raws);
    let failed = &docs[1];
    assert_eq!(failed.str_field("event.id"), Some("login:2020-10-02T15:00:00Z:1"));
    assert_eq!(failed.timestamp, t("2020-10-02T15:00:00Z"));
    assert_eq!(failed.str_field("event.action"), Some("login_failure"));
    assert_eq!(failed.outcome(), "failure");
    assert_eq!(failed.fields()["event"]["category"], json!(["authentication", "session"]));
    assert_eq!(failed.str_field("user.email"), Some("foo@bar.com"));
    assert_eq!(failed.str_field("user.id"), Some("1"));
    assert_eq!(failed.str_field("source.ip"), Some("67.43.156.13"));
    assert_eq!(failed.str_field("google_workspace.actor.type"), Some("USER"));
    assert_eq!(
        failed.fields()["google_workspace"]["events"][0]["parameters"][1]["value"],
        "login_failure_access_code_disallowed"
    );
    assert_eq!(docs[2].fields()["event"]["type"], json!(["end"]));
    let verified = &docs[3];
    assert_eq!(verified.str_field("event.id"), Some("login:2025-02-27T05:59:58.481Z:123"));
    assert_eq!(verified.str_field("user.id"), Some("111111111"));
    assert_eq!(verified.outcome(), "success");
    assert_eq!(docs[0].fields()["event"]["category"], json!(["authentication"]));
    assert_eq!(docs[0].fields()["observer"]["product"], "Google Workspace");
    // Elastic's split shape (one `events` object) reads the same.
    let split = testkit::documents(&a, "gw", &sample()[1..2]);
    assert_eq!(split[0].str_field("event.action"), Some("login_failure"));
}

#[test]
fn a_wrong_shape_or_unbounded_answer_fails_naming_it() {
    let a = api();
    let fails = |body: Value, says: &str| {
        let err = a.parse(&query(None), &testkit::resp(200, &body)).unwrap_err();
        assert!(err.0.contains(says), "{err}");
    };
    fails(json!({ "error": { "code": 400, "message": "Bad Request" } }), "expected an activities object");
    fails(json!({ "items": {} }), "items is not an array");
    fails(json!({ "items": [{ "actor": {} }] }), "item 0 of the answer is not an activity");
    let late = json!({ "id": { "time": "2026-01-01T00:00:00Z", "uniqueQualifier": "9" }, "events": [] });
    fails(json!({ "items": [late] }), "Google did not bound the answer by time");
}

#[test]
fn refusals_say_what_to_grant_and_quota_403s_are_throttling() {
    let a = api();
    let denied = br#"{"error":{"code":403,"message":"Access denied. You are not authorized to read activity records.","errors":[{"reason":"forbidden"}]}}"#;
    let Some(Verdict::Auth(m)) = a.verdict(403, denied) else { panic!("refused") };
    assert!(m.contains("Access denied") && m.contains("domain-wide delegation"), "{m}");
    let quota = br#"{"error":{"code":403,"errors":[{"reason":"userRateLimitExceeded"}]}}"#;
    assert_eq!(a.verdict(403, quota), Some(Verdict::Throttled(None)));
    assert!(matches!(a.verdict(401, b"{}"), Some(Verdict::Auth(_))));
    assert_eq!(a.verdict(429, b"{}"), None, "throttling is the poller's");
}

/// The admin application names its events in upper case (`CREATE_USER`,
/// `DELETE_GROUP`): their verb is read whatever the case, so the CIM
/// add-on sees a user created, not modified.
#[test]
fn upper_case_admin_event_names_are_created_and_deleted() {
    assert_eq!(classify("admin", "CREATE_USER", "USER_SETTINGS"), (vec!["iam"], vec!["user", "creation"]));
    assert_eq!(classify("admin", "DELETE_GROUP", "GROUP_SETTINGS"), (vec!["iam"], vec!["group", "deletion"]));
    let setting = classify("admin", "CHANGE_APPLICATION_SETTING", "APPLICATION_SETTINGS");
    assert_eq!(setting, (vec!["configuration"], vec!["change"]));
    assert_eq!(classify("groups", "add_user", "acl_change"), (vec!["iam"], vec!["group", "creation"]));
    assert_eq!(outcome("admin", "CREATE_USER"), "success", "an admin activity was done");
    assert_eq!(outcome("login", "suspicious_login"), "unknown");
}
