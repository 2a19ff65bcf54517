use super::*;
use crate::sources::testkit::{self, t, window};

/// Four of the five LogEvent records of Elastic's Filebeat Okta module
/// test input, verbatim (elastic/beats,
/// `x-pack/filebeat/module/okta/system/test/okta-system-test.json.log`,
/// commit 1917df5; the fourth record, a second `policy.evaluate_sign_on`
/// differing only in `debugData`, left out): a logout, a login, the
/// sign-on policy's verdict and a user's report of suspicious activity, as
/// `GET /api/v1/logs` returns them, in the file's order.
const BEATS_SAMPLE: &str = include_str!("beats_okta_system_test.jsonl");

fn sample() -> Vec<Value> {
    BEATS_SAMPLE.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The sample as one page of a bounded ascending answer: oldest first.
fn sample_page() -> Vec<Value> {
    let mut events = sample();
    events.sort_by_key(|e| utc_time(e.get("published")));
    events
}

fn api() -> Okta {
    Okta::new(&url::Url::parse("https://acme.okta.com").unwrap())
}

/// The window around the sample's events.
fn query(state: Option<&Value>) -> Query<'_> {
    testkit::query(window("2020-02-14T20:00:00.0004Z", "2020-02-14T23:00:00Z"), state, 1000)
}

/// An answer with a `Link` header.
fn page(events: &[Value], next: Option<&str>) -> ApiResponse {
    let mut r = testkit::resp(200, &json!(events));
    let this = "<https://acme.okta.com/api/v1/logs?limit=1000>; rel=\"self\"";
    r.headers.append(reqwest::header::LINK, this.parse().unwrap());
    if let Some(n) = next {
        r.headers.append(reqwest::header::LINK, format!("<{n}>; rel=\"next\"").parse().unwrap());
    }
    r
}

/// An `okta` source's own keys.
const KEYS: &str = "url = \"https://acme.okta.com\"\ntoken = \"00abcTOKEN\"\n";

#[test]
fn the_registry_builds_ssws_auth_and_checks_the_keys() {
    let cfg: OktaConfig = testkit::keys(KEYS).unwrap();
    let env = crate::settings::secret::tests::FakeEnv::default();
    let (api, auth) = testkit::build(&cfg, &env).unwrap();
    assert!(
        matches!(&auth, Auth::Header { name, value } if name == "Authorization" && value.expose() == "SSWS 00abcTOKEN")
    );
    assert!(!format!("{auth:?}").contains("00abcTOKEN"), "the token never shows in Debug");
    assert_eq!(api.defaults().page_size, 1000);
    let bad = KEYS.replace("acme.okta.com", "acme-admin.okta.com").replace("token = \"00abcTOKEN\"\n", "");
    let p = testkit::problems::<OktaConfig>(&bad, "page_size = 1001");
    let has = |s: &str| p.iter().any(|m| m.contains(s));
    assert!(has("source[0].url: is the Admin Console's address"), "{p:?}");
    assert!(has("source[0].page_size: Okta allows at most 1000"), "{p:?}");
    assert!(has("source[0].token: is required"), "{p:?}");
    let p = testkit::problems::<OktaConfig>(&KEYS.replace("token =", "query = \"x\"\ntoken ="), "");
    assert!(p[0].contains("source[0].query"), "{p:?}");
}

#[test]
fn a_window_is_one_bounded_ascending_request_then_its_next_links() {
    let a = api();
    let req = a.request(&query(None)).unwrap();
    assert_eq!(
        req.url.as_str(),
        "https://acme.okta.com/api/v1/logs?since=2020-02-14T20%3A00%3A00.000Z&until=2020-02-14T23%3A00%3A00.000Z\
         &limit=1000&sortOrder=ASCENDING"
    );
    let next = "https://acme.okta.com/api/v1/logs?limit=1000&sortOrder=ASCENDING&until=2020-02-14T23%3A00%3A00.000Z\
                &after=1581711531843_1";
    let p = a.parse(&query(None), &page(&sample_page(), Some(next))).unwrap();
    assert_eq!(p.next, Next::Page(json!({ "next": next, "last": "2020-02-14T22:18:51.843Z" })));
    let Next::Page(state) = &p.next else { unreachable!() };
    assert_eq!(a.request(&query(Some(state))).unwrap().url.as_str(), next);
    // No next: the bounded walk's last page.
    assert_eq!(a.parse(&query(None), &page(&sample_page(), None)).unwrap().next, Next::Done);
    // A page page_size asks for less than 1000 never asks Okta for more.
    let small = testkit::query(window("2020-02-14T20:00:00Z", "2020-02-14T23:00:00Z"), None, 5000);
    assert!(a.request(&small).unwrap().url.as_str().contains("&limit=1000&"));
}

