use super::*;
use crate::sources::testkit::{self, resp, sent_json, t, window};

fn api() -> Guance {
    Guance::new(&url::Url::parse("https://openapi.guance.com").unwrap(), DEFAULT_QUERY)
}

fn query(state: Option<&Value>) -> Query<'_> {
    testkit::query(window("2024-05-01T10:00:00Z", "2024-05-01T11:00:00.0005Z"), state, 500)
}

const COLUMNS: [&str; 12] = [
    "time",
    "__docid",
    "df_event_id",
    "df_source",
    "df_status",
    "df_origin",
    "df_menu",
    "df_title",
    "df_message",
    "df_user_id",
    "df_user_name",
    "df_user_email",
];

fn row(ms: i64, id: &str, title: &str) -> Value {
    json!([
        ms,
        format!("TAE_{ms}_{id}"),
        id,
        "audit",
        "info",
        "front",
        "Management - Members",
        title,
        format!("admin@example.com {title}"),
        "acnt_8d1e",
        "Admin",
        "admin@example.com"
    ])
}

/// The `query_data_v1` envelope of the docs (`query-data.md`).
fn answer(rows: Vec<Value>, after: Value) -> Value {
    json!({
        "code": 200,
        "content": { "data": [{ "series": [{ "columns": COLUMNS, "values": rows }], "search_after": after,
                                "next_cursor_time": -1, "cost": "12ms" }] },
        "errorCode": "", "message": "", "success": true, "traceId": "123"
    })
}

#[test]
fn request_runs_the_audit_dql_over_the_window_in_milliseconds() {
    let req = api().request(&query(None)).unwrap();
    assert_eq!(req.url.as_str(), "https://openapi.guance.com/api/v1/df/query_data_v1");
    let body = &sent_json(&req);
    let q = &body["queries"][0];
    assert_eq!(q["qtype"], "dql");
    assert_eq!(q["query"]["q"], DEFAULT_QUERY);
    assert_eq!(q["query"]["timeRange"], json!([1_714_557_600_000i64, 1_714_561_200_001i64]), "end rounded up");
    assert_eq!(q["query"]["orderby"], json!([{ "time": "asc" }]));
    assert_eq!(q["query"]["limit"], 500);
    assert!(q["query"].get("search_after").is_none());
    let after = json!([1_714_557_600_123i64, 82936, "TAE_1_x"]);
    let req = api().request(&query(Some(&after))).unwrap();
    let body = &sent_json(&req);
    assert_eq!(body["queries"][0]["query"]["search_after"], after);
}

#[test]
fn rows_become_objects_and_search_after_pages() {
    let after = json!([1_714_557_600_123i64, 82936, "TAE_1714557600123_e2"]);
    let body = answer(
        vec![row(1_714_557_600_123, "e1", "Login"), row(1_714_557_600_123, "e2", "Modify member role")],
        after.clone(),
    );
    let p = api().parse(&query(None), &resp(200, &body)).unwrap();
    assert_eq!(p.events.len(), 2);
    assert_eq!(p.events[0]["df_event_id"], "e1");
    assert_eq!(p.events[1]["time"], 1_714_557_600_123i64);
    assert_eq!(p.next, Next::Page(after.clone()));
    // An empty page ends the walk even when a token comes back.
    let p = api().parse(&query(Some(&after)), &resp(200, &answer(vec![], after.clone()))).unwrap();
    assert_eq!(p.next, Next::Done);
    let p = api().parse(&query(None), &resp(200, &answer(vec![row(1, "e3", "x")], json!([])))).unwrap();
    assert_eq!(p.next, Next::Done);
    let no_series = json!({ "content": { "data": [{ "series": null }] }, "success": true, "errorCode": "" });
    assert!(api().parse(&query(None), &resp(200, &no_series)).unwrap().events.is_empty());
}

#[test]
fn error_bodies_and_odd_shapes_fail_loudly() {
    let cases = [
        (json!({ "success": false, "errorCode": "ft.QueryError", "message": "bad dql" }), "ft.QueryError"),
        (json!({ "content": {}, "success": true }), "no content.data[0]"),
        (json!({ "content": { "data": [{ "series": [{ "values": [[1]] }] }] } }), "has no columns"),
        (
            json!({ "content": { "data": [{ "series": [{ "columns": ["time", "x"], "values": [[1]] }] }] } }),
            "does not match",
        ),
    ];
    for (body, want) in cases {
        let e = api().parse(&query(None), &resp(200, &body)).unwrap_err();
        assert!(e.0.contains(want), "{e} should contain {want:?}");
    }
}

