use super::*;
use crate::sources::testkit::{self, resp, sent_json, t, window};
use chrono::Utc;

fn api() -> OpenCti {
    OpenCti::new(&url::Url::parse("https://opencti.example.com/").unwrap(), false)
}

fn query(state: Option<&Value>) -> Query<'_> {
    testkit::query(window("2024-05-01T10:00:00.123456Z", "2024-05-01T11:00:00.000200Z"), state, 9000)
}

/// The document the activity manager indexes (activityManager.ts), as
/// `raw_data` carries it.
fn login_doc() -> Value {
    json!({
        "internal_id": "1714557600123-0",
        "base_type": "ENTITY",
        "created_at": "2024-05-01T10:00:00.123Z",
        "updated_at": "2024-05-01T10:00:00.123Z",
        "entity_type": "Activity",
        "event_type": "authentication",
        "event_status": "success",
        "event_access": "administration",
        "event_scope": "login",
        "user_id": "88ec0c6a-13ce-5e39-b486-354fe4a7084f",
        "group_ids": [],
        "organization_ids": [],
        "timestamp": "2024-05-01T10:00:00.123Z",
        "context_data": { "provider": "local", "username": "admin@opencti.io", "message": "login from provider `local`" }
    })
}

fn node(doc: &Value) -> Value {
    json!({
        "id": doc["internal_id"],
        "entity_type": doc["entity_type"],
        "event_type": doc["event_type"],
        "event_scope": doc["event_scope"],
        "event_status": doc["event_status"],
        "timestamp": doc["timestamp"],
        "user_id": doc["user_id"],
        "user": { "id": doc["user_id"], "name": "admin" },
        "context_data": { "entity_id": null, "entity_name": null, "entity_type": null, "message": doc["context_data"]["message"] },
        "raw_data": doc.to_string(),
    })
}

fn page(nodes: Vec<Value>, more: bool, end: Option<&str>) -> Value {
    let edges: Vec<Value> = nodes.into_iter().map(|n| json!({ "cursor": "x", "node": n })).collect();
    json!({ "data": { "audits": { "pageInfo": { "endCursor": end, "hasNextPage": more }, "edges": edges } } })
}

#[test]
fn request_asks_for_the_window_oldest_first() {
    let req = api().request(&query(None)).unwrap();
    assert_eq!(req.method, reqwest::Method::POST);
    assert_eq!(req.url.as_str(), "https://opencti.example.com/graphql");
    let body = &sent_json(&req);
    assert!(body["query"].as_str().unwrap().contains("orderBy: timestamp, orderMode: asc"));
    let v = &body["variables"];
    assert_eq!(v["types"], json!(["Activity"]));
    assert_eq!(v["first"], json!(5000), "first is capped at OpenCTI's maximum");
    assert_eq!(v["after"], Value::Null);
    let f = &v["filters"]["filters"];
    assert_eq!(
        f[0],
        json!({ "key": ["timestamp"], "operator": "gte", "values": ["2024-05-01T10:00:00.123Z"], "mode": "or" })
    );
    assert_eq!(f[1]["operator"], "lte");
    assert_eq!(f[1]["values"], json!(["2024-05-01T11:00:00.001Z"]), "the end is rounded up, never cut short");
    let state = json!("WzE3MTQ1NTc2MDAxMjNd");
    let req = api().request(&query(Some(&state))).unwrap();
    let body = &sent_json(&req);
    assert_eq!(body["variables"]["after"], state);
}

#[test]
fn history_is_asked_for_when_configured_and_graphql_path_not_doubled() {
    let a = OpenCti::new(&url::Url::parse("https://cti.example.com/octi/graphql").unwrap(), true);
    assert_eq!(a.types, vec!["Activity", "History"]);
    assert_eq!(a.url.as_str(), "https://cti.example.com/octi/graphql");
}

