use super::*;
use crate::sources::testkit::{self, resp, sent_json, t, window};

fn api() -> Keepnet {
    Keepnet::new(&url::Url::parse("https://api.keepnetlabs.com").unwrap())
}

fn query(state: Option<&Value>) -> Query<'_> {
    testkit::query(window("2024-05-01T10:00:00.0004Z", "2024-05-01T11:00:00Z"), state, 2)
}

/// An `AuditLogSearchView` as the OpenAPI spec describes it.
fn view(id: &str, date: &str, op: &str) -> Value {
    json!({
        "resourceId": id, "userName": "Harold Finch", "entityResourceId": "9f8e7d6c", "entityName": "PhishingCampaign",
        "oldValue": "{\"Name\":\"Q1\"}", "newValue": "{\"Name\":\"Q2\"}", "operation": op, "ip": "198.51.100.7",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0", "auditDescription": format!("{op} PhishingCampaign Q2"),
        "logDate": date
    })
}

/// The `ServiceResult` envelope of the spec.
fn service_result(results: Vec<Value>, pages: u64) -> Value {
    json!({
        "data": { "pageNumber": 1, "pageSize": 2, "totalNumberOfPages": pages, "totalNumberOfRecords": 3, "results": results },
        "status": "Success", "message": null, "validationMessages": []
    })
}

#[test]
fn request_never_sends_nulls_and_filters_the_window() {
    let req = api().request(&query(None)).unwrap();
    assert_eq!(req.url.as_str(), "https://api.keepnetlabs.com/api/audit-logs/search");
    let b = sent_json(&req);
    assert_eq!(b["pageNumber"], 1);
    assert_eq!(b["pageSize"], 2);
    assert_eq!(b["orderBy"], "LogDate");
    assert_eq!(b["ascending"], true);
    assert_eq!(b["filter"]["condition"], "AND");
    assert_eq!(b["filter"]["searchInputTextValue"], "");
    let items = &b["filter"]["filterGroups"][0]["filterItems"];
    assert_eq!(items[0], json!({ "fieldName": "LogDate", "operator": ">=", "value": "2024-05-01T10:00:00.000Z" }));
    assert_eq!(items[1], json!({ "fieldName": "LogDate", "operator": "<=", "value": "2024-05-01T11:00:00.000Z" }));
    fn no_nulls(v: &Value) -> bool {
        match v {
            Value::Null => false,
            Value::Array(a) => a.iter().all(no_nulls),
            Value::Object(o) => o.values().all(no_nulls),
            _ => true,
        }
    }
    assert!(no_nulls(&b), "{b}");
    let state = json!({ "page": 3, "last": "2024-05-01T10:10:00Z" });
    assert_eq!(sent_json(&api().request(&query(Some(&state))).unwrap())["pageNumber"], 3);
}

#[test]
fn both_envelopes_are_read_and_pages_follow_total_number_of_pages() {
    let a = api();
    let rows = vec![view("r1", "2024-05-01T10:00:00Z", "Create"), view("r2", "2024-05-01T10:00:00Z", "Update")];
    let p = a.parse(&query(None), &resp(200, &service_result(rows.clone(), 2))).unwrap();
    assert_eq!(p.events.len(), 2);
    assert_eq!(p.next, Next::Page(json!({ "page": 2, "last": "2024-05-01T10:00:00Z" })));
    let quickstart = json!({
        "isSuccess": true,
        "data": { "pageNumber": 2, "pageSize": 2, "totalNumberOfPages": 2, "totalNumberOfRecords": 3,
                  "results": [view("r3", "2024-05-01T10:30:00Z", "Delete")] },
        "messages": []
    });
    let state = json!({ "page": 2, "last": "2024-05-01T10:00:00Z" });
    let p = a.parse(&query(Some(&state)), &resp(200, &quickstart)).unwrap();
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.next, Next::Done);
    // No page count: a full page asks for more, a short one ends.
    let bare = json!({ "data": { "results": rows } });
    assert!(matches!(a.parse(&query(None), &resp(200, &bare)).unwrap().next, Next::Page(_)));
}