#[test]
fn throttling_answered_as_401_is_a_back_off_not_an_auth_failure() {
    let a = api();
    for code in ["ft.TriggerApiAkCurrentLimiting", "ft.TriggerApiWorkspaceCurrentLimiting"] {
        let body = json!({ "code": 401, "errorCode": code, "message": "", "success": false });
        assert_eq!(a.verdict(401, &serde_json::to_vec(&body).unwrap()), Some(Verdict::Throttled(None)));
    }
    let bad_key = json!({ "code": 403, "errorCode": "ft.InvalidAPIKey", "message": "invalid key", "success": false });
    assert!(
        matches!(a.verdict(403, &serde_json::to_vec(&bad_key).unwrap()), Some(Verdict::Auth(d)) if d.contains("ft.InvalidAPIKey"))
    );
    assert!(matches!(a.verdict(401, b"not json"), Some(Verdict::Auth(_))));
    assert_eq!(a.verdict(500, b"{}"), None);
}

#[test]
fn audit_rows_map_to_ecs() {
    let a = api();
    let body = answer(
        vec![
            row(1_714_557_600_123, "aud_7f3c", "Login"),
            row(1_714_557_600_456, "aud_7f3d", "Delete notification target"),
        ],
        json!([]),
    );
    let p = a.parse(&query(None), &resp(200, &body)).unwrap();
    let e: Vec<_> = p
        .events
        .iter()
        .map(|raw| crate::event::normalise("g", a.observer(), raw, a.normalise(raw), Utc::now()))
        .collect();
    assert_eq!(e[0].id, "aud_7f3c");
    assert_eq!(e[0].timestamp, t("2024-05-01T10:00:00.123Z"));
    assert_eq!(e[0].str_field("event.action"), Some("Login"));
    assert_eq!(e[0].fields()["event"]["category"], json!(["authentication"]));
    assert_eq!(e[0].str_field("user.id"), Some("acnt_8d1e"));
    assert_eq!(e[0].str_field("user.name"), Some("Admin"));
    assert_eq!(e[0].str_field("user.email"), Some("admin@example.com"));
    assert_eq!(e[0].str_field("event.provider"), Some("front"));
    assert_eq!(e[0].str_field("message"), Some("admin@example.com Login"));
    assert_eq!(e[1].fields()["event"]["category"], json!(["configuration"]));
    assert_eq!(e[1].str_field("observer.vendor"), Some("Guance"));
    // Without df_event_id the doc id serves.
    let raw = json!({ "date": 1_714_557_600_000i64, "__docid": "TAE_x" });
    assert_eq!(a.normalise(&raw).id.as_deref(), Some("TAE_x"));
    assert_eq!(a.normalise(&raw).timestamp, Some(t("2024-05-01T10:00:00Z")));
}

#[test]
fn defaults_follow_the_documented_limits() {
    let d = api().defaults();
    assert_eq!(d.rate_limit, Rate::parse("20/m").ok());
    assert_eq!(d.max_window, Some(Duration::from_secs(86_400)));
}