/// Okta's `next` exists forever on a polling query (its reference, "Polling
/// requests"): an empty page ends the walk instead of following it into
/// the poller's pagination-loop check.
#[test]
fn an_empty_page_ends_the_walk_though_next_is_always_there() {
    let a = api();
    let next = "https://acme.okta.com/api/v1/logs?after=1581711531843_1&limit=1000";
    let state = json!({ "next": next, "last": "2020-02-14T22:18:51.843Z" });
    assert_eq!(a.parse(&query(Some(&state)), &page(&[], Some(next))).unwrap().next, Next::Done);
    // A short page with a next is not the last one: it is followed.
    let one = &sample_page()[..1];
    assert!(matches!(a.parse(&query(None), &page(one, Some(next))).unwrap().next, Next::Page(_)));
    // A relative next resolves against the org.
    let p = a.parse(&query(None), &page(one, Some("/api/v1/logs?after=x"))).unwrap();
    assert_eq!(
        p.next,
        Next::Page(json!({ "next": "https://acme.okta.com/api/v1/logs?after=x",
                                         "last": "2020-02-14T20:18:57.718Z" }))
    );
}

#[test]
fn unexpected_shapes_fail_loudly() {
    let a = api();
    let mut unsorted = sample();
    unsorted.truncate(2); // the file's order: 22:18 then 20:18
    let mut early = sample_page();
    early[0]["published"] = json!("2020-02-13T00:00:00.000Z");
    let state = json!({ "next": "https://acme.okta.com/api/v1/logs?after=x", "last": "2020-02-14T22:30:00Z" });
    let error = json!({ "errorCode": "E0000011", "errorSummary": "Invalid token provided", "errorLink": "E0000011",
                        "errorId": "oaeQ2kM8bBwRbaCtw3xSVxxJw", "errorCauses": [] });
    let cases: [(Option<&Value>, Value, &str); 6] = [
        (None, json!(unsorted), "not oldest first"),
        (Some(&state), json!(sample_page()), "not oldest first"),
        (None, json!(early), "did not bound the answer by `published`"),
        (None, error, "Okta answered E0000011: Invalid token provided"),
        (None, json!({ "events": [] }), "expected a JSON array of LogEvent objects, got an object"),
        (None, json!([{ "id": "x", "time": "2020-02-14T21:00:00Z" }]), "element 0 of the answer is not a LogEvent"),
    ];
    for (s, body, want) in cases {
        let e = a.parse(&query(s), &testkit::resp(200, &body)).unwrap_err();
        assert!(e.0.contains(want), "{e} should contain {want:?}");
    }
    assert!(matches!(a.verdict(403, b"{}"), Some(Verdict::Auth(d)) if d.contains("Read-only Administrator")));
    assert_eq!(a.verdict(401, b""), None);
}

