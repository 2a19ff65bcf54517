use super::*;
use crate::sources::testkit::{self, t, window};

/// Five events of the go-atlassian SDK's fixture of a
/// `GET /admin/v1/orgs/{orgId}/events` answer, verbatim (ctreminiom/go-atlassian,
/// `admin/mocks/get-organization-audit-events.json`, commit
/// f1857027d6667ccae260fc16f093ea0b649959a7: its 1st, 2nd, 4th, 6th and
/// 8th elements of `data`, and the page's `links`/`meta` tail): a policy
/// deleted, an API key created, an authentication policy changed by the
/// system (no location), a group deleted and a user removed from a site,
/// newest first as the page has them. Elastic has no integration for the
/// organisation audit log, so this is the public sample there is.
const GO_ATLASSIAN_SAMPLE: &str = include_str!("go_atlassian_audit_events_sample.json");

const ORG: &str = "9a1jj823-jac8-123d-jj01-63315k059cb2";

fn sample_page() -> Value {
    serde_json::from_str(GO_ATLASSIAN_SAMPLE).unwrap()
}

fn sample() -> Vec<Value> {
    sample_page()["data"].as_array().unwrap().clone()
}

fn api() -> Atlassian {
    Atlassian::new(&url::Url::parse(ATLASSIAN_API).unwrap(), ORG)
}

/// The window around the sample's events.
fn query(state: Option<&Value>) -> Query<'_> {
    testkit::query(window("2021-03-01T00:00:00.0004Z", "2021-04-04T00:00:00Z"), state, 100)
}

fn page(events: &[Value], next: Option<&str>) -> ApiResponse {
    let links = next.map_or(json!({}), |n| json!({ "next": n }));
    testkit::resp(200, &json!({ "data": events, "links": links, "meta": { "page_size": 100 } }))
}

/// An `atlassian` source's own keys.
const KEYS: &str = "org_id = \"9a1jj823-jac8-123d-jj01-63315k059cb2\"\ntoken = \"ATCTT3xFfGN0-key\"\n";

#[test]
fn the_registry_builds_bearer_auth_and_checks_the_keys() {
    let cfg: AtlassianConfig = testkit::keys(KEYS).unwrap();
    let env = crate::settings::secret::tests::FakeEnv::default();
    let (api, auth) = testkit::build(&cfg, &env).unwrap();
    assert!(matches!(&auth, Auth::Bearer(t) if t.expose() == "ATCTT3xFfGN0-key"));
    assert!(!format!("{auth:?}").contains("ATCTT3xFfGN0"), "the key never shows in Debug");
    assert_eq!(api.defaults().page_size, 100);
    assert_eq!(api.order(), Order::Desc);
    let req = api.request(&query(None)).unwrap();
    assert_eq!(req.url.host_str(), Some("api.atlassian.com"));
    assert_eq!(req.url.path(), "/admin/v1/orgs/9a1jj823-jac8-123d-jj01-63315k059cb2/events");

    let p = testkit::problems::<AtlassianConfig>("", "page_size = 501");
    let has = |s: &str| p.iter().any(|m| m.contains(s));
    assert!(has("source[0].org_id: is required"), "{p:?}");
    assert!(has("source[0].page_size: at most 500"), "{p:?}");
    assert!(has("source[0].token: is required"), "{p:?}");
    let p = testkit::problems::<AtlassianConfig>(&KEYS.replace(ORG, "Acme Corp/../x"), "");
    assert!(p[0].contains("source[0].org_id: must be the organisation's id"), "{p:?}");
}

#[test]
fn a_window_is_asked_in_epoch_milliseconds_then_follows_links_next() {
    let a = api();
    let req = a.request(&query(None)).unwrap();
    assert_eq!(req.url.query(), Some("from=1614556800000&to=1617494400000&limit=100"));
    let next = format!("https://api.atlassian.com/admin/v1/orgs/{ORG}/events?cursor=ZXZlbnRzOjE2MTc0MTU&limit=100");
    let p = a.parse(&query(None), &page(&sample(), Some(&next))).unwrap();
    assert_eq!(p.events.len(), 5);
    assert_eq!(p.next, Next::Page(json!({ "next": next })));
    let Next::Page(state) = &p.next else { unreachable!() };
    assert_eq!(a.request(&query(Some(state))).unwrap().url.as_str(), next);
    // The fixture's own tail, `"links": {}`: the last page.
    let last = testkit::resp(200, &sample_page());
    assert_eq!(a.parse(&query(Some(state)), &last).unwrap().next, Next::Done);
    // A relative next resolves against the API; a cursor alone is sent with the bounds.
    let p = a.parse(&query(None), &page(&sample()[..1], Some("/admin/v1/orgs/x/events?cursor=c2"))).unwrap();
    assert_eq!(p.next, Next::Page(json!({ "next": "https://api.atlassian.com/admin/v1/orgs/x/events?cursor=c2" })));
    let meta = testkit::resp(200, &json!({ "data": &sample()[..1], "links": {}, "meta": { "next": "c3" } }));
    let Next::Page(state) = a.parse(&query(None), &meta).unwrap().next else { panic!("meta.next is followed") };
    let q = a.request(&query(Some(&state))).unwrap();
    assert_eq!(q.url.query(), Some("from=1614556800000&to=1617494400000&limit=100&cursor=c3"));
}