/// Audit events kept under `E::` instead of `TAE::` look like a quiet
/// workspace: the first empty walk asks the other namespace once, and a
/// row there fails the poll with the `query` to set.
#[test]
fn the_first_empty_walk_looks_once_under_the_other_namespace() {
    let a = api();
    let p = a.parse(&query(None), &resp(200, &answer(vec![], json!([])))).unwrap();
    let Next::Page(guard) = p.next else { panic!("the namespace is checked: {:?}", p.next) };
    let req = a.request(&query(Some(&guard))).unwrap();
    let body = &sent_json(&req);
    let q = &body["queries"][0]["query"];
    assert_eq!(q["q"], "E::re(`.*`):(`*`){ `df_source` IN ['audit'] }");
    assert_eq!(q["limit"], 1);
    assert!(q.get("search_after").is_none());
    let found = answer(vec![row(1_714_557_600_123, "e1", "Login")], json!([]));
    let e = a.parse(&query(Some(&guard)), &resp(200, &found)).unwrap_err();
    assert!(e.0.contains("set query = \"E::re(`.*`):(`*`){ `df_source` IN ['audit'] }\""), "{e}");
    // Until the query is set, every empty walk fails the same way.
    let p = a.parse(&query(None), &resp(200, &answer(vec![], json!([])))).unwrap();
    assert_eq!(p.next, Next::Page(guard.clone()), "not settled by a failure");
    let p = a.parse(&query(Some(&guard)), &resp(200, &answer(vec![], json!([])))).unwrap();
    assert_eq!((p.events.len(), p.next), (0, Next::Done));
    // Once per process: the next empty walk is a quiet workspace.
    let p = a.parse(&query(None), &resp(200, &answer(vec![], json!([])))).unwrap();
    assert_eq!(p.next, Next::Done);
    // A namespace that holds events needs no guard; a custom query without
    // a namespace prefix has none to try.
    let b = api();
    b.parse(&query(None), &resp(200, &answer(vec![row(1, "e3", "x")], json!([])))).unwrap();
    assert_eq!(b.parse(&query(None), &resp(200, &answer(vec![], json!([])))).unwrap().next, Next::Done);
    let custom = Guance::new(&url::Url::parse("https://openapi.guance.com").unwrap(), "L::audit");
    assert_eq!(custom.parse(&query(None), &resp(200, &answer(vec![], json!([])))).unwrap().next, Next::Done);
}

/// Regression (#26): an empty answer under the other namespace settled the
/// guard for the process, so a quiet first window meant a wrong namespace
/// was never checked again. Now only rows under the query settle it; a
/// quiet guard runs again on an empty walk an hour (walk time) later.
#[test]
fn a_quiet_namespace_guard_runs_again_an_hour_later_and_only_rows_settle_it() {
    let a = api();
    let empty_walk = |a: &Guance, from: &str, to: &str| {
        let q = testkit::query(window(from, to), None, 500);
        let next = a.parse(&q, &resp(200, &answer(vec![], json!([])))).unwrap().next;
        matches!(&next, Next::Page(s) if crate::sources::api::guard_of(Some(s)) == Some(OTHER_NAMESPACE))
    };
    assert!(empty_walk(&a, "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"), "the first empty walk");
    assert!(!empty_walk(&a, "2024-05-01T11:00:00Z", "2024-05-01T11:30:00Z"), "not within the hour");
    assert!(empty_walk(&a, "2024-05-01T11:30:00Z", "2024-05-01T12:00:00Z"), "re-checked after an hour");
    let q = testkit::query(window("2024-05-01T12:00:00Z", "2024-05-01T13:00:00Z"), None, 500);
    a.parse(&q, &resp(200, &answer(vec![row(1_714_564_800_000, "e9", "Login")], json!([])))).unwrap();
    assert!(!empty_walk(&a, "2024-05-01T13:00:00Z", "2024-05-01T15:00:00Z"), "rows settle it");
    assert!(!empty_walk(&a, "2024-05-03T13:00:00Z", "2024-05-03T15:00:00Z"), "for good");
}

/// The answer shaped exactly as Guance's OpenAPI docs show
/// `POST /api/v1/df/query_data_v1` answering (GuanceCloud/guance-docs,
/// `docs/en/open-api/query-data/query-data-v1.md`: `content.data[0]` with
/// `async_id`, `column_names`, `query_parse`, `series[].name`, `units`,
/// `declaration`, …), its series holding the audit-event fields of
/// `docs/zh/management/operation-audit.md` (`df_event_id`, `df_title`,
/// `df_user_*`, `df_role_scope`, `df_operation_*`). The docs' example is
/// a metric query; the values here are ours.
#[test]
fn recorded_shape_of_query_data_v1_maps_to_ecs() {
    let body: Value = serde_json::from_str(include_str!("query_data_v1_sample.json")).unwrap();
    let a = api();
    let p = a.parse(&query(None), &resp(200, &body)).unwrap();
    assert_eq!(p.next, Next::Page(json!([1_708_912_900_000i64, 1, "TAE_1708912900000_cni7q5"])));
    let raw = &p.events[0];
    let e = crate::event::normalise("gc", a.observer(), raw, a.normalise(raw), Utc::now());
    assert_eq!(e.id, "event-2c1f3b0a8d");
    assert_eq!(e.timestamp, t("2024-02-26T02:01:40Z"));
    assert_eq!(e.str_field("event.action"), Some("CPU usage"));
    assert_eq!(e.fields()["event"]["category"], json!(["configuration"]));
    assert_eq!(e.str_field("event.provider"), Some("front"));
    assert_eq!(e.str_field("user.id"), Some("acnt_3f9d"));
    assert_eq!(e.str_field("user.name"), Some("Zhang San"));
    assert_eq!(e.str_field("user.email"), Some("zhangsan@example.com"));
    assert_eq!(e.fields()["user"]["roles"], json!(["owner"]));
    assert_eq!(e.str_field("guance.menu"), Some("Monitors"));
    assert_eq!(e.str_field("guance.operation_id"), Some("rul_8a7b"));
    assert_eq!(e.str_field("message"), Some("Zhang San modified monitor [CPU usage]"));
}