/// The recorded shape (Elastic's Filebeat test input, [`BEATS_SAMPLE`])
/// read and mapped to ECS.
#[test]
fn the_beats_sample_maps_to_ecs() {
    let a = api();
    let p = a.parse(&query(None), &page(&sample_page(), None)).unwrap();
    assert_eq!(p.events.len(), 4);
    let docs = testkit::documents(&a, "okta", &p.events);
    let by_id = |id: &str| docs.iter().find(|e| e.str_field("event.id") == Some(id)).unwrap();
    let login = by_id("3aeede38-4f67-11ea-abd3-1f5d113f2546");
    assert_eq!(login.timestamp, t("2020-02-14T20:18:57.718Z"));
    assert_eq!(login.str_field("event.action"), Some("user.session.start"));
    assert_eq!(login.outcome(), "success");
    assert_eq!(login.fields()["event"]["category"], json!(["authentication"]));
    assert_eq!(login.fields()["event"]["type"], json!(["start"]));
    assert_eq!(login.str_field("user.name"), Some("xxxxxx@elastic.co"));
    assert_eq!(login.str_field("user.id"), Some("00u1abvz4pYqdM8ms4x6"));
    assert_eq!(login.str_field("user.full_name"), Some("xxxxxx"));
    assert_eq!(login.str_field("source.ip"), Some("67.43.156.12"));
    assert_eq!(
        login.str_field("user_agent.original"),
        Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:72.0) Gecko/20100101 Firefox/72.0")
    );
    assert_eq!(login.str_field("message"), Some("User login to Okta"));
    assert_eq!(
        login.fields()["okta"]["authentication_context"]["external_session_id"],
        json!("102bZDNFfWaQSyEZQuDgWt-uQ")
    );
    assert!(login.fields()["okta"].get("target").is_none(), "target null is left out");

    let logout = by_id("faf7398a-4f77-11ea-97fb-5925e98228bd");
    assert_eq!(logout.fields()["event"]["type"], json!(["end"]));

    let policy = by_id("3af594f9-4f67-11ea-abd3-1f5d113f2546");
    assert_eq!(policy.outcome(), "unknown", "ALLOW is neither SUCCESS nor FAILURE/DENY");
    assert_eq!(policy.str_field("okta.outcome.result"), Some("ALLOW"));
    assert_eq!(policy.str_field("event.reason"), Some("Sign-on policy evaluation resulted in ALLOW"));
    assert_eq!(policy.fields()["okta"]["target"][1]["type"], json!("PolicyRule"));

    let report = by_id("c2adb364-88d1-45a9-a620-2b64e44c5fcf");
    assert_eq!(report.fields()["event"]["category"], json!(["iam"]));
    assert_eq!(report.fields()["event"]["type"], json!(["user", "info"]));
    assert_eq!(report.str_field("okta.severity"), Some("WARN"));
    assert_eq!(report.fields()["okta"]["target"][0]["alternateId"], json!("xxxxxx@elastic.co"));
}

#[test]
fn event_type_families_and_outcomes() {
    let cases = [
        ("user.lifecycle.create", Some(("iam", vec!["user", "creation"]))),
        ("user.lifecycle.deactivate", Some(("iam", vec!["user", "change"]))),
        ("user.lifecycle.delete.initiated", Some(("iam", vec!["user", "info"]))),
        ("group.user_membership.add", Some(("iam", vec!["group", "change"]))),
        ("group.lifecycle.create", Some(("iam", vec!["group", "creation"]))),
        ("application.user_membership.remove", Some(("iam", vec!["user", "change"]))),
        ("user.authentication.sso", Some(("authentication", vec!["info"]))),
        ("user.mfa.factor.activate", Some(("authentication", vec!["info"]))),
        ("policy.lifecycle.update", Some(("configuration", vec!["change"]))),
        ("policy.rule.delete", Some(("configuration", vec!["deletion"]))),
        ("system.api_token.create", Some(("configuration", vec!["creation"]))),
        ("application.lifecycle.update", Some(("configuration", vec!["change"]))),
        ("app.oauth2.as.authorize.code", Some(("authentication", vec!["info"]))),
        ("security.request.blocked", None),
    ];
    for (ty, want) in cases {
        assert_eq!(classify(ty), want, "{ty}");
    }
    let outcomes = [
        ("SUCCESS", "success"),
        ("FAILURE", "failure"),
        ("DENY", "failure"),
        ("CHALLENGE", "unknown"),
        ("", "unknown"),
    ];
    for (result, want) in outcomes {
        assert_eq!(outcome(Some(result).filter(|r| !r.is_empty())), want, "{result}");
    }
}
