use super::*;
use crate::sources::testkit::{self, resp, t, window};

fn api() -> Github {
    Github::org(&url::Url::parse("https://api.github.com").unwrap(), "octo-corp")
}

fn query(state: Option<&Value>) -> Query<'_> {
    testkit::query(window("2020-11-18T00:00:00.250Z", "2020-12-03T00:00:00Z"), state, 100)
}

fn with_link(mut r: ApiResponse, next: &str) -> ApiResponse {
    let link =
        format!("<{next}>; rel=\"next\", <https://api.github.com/orgs/octo-corp/audit-log?before=x>; rel=\"prev\"");
    r.headers.insert(reqwest::header::LINK, link.parse().unwrap());
    r
}

/// The example answer of GitHub's REST API reference, "Get the audit log
/// for an enterprise" (the `audit-log` example of
/// github/rest-api-description, the same three events reproduced verbatim
/// in clients generated from it and in nodestream-github's test fixtures),
/// newest first as GitHub's default order gives it.
fn sample() -> Vec<Value> {
    serde_json::from_str(include_str!("audit_log_sample.json")).unwrap()
}

#[test]
fn recorded_shape_the_reference_example_is_read_and_mapped() {
    let a = api();
    let mut rows = sample();
    rows.reverse(); // order=asc
    let p = a.parse(&query(None), &resp(200, &json!(rows))).unwrap();
    assert_eq!(p.events.len(), 3);
    assert_eq!(p.next, Next::Done, "no Link rel=next: the window is complete");
    let ids: Vec<_> = p.events.iter().map(|e| a.normalise(e).id.unwrap()).collect();
    assert_eq!(ids, ["LwW2vpJZCDS-WUmo9Z-ifw", "Vqvg6kZ4MYqwWRKFDzlMoQ", "xJJFlFOhQ6b-5vaAFy9Rjw"]);

    let raw = &sample()[0];
    let n = a.normalise(raw);
    assert_eq!(n.timestamp, Some(t("2020-12-02T17:24:34.512Z")));
    let e = crate::event::normalise("gh", a.observer(), raw, n, Utc::now());
    assert_eq!(e.str_field("event.action"), Some("team.add_member"));
    assert_eq!(e.outcome(), "success");
    assert_eq!(e.fields()["event"]["category"], json!(["iam"]));
    assert_eq!(e.fields()["event"]["type"], json!(["creation"]));
    assert_eq!(e.str_field("user.name"), Some("octocat"));
    assert_eq!(e.str_field("user.target.name"), Some("monalisa"));
    assert_eq!(e.fields()["github"]["team"], "octo-corp/example-team");
    assert_eq!(e.fields()["github"]["org"], "octo-corp");

    let destroy = crate::event::normalise("gh", a.observer(), &sample()[2], a.normalise(&sample()[2]), Utc::now());
    assert_eq!(destroy.fields()["event"]["category"], json!(["configuration"]));
    assert_eq!(destroy.fields()["event"]["type"], json!(["deletion"]));
    assert_eq!(destroy.fields()["github"]["repo"], "mona-org/mona-test-repo");
}

/// An enterprise event with the keys the reference example leaves out
/// (`actor_ip`, only when IP disclosure is on; `operation_type`;
/// `business`), shaped as Panther's GitHub rule tests record one
/// (`business_advanced_security.enabled`).
#[test]
fn actor_ip_operation_type_and_business_are_mapped() {
    let a = Github::enterprise(&url::Url::parse("https://api.github.com").unwrap(), "example-enterprise");
    let raw = json!({
        "@timestamp": 1671111111111i64, "_document_id": "gAcccccccccccccccccccc",
        "action": "business_advanced_security.enabled", "actor": "bobert", "actor_ip": "12.12.12.12",
        "actor_location": { "country_code": "US" }, "business": "example-enterprise",
        "created_at": 1671111111111i64, "operation_type": "modify", "user": "bobert"
    });
    let e = crate::event::normalise("gh", a.observer(), &raw, a.normalise(&raw), Utc::now());
    assert_eq!(e.str_field("source.ip"), Some("12.12.12.12"));
    assert_eq!(e.fields()["source"]["geo"]["country_iso_code"], "US");
    assert_eq!(e.fields()["event"]["type"], json!(["change"]));
    assert_eq!(e.fields()["event"]["category"], json!(["configuration"]));
    assert_eq!(e.fields()["github"]["business"], "example-enterprise");
    assert_eq!(e.fields()["github"]["operation_type"], "modify");
    assert_eq!(a.request(&query(None)).unwrap().url.path(), "/enterprises/example-enterprise/audit-log");
}

