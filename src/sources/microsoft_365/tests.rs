use super::*;
use crate::sources::testkit::{self, t, window};
use crate::sources::utc_time;
use serde_json::json;

/// Three records, one a line, each verbatim from a public sample:
/// 1. Elastic's o365 pipeline test input (elastic/integrations
///    `packages/o365/data_stream/audit/_dev/test/pipeline/test-azuread-sts-logon-events.json`,
///    commit ef18377c9d7b1ee6b3739dcf93ec988cf2154818, the first
///    `event.original`): an Entra ID STS sign-in, `RecordType` 15;
/// 2. Microsoft's Management Activity API reference, "Retrieving content"
///    sample response (MicrosoftDocs/office-365-management-api
///    `office-365-management-api/office-365-management-activity-api-reference.md`,
///    commit 09eaf411de711ad479d8838c8f0593e243f8de96), its first record: a
///    failed password logon, `ResultStatus` `failed`;
/// 3. Elastic's o365 mock API blob (elastic/integrations
///    `packages/o365/_dev/deploy/docker/files/config.yml`, commit
///    7f3739cdb7447b5b397610c82c7037cea9665685), its first record: a
///    OneDrive page viewed.
const SAMPLES: &str = include_str!("samples.jsonl");

/// The reference's list-content sample response (same document as record
/// 2), its one item verbatim.
fn listing() -> Value {
    json!([{
        "contentType": "Audit.SharePoint",
        "contentId": "492638008028$492638008028$f28ab78ad40140608012736e373933ebspo2015043022$4a81a7c326fc4aed89c62e6039ab833b$04",
        "contentUri": "https://manage.office.com/api/v1.0/f28ab78a-d401-4060-8012-736e373933eb/activity/feed/audit/492638008028$492638008028$f28ab78ad40140608012736e373933ebspo2015043022$4a81a7c326fc4aed89c62e6039ab833b$04",
        "contentCreated": "2015-05-23T17:35:00.000Z",
        "contentExpiration": "2015-05-30T17:35:00.000Z"
    }])
}

const TENANT: &str = "f28ab78a-d401-4060-8012-736e373933eb";