#[test]
fn pages_follow_end_cursor_and_forward_raw_data() {
    let a = api();
    let doc = login_doc();
    let p = a.parse(&query(None), &resp(200, &page(vec![node(&doc)], true, Some("abc")))).unwrap();
    assert_eq!(p.next, Next::Page(json!("abc")));
    assert_eq!(p.events, vec![doc.clone()], "raw_data is the raw event");
    let later = json!("abc");
    let p = a.parse(&query(Some(&later)), &resp(200, &page(vec![], false, None))).unwrap();
    assert_eq!(p.next, Next::Done, "a last page, even empty, ends the walk");
    assert!(p.events.is_empty());
}

/// A `timestamp` filter that matches nothing looks like a quiet platform:
/// an empty window is followed by the newest audits, unfiltered; one that
/// lies inside the window (and is old enough to have been indexed) fails
/// the poll naming the filter.
#[test]
fn an_empty_window_is_checked_against_the_newest_unfiltered_audits() {
    let a = api();
    let p = a.parse(&query(None), &resp(200, &page(vec![], false, None))).unwrap();
    assert!(p.events.is_empty());
    let Next::Page(guard) = p.next else { panic!("an empty window is checked: {:?}", p.next) };
    let req = a.request(&query(Some(&guard))).unwrap();
    let body = sent_json(&req);
    let text = body["query"].as_str().unwrap();
    assert!(text.contains("orderBy: timestamp, orderMode: desc") && !text.contains("filters"), "{text}");
    assert_eq!(body["variables"], json!({ "types": ["Activity"], "first": GUARD_ROWS }));

    let newest = |id: &str, at: &str| json!({ "id": id, "timestamp": at });
    // The window is 10:00:00.123 to 11:00:00.001.
    let inside = page(
        vec![newest("1714560000000-0", "2024-05-01T10:59:59.000Z"), newest("x", "2024-05-01T10:20:00.000Z")],
        true,
        Some("c"),
    );
    let e = a.parse(&query(Some(&guard)), &resp(200, &inside)).unwrap_err();
    assert!(e.0.contains("timestamp gte 2024-05-01T10:00:00.123Z") && e.0.contains("\"x\""), "{e}");
    assert!(e.0.contains("does not filter audits on `timestamp`") && !e.0.contains("  "), "{e}");
    let quiet = [
        page(vec![], false, None),
        page(vec![newest("old", "2024-05-01T09:59:00.000Z")], true, Some("c")),
        // Inside, but perhaps not indexed yet when the window was asked for.
        page(vec![newest("late", "2024-05-01T10:59:50.000Z")], false, None),
    ];
    for body in quiet {
        let p = a.parse(&query(Some(&guard)), &resp(200, &body)).unwrap();
        assert!(p.events.is_empty(), "the guard's rows are never taken");
        assert_eq!(p.next, Next::Done, "a quiet platform: {body}");
    }
}

#[test]
fn node_is_forwarded_when_raw_data_is_missing_or_unreadable() {
    let mut n = node(&login_doc());
    n["raw_data"] = json!("not json");
    let p = api().parse(&query(None), &resp(200, &page(vec![n.clone()], false, None))).unwrap();
    assert_eq!(p.events, vec![n.clone()]);
    n["raw_data"] = Value::Null;
    let p = api().parse(&query(None), &resp(200, &page(vec![n.clone()], false, None))).unwrap();
    assert_eq!(p.events, vec![n]);
}

#[test]
fn empty_page_announcing_more_fails_instead_of_spinning() {
    let e = api().parse(&query(None), &resp(200, &page(vec![], true, Some("abc")))).unwrap_err();
    assert!(e.0.contains("empty page with hasNextPage"), "{e}");
    let e = api().parse(&query(None), &resp(200, &page(vec![node(&login_doc())], true, None))).unwrap_err();
    assert!(e.0.contains("without an endCursor"), "{e}");
}