#[test]
fn categories_and_outcomes_follow_the_action() {
    let cases = [
        ("org.add_member", None, vec!["iam"], "creation"),
        ("org.remove_member", None, vec!["iam"], "deletion"),
        ("repo.add_member", None, vec!["iam"], "creation"),
        ("team.add_repository", None, vec!["configuration"], "creation"),
        ("repo.create", None, vec!["configuration"], "creation"),
        ("protected_branch.update", None, vec!["configuration"], "change"),
        ("git.clone", Some("access"), vec!["web"], "access"),
        ("git.push", None, vec!["web"], "change"),
        ("personal_access_token.access_granted", None, vec!["iam", "authentication"], "change"),
        ("oauth_authorization.create", None, vec!["iam", "authentication"], "creation"),
        ("org.oauth_app_access_approved", None, vec!["configuration"], "change"),
        ("hook.destroy", Some("remove"), vec!["configuration"], "deletion"),
    ];
    for (action, op, category, kind) in cases {
        assert_eq!(classify(action, op), (category, kind), "{action}");
    }
    assert_eq!(outcome("protected_branch.rejected_ref_update"), "failure");
    assert_eq!(outcome("org.sso_response_failed"), "failure");
    assert_eq!(outcome("personal_access_token.request_denied"), "failure");
    assert_eq!(outcome("repo.create"), "success");
}

#[test]
fn request_asks_for_the_window_oldest_first_and_follows_link() {
    let a = api();
    let req = a.request(&query(None)).unwrap();
    assert_eq!(req.url.path(), "/orgs/octo-corp/audit-log");
    let q: std::collections::HashMap<_, _> = req.url.query_pairs().into_owned().collect();
    assert_eq!(q["phrase"], "created:>=2020-11-18T00:00:00+00:00 created:<=2020-12-03T00:00:00+00:00");
    assert_eq!((q["include"].as_str(), q["order"].as_str(), q["per_page"].as_str()), ("all", "asc", "100"));
    assert!(req.url.as_str().contains("%2B00%3A00"), "the + of the offset is encoded: {}", req.url);
    assert!(req.headers.iter().any(|(k, v)| k == "x-github-api-version" && v == API_VERSION));

    let mut rows = sample();
    rows.reverse();
    let next = "https://api.github.com/orgs/octo-corp/audit-log?per_page=100&after=MS42MDY5Mjk4NzQ1MTJlKzEyfHhKSkZsRk9oUTZiLTV2YUFGeTlSanc%3D&include=all&order=asc";
    let p = a.parse(&query(None), &with_link(resp(200, &json!(rows)), next)).unwrap();
    let Next::Page(state) = p.next else { panic!("{:?}", p.next) };
    assert_eq!(state["next"], next);
    assert_eq!(state["last"], 1606929874512i64);
    assert_eq!(a.request(&query(Some(&state))).unwrap().url.as_str(), next);
}

#[test]
fn wrong_guesses_and_refusals_are_loud() {
    let a = api();
    let old = json!([{ "@timestamp": 1500000000000i64, "_document_id": "old", "action": "repo.create" }]);
    let e = a.parse(&query(None), &resp(200, &old)).unwrap_err();
    assert!(e.0.contains("ignored the phrase"), "{e}");
    let e = a.parse(&query(None), &resp(200, &json!(sample()))).unwrap_err();
    assert!(e.0.contains("order was ignored"), "{e}");
    let e = a.parse(&query(None), &resp(200, &json!({ "message": "Not Found" }))).unwrap_err();
    assert!(e.0.contains("not a JSON array"), "{e}");

    let secondary = br#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}"#;
    assert_eq!(a.verdict(403, secondary), Some(Verdict::Throttled(None)));
    assert_eq!(a.verdict(429, secondary), Some(Verdict::Throttled(None)));
    let not_found = br#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}"#;
    let Some(Verdict::Auth(d)) = a.verdict(404, not_found) else { panic!() };
    assert!(d.contains("organization \"octo-corp\"") && d.contains("read:audit_log"), "{d}");
    let Some(Verdict::Auth(d)) = a.verdict(403, br#"{"message":"Must have admin rights to Repository."}"#) else {
        panic!()
    };
    assert!(d.contains("read:audit_log") && d.contains("octo-corp"), "{d}");
    assert!(matches!(a.verdict(401, b"{\"message\":\"Bad credentials\"}"), Some(Verdict::Auth(_))));
    assert_eq!(a.verdict(500, b""), None);
}

