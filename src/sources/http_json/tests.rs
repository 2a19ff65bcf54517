use super::*;
use crate::sources::testkit::{self, t, window};
use crate::state::Window;
use serde_json::json;

/// An `http_json` source's keys at a fixed `url`, `extra` added; read and
/// checked by its own type, as the file model does.
fn cfg(extra: &str) -> HttpJsonConfig {
    let text = format!("url = \"https://audit.example.com/v1/audit\"\n{extra}\n");
    let problems = testkit::problems::<HttpJsonConfig>(&text, "");
    assert!(problems.is_empty(), "{problems:?}");
    testkit::keys(&text).unwrap()
}

fn api(extra: &str) -> HttpJson {
    let env = crate::settings::secret::tests::FakeEnv::default();
    let c = cfg(extra);
    // Built through the registry line, then rebuilt concretely for
    // white-box checks.
    drop(testkit::build(&c, &env).unwrap());
    let required = crate::settings::Validate::validate(&c, "source[0]", &mut Default::default()).unwrap();
    HttpJson::of(&c, required)
}

fn query(state: Option<&Value>, page: u64) -> Query<'_> {
    let window = window("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z");
    Query { page, offset: page * 2, ..testkit::query(window, state, 2) }
}

fn resp(body: Value, headers: &[(&str, &str)]) -> ApiResponse {
    let mut h = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        h.insert(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    ApiResponse { status: 200, headers: h, body: serde_json::to_vec(&body).unwrap().into() }
}

const BASE: &str = "events = \"/data/items\"\nid = \"/id\"\ntimestamp = \"/created_at\"\n";

#[test]
fn params_are_templated() {
    let a = api(&format!(
        "{BASE}params = {{ since = \"{{{{cursor}}}}\", until = \"{{{{now}}}}\", page = \"{{{{page}}}}\", limit = \"{{{{page_size}}}}\" }}\npagination = {{ type = \"page\", start = 0 }}"
    ));
    let req = a.request(&query(None, 3)).unwrap();
    let q: BTreeMap<String, String> = req.url.query_pairs().into_owned().collect();
    assert_eq!(q["since"], "2024-05-01T10:00:00.000Z");
    assert_eq!(q["until"], "2024-05-01T11:00:00.000Z");
    assert_eq!(q["page"], "3");
    assert_eq!(q["limit"], "2");
}

#[test]
fn next_token_pagination() {
    let a = api(&format!("{BASE}pagination = {{ type = \"next\", next = \"/next_cursor\", param = \"cursor\" }}"));
    let page = a
        .parse(
            &query(None, 0),
            &resp(
                json!({"data": {"items": [{"id": 1, "created_at": "2024-05-01T10:00:01Z"}]}, "next_cursor": "abc"}),
                &[],
            ),
        )
        .unwrap();
    assert_eq!(page.next, Next::Page(json!("abc")));
    let token = json!("abc");
    let req = a.request(&query(Some(&token), 1)).unwrap();
    assert!(req.url.as_str().ends_with("cursor=abc"), "{}", req.url);
    let last = a.parse(&query(None, 1), &resp(json!({"data": {"items": []}, "next_cursor": null}), &[])).unwrap();
    assert_eq!(last.next, Next::Done);
}

#[test]
fn link_header_pagination() {
    let a = api(&format!("{BASE}pagination = {{ type = \"link\" }}"));
    let page = a
        .parse(
            &query(None, 0),
            &resp(
                json!({"data": {"items": []}}),
                &[(
                    "link",
                    "<https://audit.example.com/v1/audit?page=2>; rel=\"next\", <https://x/?page=9>; rel=\"last\"",
                )],
            ),
        )
        .unwrap();
    assert_eq!(page.next, Next::Page(json!("https://audit.example.com/v1/audit?page=2")));
    let state = json!("https://audit.example.com/v1/audit?page=2");
    assert_eq!(a.request(&query(Some(&state), 1)).unwrap().url.as_str(), "https://audit.example.com/v1/audit?page=2");
}

#[test]
fn short_page_ends_offset_paging_and_full_page_continues() {
    let a = api(&format!("{BASE}params = {{ offset = \"{{{{offset}}}}\" }}\npagination = {{ type = \"offset\" }}"));
    let ev = |i: u32| json!({"id": i, "created_at": "2024-05-01T10:00:01Z"});
    let full = a.parse(&query(None, 0), &resp(json!({"data": {"items": [ev(1), ev(2)]}}), &[])).unwrap();
    assert_eq!(full.next, Next::Page(Value::Null));
    let short = a.parse(&query(None, 1), &resp(json!({"data": {"items": [ev(3)]}}), &[])).unwrap();
    assert_eq!(short.next, Next::Done);
}

#[test]
fn no_pagination_full_page_asks_again_from_cursor() {
    let a = api(BASE);
    let ev = |i: u32| json!({"id": i, "created_at": "2024-05-01T10:00:01Z"});
    let full = a.parse(&query(None, 0), &resp(json!({"data": {"items": [ev(1), ev(2)]}}), &[])).unwrap();
    assert_eq!(full.next, Next::FromCursor);
}

#[test]
fn wrong_shapes_fail_loudly() {
    let a = api(BASE);
    let q = query(None, 0);
    let err = a
        .parse(&q, &ApiResponse { status: 200, headers: Default::default(), body: "<html>proxy</html>".into() })
        .unwrap_err();
    assert!(err.0.contains("not JSON") && err.0.contains("<html>"), "{}", err.0);
    let err = a.parse(&q, &resp(json!({"items": []}), &[])).unwrap_err();
    assert!(err.0.contains("\"/data/items\" is not in the response"), "{}", err.0);
    let err = a.parse(&q, &resp(json!({"data": {"items": {"a": 1}}}), &[])).unwrap_err();
    assert!(err.0.contains("is a object, not an array"), "{}", err.0);
    // An event without the configured time is read by the poller, which
    // fails the poll on it with this detail (tests/source_http_json.rs).
    let untimed = json!({"id": 1, "when": "x"});
    let page = a.parse(&q, &resp(json!({"data": {"items": [untimed]}}), &[])).unwrap();
    assert_eq!((page.events.len(), page.len()), (0, 1), "left as text for the poller");
    assert!(a.normalise(&untimed).timestamp.is_none());
    let detail = a.untimed(&untimed);
    assert!(detail.contains("no \"rfc3339\" time at \"/created_at\" (found nothing)"), "{detail}");
}

#[test]
fn time_formats() {
    let f = TimeFormat::parse("unix").unwrap();
    assert_eq!(f.read(&json!(1714557600.5)).unwrap(), t("2024-05-01T10:00:00.5Z"));
    assert_eq!(f.read(&json!("1714557600")).unwrap(), t("2024-05-01T10:00:00Z"));
    assert_eq!(TimeFormat::UnixMs.read(&json!(1714557600123i64)).unwrap(), t("2024-05-01T10:00:00.123Z"));
    let p = TimeFormat::parse("%m/%d/%Y %H:%M:%S").unwrap();
    assert_eq!(p.read(&json!("05/01/2024 10:00:00")).unwrap(), t("2024-05-01T10:00:00Z"));
    assert_eq!(p.write(t("2024-05-01T10:00:00Z")), "05/01/2024 10:00:00");
    assert!(TimeFormat::parse("iso").is_err());
}

#[test]
fn fields_mapping_and_guessing() {
    let a = api(&format!("{BASE}fields = {{ \"user.name\" = \"/who/login\", \"event.action\" = \"/op\" }}"));
    let raw = json!({"id": "x1", "created_at": "2024-05-01T10:00:01Z", "who": {"login": "eve"}, "op": "delete"});
    let n = a.normalise(&raw);
    assert_eq!(n.id.as_deref(), Some("x1"));
    assert_eq!(n.fields.get("user.name"), Some(json!("eve")));
    assert_eq!(n.fields.get("event.action"), Some(json!("delete")));
    let g = api(BASE);
    let raw = json!({"id": 7, "created_at": "2024-05-01T10:00:01Z", "actor": {"name": "bob", "email": "b@x"}, "action": "login", "ip": "192.0.2.1", "status": "FAILED"});
    let n = g.normalise(&raw);
    assert_eq!(n.id.as_deref(), Some("7"));
    assert_eq!(n.fields.get("user.email"), Some(json!("b@x")));
    assert_eq!(n.fields.get("source.ip"), Some(json!("192.0.2.1")));
    assert_eq!(n.fields.get("event.outcome"), Some(json!("failure")));
}

/// Everything `normalise` and `untimed` read is in `wanted`: an event
/// parsed down to it gives the same facts as the whole event, for guessed
/// fields (each key a guess tries) and for mapped ones (nested, through an
/// array, escaped).
#[test]
fn the_wanted_parts_of_an_event_give_what_the_whole_event_gives() {
    let configs = [
        BASE.to_owned(),
        format!("{BASE}fields = {{ \"user.name\" = \"/who/login\", \"event.action\" = \"/op\", \"a.b\" = \"/list/1/x\", \"c\" = \"/k~1e~0y\" }}"),
        "events = \"/data/items\"\nid = \"/meta/ids/0\"\ntimestamp = \"/meta/at\"\ntimestamp_format = \"unix\"\n".to_owned(),
        "events = \"/data/items\"\ntimestamp = \"/created_at\"\n".to_owned(),
    ];
    let mut events = vec![
        json!({"id": "x1", "created_at": "2024-05-01T10:00:01Z", "who": {"login": "eve", "x": 1}, "op": "delete",
               "list": [{"x": 0}, {"x": "one"}], "k/e~y": {"deep": [1, 2]}, "noise": {"a": [1, {"b": 2}]},
               "meta": {"ids": ["m-1", "m-2"], "at": 1714557601.5, "other": true}}),
        json!({"created_at": "not a time", "meta": {"at": "soon"}, "extra": "x"}),
        json!({"id": 7, "created_at": "2024-05-01T10:00:01Z", "user": "bob", "noise": 1}),
    ];
    for (k, keys) in GUESSED_KEYS.iter().enumerate() {
        for key in keys.iter() {
            let value = match k {
                1 if key.starts_with('a') => json!({"name": "n", "username": "u", "email": "e@x", "id": 9}),
                4 => json!("Denied"),
                _ => json!(format!("{key}-value")),
            };
            events.push(json!({"id": "g", "created_at": "2024-05-01T10:00:01Z", *key: value, "unmapped": [1, 2, 3]}));
            events.push(json!({"id": "g", "created_at": "2024-05-01T10:00:01Z", *key: null, "user": {"name": "later"}, "unmapped": 0}));
        }
    }
    for extra in &configs {
        let api = api(extra);
        for e in &events {
            let whole = api.normalise(e);
            let wanted = super::super::api::parse_wanted(e.to_string().as_bytes(), &api.wanted).unwrap();
            let part = api.normalise(&wanted);
            assert_eq!(
                (&part.id, part.timestamp, &part.fields),
                (&whole.id, whole.timestamp, &whole.fields),
                "{extra} {e}"
            );
            assert_eq!(api.untimed(&wanted), api.untimed(e), "{extra} {e}");
            assert_ne!(wanted, *e, "only the wanted parts are built: {extra} {e}");
        }
    }
}

/// The first poll's cursor comes from the clock, with nanosecond digits,
/// which many APIs refuse: milliseconds go out until the API's own
/// precision is seen, then that precision; `{{cursor}}` rounds down and
/// `{{now}}` up. A strftime `timestamp_format` is written as configured.
#[test]
fn times_go_out_with_the_apis_precision_milliseconds_until_seen() {
    let a = api(&format!("{BASE}params = {{ since = \"{{{{cursor}}}}\", until = \"{{{{now}}}}\" }}"));
    let mut q = query(None, 0);
    q.window = Window { from: t("2026-12-05T16:55:02.433974064Z"), to: t("2026-12-05T17:55:02.433974064Z") };
    let sent = |a: &HttpJson, q: &Query<'_>| {
        let req = a.request(q).unwrap();
        let m: BTreeMap<String, String> = req.url.query_pairs().into_owned().collect();
        (m["since"].clone(), m["until"].clone())
    };
    assert_eq!(sent(&a, &q), ("2026-12-05T16:55:02.433Z".into(), "2026-12-05T17:55:02.434Z".into()));
    a.normalise(&json!({ "id": 1, "created_at": "2026-12-05T16:55:00Z" }));
    assert_eq!(sent(&a, &q), ("2026-12-05T16:55:02Z".into(), "2026-12-05T17:55:03Z".into()), "seconds, as the API");
    a.normalise(&json!({ "id": 2, "created_at": "2026-12-05T16:55:00.123456+00:00" }));
    assert_eq!(sent(&a, &q), ("2026-12-05T16:55:02.433974Z".into(), "2026-12-05T17:55:02.433975Z".into()));
    a.normalise(&json!({ "id": 3, "created_at": "2026-12-05T16:55:01Z" }));
    assert_eq!(sent(&a, &q).0, "2026-12-05T16:55:02.433974Z", "the most digits seen stay");
    a.normalise(&json!({ "id": 4, "created_at": "not a time" }));
    assert_eq!(sent(&a, &q).0, "2026-12-05T16:55:02.433974Z");

    let p = api(&format!(
        "{BASE}timestamp_format = \"%Y-%m-%dT%H:%M:%S%.6fZ\"\nparams = {{ since = \"{{{{cursor}}}}\", until = \"{{{{now}}}}\" }}"
    ));
    assert_eq!(sent(&p, &q).0, "2026-12-05T16:55:02.433974Z", "timestamp_format overrides");
}