#[test]
fn graphql_errors_in_http_200_fail_with_the_missing_capability_named() {
    let body = json!({
        "errors": [{ "message": "You are not allowed to do this.", "name": "ForbiddenAccess",
                     "extensions": { "code": "FORBIDDEN_ACCESS" } }],
        "data": { "audits": null }
    });
    let e = api().parse(&query(None), &resp(200, &body)).unwrap_err();
    assert!(e.0.contains("ForbiddenAccess"), "{e}");
    assert!(e.0.contains("SETTINGS_SECURITYACTIVITY"), "{e}");
    assert!(e.0.contains("Enterprise Edition"), "{e}");
    let body = json!({ "errors": [{ "message": "You must be logged in", "extensions": { "code": "AUTH_REQUIRED" } }] });
    let e = api().parse(&query(None), &resp(200, &body)).unwrap_err();
    assert!(e.0.contains("AUTH_REQUIRED") && e.0.contains("refused the credentials"), "{e}");
    assert_eq!(
        api().verdict(401, &serde_json::to_vec(&body).unwrap()).map(|v| matches!(v, Verdict::Auth(_))),
        Some(true)
    );
    assert_eq!(api().verdict(500, b"{}"), None);
}

#[test]
fn unexpected_shapes_fail_loudly() {
    for body in [json!({ "data": {} }), json!({ "data": { "audits": { "edges": [] } } }), json!([1])] {
        assert!(api().parse(&query(None), &resp(200, &body)).is_err(), "{body}");
    }
    let garbage = ApiResponse { status: 200, headers: Default::default(), body: "<html>".into() };
    assert!(api().parse(&query(None), &garbage).unwrap_err().0.contains("not JSON"));
}

#[test]
fn login_maps_to_ecs_with_the_user_name_from_the_node() {
    let a = api();
    let doc = login_doc();
    let p = a.parse(&query(None), &resp(200, &page(vec![node(&doc)], false, None))).unwrap();
    let n = a.normalise(&p.events[0]);
    assert_eq!(n.id.as_deref(), Some("1714557600123-0"));
    assert_eq!(n.timestamp, Some(t("2024-05-01T10:00:00.123Z")));
    let e = crate::event::normalise("octi", a.observer(), &p.events[0], n, Utc::now());
    assert_eq!(e.str_field("event.action"), Some("login"));
    assert_eq!(e.str_field("event.outcome"), Some("success"));
    assert_eq!(e.fields()["event"]["category"], json!(["authentication"]));
    assert_eq!(e.fields()["event"]["type"], json!(["start"]));
    assert_eq!(e.str_field("event.dataset"), Some("opencti.activity"));
    assert_eq!(e.str_field("user.id"), Some("88ec0c6a-13ce-5e39-b486-354fe4a7084f"));
    assert_eq!(e.str_field("user.name"), Some("admin"));
    assert_eq!(e.str_field("message"), Some("admin login from provider `local`"));
    assert_eq!(e.str_field("observer.vendor"), Some("Filigran"));
    assert_eq!(e.str_field("observer.product"), Some("OpenCTI"));
}

#[test]
fn failed_login_and_user_mutation_map_to_ecs() {
    let a = api();
    let mut doc = login_doc();
    doc["event_status"] = json!("error");
    doc["user_id"] = json!("6a4b11e1-90ca-4e42-ba42-db7bc7f7d505");
    doc["context_data"] = json!({ "username": "mallory", "message": "detects `login failure` for `mallory`" });
    let n = a.normalise(&doc);
    let e = crate::event::normalise("octi", a.observer(), &doc, n, Utc::now());
    assert_eq!(e.outcome(), "failure");
    assert_eq!(e.str_field("user.name"), Some("mallory"), "the attempted user name");

    let update = json!({
        "id": "1714557700456-1", "entity_type": "Activity", "event_type": "mutation", "event_scope": "update",
        "event_status": "success", "timestamp": "2024-05-01T10:01:40.456Z", "user_id": "u1",
        "user": { "id": "u1", "name": "alice" },
        "context_data": { "entity_id": "u2", "entity_name": "bob", "entity_type": "User",
                          "message": "updates `bob` (User)" },
        "raw_data": null
    });
    let n = a.normalise(&update);
    assert_eq!(n.id.as_deref(), Some("1714557700456-1"));
    let e = crate::event::normalise("octi", a.observer(), &update, n, Utc::now());
    assert_eq!(e.str_field("event.action"), Some("update"));
    assert_eq!(e.fields()["event"]["category"], json!(["iam"]));
    assert_eq!(e.fields()["event"]["type"], json!(["change"]));
    assert_eq!(e.str_field("user.name"), Some("alice"));
    assert_eq!(e.str_field("opencti.entity.name"), Some("bob"));
    assert_eq!(e.str_field("message"), Some("alice updates `bob` (User)"));
}