#[test]
fn an_empty_window_is_checked_before_it_passes_for_quiet() {
    let a = api();
    let p = a.parse(&query(None), &resp(200, &json!([]))).unwrap();
    assert_eq!(p.next, Next::Page(guard_state(NEWEST)));
    let newest = a.request(&query(Some(&guard_state(NEWEST)))).unwrap();
    let q: std::collections::HashMap<_, _> = newest.url.query_pairs().into_owned().collect();
    assert!(!q.contains_key("phrase"));
    assert_eq!((q["order"].as_str(), q["per_page"].as_str()), ("desc", "1"));

    let ev = |ms: i64| json!([{ "@timestamp": ms, "_document_id": "d", "action": "repo.create" }]);
    let inside = 1606000000000i64;
    let after = 1607000000000i64;
    let before = 1605000000000i64;
    // A new organisation: no event at all.
    assert_eq!(a.parse(&query(Some(&guard_state(NEWEST))), &resp(200, &json!([]))).unwrap().next, Next::Done);
    assert_eq!(a.parse(&query(Some(&guard_state(NEWEST))), &resp(200, &ev(before))).unwrap().next, Next::Done);
    let e = a.parse(&query(Some(&guard_state(NEWEST))), &resp(200, &ev(inside))).unwrap_err();
    assert!(e.0.contains("did not honour the created qualifier"), "{e}");
    let step2 = a.parse(&query(Some(&guard_state(NEWEST))), &resp(200, &ev(after))).unwrap().next;
    assert_eq!(step2, Next::Page(guard_state(BEFORE_END)));
    let q2: std::collections::HashMap<_, _> =
        a.request(&query(Some(&guard_state(BEFORE_END)))).unwrap().url.query_pairs().into_owned().collect();
    assert_eq!(q2["phrase"], "created:<=2020-12-03T00:00:00+00:00");
    assert!(a.parse(&query(Some(&guard_state(BEFORE_END))), &resp(200, &ev(after))).is_err());
    let step3 = a.parse(&query(Some(&guard_state(BEFORE_END))), &resp(200, &json!([]))).unwrap().next;
    assert_eq!(step3, Next::Page(guard_state(OLDEST)));
    assert!(a.parse(&query(Some(&guard_state(OLDEST))), &resp(200, &ev(before))).is_err());
    assert_eq!(a.parse(&query(Some(&guard_state(OLDEST))), &resp(200, &ev(after))).unwrap().next, Next::Done);
}

#[test]
fn config_needs_exactly_one_of_org_and_enterprise() {
    let problems = |keys: &str, common: &str| {
        testkit::problems::<GithubConfig>(&format!("token = \"t\"\n{keys}\n"), common).join("\n")
    };
    let cfg: GithubConfig = testkit::keys("token = \"t\"\norg = \"octo-corp\"").unwrap();
    let (api, _) = testkit::build(&cfg, &crate::settings::secret::tests::FakeEnv::default()).unwrap();
    assert_eq!(api.observer().vendor, "GitHub");
    assert!(problems("enterprise = \"octo\"\nurl = \"https://ghe.example.com/api/v3\"", "").is_empty());
    assert!(problems("", "").contains("source[0].org"));
    assert!(problems("org = \"a\"\nenterprise = \"b\"", "").contains("source[0].enterprise"));
    assert!(problems("org = \"a/b\"", "").contains("login or slug"));
    assert!(problems("org = \"a\"", "page_size = 500").contains("at most 100"));
}