/// The answer of [`answer`] with `fields` set in `content.data[0]`.
fn answer_with(rows: Vec<Value>, after: Value, fields: Value) -> Value {
    let mut a = answer(rows, after);
    for (k, v) in fields.as_object().unwrap() {
        a["content"]["data"][0][k] = v.clone();
    }
    a
}

/// Regression (#26): a partial answer ended the window as done. A query
/// that still runs (`is_running` with its `async_id`; GuanceCloud/guance-docs
/// `docs/zh/open-api/query-data/query-data-asynchronous.md`: the next query
/// "must carry" the `async_id` of the previous answer) is asked again with
/// it; a segmented answer (`next_cursor_time` other than the -1 of
/// `query-data-v1.md`'s sample) and a full page without `search_after`
/// fail the poll, the window not taken.
#[test]
fn a_partial_answer_never_ends_the_window() {
    let a = api();
    let running = answer_with(vec![], json!([]), json!({ "is_running": true, "async_id": "as_1" }));
    let p = a.parse(&query(None), &resp(200, &running)).unwrap();
    let Next::Wait(delay, state) = p.next else { panic!("asked again: {:?}", p.next) };
    assert!(delay > Duration::ZERO);
    let body = sent_json(&a.request(&query(Some(&state))).unwrap());
    assert_eq!(body["queries"][0]["async_id"], "as_1", "the async_id goes back");
    assert!(body["queries"][0]["query"].get("search_after").is_none(), "still the first page");
    let done =
        answer_with(vec![row(1_714_557_600_123, "e1", "Login")], json!([1, 2, "x"]), json!({ "async_id": "as_1" }));
    let p = a.parse(&query(Some(&state)), &resp(200, &done)).unwrap();
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.next, Next::Page(json!([1, 2, "x"])));
    // Running on a later page: the page's search_after is kept.
    let after = json!([9, 9, "y"]);
    let p = a.parse(&query(Some(&after)), &resp(200, &running)).unwrap();
    let Next::Wait(_, state) = p.next else { panic!("asked again: {:?}", p.next) };
    let body = sent_json(&a.request(&query(Some(&state))).unwrap());
    assert_eq!(body["queries"][0]["query"]["search_after"], after);
    // Running without an async_id: nothing to ask again with.
    let lost = answer_with(vec![], json!([]), json!({ "is_running": true, "async_id": "" }));
    assert!(a.parse(&query(None), &resp(200, &lost)).unwrap_err().0.contains("no async_id"));

    let segment = answer_with(vec![row(1, "e2", "x")], json!([]), json!({ "next_cursor_time": 1_714_559_000_000i64 }));
    let e = a.parse(&query(None), &resp(200, &segment)).unwrap_err();
    assert!(e.0.contains("next_cursor_time 1714559000000") && e.0.contains("not taken"), "{e}");

    let small = testkit::query(window("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"), None, 2);
    let full = answer(vec![row(1, "e3", "x"), row(2, "e4", "y")], json!([]));
    let e = a.parse(&small, &resp(200, &full)).unwrap_err();
    assert!(e.0.contains("full page (2 rows) without search_after"), "{e}");
    // The docs' sample itself (complete: false, next_cursor_time: -1) is whole.
    let sample: Value = serde_json::from_str(include_str!("query_data_v1_sample.json")).unwrap();
    assert!(a.parse(&query(None), &resp(200, &sample)).is_ok());
}