fn samples() -> Vec<Value> {
    SAMPLES.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn api(types: &[ContentType]) -> Microsoft365 {
    Microsoft365::new(&url::Url::parse(MANAGE_API).unwrap(), TENANT, types)
}

fn now_window() -> crate::state::Window {
    let to = Utc::now() - chrono::Duration::minutes(1);
    crate::state::Window { from: to - chrono::Duration::minutes(70), to }
}

fn state_of(next: &Next) -> Value {
    match next {
        Next::Page(s) => s.clone(),
        other => panic!("expected a page state, got {other:?}"),
    }
}

#[test]
fn the_recorded_shapes_map_to_ecs() {
    let docs = testkit::documents(&api(&ContentType::ALL), "m365", &samples());
    let [sts, failed, viewed] = docs.as_slice() else { panic!() };
    let sts = sts.document();
    assert_eq!(sts["@timestamp"], "2020-02-10T15:13:13Z");
    assert_eq!(sts["event"]["id"], "ca0efc24-1b89-4962-8fef-a3ac5437302f");
    assert_eq!(sts["event"]["action"], "UserLoggedIn");
    assert_eq!(sts["event"]["outcome"], "success");
    assert_eq!(sts["event"]["category"], json!(["authentication"]));
    assert_eq!(sts["event"]["type"], json!(["start"]));
    assert_eq!(sts["user"]["email"], "asr@testsiem.onmicrosoft.com");
    assert_eq!(sts["user"]["domain"], "testsiem.onmicrosoft.com");
    assert_eq!(sts["source"]["ip"], "67.43.156.15");
    assert_eq!(sts["organization"]["id"], "b86ab9d4-fcf1-4b11-8a06-7a8f91b47fbd");
    assert_eq!(sts["observer"]["vendor"], "Microsoft");
    let failed = failed.document();
    assert_eq!(failed["@timestamp"], "2015-06-29T20:03:19Z", "CreationTime has no zone: UTC");
    assert_eq!(failed["event"]["outcome"], "failure");
    assert_eq!(failed["event"]["category"], json!(["authentication"]));
    assert_eq!(failed["source"]["ip"], "134.170.188.221");
    assert_eq!(failed["microsoft_365"]["object_id"], "admin@contoso.onmicrosoft.com");
    let viewed = viewed.document();
    assert_eq!(viewed["event"]["action"], "PageViewed");
    assert_eq!(viewed["event"]["provider"], "OneDrive");
    assert_eq!(viewed["event"]["outcome"], "unknown");
    assert!(viewed["user_agent"]["original"].as_str().unwrap().starts_with("Mozilla/5.0"));
    assert!(viewed["microsoft_365"]["object_id"].as_str().unwrap().starts_with("https://testsiem-my.sharepoint.com/"));
}

#[test]
fn client_addresses_lose_ports_brackets_and_mapped_prefixes() {
    assert_eq!(ecs::client_ip("203.0.113.5:51234").as_deref(), Some("203.0.113.5"));
    assert_eq!(ecs::client_ip("[2001:db8::1]:443").as_deref(), Some("2001:db8::1"));
    assert_eq!(ecs::client_ip("::ffff:203.0.113.5").as_deref(), Some("203.0.113.5"));
    assert_eq!(ecs::client_ip("2001:db8::2").as_deref(), Some("2001:db8::2"));
    assert_eq!(ecs::client_ip("<null>"), None);
}

/// Start (400 AF20024 is success), list, fetch, then the next type.
#[test]
fn a_walk_starts_lists_and_fetches_each_content_type() {
    let api = api(&[ContentType::SharePoint, ContentType::Exchange]);
    let w = now_window();
    let q = testkit::query(w, None, 100);
    let req = api.request(&q).unwrap();
    assert_eq!(req.method, reqwest::Method::POST);
    assert!(req.url.as_str().starts_with(&format!(
        "https://manage.office.com/api/v1.0/{TENANT}/activity/feed/subscriptions/start?contentType=Audit.SharePoint&PublisherIdentifier={TENANT}"
    )));
    let already =
        json!({"error": {"code": "AF20024", "message": "The subscription is already enabled. No property change."}});
    assert_eq!(api.verdict(400, already.to_string().as_bytes()), Some(Verdict::Accept));
    let page = api.parse(&q, &testkit::resp(400, &already)).unwrap();
    let s = state_of(&page.next);
    let q = testkit::query(w, Some(&s), 100);
    let req = api.request(&q).unwrap();
    let pairs: Vec<(String, String)> = req.url.query_pairs().into_owned().collect();
    assert_eq!(pairs[0], ("contentType".into(), "Audit.SharePoint".into()));
    assert_eq!(pairs[1], ("startTime".into(), walk::stamp(floor_to(w.from, chrono::Duration::seconds(1)))));
    assert_eq!(pairs[2], ("endTime".into(), walk::stamp(ceil_to(w.to, chrono::Duration::seconds(1)))));
    // A blob created inside the window, listed with a next page.
    let mut item = listing()[0].clone();
    item["contentCreated"] = json!(crate::event::rfc3339(w.from + chrono::Duration::minutes(5)));
    let mut resp = testkit::resp(200, &json!([item]));
    let next_page = format!("https://manage.office.com/api/v1/{TENANT}/activity/feed/subscriptions/content?contentType=Audit.SharePoint&startTime=a&endTime=b&nextPage=2015101900R022885001761");
    resp.headers.insert("NextPageUri", next_page.parse().unwrap());
    let page = api.parse(&q, &resp).unwrap();
    assert!(page.is_empty());
    let s = state_of(&page.next);
    let q = testkit::query(w, Some(&s), 100);
    let req = api.request(&q).unwrap();
    assert!(req.url.as_str().starts_with(item["contentUri"].as_str().unwrap()), "{}", req.url);
    assert!(req.url.as_str().ends_with(&format!("PublisherIdentifier={TENANT}")));
    let page = api.parse(&q, &testkit::resp(200, &json!(samples()))).unwrap();
    assert_eq!(page.len(), 3);
    // The next listing page, verbatim, then the second type's start.
    let s = state_of(&page.next);
    let q = testkit::query(w, Some(&s), 100);
    assert!(api.request(&q).unwrap().url.as_str().starts_with(&next_page));
    let page = api.parse(&q, &testkit::resp(200, &json!([]))).unwrap();
    let s = state_of(&page.next);
    let q = testkit::query(w, Some(&s), 100);
    assert!(api.request(&q).unwrap().url.as_str().contains("subscriptions/start?contentType=Audit.Exchange"));
    let page = api
        .parse(&q, &testkit::resp(200, &json!({"contentType": "Audit.Exchange", "status": "enabled", "webhook": null})))
        .unwrap();
    let s = state_of(&page.next);
    let q = testkit::query(w, Some(&s), 100);
    let page = api.parse(&q, &testkit::resp(200, &json!([]))).unwrap();
    assert_eq!(page.next, Next::Done, "found blobs: no guard");
    // The next walk starts no subscription again.
    let q = testkit::query(w, None, 100);
    assert_eq!(api.request(&q).unwrap().method, reqwest::Method::GET);
}

#[test]
fn a_listing_outside_the_window_or_of_another_shape_fails_loudly() {
    let api = api(&[ContentType::SharePoint]);
    let w = now_window();
    let s = Walk { ct: 0, step: Step::List { page: None }, found: false }.to_value();
    let q = testkit::query(w, Some(&s), 100);
    let err = api.parse(&q, &testkit::resp(200, &listing())).unwrap_err();
    assert!(err.0.contains("did not bound the listing by contentCreated"), "{}", err.0);
    let err = api.parse(&q, &testkit::resp(200, &json!({"value": []}))).unwrap_err();
    assert!(err.0.contains("content listing"), "{}", err.0);
    let err = api.parse(&q, &testkit::resp(200, &json!([{"contentId": "x"}]))).unwrap_err();
    assert!(err.0.contains("not a content blob"), "{}", err.0);
    let blob =
        Blob { id: "b".into(), uri: "https://manage.office.com/x".into(), created: "2020-01-01T00:00:00Z".into() };
    let s = Walk { ct: 0, step: Step::Fetch { blobs: vec![blob], page: None }, found: true }.to_value();
    let q = testkit::query(w, Some(&s), 100);
    let err = api.parse(&q, &testkit::resp(200, &json!([{"Operation": "x"}]))).unwrap_err();
    assert!(err.0.contains("not an audit record"), "{}", err.0);
}

/// A walk that listed nothing lists once without a window: a blob inside
/// the window means the window was not read as sent.
#[test]
fn the_guard_fails_a_quiet_walk_when_the_window_was_misread() {
    let api = api(&[ContentType::SharePoint]);
    let w = now_window();
    let s = Walk { ct: 0, step: Step::List { page: None }, found: false }.to_value();
    let q = testkit::query(w, Some(&s), 100);
    let page = api.parse(&q, &testkit::resp(200, &json!([]))).unwrap();
    let s = state_of(&page.next);
    let q = testkit::query(w, Some(&s), 100);
    let req = api.request(&q).unwrap();
    assert!(!req.url.as_str().contains("startTime"), "{}", req.url);
    let mut item = listing()[0].clone();
    item["contentCreated"] = json!(crate::event::rfc3339(w.from + chrono::Duration::minutes(5)));
    let err = api.parse(&q, &testkit::resp(200, &json!([item]))).unwrap_err();
    assert!(err.0.contains("did not filter by contentCreated as sent"), "{}", err.0);
}

#[test]
fn throttling_and_refusals_are_read_from_the_error_code() {
    let api = api(&[ContentType::SharePoint]);
    let af429 = br#"{'error':{'code':'AF429','message':'Too many requests. Method=GetBlob, PublisherId=00000000-0000-0000-0000-000000000000'}}"#;
    // M2 prints it with single quotes; the wire is JSON.
    let af429 = String::from_utf8_lossy(af429).replace('\'', "\"");
    assert_eq!(api.verdict(403, af429.as_bytes()), Some(Verdict::Throttled(None)));
    let af10001 = json!({"error": {"code": "AF10001", "message": "The permission set (...) sent in the request does not include the expected permission."}});
    let Some(Verdict::Auth(why)) = api.verdict(401, af10001.to_string().as_bytes()) else { panic!() };
    assert!(why.contains("ActivityFeed.Read"), "{why}");
    let expired = json!({"error": {"code": "AF20051", "message": "Content older than 7 days cannot be retrieved."}});
    assert_eq!(api.verdict(400, expired.to_string().as_bytes()), Some(Verdict::Accept));
    assert_eq!(
        api.verdict(
            500,
            br#"{"error":{"code":"AF50000","message":"An internal server error occurred. Retry the request."}}"#
        ),
        None
    );
}

/// A `microsoft_365` source's own keys, `extra` added.
fn keys(extra: &str) -> String {
    format!(
        "tenant_id = \"{TENANT}\"\nclient_id = \"a5b2c1d0-0000-4000-8000-000000000001\"\n\
         client_secret = \"s3cr3t-value\"\n{extra}"
    )
}

#[test]
fn the_registry_builds_the_client_credentials_grant_and_checks_the_keys() {
    let cfg: Microsoft365Config = testkit::keys(&keys("")).unwrap();
    let env = crate::settings::secret::tests::FakeEnv::default();
    let (_api, auth) = testkit::build(&cfg, &env).unwrap();
    let Auth::OAuth2(o) = auth else { panic!() };
    assert_eq!(o.token_url.as_str(), format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(o.scope.as_deref(), Some("https://manage.office.com/.default"));
    assert!(!format!("{o:?}").contains("s3cr3t-value"), "the secret is redacted");
    let problems = |text: &str, common: &str| testkit::problems::<Microsoft365Config>(text, common).join("\n");
    let err = problems(&keys("").replace(TENANT, "contoso.onmicrosoft.com"), "");
    assert!(err.contains("tenant_id") && err.contains("GUID"), "{err}");
    let err = problems(&keys("content_types = [\"Audit.Teams\"]\n"), "");
    assert!(err.contains("content_types"), "{err}");
    let err = problems(&keys(""), "max_window = \"24h\"");
    assert!(err.contains("24h"), "{err}");
    let m: Microsoft365Config = testkit::keys(&keys("content_types = [\"DLP.All\", \"Audit.General\"]\n")).unwrap();
    assert!(problems(&keys("content_types = [\"DLP.All\", \"Audit.General\"]\n"), "").is_empty());
    assert_eq!(m.content_types(), vec![ContentType::DlpAll, ContentType::General]);
}

#[test]
fn the_times_are_utc_without_a_zone() {
    assert_eq!(utc_time(Some(&json!("2015-06-29T20:03:19"))), Some(t("2015-06-29T20:03:19Z")));
    let _ = window("2015-05-23T00:00:00Z", "2015-05-24T00:00:00Z");
}
