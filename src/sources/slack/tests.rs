use super::*;
use crate::sources::testkit::{self, t, window};

/// The six raw Audit Logs API entries of Elastic's Slack integration
/// pipeline test input, verbatim (elastic/integrations,
/// `packages/slack/data_stream/audit/_dev/test/pipeline/test-audit.log`,
/// commit f29825de3c1c695fbc622d1a72f4160929fd4fae): a login (the example
/// of Slack's "Using the Audit Logs API" page, its IP replaced), a user
/// created, a file downloaded (`session_id` a number, `details`), two
/// anomalies and a malicious file, as `entries[]` elements of
/// `GET /audit/v1/logs`. The envelope around them (`ok`, `entries`,
/// `response_metadata.next_cursor`) is python-slack-sdk's
/// (`tests/slack_sdk/audit_logs/test_response.py`).
const ELASTIC_SAMPLE: &str = include_str!("elastic_slack_audit_test.log");

fn sample() -> Vec<Value> {
    ELASTIC_SAMPLE.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The sample as one page, newest first as Slack is read.
fn sample_page() -> Vec<Value> {
    let mut events = sample();
    events.sort_by_key(|e| std::cmp::Reverse(event_time(e)));
    events
}

fn api() -> Slack {
    Slack::new(&url::Url::parse(SLACK_API).unwrap())
}

/// The window around the sample's entries.
fn query(state: Option<&Value>) -> Query<'_> {
    testkit::query(window("2018-03-01T00:00:00.5Z", "2024-04-01T00:00:00.2Z"), state, 1000)
}

/// An answer as Slack sends it.
fn page(entries: &[Value], next_cursor: &str) -> ApiResponse {
    testkit::resp(200, &json!({ "ok": true, "entries": entries, "response_metadata": { "next_cursor": next_cursor } }))
}

/// A `slack` source's own keys.
const KEYS: &str = "token = \"xoxp-1234567890-0987654321\"\n";

#[test]
fn the_registry_builds_bearer_auth_and_checks_the_keys() {
    let cfg: SlackConfig = testkit::keys(KEYS).unwrap();
    let env = crate::settings::secret::tests::FakeEnv::default();
    let (api, auth) = testkit::build(&cfg, &env).unwrap();
    assert!(matches!(&auth, Auth::Bearer(t) if t.expose() == "xoxp-1234567890-0987654321"));
    assert!(!format!("{auth:?}").contains("xoxp-1234567890"), "the token never shows in Debug");
    assert_eq!(api.defaults().page_size, 1000);
    assert_eq!(api.order(), Order::Desc);
    let q = query(None);
    assert!(api.request(&q).unwrap().url.as_str().starts_with("https://api.slack.com/audit/v1/logs?"));

    let p = testkit::problems::<SlackConfig>("", "page_size = 10000");
    let has = |s: &str| p.iter().any(|m| m.contains(s));
    assert!(has("source[0].page_size: Slack allows at most 9999"), "{p:?}");
    assert!(has("source[0].token: is required"), "{p:?}");
    let p = testkit::problems::<SlackConfig>(KEYS, "lag = \"0s\"\nlookback = \"500ms\"");
    assert!(p[0].contains("source[0].lag: Slack dates entries in whole seconds"), "{p:?}");
    assert!(testkit::problems::<SlackConfig>(KEYS, "lag = \"0s\"\nlookback = \"1s\"").is_empty());
    let p = testkit::problems::<SlackConfig>(&KEYS.replace("token =", "org = \"x\"\ntoken ="), "");
    assert!(p[0].contains("source[0].org"), "{p:?}");

    let bot: SlackConfig = testkit::keys(&KEYS.replace("xoxp-", "xoxb-")).unwrap();
    let Err(err) = testkit::build(&bot, &env) else { panic!("a bot token") };
    let text = format!("{err:?}");
    assert!(text.contains("source[0].token") && text.contains("xoxp-"), "{text}");
}

