use super::*;
use crate::sources::testkit::{self, resp, t, window};

fn api() -> Invicti {
    Invicti::new(&url::Url::parse("https://www.netsparkercloud.com").unwrap())
}

fn query(state: Option<&Value>) -> Query<'_> {
    testkit::query(window("2024-05-01T09:55:00.250Z", "2024-05-01T10:59:00.700Z"), state, 500)
}

/// An `AuditLogDto` as the Swagger definitions describe it.
fn log(id: &str, created: &str, kind: &str) -> Value {
    json!({
        "Id": id,
        "AccountId": "5f0b1c8e-0000-4000-8000-00000000acc1",
        "CreatedAt": created,
        "EndpointType": "Web",
        "Type": kind,
        "UserEmail": "jane.doe@example.com",
        "UserId": "a1b2c3d4-0000-4000-8000-000000000001",
        "UserName": "Jane Doe",
        "Message": format!("{kind} by Jane Doe"),
        "RequestData": "{\"ip\":\"203.0.113.9\"}"
    })
}

/// An `AuditLogPagedResultDto`.
fn paged(list: Vec<Value>, page: u64, more: bool) -> Value {
    json!({
        "FirstItemOnPage": 1, "HasNextPage": more, "HasPreviousPage": page > 1, "IsFirstPage": page == 1,
        "IsLastPage": !more, "LastItemOnPage": list.len(), "List": list, "PageCount": 2, "PageNumber": page,
        "PageSize": 200, "TotalItemCount": 3
    })
}

fn walk(page: u64, expect: &[(&str, &str)]) -> Value {
    json!({ "page": page, "expect": expect })
}

#[test]
fn a_walk_starts_undated_then_covers_the_window_with_a_second_to_spare() {
    let req = api().request(&query(None)).unwrap();
    assert_eq!(req.url.path(), "/api/1.0/auditlogs/list");
    assert_eq!(req.url.query(), Some("page=1&pageSize=200"), "the newest page, capped at Invicti's maximum");
    let state = walk(3, &[]);
    let req = api().request(&query(Some(&state))).unwrap();
    let q: std::collections::BTreeMap<_, _> = req.url.query_pairs().into_owned().collect();
    assert_eq!(q["page"], "3");
    assert_eq!(q["startDate"], "05/01/2024 09:54:59");
    assert_eq!(q["endDate"], "05/01/2024 10:59:01");
    let on_prem = Invicti::new(&url::Url::parse("https://invicti.corp.example/api/1.0/").unwrap());
    assert_eq!(on_prem.list.as_str(), "https://invicti.corp.example/api/1.0/auditlogs/list");
}

#[test]
fn pages_newest_first_until_has_next_page_is_false() {
    let a = api();
    assert_eq!(a.order(), Order::Desc);
    let newest =
        paged(vec![log("d", "2024-05-01T11:00:30Z", "Signin"), log("c", "2024-05-01T10:58:00.1Z", "Signout")], 1, true);
    let p = a.parse(&query(None), &resp(200, &newest)).unwrap();
    assert!(p.events.is_empty(), "the undated page is only a check");
    assert_eq!(p.next, Next::Page(walk(1, &[("c", "2024-05-01T10:58:00.1Z")])), "d is after the window");
    let Next::Page(state) = p.next else { unreachable!() };
    let first = paged(
        vec![log("c", "2024-05-01T10:58:00.1Z", "Signout"), log("b", "2024-05-01T10:30:00", "UserCreated")],
        1,
        true,
    );
    let p = a.parse(&query(Some(&state)), &resp(200, &first)).unwrap();
    assert_eq!(p.events.len(), 2);
    assert_eq!(p.next, Next::Page(walk(2, &[])));
    let last = paged(vec![log("a", "2024-05-01T09:55:00Z", "Signin")], 2, false);
    let p = a.parse(&query(Some(&walk(2, &[]))), &resp(200, &last)).unwrap();
    assert_eq!(p.next, Next::Done);
}

