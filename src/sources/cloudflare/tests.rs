use super::*;
use crate::sources::testkit::{self, t, window};

/// Six records of Elastic's Cloudflare audit pipeline test input, verbatim
/// (elastic/integrations,
/// `packages/cloudflare/data_stream/audit/_dev/test/pipeline/test-audit.log`,
/// commit 100ceb5fd2124debe88f4291a59d5e32b2c6cba9, lines 1, 3, 8, 10, 16
/// and 28): a token created, an API key viewed, a login, TLS settings
/// deployed by the system, a DNS record deleted and one added, as the
/// records of `result[]` in `GET /accounts/{id}/audit_logs`, newest first
/// as the file has them. The envelope around them (`result`, `success`,
/// `errors`, `messages`) is the page of Elastic's mock of the API
/// (`packages/cloudflare/_dev/deploy/docker/files/config.yml`), with the
/// v4 `result_info` (`page`, `per_page`, `count`, `total_count`).
const ELASTIC_SAMPLE: &str = include_str!("elastic_cloudflare_audit_test.log");

const ACCOUNT: &str = "4bb334f7c94c4a29a045f03944f072e5";

fn sample() -> Vec<Value> {
    ELASTIC_SAMPLE.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The sample as `direction=asc` answers it: oldest first.
fn sample_asc() -> Vec<Value> {
    let mut v = sample();
    v.reverse();
    v
}

fn api() -> Cloudflare {
    Cloudflare::new(&url::Url::parse(CLOUDFLARE_API).unwrap(), ACCOUNT)
}

/// A window around the whole sample.
fn query(state: Option<&Value>) -> Query<'_> {
    testkit::query(window("2021-08-09T00:00:00Z", "2021-12-01T00:00:00Z"), state, 100)
}

/// A page as the v4 API sends it.
fn page(records: &[Value], page: u64, per_page: u64) -> ApiResponse {
    testkit::resp(
        200,
        &json!({ "result": records, "result_info": { "page": page, "per_page": per_page, "count": records.len(),
                 "total_count": records.len() }, "success": true, "errors": [], "messages": [] }),
    )
}

/// A `cloudflare` source's own keys.
const KEYS: &str = "account_id = \"4bb334f7c94c4a29a045f03944f072e5\"\ntoken = \"cf-token-1234\"\n";

#[test]
fn the_registry_builds_bearer_auth_and_checks_the_keys() {
    let cfg: CloudflareConfig = testkit::keys(KEYS).unwrap();
    let env = crate::settings::secret::tests::FakeEnv::default();
    let (api, auth) = testkit::build(&cfg, &env).unwrap();
    assert!(matches!(&auth, Auth::Bearer(t) if t.expose() == "cf-token-1234"));
    assert!(!format!("{auth:?}").contains("cf-token-1234"), "the token never shows in Debug");
    assert_eq!(api.defaults().page_size, 100);
    assert_eq!(api.order(), crate::sources::api::Order::Asc);
    let req = api.request(&query(None)).unwrap();
    assert_eq!(req.url.path(), "/client/v4/accounts/4bb334f7c94c4a29a045f03944f072e5/audit_logs");
    assert_eq!(req.url.host_str(), Some("api.cloudflare.com"));

    let p = testkit::problems::<CloudflareConfig>("", "page_size = 1001");
    let has = |s: &str| p.iter().any(|m| m.contains(s));
    assert!(has("source[0].account_id: is required"), "{p:?}");
    assert!(has("source[0].page_size: at most 1000"), "{p:?}");
    assert!(has("source[0].token: is required"), "{p:?}");
    let named = KEYS.replace("4bb334f7c94c4a29a045f03944f072e5", "ops@example.com");
    let p = testkit::problems::<CloudflareConfig>(&named, "");
    assert!(p[0].contains("source[0].account_id: must be the account's id"), "{p:?}");
    let p = testkit::problems::<CloudflareConfig>(&KEYS.replace("token =", "org = \"x\"\ntoken ="), "");
    assert!(p[0].contains("source[0].org"), "{p:?}");
}

#[test]
fn a_window_is_asked_oldest_first_by_page_number_with_widened_bounds() {
    let a = api();
    let q = testkit::query(window("2021-08-09T10:00:00.250Z", "2021-08-09T11:00:00Z"), None, 2);
    let req = a.request(&q).unwrap();
    assert_eq!(
        req.url.query(),
        Some("since=2021-08-09T09%3A59%3A59Z&before=2021-08-09T11%3A00%3A01Z&direction=asc&per_page=2&page=1")
    );
    let records = sample_asc();
    let p = a.parse(&q, &page(&records[..2], 1, 2)).unwrap();
    let Next::Page(state) = &p.next else { panic!("a full page: another one") };
    assert_eq!(state["page"], 2);
    let next = a.request(&testkit::query(q.window, Some(state), 2)).unwrap();
    assert!(next.url.query().unwrap().ends_with("&per_page=2&page=2"), "{}", next.url);
    // A short page is the last.
    let q2 = testkit::query(q.window, Some(state), 2);
    assert_eq!(a.parse(&q2, &page(&[], 2, 2)).unwrap().next, Next::Done);
    // So is a full one when total_pages says so.
    let mut full = page(&records[2..4], 2, 2);
    full.body = serde_json::to_vec(&json!({ "result": &records[2..4], "success": true,
        "result_info": { "page": 2, "per_page": 2, "total_pages": 2 } }))
    .unwrap()
    .into();
    assert_eq!(
        a.parse(&testkit::query(window("2021-08-09T00:00:00Z", "2021-12-01T00:00:00Z"), Some(state), 2), &full)
            .unwrap()
            .next,
        Next::Done
    );
    // page_size beyond 1000 is never asked.
    let big = testkit::query(q.window, None, 5000);
    assert!(a.request(&big).unwrap().url.as_str().contains("per_page=1000"));
}

