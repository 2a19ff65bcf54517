use super::*;
use crate::sources::testkit::{self, sent_json, t, window};

/// The raw audit events of Elastic's 1Password integration pipeline test
/// input, verbatim from their `message` strings (elastic/integrations,
/// `packages/1password/data_stream/audit_events/_dev/test/pipeline/test-auditevents.json`,
/// commit 6467eb9b585067268b9a7ae914e9a98aba169732): a user suspended, by
/// an actor with `actor_details`, a session with its IP, one with a
/// location. Both carry the same `uuid` (the sample repeats the event
/// without its location). The envelope around them (`cursor`, `has_more`,
/// `items`) is the Events API's `AuditEventItemsV2` response schema
/// (1Password's OpenAPI, `https://i.1password.com/media/1password-events-reporting/1password-events-api.yaml`).
const ELASTIC_SAMPLE: &str = include_str!("elastic_1password_auditevents_test.jsonl");

fn sample() -> Vec<Value> {
    ELASTIC_SAMPLE.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn api() -> Onepassword {
    Onepassword::new(&url::Url::parse(ONEPASSWORD_SERVERS[0]).unwrap())
}

/// The window around the sample's events.
fn query(state: Option<&Value>) -> Query<'_> {
    testkit::query(window("2022-10-24T21:00:00Z", "2022-10-24T22:00:00Z"), state, 1000)
}

/// An answer as the Events API sends it.
fn page(items: &[Value], cursor: &str, has_more: bool) -> ApiResponse {
    testkit::resp(200, &json!({ "cursor": cursor, "has_more": has_more, "items": items }))
}

/// An `onepassword` source's own keys.
const KEYS: &str = "token = \"eyJhbGciOiJFUzI1NiJ9.test\"\n";

#[test]
fn the_registry_builds_bearer_auth_and_checks_the_keys() {
    let cfg: OnepasswordConfig = testkit::keys(KEYS).unwrap();
    let env = crate::settings::secret::tests::FakeEnv::default();
    let (api, auth) = testkit::build(&cfg, &env).unwrap();
    assert!(matches!(&auth, Auth::Bearer(t) if t.expose() == "eyJhbGciOiJFUzI1NiJ9.test"));
    assert!(!format!("{auth:?}").contains("eyJhbGci"), "the token never shows in Debug");
    assert_eq!(api.defaults().page_size, 1000);
    assert_eq!(api.order(), Order::Desc);
    let req = api.request(&query(None)).unwrap();
    assert_eq!(req.method, reqwest::Method::POST);
    assert_eq!(req.url.as_str(), "https://events.1password.com/api/v2/auditevents");

    let eu = KEYS.replace("token =", "url = \"https://events.1password.eu\"\ntoken =");
    let cfg: OnepasswordConfig = testkit::keys(&eu).unwrap();
    let (api, _) = testkit::build(&cfg, &env).unwrap();
    assert_eq!(api.request(&query(None)).unwrap().url.as_str(), "https://events.1password.eu/api/v2/auditevents");

    let p = testkit::problems::<OnepasswordConfig>("", "page_size = 1001");
    let has = |s: &str| p.iter().any(|m| m.contains(s));
    assert!(has("source[0].page_size: 1Password allows at most 1000"), "{p:?}");
    assert!(has("source[0].token: is required"), "{p:?}");
}

#[test]
fn a_window_opens_with_a_reset_cursor_then_sends_the_cursor_alone() {
    let a = api();
    let first = sent_json(&a.request(&query(None)).unwrap());
    assert_eq!(
        first,
        json!({ "limit": 1000, "start_time": "2022-10-24T21:00:00Z", "end_time": "2022-10-24T22:00:00Z" })
    );
    let p = a.parse(&query(None), &page(&sample()[..1], "aGVsbG8hIElzIGl0IG1lIHlvdSdyZSBsb29raW5nIGZvcj8K", true));
    let p = p.unwrap();
    assert_eq!(p.events.len(), 1);
    let Next::Page(state) = p.next else { panic!("has_more: another page") };
    let next = sent_json(&a.request(&query(Some(&state))).unwrap());
    assert_eq!(next, json!({ "cursor": "aGVsbG8hIElzIGl0IG1lIHlvdSdyZSBsb29raW5nIGZvcj8K" }));
    // The last page: has_more false ends the walk, whatever its cursor.
    let last = a.parse(&query(Some(&state)), &page(&sample()[1..], "bmV4dA", false)).unwrap();
    assert_eq!(last.next, Next::Done);
}