/// Regression (#26): any row dated outside the asked seconds failed the
/// poll, but the spec's filter wording (`MM/dd/yyyy 00:00:00` to
/// `23:59:59`, niaid/netsparker-cloud-js `specs/netsparker.json`) allows
/// filtering by whole days. Rows of the asked days are taken (the walk
/// drops those outside the window); rows of other days, or an expected row
/// missing, fail the poll and say what was wrong.
#[test]
fn day_granular_filtering_is_taken_and_a_missed_row_fails_accurately() {
    // Filtered by whole days: rows earlier and later the same day.
    let body =
        paged(vec![log("late", "2024-05-01T23:10:00", "Signin"), log("x", "2024-05-01T08:30:00", "Signin")], 1, false);
    let p = api().parse(&query(Some(&walk(1, &[]))), &resp(200, &body)).unwrap();
    assert_eq!((p.events.len(), p.next), (2, Next::Done), "the walk drops what is outside the window");
    // Another day: the filter was not applied as asked.
    let body = paged(vec![log("y", "2024-04-30T22:00:00", "Signin")], 1, false);
    let e = api().parse(&query(Some(&walk(1, &[]))), &resp(200, &body)).unwrap_err();
    assert!(e.0.contains("on another day") && e.0.contains("05/01/2024 09:54:59"), "{e}");
    // Read as UTC-5 (or any other filter): the dated pages miss a log the
    // newest page placed in the window.
    let body = paged(vec![log("x", "2024-05-01T08:30:00", "Signin")], 1, false);
    let e = api().parse(&query(Some(&walk(1, &[("c", "2024-05-01T10:58:00Z")]))), &resp(200, &body)).unwrap_err();
    assert!(e.0.contains("did not get c created at 2024-05-01T10:58:00") && e.0.contains("inside that range"), "{e}");
}

#[test]
fn unexpected_shapes_fail_loudly() {
    let state = walk(1, &[]);
    let cases = [
        (json!({ "Items": [] }), "no List"),
        (json!({ "List": [] }), "no HasNextPage"),
        (paged(vec![], 4, true), "page 1 is empty but HasNextPage is true"),
    ];
    for (body, want) in cases {
        let e = api().parse(&query(Some(&state)), &resp(200, &body)).unwrap_err();
        assert!(e.0.contains(want), "{e} should contain {want:?}");
    }
    assert!(api().parse(&query(None), &resp(200, &json!({ "List": [] }))).is_err());
    assert!(matches!(api().verdict(401, b"Unauthorized"), Some(Verdict::Auth(d)) if d.contains("user_id and token")));
    assert_eq!(api().verdict(429, b""), None);
}

#[test]
fn audit_logs_map_to_ecs() {
    let a = api();
    let cases: [(&str, &str, &[&str], &str); 14] = [
        ("Signin", "authentication", &["start"], "success"),
        ("Signout", "authentication", &["end"], "success"),
        ("LoginAttemptFailed", "authentication", &["start"], "failure"),
        ("UserCreated", "iam", &["user", "creation"], "success"),
        ("DeleteUser", "iam", &["user", "deletion"], "success"),
        ("AccessTokenReset", "iam", &["user", "change"], "success"),
        ("RoleCreated", "iam", &["creation"], "success"),
        ("TeamDelete", "iam", &["group", "deletion"], "success"),
        ("WebsiteDeleted", "configuration", &["deletion"], "success"),
        ("SingleSignOnUpdated", "configuration", &["change"], "success"),
        ("ScanStarted", "vulnerability", &["info"], "success"),
        ("ScanFailed", "vulnerability", &["info"], "failure"),
        ("DefectDojoReportImportFailed", "vulnerability", &["info"], "failure"),
        ("TooManyRequests", "web", &["denied"], "failure"),
    ];
    for (kind, category, ty, outcome) in cases {
        let raw = log("6f1c2a0e-1111-4222-8333-944455556666", "2024-05-01T10:00:00.123Z", kind);
        let n = a.normalise(&raw);
        assert_eq!(n.id.as_deref(), Some("6f1c2a0e-1111-4222-8333-944455556666"));
        assert_eq!(n.timestamp, Some(t("2024-05-01T10:00:00.123Z")));
        let e = crate::event::normalise("inv", a.observer(), &raw, n, Utc::now());
        assert_eq!(e.str_field("event.action"), Some(kind));
        assert_eq!(e.fields()["event"]["category"], json!([category]), "{kind}");
        assert_eq!(e.fields()["event"]["type"], json!(ty), "{kind}");
        assert_eq!(e.outcome(), outcome, "{kind}");
        assert_eq!(e.str_field("event.provider"), None, "EndpointType is not a provider");
        assert_eq!(e.str_field("invicti.endpoint_type"), Some("Web"));
        assert_eq!(e.str_field("user.id"), Some("a1b2c3d4-0000-4000-8000-000000000001"));
        assert_eq!(e.str_field("user.name"), Some("Jane Doe"));
        assert_eq!(e.str_field("user.email"), Some("jane.doe@example.com"));
        assert_eq!(e.str_field("message"), Some(format!("{kind} by Jane Doe").as_str()));
        assert_eq!(e.str_field("observer.product"), Some("Invicti Enterprise"));
    }
    let zoneless = log("z", "2024-05-01T10:00:00.5", "Signin");
    assert_eq!(a.normalise(&zoneless).timestamp, Some(t("2024-05-01T10:00:00.5Z")), "no zone: UTC");
}