#[test]
fn unexpected_shapes_fail_loudly() {
    let a = api();
    let late = {
        let mut r = sample()[0].clone();
        r["when"] = json!("2022-01-01T00:00:00Z");
        r
    };
    let state = json!({ "page": 2, "last": "2021-12-01T00:00:00Z" });
    let cases: [(Option<&Value>, Value, &str); 6] = [
        (None, json!({ "result": sample(), "success": true }), "not oldest first"),
        (Some(&state), json!({ "result": sample_asc(), "success": true }), "not oldest first"),
        (None, json!({ "result": [late], "success": true }), "Cloudflare did not bound the answer by when"),
        (
            None,
            json!({ "success": false, "errors": [{ "code": 10000, "message": "Authentication error" }], "messages": [], "result": null }),
            "Cloudflare answered success=false (10000 Authentication error): the credentials were refused",
        ),
        (None, json!({ "success": true, "result": { "id": "x" } }), "expected the v4 envelope with a result array"),
        (
            None,
            json!({ "success": true, "result": [{ "id": "x", "when": "2021-10-10T00:00:00Z" }] }),
            "record 0 of the answer is not an audit log",
        ),
    ];
    for (s, body, want) in cases {
        let e = a.parse(&query(s), &testkit::resp(200, &body)).unwrap_err();
        assert!(e.0.contains(want), "{e} should contain {want:?}");
    }
}