#[test]
fn wrong_guesses_and_failures_are_loud() {
    let a = api();
    let state = json!({ "page": 2, "last": "2024-05-01T10:40:00Z" });
    let cases = [
        (None, service_result(vec![view("old", "2023-01-01T00:00:00Z", "Create")], 1), "filter was ignored"),
        (None, service_result(vec![view("tz", "2024-05-01T12:00:00", "Create")], 1), "not UTC"),
        (
            None,
            service_result(
                vec![view("b", "2024-05-01T10:20:00Z", "Create"), view("a", "2024-05-01T10:10:00Z", "Create")],
                1,
            ),
            "sort was ignored",
        ),
        (Some(&state), service_result(vec![view("c", "2024-05-01T10:30:00Z", "Create")], 2), "sort was ignored"),
        (None, json!({ "isSuccess": false, "data": null, "messages": ["INPUT_ERROR"] }), "INPUT_ERROR"),
        (None, json!({ "status": "Error", "message": "boom", "data": null }), "reported a failure"),
        (None, json!({ "items": [] }), "no data.results"),
    ];
    for (s, body, want) in cases {
        let e = a.parse(&query(s), &resp(200, &body)).unwrap_err();
        assert!(e.0.contains(want), "{e} should contain {want:?}");
    }
    assert_eq!(a.verdict(401, b""), None, "401 goes to the poller, which renews the token once");
    assert!(matches!(a.verdict(403, b""), Some(Verdict::Auth(d)) if d.contains("role")));
}