#[test]
fn build_needs_a_token() {
    let env = crate::settings::secret::tests::FakeEnv::default();
    let cfg: super::OpenctiConfig =
        crate::sources::testkit::keys("url = \"https://o.example.com\"\ntoken = \"${OCTI}\"\n").unwrap();
    let Err(problems) = crate::sources::testkit::build(&cfg, &env) else { panic!("built without its secrets") };
    assert_eq!(problems[0].path, "source[0].token");
}

/// An `audits` answer shaped exactly as OpenCTI builds it. No recorded
/// answer is public; the shape is the platform's own code
/// (OpenCTI-Platform/opencti, `opencti-platform/opencti-graphql`):
/// `config/schema/opencti.graphql` (`LogConnection`, `Log`, `pageInfo`
/// with `globalCount`), `src/resolvers/log.js` (`raw_data` is
/// `JSON.stringify(log, null, 2)`: pretty-printed, `user` resolved from
/// `user_id`, null when there is none), `src/database/engine` `elDataConverter`
/// (the loaded document carries `_index`, `_id`, `id` and the search-after
/// `sort` besides what was stored) and `src/manager/activityManager.ts`
/// (the stored document: `internal_id` the Redis stream id `<ms>-<seq>`,
/// `timestamp` ISO-8601 with milliseconds, `context_data` with `message`).
/// The selection is the one `tests/02-integration/02-resolvers/audit-test.ts`
/// asks for, plus `raw_data`. The values are ours.
#[test]
fn recorded_shape_of_audits_maps_to_ecs() {
    let body: Value = serde_json::from_str(include_str!("audits_sample.json")).unwrap();
    let a = api();
    let p = a.parse(&query(None), &resp(200, &body)).unwrap();
    assert_eq!(p.next, Next::Done);
    assert_eq!(p.events.len(), 3);
    assert_eq!(p.events[0]["_index"], "opencti_history-000001", "the pretty-printed raw_data is the raw event");
    let e: Vec<_> = p
        .events
        .iter()
        .map(|raw| crate::event::normalise("octi", a.observer(), raw, a.normalise(raw), Utc::now()))
        .collect();
    assert_eq!(e[0].id, "1714557600123-0");
    assert_eq!(e[0].timestamp, t("2024-05-01T10:00:00.123Z"));
    assert_eq!(e[0].str_field("event.action"), Some("login"));
    assert_eq!(e[0].fields()["event"]["category"], json!(["authentication"]));
    assert_eq!(e[0].fields()["event"]["type"], json!(["start"]));
    assert_eq!(e[0].outcome(), "success");
    assert_eq!(e[0].str_field("event.dataset"), Some("opencti.activity"));
    assert_eq!(e[0].str_field("user.id"), Some("88ec0c6a-13ce-5e39-b486-354fe4a7084f"));
    assert_eq!(e[0].str_field("user.name"), Some("admin"), "from the node's user, which raw_data lacks");
    assert_eq!(e[0].str_field("opencti.event_access"), Some("administration"));
    assert_eq!(e[0].str_field("message"), Some("admin login from provider `local`"));

    assert_eq!(e[1].str_field("event.action"), Some("update"));
    assert_eq!(e[1].fields()["event"]["category"], json!(["iam"]));
    assert_eq!(e[1].fields()["event"]["type"], json!(["change"]));
    assert_eq!(e[1].str_field("opencti.entity.id"), Some("6a4b11e1-90ca-4e42-ba42-db7bc7f7d505"));
    assert_eq!(e[1].str_field("opencti.entity.type"), Some("User"));
    assert_eq!(e[1].str_field("opencti.entity.name"), Some("alice"));

    assert_eq!(e[2].outcome(), "failure");
    assert_eq!(e[2].str_field("user.id"), None, "a failed login has no user");
    assert_eq!(e[2].str_field("user.name"), Some("mallory@example.com"), "the name tried");
    assert_eq!(e[2].fields()["event"]["category"], json!(["authentication"]));
}

