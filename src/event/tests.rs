use super::model::Fields;
use super::normalise::{build, render, MAX_DEPTH};
use super::*;
use chrono::TimeZone;
use chrono::Utc;
use serde_json::json;
use serde_json::{Map, Value};

const OBS: Observer = Observer { vendor: "Acme", product: "Audit" };

#[test]
fn normalise_fills_required_fields() {
    let raw = json!({"who": "bob", "what": "login"});
    let mut n = Normalised::default();
    n.put_str("user.name", Some("bob")).put_str("event.action", Some("login"));
    n.timestamp = Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap());
    let e = normalise("src", OBS, &raw, n, Utc::now());
    assert_eq!(e.str_field("event.id"), Some(e.id.as_str()));
    assert_eq!(e.id.len(), 32, "hash id when the API has none");
    assert_eq!(e.str_field("@timestamp"), Some("2024-05-01T10:00:00Z"));
    assert_eq!(e.str_field("labels.source"), Some("src"));
    assert_eq!(e.str_field("observer.vendor"), Some("Acme"));
    assert_eq!(e.outcome(), "unknown");
    assert_eq!(e.message(), "login by bob (unknown)");
    let doc = e.document();
    assert_eq!(doc["event"]["original"], json!(raw.to_string()));
    assert_eq!(e.payload(Payload::Raw), raw);
}

#[test]
fn write_document_matches_document() {
    let raw = json!({"id": 1, "msg": "a \"quote\" and\nnewline"});
    let mut n = Normalised::default();
    n.put_str("event.action", Some("login")).put_str("user.name", Some("bob"));
    n.timestamp = Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap());
    let e = normalise("src", OBS, &raw, n, Utc::now());
    let mut out = Vec::new();
    e.write_document(&mut out);
    assert_eq!(out, serde_json::to_vec(&e.document()).unwrap());
    // Without an `event` object in the fields, one is added.
    let mut bare = e.clone();
    bare.set_fields(Map::new());
    let mut out = Vec::new();
    bare.write_document(&mut out);
    assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), bare.document());
}

#[test]
fn into_journaled_keeps_the_document_and_the_fields() {
    let raw = json!({"who": "bob", "what": "login", "deep": {"a": [1, 2, {"b": null}]}});
    let mut n = Normalised::default();
    n.put_str("user.name", Some("bob")).put("labels.deep", raw["deep"].clone());
    let built = normalise("src", OBS, &raw, n, Utc::now());
    let frozen = built.clone().into_journaled();
    assert!(matches!(frozen.fields, Fields::Journaled { .. }));
    assert_eq!(frozen, built);
    assert_eq!(frozen.document(), built.document());
    assert_eq!(frozen.clone().into_journaled(), frozen);
}