#[test]
fn the_recorded_events_map_to_ecs() {
    let a = api();
    let p = a.parse(&query(None), &page(&sample(), "c", false)).unwrap();
    let docs = testkit::documents(&a, "op", &p.events);
    let e = &docs[0];
    assert_eq!(e.str_field("event.id"), Some("3UQOGUC7DVOCN4OZP2MDKHFLSG"));
    assert_eq!(e.timestamp, t("2022-10-24T21:16:52.827288935Z"));
    assert_eq!(e.str_field("event.action"), Some("suspend"));
    assert_eq!(e.outcome(), "success");
    assert_eq!(e.fields()["event"]["category"], json!(["iam"]));
    assert_eq!(e.fields()["event"]["type"], json!(["user", "change"]));
    assert_eq!(e.str_field("user.id"), Some("GLF6WUEKS5CSNDJ2OG6TCZD3M4"));
    assert_eq!(e.str_field("user.name"), Some("Test Actor"));
    assert_eq!(e.str_field("user.email"), Some("test.actor@domain.com"));
    assert_eq!(e.str_field("source.ip"), Some("89.160.20.156"));
    assert_eq!(e.str_field("onepassword.object_type"), Some("user"));
    assert_eq!(e.str_field("onepassword.object_uuid"), Some("ZRQCUD6A65AKHFETOUFO7NL4OM"));
    assert_eq!(e.fields()["onepassword"]["location"]["city"], "Toronto");
    assert_eq!(e.fields()["onepassword"]["session"]["device_uuid"], "rqtd557fn2husnstp5nc66w2xa");
    assert!(docs[1].fields()["onepassword"].get("location").is_none(), "the second has none");
    assert_eq!(e.fields()["observer"]["vendor"], "1Password");
    // Vaults, items and the rest are configuration.
    let vault =
        json!({ "uuid": "V1", "timestamp": "2022-10-24T21:20:00Z", "action": "create", "object_type": "vault" });
    let docs = testkit::documents(&a, "op", &[vault, gm_left()]);
    assert_eq!(docs[0].fields()["event"]["category"], json!(["configuration"]));
    assert_eq!(docs[0].fields()["event"]["type"], json!(["creation"]));
    assert_eq!(docs[1].fields()["event"]["type"], json!(["group", "deletion"]));
}

/// A group membership ended (`gm`, `leave`).
fn gm_left() -> Value {
    json!({ "uuid": "G1", "timestamp": "2022-10-24T21:20:00Z", "action": "leave", "object_type": "gm" })
}

#[test]
fn a_wrong_shape_or_unbounded_answer_fails_naming_it() {
    let a = api();
    let fails = |body: Value, says: &str| {
        let err = a.parse(&query(None), &testkit::resp(200, &body)).unwrap_err();
        assert!(err.0.contains(says), "{err}");
    };
    fails(json!({ "Error": { "Message": "Unauthorized" } }), "expected an object with an items array");
    fails(json!({ "items": [{ "timestamp": "2022-10-24T21:16:52Z" }] }), "item 0 of the answer is not an audit event");
    let late = json!({ "uuid": "L", "action": "update", "timestamp": "2022-10-25T00:00:00Z" });
    fails(json!({ "items": [late], "has_more": false }), "1Password did not bound the answer by time");
    fails(json!({ "items": [sample()[0]], "has_more": true }), "has_more is true but the answer has no cursor");
}

#[test]
fn an_empty_window_asks_once_from_its_start_and_fails_when_an_event_lies_inside() {
    let a = api();
    let empty = a.parse(&query(None), &page(&[], "c", false)).unwrap();
    let Next::Page(guard) = empty.next else { panic!("the guard runs on an empty window") };
    let body = sent_json(&a.request(&query(Some(&guard))).unwrap());
    assert_eq!(body, json!({ "limit": 1, "start_time": "2022-10-24T21:00:00Z" }), "no end bound");
    let err = a.parse(&query(Some(&guard)), &page(&sample()[..1], "c", true)).unwrap_err();
    assert!(err.0.contains("1Password did not apply the bounds as sent"), "{err}");
    assert!(err.0.contains("3UQOGUC7DVOCN4OZP2MDKHFLSG"), "names the event: {err}");
    // A first event after the window: truly empty.
    let later = json!({ "uuid": "L", "action": "update", "timestamp": "2022-10-25T00:00:00Z" });
    let ok = a.parse(&query(Some(&guard)), &page(&[later], "c", false)).unwrap();
    assert_eq!(ok.next, Next::Done);
    // Once a window returned events, empty ones are not guarded again.
    a.parse(&query(None), &page(&sample(), "c", false)).unwrap();
    assert_eq!(a.parse(&query(None), &page(&[], "c", false)).unwrap().next, Next::Done);
}

#[test]
fn a_401_and_a_403_are_refused_credentials_saying_what_to_fix() {
    let a = api();
    let Some(Verdict::Auth(m)) = a.verdict(401, br#"{"Error":{"Message":"Unauthorized"}}"#) else { panic!() };
    assert!(m.contains("not valid"), "{m}");
    let Some(Verdict::Auth(m)) = a.verdict(403, b"Forbidden") else { panic!() };
    assert!(m.contains("auditevents feature"), "{m}");
    assert_eq!(a.verdict(429, b""), None, "throttling is the poller's");
}