#[test]
fn unexpected_shapes_fail_loudly() {
    let a = api();
    let mut late = sample()[0].clone();
    late["attributes"]["time"] = json!("2021-05-01T00:00:00Z");
    let errors = json!({ "errors": [{ "id": "e1", "status": "400", "code": "Error.InvalidPageCursor",
                                      "title": "Invalid page cursor", "detail": "cursor is malformed" }] });
    let cases: [(Value, &str); 4] = [
        (json!({ "data": [late], "links": {} }), "Atlassian did not bound the answer by time"),
        (errors, "Atlassian answered errors (Error.InvalidPageCursor: Invalid page cursor: cursor is malformed)"),
        (json!([sample()[0]]), "expected an object with a data array"),
        (
            json!({ "data": [{ "id": "x", "attributes": { "time": "2021-04-01T00:00:00Z" } }] }),
            "event 0 of the answer is not an audit event",
        ),
    ];
    for (body, want) in cases {
        let e = a.parse(&query(None), &testkit::resp(200, &body)).unwrap_err();
        assert!(e.0.contains(want), "{e} should contain {want:?}");
    }
}

#[test]
fn a_401_403_and_an_org_not_found_are_refused_credentials_saying_what_to_fix() {
    let a = api();
    let unauth = br#"{"errors":[{"id":"1","status":"401","code":"Error.Unauthenticated","title":"Unauthorized"}]}"#;
    let Some(Verdict::Auth(m)) = a.verdict(401, unauth) else { panic!() };
    assert!(m.contains("Error.Unauthenticated") && m.contains("not valid"), "{m}");
    let Some(Verdict::Auth(m)) = a.verdict(403, b"Forbidden") else { panic!() };
    assert!(m.contains("organisation admin's API key"), "{m}");
    let org = br#"{"errors":[{"status":"404","code":"Error.OrgNotFound","title":"Org not found"}]}"#;
    let Some(Verdict::Auth(m)) = a.verdict(404, org) else { panic!() };
    assert!(m.contains("Error.OrgNotFound") && m.contains("org_id"), "{m}");
    assert_eq!(a.verdict(404, b"<html>Not Found</html>"), None, "a wrong path is not the organisation");
    assert_eq!(a.verdict(429, b""), None, "throttling is the poller's");
}

#[test]
fn an_empty_window_asks_once_for_the_newest_and_fails_when_it_lies_inside() {
    let a = api();
    let empty = a.parse(&query(None), &page(&[], None)).unwrap();
    let Next::Page(guard) = empty.next else { panic!("the guard runs on an empty window") };
    assert_eq!(a.request(&query(Some(&guard))).unwrap().url.query(), Some("limit=1"), "unfiltered");
    let err = a.parse(&query(Some(&guard)), &page(&sample()[..1], None)).unwrap_err();
    assert!(err.0.contains("Atlassian did not filter by time in epoch milliseconds as sent"), "{err}");
    assert!(err.0.contains("25e4c3e7-7f0d-4b84-8028-330fed144a51"), "names the event: {err}");
    let before = testkit::query(window("2021-05-01T00:00:00Z", "2021-06-01T00:00:00Z"), Some(&guard), 100);
    assert_eq!(a.parse(&before, &page(&sample()[..1], None)).unwrap().next, Next::Done);
    a.parse(&query(None), &page(&sample(), None)).unwrap();
    assert_eq!(a.parse(&query(None), &page(&[], None)).unwrap().next, Next::Done, "settled");
}