/// An event read from the API's text keeps that text as
/// `event.original` (numbers, escapes and spacing as sent), except
/// a pretty-printed one, written compact; a hashed id is the same
/// whichever way the event was read, and so is everything else.
#[test]
fn normalise_text_keeps_the_text_as_sent_and_the_id_of_the_parsed_path() {
    let obs = Observer { vendor: "V", product: "P" };
    let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    for (text, verbatim) in [
        (r#"{"a":1,"b":"x"}"#, true),
        (r#"{"a": 1.0e3, "b": "caf\u00e9", "c": [1, 2]}"#, true),
        ("{\n  \"a\": 1,\n  \"b\": \"x\"\n}", false),
    ] {
        let raw: Value = serde_json::from_str(text).unwrap();
        let compact = serde_json::to_string(&raw).unwrap();
        for id in [None, Some("api-id".to_owned())] {
            let n = || Normalised { id: id.clone(), ..Default::default() };
            let parsed = normalise("s", obs, &raw, n(), t);
            let sent = normalise_text("s", obs, &raw, as_sent(text.as_bytes()), n(), t);
            assert_eq!(sent.raw, if verbatim { text } else { compact.as_str() }, "{text}");
            assert_eq!(parsed.raw, compact);
            assert_eq!(sent.id, parsed.id, "{text}");
            assert_eq!(sent.id, id.clone().unwrap_or_else(|| hash_id(&compact)));
            assert_eq!(sent.fields(), parsed.fields());
            assert_eq!(sent.document()["event"]["original"], Value::String(sent.raw.clone()));
        }
    }
    // Text that is not UTF-8 (never the case for text that parsed) is
    // written compact rather than lost.
    let raw = json!({"a": 1});
    let e = normalise_text("s", obs, &raw, as_sent(b"{\"a\":\xff}"), Normalised::default(), t);
    assert_eq!(e.raw, r#"{"a":1}"#);
}

#[test]
fn hash_id_is_stable_and_distinct() {
    assert_eq!(hash_id("{\"a\":1}"), hash_id("{\"a\":1}"));
    assert_ne!(hash_id("{\"a\":1}"), hash_id("{\"a\":2}"));
}

#[test]
fn timestamps_keep_source_precision() {
    let t = Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap();
    assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
    let e = Event::new("s".into(), "1".into(), t, Map::new(), "{}".into());
    assert!((e.epoch_seconds() - 1_700_000_000.123).abs() < 1e-6);
    assert_eq!(e.epoch_millis(), 1_700_000_000_123);
}

#[test]
fn set_and_get_by_path() {
    let mut m = Map::new();
    set(&mut m, "a.b.c", json!(1));
    set(&mut m, "a.d", json!("x"));
    assert_eq!(get(&m, "a.b.c"), Some(&json!(1)));
    assert_eq!(get(&m, "a.d"), Some(&json!("x")));
    m.insert("user.name".into(), json!("flat"));
    assert_eq!(get(&m, "user.name"), Some(&json!("flat")));
    set(&mut m, "a.d.e", json!(2));
    assert_eq!(get(&m, "a.d.e"), Some(&json!(2)), "a scalar in the way is replaced");
}
fn journaled(e: &Event) -> Event {
    let t = e.template().into_owned();
    let t = Template::from_parts(t.text().to_vec(), t.at(), t.hole()).expect("a template of ours passes its check");
    Event::journaled(e.source.clone(), e.id.clone(), e.timestamp, t, e.raw.clone())
}

/// The spliced document is the serde document, whatever the fields.
fn check_splice(fields: Map<String, Value>, raw: &str) {
    let e = Event::new("s".into(), "1".into(), Utc::now(), fields, raw.into());
    let j = journaled(&e);
    let mut spliced = Vec::new();
    j.write_document(&mut spliced);
    let doc: Value = serde_json::from_slice(&spliced).expect("spliced document is JSON");
    assert_eq!(doc, e.document(), "{}", String::from_utf8_lossy(&spliced));
    let mut without = e.fields().clone();
    if let Some(Value::Object(ev)) = without.get_mut("event") {
        ev.remove("original");
    } else {
        without.remove("event");
    }
    assert_eq!(j.fields(), &without, "the journaled text parses back to the fields");
}

#[test]
fn splice_covers_every_hole() {
    check_splice(Map::new(), "{}");
    check_splice(json!({"a": 1}).as_object().unwrap().clone(), "x\"y");
    check_splice(json!({"event": {}}).as_object().unwrap().clone(), "{}");
    check_splice(json!({"event": {"original": "stale"}, "z": [1]}).as_object().unwrap().clone(), "{}");
    check_splice(json!({"a": {"event": {}}, "event": {"id": "1"}, "b": null}).as_object().unwrap().clone(), "\n");
    check_splice(json!({"event": "scalar", "b": 2}).as_object().unwrap().clone(), "r");
    check_splice(json!({"event": "scalar"}).as_object().unwrap().clone(), "r");
}

#[test]
fn damaged_templates_are_refused() {
    let t = Template::of(json!({"event": {"id": "1"}, "a": 2}).as_object().unwrap());
    assert_eq!(t.hole(), Hole::AfterEventFields);
    assert!(Template::from_parts(t.text().to_vec(), t.at(), t.hole()).is_some());
    assert!(Template::from_parts(t.text().to_vec(), t.at() + 1, t.hole()).is_none(), "off the brace");
    assert!(Template::from_parts(t.text().to_vec(), t.at(), Hole::EmptyEvent).is_none(), "wrong kind");
    assert!(Template::from_parts(t.text().to_vec(), t.at(), Hole::AfterFields).is_none(), "not the end");
    assert!(Template::from_parts(t.text().to_vec(), 10_000, t.hole()).is_none(), "past the end");
    let mut cut = t.text().to_vec();
    cut.truncate(t.at() + 1);
    assert!(Template::from_parts(cut, t.at(), t.hole()).is_none(), "not JSON");
    assert!(Template::from_parts(b"[1,{}]".to_vec(), 4, Hole::EmptyDocument).is_none(), "not an object");
    assert_eq!(Hole::from_byte(3), Some(Hole::EmptyDocument));
    assert_eq!(Hole::from_byte(4), None);
}

fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop::sample::select(vec!["event", "original", "a", "b\"\\", "ü\n", "", "id"]).prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// The document `render` writes is the one `build` makes, byte for
/// byte, wherever it writes one; the usual vendor mappings take it.
fn check_render(paths: &Paths) -> bool {
    let (time, id, source) = ("2024-05-01T10:00:00.123Z", "evt-\"1\"", "src\\1");
    let slow = Template::of(&build(paths.clone(), time.to_owned(), id, source, OBS));
    match render(paths, time, id, source, OBS) {
        Some(fast) => {
            assert_eq!(String::from_utf8_lossy(fast.text()), String::from_utf8_lossy(slow.text()), "{paths:?}");
            assert_eq!(fast, slow, "{paths:?}");
            true
        }
        None => false,
    }
}

#[test]
fn render_writes_what_build_makes_for_usual_mappings() {
    let usual: [&[(&str, Value)]; 6] = [
        &[],
        &[("event.action", json!("login")), ("user.name", json!("bob")), ("source.ip", json!("192.0.2.1"))],
        &[("user.email", json!("b@x")), ("event.outcome", json!("failure")), ("event.category", json!(["iam"]))],
        &[("message", json!("as sent")), ("user", json!({"id": 7, "name": {"first": "x"}})), ("event.kind", json!(1))],
        &[("user", json!({"name": "nested", "user.name": "dotted"})), ("event.outcome", json!({"x": 1}))],
        &[("a.b.c", json!({"event": {"original": 1}})), ("", json!(null)), ("ü\"", json!([[], {}]))],
    ];
    for fields in usual {
        let mut paths = Paths::default();
        for (p, v) in fields {
            paths.set(p, v.clone());
        }
        assert!(check_render(&paths), "written directly: {paths:?}");
    }
    let special: [&[(&str, Value)]; 9] = [
        &[("@timestamp", json!("x"))],
        &[("event", json!({"a": 1}))],
        &[("event.id", json!("mine"))],
        &[("labels.tenant", json!("t"))],
        &[("message", json!(1))],
        &[("user.name", json!("a")), ("user.name", json!("b"))],
        &[("user", json!({"a": 1})), ("user.name", json!("b"))],
        &[("x", json!({"$serde_json::private::RawValue": 1}))],
        &[("event.original.x", json!(1))],
    ];
    for fields in special {
        let mut paths = Paths::default();
        for (p, v) in fields {
            paths.set(p, v.clone());
        }
        assert!(!check_render(&paths), "left to build: {paths:?}");
    }
    // Either side of the depth `build` caps values at, through values
    // and through paths.
    for (segments, levels) in [(1, 61), (1, 62), (1, 63), (2, 62), (3, 61), (60, 0), (62, 0), (63, 0), (70, 0)] {
        for deep in [(0..levels).fold(json!(1), |v, _| json!([v])), (0..levels).fold(json!(1), |v, _| json!({"k": v}))]
        {
            let mut paths = Paths::default();
            paths.set(&vec!["x"; segments].join("."), deep);
            let written = check_render(&paths);
            assert_eq!(written, segments + levels.max(1) < MAX_DEPTH, "{segments} segments, {levels} levels");
        }
    }
}

fn paths() -> impl proptest::strategy::Strategy<Value = Paths> {
    use proptest::prelude::*;
    let segment = prop::sample::select(vec![
        "event",
        "id",
        "outcome",
        "action",
        "original",
        "labels",
        "observer",
        "message",
        "@timestamp",
        "user",
        "name",
        "email",
        "x",
        "",
        "$serde_json::private::RawValue",
    ]);
    let path = prop::collection::vec(segment, 1..4).prop_map(|s| s.join("."));
    let value = prop_oneof![
        4 => json_value(),
        1 => ".{0,6}".prop_map(Value::from),
        1 => (0..3usize).prop_map(|k| json!({"name": format!("n{k}"), "$serde_json::private::RawValue": k})),
        1 => (60..70usize).prop_map(|depth| (0..depth).fold(json!(0), |v, _| json!([v]))),
        1 => (60..70usize).prop_map(|depth| (0..depth).fold(json!(0), |v, _| json!({"k": v}))),
    ];
    prop::collection::vec((path, value), 0..8).prop_map(|entries| {
        let mut paths = Paths::default();
        for (p, v) in entries {
            paths.set(&p, v);
        }
        paths
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
    #[test]
    fn render_writes_what_build_makes(paths in paths()) {
        check_render(&paths);
    }

    #[test]
    fn splice_equals_the_serialised_document(v in json_value(), raw in ".{0,12}") {
        if let Value::Object(m) = v {
            check_splice(m, &raw);
        }
    }
}