#[test]
fn a_window_is_asked_in_whole_seconds_then_by_cursor() {
    let a = api();
    let req = a.request(&query(None)).unwrap();
    // 2018-03-01T00:00:00.5Z down, 2024-04-01T00:00:00.2Z up.
    assert_eq!(req.url.as_str(), "https://api.slack.com/audit/v1/logs?oldest=1519862400&latest=1711929601&limit=1000");
    let p = a.parse(&query(None), &page(&sample_page()[..3], "dXNlcjpVMEc5V0ZYTlo=")).unwrap();
    assert_eq!(p.next, Next::Page(json!({ "cursor": "dXNlcjpVMEc5V0ZYTlo=" })));
    let Next::Page(state) = &p.next else { unreachable!() };
    assert_eq!(
        a.request(&query(Some(state))).unwrap().url.as_str(),
        "https://api.slack.com/audit/v1/logs?oldest=1519862400&latest=1711929601&limit=1000&cursor=dXNlcjpVMEc5V0ZYTlo%3D"
    );
    // An empty next_cursor, or none, ends the walk.
    assert_eq!(a.parse(&query(Some(state)), &page(&sample_page()[3..], "")).unwrap().next, Next::Done);
    let bare = testkit::resp(200, &json!({ "ok": true, "entries": sample_page() }));
    assert_eq!(a.parse(&query(None), &bare).unwrap().next, Next::Done);
    // A page_size over Slack's maximum never reaches Slack.
    let big = testkit::query(window("2018-03-01T00:00:00Z", "2018-03-02T00:00:00Z"), None, 20000);
    assert!(a.request(&big).unwrap().url.as_str().ends_with("&limit=9999"));
}

/// The recorded shape (Elastic's pipeline test input, [`ELASTIC_SAMPLE`])
/// read and mapped to ECS.
#[test]
fn the_elastic_sample_maps_to_ecs() {
    let a = api();
    let p = a.parse(&query(None), &page(&sample_page(), "")).unwrap();
    assert_eq!(p.events.len(), 6);
    let docs = testkit::documents(&a, "slack", &p.events);
    let by_id = |id: &str| docs.iter().find(|e| e.str_field("event.id") == Some(id)).unwrap();

    let login = by_id("0123a45b-6c7d-8900-e12f-3456789gh0i1");
    assert_eq!(login.timestamp, t("2018-03-16T15:32:23Z"));
    assert_eq!(login.str_field("event.action"), Some("user_login"));
    assert_eq!(login.outcome(), "success");
    assert_eq!(login.fields()["event"]["category"], json!(["authentication"]));
    assert_eq!(login.fields()["event"]["type"], json!(["start"]));
    assert_eq!(login.str_field("user.name"), Some("Charlie Parker"));
    assert_eq!(login.str_field("user.email"), Some("bird@slack.com"));
    assert_eq!(login.str_field("user.id"), Some("W123AB456"));
    assert_eq!(login.str_field("source.ip"), Some("81.2.69.143"));
    assert_eq!(
        login.str_field("user_agent.original"),
        Some(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_6) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/64.0.3282.186 Safari/537.36"
        )
    );
    assert_eq!(login.fields()["slack"]["context"]["location"]["type"], json!("enterprise"));
    assert_eq!(login.fields()["slack"]["entity"]["user"]["email"], json!("bird@slack.com"));
    assert!(login.fields()["slack"].get("details").is_none());

    let created = by_id("bdcb13e3-28a3-41f0-9ace-a20952def3a0");
    assert_eq!(created.fields()["event"]["category"], json!(["iam"]));
    assert_eq!(created.fields()["event"]["type"], json!(["user", "creation"]));
    assert_eq!(created.str_field("user.name"), Some("roy"));
    assert_eq!(created.fields()["slack"]["entity"]["user"]["name"], json!("Joe Bob"));

    let download = by_id("2db28060-1659-4b27-ad55-fdba12e3a7b1");
    assert_eq!(download.fields()["event"]["category"], json!(["file"]));
    assert_eq!(download.fields()["event"]["type"], json!(["access"]));
    assert_eq!(download.fields()["slack"]["context"]["session_id"], json!("913888259765"));
    assert_eq!(download.fields()["slack"]["details"]["url_private"], json!("https://example.com/"));
    assert_eq!(download.fields()["slack"]["entity"]["file"]["name"], json!("image.png"));
    assert_eq!(download.str_field("user.id"), Some("2f52269c-4f38-4f08-b56d-c2b968681dbd"));
    assert_eq!(download.fields()["slack"]["actor"]["user"]["team"], json!("user-team"));

    let anomaly = by_id("abc8e17e-c081-4b82-a515-4c54674e3de4");
    assert!(anomaly.fields()["event"].get("category").is_none());
    assert_eq!(anomaly.fields()["event"]["type"], json!(["info"]));
    assert_eq!(anomaly.fields()["slack"]["details"]["reason"], json!(["asn", "ip_address"]));

    let malicious = by_id("bbcf1d28-4012-4771-8179-8a59c6f2bffa");
    assert_eq!(malicious.fields()["event"]["category"], json!(["file"]));
    assert_eq!(malicious.fields()["slack"]["details"]["md5_hash"], json!("7e2b2819a67bb11b0ca280c1d0646f42"));
}