/// The recorded shape (the go-atlassian fixture, [`GO_ATLASSIAN_SAMPLE`])
/// read and mapped to ECS.
#[test]
fn the_go_atlassian_sample_maps_to_ecs() {
    let a = api();
    let p = a.parse(&query(None), &testkit::resp(200, &sample_page())).unwrap();
    let docs = testkit::documents(&a, "atl", &p.events);
    let by_id = |id: &str| docs.iter().find(|e| e.str_field("event.id") == Some(id)).unwrap();

    let policy = by_id("25e4c3e7-7f0d-4b84-8028-330fed144a51");
    assert_eq!(policy.timestamp, t("2021-04-03T06:12:11.117451Z"));
    assert_eq!(policy.str_field("event.action"), Some("policy_deleted"));
    assert_eq!(policy.outcome(), "success");
    assert_eq!(policy.fields()["event"]["category"], json!(["configuration"]));
    assert_eq!(policy.fields()["event"]["type"], json!(["deletion"]));
    assert_eq!(policy.str_field("user.name"), Some("go-atlassian-demo-api"));
    assert_eq!(policy.str_field("user.id"), Some("6066553090e3950069df8558"));
    assert_eq!(policy.str_field("source.ip"), Some("201.202.14.26"));
    assert_eq!(policy.str_field("source.geo.country_name"), Some("Costa Rica"));
    assert_eq!(policy.str_field("source.geo.city_name"), Some("Cartago"));
    assert_eq!(policy.str_field("atlassian.target.name"), Some("global-realm-policy"));
    assert_eq!(policy.str_field("atlassian.target.type"), Some("org-policy"));
    assert_eq!(policy.str_field("organization.id"), Some(ORG));
    assert_ne!(policy.str_field("message"), Some(""), "an empty content is left to the default message");

    let key = by_id("7bdedaaf-1a46-4631-b78e-9cbcdbcf556a");
    assert_eq!(key.fields()["event"]["category"], json!(["iam"]));
    assert_eq!(key.fields()["event"]["type"], json!(["user", "creation"]));
    assert_eq!(key.str_field("user.email"), Some("ctreminiom079@gmail.com"));
    assert_eq!(key.str_field("message"), Some("Created admin API key"));

    let system = by_id("54054124-7105-4bd4-bbbd-5a76dae4b16c");
    assert_eq!(system.timestamp, t("2021-04-01T22:55:18Z"));
    assert_eq!(system.str_field("user.id"), Some("atlassian-internal-system"));
    assert!(system.fields()["user"].get("email").is_none(), "\"Atlassian Internal System\" is no e-mail");
    assert!(system.fields().get("source").is_none(), "no location");
    assert_eq!(system.fields()["event"]["type"], json!(["change"]));

    let group = by_id("f7b0e231-703d-4f0c-a30b-acb68e8286f2");
    assert_eq!(group.fields()["event"]["type"], json!(["group", "deletion"]));
    assert_eq!(group.str_field("group.name"), Some("jira-users-2"));
    assert_eq!(group.str_field("group.id"), Some("8cfb8956-6559-441e-94e9-f08955a61696"));
    assert_eq!(group.fields()["atlassian"]["container"][0]["attributes"]["siteName"], "ctreminiom");

    let removed = by_id("d2b25da2-7daa-4796-b6b6-a31fba4bcafe");
    assert_eq!(removed.fields()["event"]["type"], json!(["user", "deletion"]));
    assert_eq!(removed.str_field("user.target.name"), Some("example@equifax.com"));
    assert_eq!(removed.str_field("user.target.id"), Some("603edd77ee117700705ec331"));
    assert_eq!(removed.fields()["observer"]["vendor"], "Atlassian");
}

#[test]
fn action_families_and_outcomes() {
    let cases = [
        ("user_logged_in", (Some("authentication"), vec!["start"])),
        ("user_login_failed", (Some("authentication"), vec!["start"])),
        ("user_logged_out", (Some("authentication"), vec!["end"])),
        ("group_created", (Some("iam"), vec!["group", "creation"])),
        ("user_added_to_group", (Some("iam"), vec!["group", "creation"])),
        ("user_invited", (Some("iam"), vec!["user", "creation"])),
        ("api_token_revoked", (Some("iam"), vec!["user", "deletion"])),
        ("domain_added", (Some("configuration"), vec!["creation"])),
        ("domain_verification_completed", (Some("configuration"), vec!["change"])),
        ("jira_issue_viewed", (None, vec!["access"])),
    ];
    for (action, want) in cases {
        assert_eq!(classify(action), want, "{action}");
    }
    assert_eq!(outcome("user_login_failed"), "failure");
    assert_eq!(outcome("group_created"), "success");
}