/// `me.capabilities` as OpenCTI answers it, for the capability names the
/// users of OpenCTI's own unit test of `computeAuditTypes` hold
/// (OpenCTI-Platform/opencti,
/// `opencti-graphql/tests/01-unit/domain/log-audit-types-test.ts`:
/// `securityUser`, `orgAdmin`, `noAuditUser`, `knowledgeAndSecurityUser`),
/// and the admin's `BYPASS`.
fn me(names: &[&str]) -> Value {
    let caps: Vec<Value> = names.iter().map(|n| json!({ "name": n })).collect();
    json!({ "data": { "me": { "capabilities": caps } } })
}

/// With History and Activity asked for, OpenCTI's `computeAuditTypes`
/// (`domain/log.ts`) drops the type the token may not read and answers
/// the rest: the walk begins with `me { capabilities { name } }` and fails
/// naming the missing capability (History needs KNOWLEDGE, Activity
/// SETTINGS_SECURITYACTIVITY; matched as `isUserHasCapability` does, by
/// substring, BYPASS granting all). A passed check holds for an hour.
#[test]
fn include_history_checks_the_token_capabilities_first() {
    let a = OpenCti::new(&url::Url::parse("https://opencti.example.com/").unwrap(), true);
    let body = sent_json(&a.request(&query(None)).unwrap());
    assert!(body["query"].as_str().unwrap().contains("me { capabilities { name } }"), "{body}");

    // securityUser: Activity only; History would be dropped silently.
    let e = a.parse(&query(None), &resp(200, &me(&["SETTINGS_SECURITYACTIVITY"]))).unwrap_err();
    assert!(e.0.contains("lacks the capability KNOWLEDGE (for History)") && !e.0.contains("  "), "{e}");
    // orgAdmin: History only; the logins and admin actions would be absent.
    let e = a.parse(&query(None), &resp(200, &me(&["KNOWLEDGE_KNUPDATE", "VIRTUAL_ORGANIZATION_ADMIN"]))).unwrap_err();
    assert!(e.0.contains("SETTINGS_SECURITYACTIVITY (for Activity)") && !e.0.contains("KNOWLEDGE (for"), "{e}");
    let e = a.parse(&query(None), &resp(200, &me(&["SOME_OTHER_CAPABILITY"]))).unwrap_err();
    assert!(e.0.contains("SETTINGS_SECURITYACTIVITY (for Activity) and KNOWLEDGE (for History)"), "{e}");
    assert_eq!(
        sent_json(&a.request(&query(None)).unwrap())["query"],
        CAPABILITIES,
        "a failed check is made again on the next walk"
    );

    for held in [&["BYPASS"][..], &["KNOWLEDGE_KNUPDATE", "SETTINGS_SECURITYACTIVITY"]] {
        let a = OpenCti::new(&url::Url::parse("https://opencti.example.com/").unwrap(), true);
        let p = a.parse(&query(None), &resp(200, &me(held))).unwrap();
        assert!(p.events.is_empty());
        let Next::Page(state) = p.next else { panic!("the walk goes on to the audits: {:?}", p.next) };
        let v = sent_json(&a.request(&query(Some(&state))).unwrap())["variables"].clone();
        assert_eq!((v["types"].clone(), v["after"].clone()), (json!(["Activity", "History"]), Value::Null));
        // An empty first page after the check still runs the filter guard.
        let p = a.parse(&query(Some(&state)), &resp(200, &page(vec![], false, None))).unwrap();
        assert_eq!(p.next, Next::Page(guard_state(NEWEST)));
        // Within the hour the next walk starts with the audits themselves.
        assert!(sent_json(&a.request(&query(None)).unwrap())["variables"]["filters"].is_object());
        let later = window("2024-05-01T11:00:00Z", "2024-05-01T12:00:00.000200Z");
        let body = sent_json(&a.request(&testkit::query(later, None, 10)).unwrap());
        assert_eq!(body["query"], CAPABILITIES, "checked again after CAPABILITY_RECHECK");
    }
    // Activity alone: a missing capability is OpenCTI's own ForbiddenAccess.
    assert!(sent_json(&api().request(&query(None)).unwrap())["variables"]["filters"].is_object());
}