#[test]
fn build_needs_user_id_and_token() {
    let env = crate::settings::secret::tests::FakeEnv::default();
    let text = "url = \"https://www.netsparkercloud.com\"\nuser_id = \"${INV_USER}\"\ntoken = \"${INV_TOKEN}\"\n";
    let cfg: super::InvictiConfig = crate::sources::testkit::keys(text).unwrap();
    let Err(problems) = crate::sources::testkit::build(&cfg, &env) else { panic!("built without its secrets") };
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["source[0].user_id", "source[0].token"]);
}

/// Every value of the documented `Type` enum (106 in the snapshot)
/// has one row, with ECS's allowed categories and types; types the enum
/// does not list are read from their wording, outcome unknown.
#[test]
fn the_type_table_covers_the_enum_with_ecs_values() {
    use super::types::{classify, TYPES};
    // 107: the enum of specs/netsparker.json, LimitingRole included (#26).
    assert_eq!(TYPES.len(), 107);
    assert_eq!(classify("LimitingRole"), ("iam", &["change"][..], "success"));
    let names: std::collections::HashSet<_> = TYPES.iter().map(|(k, _)| *k).collect();
    assert_eq!(names.len(), TYPES.len(), "no type twice");
    let categories = ["authentication", "configuration", "iam", "vulnerability", "web"];
    let types = ["start", "end", "user", "group", "creation", "change", "deletion", "info", "access", "denied"];
    for (k, (c, t, o)) in TYPES {
        assert!(categories.contains(c), "{k}: {c}");
        assert!(t.iter().all(|t| types.contains(t)), "{k}: {t:?}");
        assert!(["success", "failure"].contains(o), "{k}: {o}");
        let failed = k.contains("Fail") || *k == "TooManyRequests";
        assert_eq!(*o == "failure", failed, "{k}");
    }
    assert_eq!(classify("WidgetDeleted"), ("configuration", &["deletion"][..], "unknown"));
    assert_eq!(classify("WidgetSyncFailed"), ("configuration", &["info"][..], "failure"));
}

/// An `AuditLogPagedResultDto` shaped exactly as the Invicti Enterprise
/// API's Swagger definitions serialise it (niaid/netsparker-cloud-js,
/// `src/models/AuditLogPagedResultDto.ts` and `src/models/AuditLogDto.ts`,
/// `AuditLogDtoToJSON`: every key, PascalCase, `RequestData` a string or
/// null, `CreatedAt` without a zone, which is undocumented), through the
/// dated walk and into ECS. No recorded answer is public; the values are
/// ours, the shape is the spec's.
#[test]
fn recorded_shape_of_auditlogs_list_maps_to_ecs() {
    let body: Value = serde_json::from_str(include_str!("auditlogs_list_sample.json")).unwrap();
    let a = api();
    let p = a.parse(&query(Some(&walk(1, &[]))), &resp(200, &body)).unwrap();
    assert_eq!(p.next, Next::Done);
    let e: Vec<_> = p
        .events
        .iter()
        .map(|raw| crate::event::normalise("inv", a.observer(), raw, a.normalise(raw), Utc::now()))
        .collect();
    assert_eq!(e.len(), 3);
    assert_eq!(e[0].id, "3f6c2f8e-1d2b-4f0a-b1b4-b11a0102c3d4");
    assert_eq!(e[0].timestamp, t("2024-05-01T10:40:12.517Z"));
    assert_eq!(e[0].str_field("event.action"), Some("ScanFailed"));
    assert_eq!(
        e[0].fields()["event"]["category"],
        json!(["vulnerability"]),
        "a failed scan is no configuration change"
    );
    assert_eq!(e[0].outcome(), "failure");
    assert_eq!(e[0].str_field("event.provider"), None);
    assert_eq!(e[0].str_field("invicti.endpoint_type"), Some("BackgroundTask"));
    assert_eq!(e[0].str_field("organization.id"), Some("0c9ba7f5-6a1e-4a43-9a86-ad2f014f3b8a"));
    assert_eq!(e[1].fields()["event"]["category"], json!(["vulnerability"]));
    assert_eq!(e[1].outcome(), "failure");
    assert_eq!(e[1].str_field("user.name"), Some("CI Bot"));
    assert_eq!(e[2].fields()["event"]["category"], json!(["authentication"]));
    assert_eq!(e[2].fields()["event"]["type"], json!(["start"]));
    assert_eq!(e[2].outcome(), "failure");
    assert_eq!(e[2].str_field("user.email"), Some("jane.doe@example.com"));
    assert_eq!(e[2].str_field("message"), Some("Login attempt failed"));
}