#[test]
fn audit_log_views_map_to_ecs() {
    let a = api();
    let raw = view("6c1d0f3e-aaaa-4bbb-8ccc-123456789abc", "2024-05-01T10:00:00.123Z", "Update");
    let n = a.normalise(&raw);
    assert_eq!(n.id.as_deref(), Some("6c1d0f3e-aaaa-4bbb-8ccc-123456789abc"));
    assert_eq!(n.timestamp, Some(t("2024-05-01T10:00:00.123Z")));
    let e = crate::event::normalise("kn", a.observer(), &raw, n, Utc::now());
    assert_eq!(e.str_field("event.action"), Some("update"));
    assert_eq!(e.outcome(), "success");
    assert_eq!(e.fields()["event"]["category"], json!(["configuration"]));
    assert_eq!(e.fields()["event"]["type"], json!(["change"]));
    assert_eq!(e.str_field("user.name"), Some("Harold Finch"));
    assert_eq!(e.str_field("source.ip"), Some("198.51.100.7"));
    assert_eq!(e.str_field("user_agent.original"), Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0"));
    assert_eq!(e.str_field("keepnet.entity.name"), Some("PhishingCampaign"));
    assert_eq!(e.str_field("message"), Some("Update PhishingCampaign Q2"));
    assert_eq!(e.str_field("observer.vendor"), Some("Keepnet Labs"));

    // The plain list's `AuditLogDto`, in PascalCase.
    let dto = json!({ "LogId": 4711, "UserId": 42, "LogDate": "2024-05-01T10:00:01", "EntityResourceId": "x",
                      "EntityName": "User", "CompanyId": 7, "Operation": "Delete", "OldValue": "{}", "NewValue": null });
    let n = a.normalise(&dto);
    assert_eq!(n.id.as_deref(), Some("4711"));
    assert_eq!(n.timestamp, Some(t("2024-05-01T10:00:01Z")), "no zone: UTC");
    let e = crate::event::normalise("kn", a.observer(), &dto, n, Utc::now());
    assert_eq!(e.str_field("user.id"), Some("42"));
    assert_eq!(e.fields()["event"]["type"], json!(["deletion"]));
}

#[test]
fn build_uses_client_credentials_with_scope_api1() {
    let mut env = crate::settings::secret::tests::FakeEnv::default();
    env.vars.insert("KN_SECRET".into(), "s3cret".into());
    let text = "url = \"https://api.keepnetlabs.com\"\nclient_id = \"my-client\"\nclient_secret = \"${KN_SECRET}\"\n";
    let cfg: super::KeepnetConfig = crate::sources::testkit::keys(text).unwrap();
    let (_, auth) = crate::sources::testkit::build(&cfg, &env).unwrap();
    let Auth::OAuth2(o) = auth else { panic!("oauth2") };
    assert_eq!(o.token_url.as_str(), "https://api.keepnetlabs.com/connect/token");
    assert_eq!(o.scope.as_deref(), Some("api1"));
    let crate::sources::auth::Grant::ClientSecret { client_id, .. } = &o.grant else { panic!("client credentials") };
    assert_eq!(client_id.expose(), "my-client");
}

/// A `LogDate` filter that matches nothing looks like a quiet tenant: an
/// empty window is followed by the newest log, unfiltered; inside the
/// window, the poll fails naming the filter.
#[test]
fn an_empty_window_is_checked_against_the_newest_unfiltered_log() {
    let a = api();
    let p = a.parse(&query(None), &resp(200, &service_result(vec![], 0))).unwrap();
    assert!(p.events.is_empty());
    let Next::Page(guard) = p.next else { panic!("an empty window is checked: {:?}", p.next) };
    let req = a.request(&query(Some(&guard))).unwrap();
    let b = sent_json(&req);
    assert_eq!(
        (b["pageNumber"].clone(), b["pageSize"].clone(), b["ascending"].clone()),
        (json!(1), json!(1), json!(false))
    );
    assert_eq!(b["orderBy"], "LogDate");
    assert_eq!(
        b["filter"],
        json!({ "condition": "AND", "searchInputTextValue": "", "filterGroups": [] }),
        "no filter, never null"
    );

    let inside = service_result(vec![view("r9", "2024-05-01T10:59:00Z", "Update")], 1);
    let e = a.parse(&query(Some(&guard)), &resp(200, &inside)).unwrap_err();
    assert!(e.0.contains("LogDate >= 2024-05-01T10:00:00.000Z") && e.0.contains("r9"), "{e}");
    for quiet in [service_result(vec![view("r1", "2024-04-30T09:00:00Z", "Update")], 1), service_result(vec![], 0)] {
        let p = a.parse(&query(Some(&guard)), &resp(200, &quiet)).unwrap();
        assert!(p.events.is_empty(), "the guard's row is never taken");
        assert_eq!(p.next, Next::Done, "a quiet tenant");
    }
}

/// A `POST /api/audit-logs/search` answer shaped exactly as Keepnet's
/// OpenAPI document declares it (mirrored in ucarozan/keepnet-docs,
/// `openapi/keepnet-api-spec.json`: the path answers
/// `KeepnetLabs.Core.ServiceResult<PagedResults<AuditLogSearchView>>`;
/// `AuditLogSearchView` has exactly `resourceId`, `userName`,
/// `entityResourceId`, `entityName`, `oldValue`, `newValue`, `operation`,
/// `ip`, `userAgent`, `auditDescription` (all nullable strings) and
/// `logDate` (`date-time`, zone undocumented)). No recorded answer is
/// public; the values are ours, with `logDate` written the ways .NET
/// serialises a `DateTime` (seven fraction digits and no zone, a trimmed
/// fraction, `Z`).
#[test]
fn recorded_shape_of_audit_log_search_maps_to_ecs() {
    let body: Value = serde_json::from_str(include_str!("audit_logs_search_sample.json")).unwrap();
    let a = api();
    let p = a.parse(&query(None), &resp(200, &body)).unwrap();
    assert_eq!(p.next, Next::Done, "totalNumberOfPages is 1");
    let e: Vec<_> = p
        .events
        .iter()
        .map(|raw| crate::event::normalise("kn", a.observer(), raw, a.normalise(raw), chrono::Utc::now()))
        .collect();
    assert_eq!(e.len(), 3);
    assert_eq!(e[0].id, "0c1f6c0e-7a55-4b7c-9a0e-5d2b8e3f4a61");
    assert_eq!(e[0].timestamp, t("2024-05-01T10:05:44.2033333Z"), "no zone is read as UTC");
    assert_eq!(e[0].str_field("event.action"), Some("create"));
    assert_eq!(e[0].fields()["event"]["category"], json!(["configuration"]));
    assert_eq!(e[0].fields()["event"]["type"], json!(["creation"]));
    assert_eq!(e[0].str_field("user.name"), Some("Harold Finch"));
    assert_eq!(e[0].str_field("source.ip"), Some("198.51.100.7"));
    assert!(e[0].str_field("user_agent.original").is_some_and(|u| u.starts_with("Mozilla/5.0")));
    assert_eq!(e[0].str_field("keepnet.entity.name"), Some("PhishingCampaign"));
    assert_eq!(e[0].str_field("keepnet.entity.id"), Some("b1e9a7d2-3c4f-4e5a-8b6c-7d8e9f0a1b2c"));
    assert_eq!(e[0].str_field("message"), Some("Harold Finch created phishing campaign Q2 payroll lure"));
    assert_eq!(e[1].timestamp, t("2024-05-01T10:20:03.090Z"));
    assert_eq!(e[1].fields()["event"]["type"], json!(["change"]));
    assert_eq!(e[2].timestamp, t("2024-05-01T10:40:12Z"));
    assert_eq!(e[2].fields()["event"]["type"], json!(["deletion"]));
    assert_eq!(e[2].str_field("user_agent.original"), None, "a null is no field");
    assert_eq!(e[2].str_field("user.name"), Some("REST API (siem-connector)"));
}

#[test]
fn the_guard_message_reads_as_one_sentence() {
    let a = api();
    let p = a.parse(&query(None), &resp(200, &service_result(vec![], 0))).unwrap();
    let Next::Page(guard) = p.next else { panic!("{:?}", p.next) };
    let inside = service_result(vec![view("r9", "2024-05-01T10:59:00Z", "Update")], 1);
    let e = a.parse(&query(Some(&guard)), &resp(200, &inside)).unwrap_err();
    assert!(!e.0.contains("  "), "no run of spaces from a broken line continuation: {e}");
}

/// A catch-up window (a day, days back): the newest log overall is newer
/// than the window's end, so it proves nothing about the window. The guard
/// then asks for the newest log at or before the window's end, and when
/// that finds nothing (a filter that matches nothing answers no row either)
/// for the oldest log: one at or before the window's end means the filter
/// is wrong. Rows are `AuditLogSearchView`s in the `ServiceResult`
/// envelope of Keepnet's OpenAPI document (ucarozan/keepnet-docs,
/// `openapi/keepnet-api-spec.json`).
#[test]
fn a_catch_up_window_is_checked_for_logs_before_its_end() {
    let a = api();
    let p = a.parse(&query(None), &resp(200, &service_result(vec![], 0))).unwrap();
    let Next::Page(newest) = p.next else { panic!("{:?}", p.next) };
    // The window is 2024-05-01 10:00 to 11:00; the newest log is days later.
    let today = service_result(vec![view("r-today", "2024-05-04T08:00:00Z", "Update")], 1);
    let p = a.parse(&query(Some(&newest)), &resp(200, &today)).unwrap();
    assert!(p.events.is_empty(), "the guard's row is never taken");
    let Next::Page(before_end) = p.next else { panic!("a newer log proves nothing about the window: {:?}", p.next) };
    let b = sent_json(&a.request(&query(Some(&before_end))).unwrap());
    assert_eq!((b["pageSize"].clone(), b["ascending"].clone()), (json!(1), json!(false)));
    assert_eq!(
        b["filter"]["filterGroups"][0]["filterItems"],
        json!([{ "fieldName": "LogDate", "operator": "<=", "value": "2024-05-01T11:00:00.000Z" }]),
        "bounded by the window's end only"
    );

    // The filter matched nothing here too: the oldest log decides.
    let p = a.parse(&query(Some(&before_end)), &resp(200, &service_result(vec![], 0))).unwrap();
    let Next::Page(oldest) = p.next else { panic!("{:?}", p.next) };
    let b = sent_json(&a.request(&query(Some(&oldest))).unwrap());
    assert_eq!((b["pageSize"].clone(), b["ascending"].clone()), (json!(1), json!(true)));
    assert_eq!(b["filter"]["filterGroups"], json!([]), "unfiltered, never null");
    let old = service_result(vec![view("r-old", "2024-04-20T07:00:00Z", "Create")], 1);
    let e = a.parse(&query(Some(&oldest)), &resp(200, &old)).unwrap_err();
    assert!(e.0.contains("r-old") && e.0.contains("does not filter on `LogDate`") && !e.0.contains("  "), "{e}");
    let inside = service_result(vec![view("r-in", "2024-05-01T10:30:00Z", "Create")], 1);
    assert!(a.parse(&query(Some(&oldest)), &resp(200, &inside)).is_err());
    for later in [service_result(vec![view("r-new", "2024-05-02T07:00:00Z", "Create")], 1), service_result(vec![], 0)] {
        let p = a.parse(&query(Some(&oldest)), &resp(200, &later)).unwrap();
        assert_eq!(p.next, Next::Done, "the window lies before the whole log");
    }

    // The bounded search answered: inside the window, or after its end
    // (the item ignored), is a wrong filter; older is a quiet window.
    let e = a.parse(&query(Some(&before_end)), &resp(200, &inside)).unwrap_err();
    assert!(e.0.contains("r-in") && e.0.contains("the newest log at or before its end ("), "{e}");
    let e = a.parse(&query(Some(&before_end)), &resp(200, &today)).unwrap_err();
    assert!(e.0.contains("LogDate <= 2024-05-01T11:00:00.000Z alone") && e.0.contains("r-today"), "{e}");
    let p = a.parse(&query(Some(&before_end)), &resp(200, &old)).unwrap();
    assert_eq!(p.next, Next::Done, "nothing between the older log and the window's end");
}