/// Cloudflare's answer to a token that is invalid or lacks the permission
/// (403, code 10000) and to a malformed `Authorization` header (400, 6003
/// with 6111 in its chain): refused credentials, saying what to fix.
#[test]
fn a_403_with_code_10000_and_a_malformed_header_are_refused_credentials() {
    let a = api();
    let denied = br#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#;
    let Some(Verdict::Auth(m)) = a.verdict(403, denied) else { panic!("a 403 is refused credentials") };
    assert!(m.contains("10000 Authentication error") && m.contains("Account Settings Read"), "{m}");
    let malformed = br#"{"success":false,"errors":[{"code":6003,"message":"Invalid request headers","error_chain":[{"code":6111,"message":"Invalid format for Authorization header"}]}],"messages":[],"result":null}"#;
    let Some(Verdict::Auth(m)) = a.verdict(400, malformed) else { panic!("a malformed header is refused credentials") };
    assert!(m.contains("6111 Invalid format for Authorization header"), "{m}");
    assert!(matches!(a.verdict(403, b"<html>Forbidden</html>"), Some(Verdict::Auth(_))));
    let throttled = br#"{"success":false,"errors":[{"code":971,"message":"Please wait and consider throttling your request speed"}]}"#;
    assert_eq!(a.verdict(429, throttled), None, "throttling is the poller's");
    assert_eq!(a.verdict(400, br#"{"success":false,"errors":[{"code":1004,"message":"bad since"}]}"#), None);
}

#[test]
fn an_empty_window_asks_once_for_the_newest_and_fails_when_it_lies_inside() {
    let a = api();
    let empty = a.parse(&query(None), &page(&[], 1, 100)).unwrap();
    let Next::Page(guard) = empty.next else { panic!("the guard runs on an empty window") };
    let req = a.request(&query(Some(&guard))).unwrap();
    assert_eq!(req.url.query(), Some("direction=desc&per_page=1"), "unfiltered");
    let err = a.parse(&query(Some(&guard)), &page(&sample()[..1], 1, 1)).unwrap_err();
    assert!(err.0.contains("Cloudflare did not filter by when as sent"), "{err}");
    assert!(err.0.contains("73fd39ed-5aab-4a2a-b93c-c9a4abf0c425"), "names the record: {err}");
    // The newest record after the window: truly empty.
    let narrow = testkit::query(window("2021-01-01T00:00:00Z", "2021-02-01T00:00:00Z"), Some(&guard), 100);
    assert_eq!(a.parse(&narrow, &page(&sample()[..1], 1, 1)).unwrap().next, Next::Done);
    // Once a window returned records, empty ones are not guarded again.
    a.parse(&query(None), &page(&sample_asc(), 1, 100)).unwrap();
    assert_eq!(a.parse(&query(None), &page(&[], 1, 100)).unwrap().next, Next::Done);
}

/// The recorded shape (Elastic's test input, [`ELASTIC_SAMPLE`]) read and
/// mapped to ECS as Elastic's pipeline maps it.
#[test]
fn the_elastic_sample_maps_to_ecs() {
    let a = api();
    let p = a.parse(&query(None), &page(&sample_asc(), 1, 100)).unwrap();
    assert_eq!(p.events.len(), 6);
    let docs = testkit::documents(&a, "cf", &p.events);
    let by_id = |id: &str| docs.iter().find(|e| e.str_field("event.id") == Some(id)).unwrap();
    let login = by_id("1034b2fe-abcc-523e-ab47-3d3ea14516fa");
    assert_eq!(login.timestamp, t("2021-11-30T13:34:03Z"));
    assert_eq!(login.str_field("event.action"), Some("login"));
    assert_eq!(login.outcome(), "success");
    assert_eq!(login.fields()["event"]["category"], json!(["authentication"]));
    assert_eq!(login.fields()["event"]["type"], json!(["start"]));
    assert_eq!(login.str_field("user.email"), Some("user@example.com"));
    assert_eq!(login.str_field("user.id"), Some("enl3j9du8rnx2swwd9l32qots7l54t9s"));
    assert_eq!(login.str_field("source.ip"), Some("89.160.20.156"));
    assert_eq!(login.str_field("organization.id"), Some(ACCOUNT));
    assert!(login.fields()["cloudflare"].get("metadata").is_none(), "an empty metadata is left out");

    let token = by_id("73fd39ed-5aab-4a2a-b93c-c9a4abf0c425");
    assert_eq!(token.str_field("event.action"), Some("token_create"));
    assert_eq!(token.fields()["event"]["category"], json!(["iam"]));
    assert_eq!(token.fields()["event"]["type"], json!(["creation"]));
    assert_eq!(token.fields()["cloudflare"]["metadata"]["token_name"], "test");
    assert_eq!(token.str_field("cloudflare.resource.type"), Some("account"));

    let view = by_id("de577d32-d81a-4fe9-95bc-3cff46d9759e");
    assert_eq!(view.str_field("event.action"), Some("api_key_view"), "lower-cased, as Elastic does");
    assert_eq!(view.fields()["event"]["type"], json!(["access"]));
    assert!(view.fields()["event"].get("category").is_none());

    let tls = by_id("2ce6e0db-5527-4870-8f66-8ede1cd38791");
    assert_eq!(tls.timestamp, t("2021-10-10T10:13:46.214209Z"));
    assert_eq!(tls.str_field("cloudflare.actor.type"), Some("system"));
    assert_eq!(tls.str_field("user.id"), Some("1"));
    assert!(tls.fields().get("source").is_none(), "a system actor has no IP");
    assert_eq!(tls.fields()["event"]["category"], json!(["configuration"]));
    assert_eq!(tls.fields()["event"]["type"], json!(["change"]));
    assert_eq!(tls.fields()["cloudflare"]["new_value_json"]["min_tls_version"], "TLSv1.0");
    assert_eq!(tls.str_field("cloudflare.zone.name"), Some("example.com"));

    let del = by_id("46256ba8-2188-432c-8f55-21cfd2caf7d6");
    assert_eq!(del.fields()["event"]["type"], json!(["deletion"]));
    assert_eq!(del.str_field("event.provider"), Some("UI"));
    assert_eq!(del.str_field("cloudflare.resource.id"), Some("10715065315"));
    assert_eq!(del.fields()["cloudflare"]["old_value_json"]["content"], "firebase=frc-scout");
    let add = by_id("9d043524-edf8-4693-8262-56578930d98a");
    assert_eq!(add.fields()["event"]["type"], json!(["creation"]));
    assert_eq!(add.fields()["observer"]["vendor"], "Cloudflare");
}

#[test]
fn action_families() {
    let cases = [
        ("login", (Some("authentication"), vec!["start"])),
        ("token_revoke", (Some("iam"), vec!["deletion"])),
        ("token_roll", (Some("iam"), vec!["change"])),
        ("rotate_api_key", (Some("iam"), vec!["change"])),
        ("api_key_created", (Some("iam"), vec!["creation"])),
        ("member_invite", (Some("iam"), vec!["creation"])),
        ("rec_set", (Some("configuration"), vec!["change"])),
        ("change_setting", (Some("configuration"), vec!["change"])),
        ("purge", (Some("configuration"), vec!["change"])),
        ("delete", (Some("configuration"), vec!["deletion"])),
        ("api_key_view", (None, vec!["access"])),
    ];
    for (action, want) in cases {
        assert_eq!(classify(action), want, "{action}");
    }
    let failed = json!({ "id": "f", "when": "2021-10-10T00:00:00Z", "action": { "type": "login", "result": false } });
    assert_eq!(testkit::documents(&api(), "cf", &[failed])[0].outcome(), "failure");
}