#[test]
fn unexpected_shapes_fail_loudly() {
    let a = api();
    let mut early = sample_page();
    early[5]["date_create"] = json!(1_500_000_000);
    let cases: [(Value, &str); 6] = [
        (
            json!({ "ok": false, "error": "missing_scope", "needed": "auditlogs:read", "provided": "admin" }),
            "error \"missing_scope\" (needed: auditlogs:read): the credentials were refused",
        ),
        (json!({ "ok": false, "error": "invalid_auth" }), "the token is not valid"),
        (json!({ "ok": false, "error": "internal_error" }), "Slack answered ok=false, error \"internal_error\""),
        (json!({ "ok": true, "logs": [] }), "expected an object with an entries array"),
        (
            json!({ "ok": true, "entries": [{ "date_create": 1521214343 }] }),
            "entry 0 of the answer is not an audit event",
        ),
        (json!({ "ok": true, "entries": early }), "did not bound the answer by date_create"),
    ];
    for (body, want) in cases {
        let e = a.parse(&query(None), &testkit::resp(200, &body)).unwrap_err();
        assert!(e.0.contains(want), "{e} should contain {want:?}");
    }
}

/// Slack's token and plan errors come with a 4xx and `{"ok": false}`:
/// each is refused credentials saying what the token needs; a 429 is left
/// to the poller's `Retry-After` handling.
#[test]
fn token_and_plan_errors_are_refused_credentials() {
    let a = api();
    let auth = |status: u16, body: Value| match a.verdict(status, body.to_string().as_bytes()) {
        Some(Verdict::Auth(d)) => d,
        other => panic!("{status} {body}: {other:?}"),
    };
    assert!(auth(401, json!({ "ok": false, "error": "invalid_auth" })).contains("the token is not valid"));
    assert!(auth(403, json!({ "ok": false, "error": "not_allowed_token_type" })).contains("not a bot token"));
    assert!(auth(403, json!({ "ok": false, "error": "missing_scope", "needed": "auditlogs:read" }))
        .contains("auditlogs:read"));
    assert!(auth(400, json!({ "ok": false, "error": "feature_not_enabled" })).contains("Enterprise Grid"));
    assert!(auth(403, json!({ "ok": false, "error": "something_new" })).contains("something_new"));
    assert_eq!(a.verdict(429, br#"{"ok":false,"error":"ratelimited"}"#), None);
    assert_eq!(a.verdict(400, br#"{"ok":false,"error":"ratelimited"}"#), Some(Verdict::Throttled(None)));
    assert_eq!(a.verdict(400, br#"{"ok":false,"error":"invalid_arguments"}"#), None);
    assert_eq!(a.verdict(401, b"<html>"), None, "the poller's own 401 handling");
}

/// An empty window asks for the newest entry unfiltered: inside the
/// window, the filter was not honoured and the poll fails; after it (or
/// none at all), the window is truly empty. Once a filtered page has had
/// entries, the guard is not asked again.
#[test]
fn an_empty_window_is_guarded_until_the_filter_is_proven() {
    let a = api();
    let empty = page(&[], "");
    let p = a.parse(&query(None), &empty).unwrap();
    assert_eq!(p.next, Next::Page(guard_state(NEWEST)));
    let g = guard_state(NEWEST);
    assert_eq!(a.request(&query(Some(&g))).unwrap().url.as_str(), "https://api.slack.com/audit/v1/logs?limit=1");
    let e = a.parse(&query(Some(&g)), &page(&sample_page()[..1], "x")).unwrap_err();
    assert!(e.0.contains("did not filter by date_create in Unix seconds"), "{e}");
    assert!(e.0.contains("bbcf1d28-4012-4771-8179-8a59c6f2bffa"), "{e}");
    // Newer than the window: truly empty.
    let mut newer = sample_page()[0].clone();
    newer["date_create"] = json!(1_800_000_000);
    assert_eq!(a.parse(&query(Some(&g)), &page(&[newer], "x")).unwrap().next, Next::Done);
    // Wrong found: due again at once; quiet: not before an hour.
    assert_eq!(a.parse(&query(None), &empty).unwrap().next, Next::Page(guard_state(NEWEST)));
    let later = testkit::query(window("2024-04-01T00:00:00Z", "2024-04-01T00:10:00Z"), None, 1000);
    assert_eq!(a.parse(&later, &empty).unwrap().next, Next::Done, "a quiet guard waits an hour");
    // Proven by a filtered page: never again.
    let b = api();
    b.parse(&query(None), &page(&sample_page(), "")).unwrap();
    assert_eq!(b.parse(&query(None), &empty).unwrap().next, Next::Done);
}

#[test]
fn actions_classify_to_ecs() {
    let cases: [(&str, Option<&str>, Vec<&str>, &str); 17] = [
        ("user_login", Some("authentication"), vec!["start"], "success"),
        ("user_login_failed", Some("authentication"), vec!["start"], "failure"),
        ("user_logout", Some("authentication"), vec!["end"], "success"),
        ("user_session_reset_by_admin", Some("authentication"), vec!["end"], "success"),
        ("user_created", Some("iam"), vec!["user", "creation"], "success"),
        ("user_deactivated", Some("iam"), vec!["user", "deletion"], "success"),
        ("role_change_to_admin", Some("iam"), vec!["user", "change"], "success"),
        ("user_added_to_usergroup", Some("iam"), vec!["group", "change"], "success"),
        ("user_channel_join", Some("iam"), vec!["group", "change"], "success"),
        ("public_channel_created", Some("configuration"), vec!["creation"], "success"),
        ("app_installed", Some("configuration"), vec!["creation"], "success"),
        ("app_uninstalled", Some("configuration"), vec!["deletion"], "success"),
        ("pref.sso_setting_changed", Some("configuration"), vec!["change"], "success"),
        ("workspace_created", Some("configuration"), vec!["creation"], "success"),
        ("file_downloaded_blocked", Some("file"), vec!["access"], "failure"),
        ("file_uploaded", Some("file"), vec!["creation"], "success"),
        ("anomaly", None, vec!["info"], "success"),
    ];
    for (action, category, kind, out) in cases {
        assert_eq!(classify(action), (category, kind), "{action}");
        assert_eq!(outcome(action), out, "{action}");
    }
}