/// A catch-up window (hours back, or a busy platform): the newest
/// [`GUARD_ROWS`] audits are all newer than the window, so they prove
/// nothing about it. The guard then asks for the newest audit at or before
/// the window's end (`timestamp lte` alone), and when that finds none (a
/// filter that matches nothing answers none either) for the oldest audit:
/// one at or before the window's end means the filter is wrong. The
/// answers have the `audits` connection shape of OpenCTI's schema
/// (`pageInfo { endCursor hasNextPage }`, `edges { node { id timestamp } }`,
/// as `tests/02-integration/02-resolvers/audit-test.ts` selects it).
#[test]
fn a_catch_up_window_is_checked_for_audits_before_its_end() {
    let a = api();
    let Next::Page(newest) = a.parse(&query(None), &resp(200, &page(vec![], false, None))).unwrap().next else {
        panic!("an empty window is checked")
    };
    let row = |id: &str, at: &str| json!({ "id": id, "timestamp": at });
    // The window is 10:00:00.123 to 11:00:00.001; every row is later.
    let later =
        page(vec![row("n1", "2024-05-01T14:00:00.000Z"), row("n2", "2024-05-01T13:00:00.000Z")], true, Some("c"));
    let p = a.parse(&query(Some(&newest)), &resp(200, &later)).unwrap();
    assert!(p.events.is_empty(), "the guard's rows are never taken");
    let Next::Page(before_end) = p.next else { panic!("newer rows prove nothing about the window: {:?}", p.next) };
    let body = sent_json(&a.request(&query(Some(&before_end))).unwrap());
    assert!(body["query"].as_str().unwrap().contains("orderBy: timestamp, orderMode: desc, filters: $filters"));
    assert_eq!(body["variables"]["first"], 1);
    assert_eq!(
        body["variables"]["filters"]["filters"],
        json!([{ "key": ["timestamp"], "operator": "lte", "values": ["2024-05-01T10:59:30.001Z"], "mode": "or" }]),
        "bounded by the window's end (less the indexing delay) only"
    );

    let p = a.parse(&query(Some(&before_end)), &resp(200, &page(vec![], false, None))).unwrap();
    let Next::Page(oldest) = p.next else { panic!("no row proves nothing: {:?}", p.next) };
    let body = sent_json(&a.request(&query(Some(&oldest))).unwrap());
    let text = body["query"].as_str().unwrap();
    assert!(text.contains("orderBy: timestamp, orderMode: asc") && !text.contains("filters"), "{text}");
    let old = page(vec![row("o1", "2024-04-20T07:00:00.000Z")], true, Some("c"));
    let e = a.parse(&query(Some(&oldest)), &resp(200, &old)).unwrap_err();
    assert!(
        e.0.contains("\"o1\"") && e.0.contains("does not filter audits on `timestamp`") && !e.0.contains("  "),
        "{e}"
    );
    for none_before in [page(vec![row("n3", "2024-05-01T12:00:00.000Z")], true, Some("c")), page(vec![], false, None)] {
        assert_eq!(a.parse(&query(Some(&oldest)), &resp(200, &none_before)).unwrap().next, Next::Done);
    }

    let inside = page(vec![row("i1", "2024-05-01T10:30:00.000Z")], true, Some("c"));
    let e = a.parse(&query(Some(&before_end)), &resp(200, &inside)).unwrap_err();
    assert!(e.0.contains("\"i1\"") && e.0.contains("lies inside it"), "{e}");
    let e = a.parse(&query(Some(&before_end)), &resp(200, &later)).unwrap_err();
    assert!(e.0.contains("lte 2024-05-01T10:59:30.001Z alone") && e.0.contains("\"n1\""), "{e}");
    assert_eq!(a.parse(&query(Some(&before_end)), &resp(200, &old)).unwrap().next, Next::Done, "older: quiet");
}
