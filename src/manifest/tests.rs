//! Windows, manifests and `verify` end to end in memory: events tagged and
//! confirmed by a [`Book`], sent as the JSON encoder writes them, then
//! removed, altered, resent or duplicated on the way to the "SIEM".

use super::verify::{read, verify, Problem, Record};
use super::*;
use serde_json::json;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000 + s, 0).unwrap()
}

fn event(source: &str, i: usize) -> Event {
    let mut fields = Map::new();
    fields.insert("event".into(), json!({ "id": format!("{source}-{i}"), "action": "login" }));
    fields.insert("labels".into(), json!({ "source": source }));
    fields.insert("user".into(), json!({ "name": format!("user{i}") }));
    let raw = format!("{{\"id\":\"{source}-{i}\",\"n\":{i}}}");
    Event::new(source.into(), format!("{source}-{i}"), t(0), fields, raw)
}

/// The line the file output writes for an event.
fn line(e: &Event) -> String {
    String::from_utf8(crate::encode::json::encode(e, crate::event::Payload::Normalised)).unwrap()
}

fn manifest_line(m: &Manifest) -> String {
    line(&m.event())
}

/// An output's life: `windows` windows of `per_window` events from source
/// "okta", each event tagged, sent and confirmed, each window closed. The
/// lines as the receiver holds them, window by window, manifest last.
fn deliver(windows: usize, per_window: usize) -> Vec<Vec<String>> {
    let mut book = Book::new("siem", Vec::new());
    let mut n = 0;
    let mut out = Vec::new();
    for w in 0..windows {
        let mut lines = Vec::new();
        for _ in 0..per_window {
            let mut e = event("okta", n);
            n += 1;
            book.tag(&mut e, t(w as i64));
            lines.push(line(&e));
            book.confirm(&e, 0, None, false, t(w as i64));
        }
        let closing = book.close(["okta"], t(w as i64 + 1), "relay01");
        assert_eq!(closing.manifests.len(), 1);
        lines.push(manifest_line(&closing.manifests[0]));
        out.push(lines);
    }
    out
}

fn check(lines: impl IntoIterator<Item = String>) -> verify::Report {
    verify(lines.into_iter().map(|l| read(&l)))
}

#[test]
fn canonical_json_sorts_keys_at_every_level_so_reserialising_keeps_the_digest() {
    let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[{"q":1,"p":2}],"x":"é\n"},"c":null}"#).unwrap();
    let b: Value = serde_json::from_str(r#"{"c":null,"a":{"x":"é\n","y":[{"p":2,"q":1}]},"b":1}"#).unwrap();
    let mut out = Vec::new();
    canonical(&a, &mut out);
    assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":{"x":"é\n","y":[{"p":2,"q":1}]},"b":1,"c":null}"#);
    assert_eq!(document_digest(&a), document_digest(&b));
    let other: Value = serde_json::from_str(r#"{"c":null,"a":{"x":"é\n","y":[{"p":2,"q":2}]},"b":1}"#).unwrap();
    assert_ne!(document_digest(&a), document_digest(&other));
}

#[test]
fn the_bytes_sent_and_the_document_counted_have_one_digest() {
    let mut book = Book::new("siem", Vec::new());
    let mut e = event("okta", 7).into_journaled();
    book.tag(&mut e, t(0));
    let sent: Value = serde_json::from_str(&line(&e)).unwrap();
    assert_eq!(sent["auditrelay"], json!({ "output": "siem", "window": 1, "index": 0 }));
    assert_eq!(sent["event"]["original"], json!(e.raw));
    assert_eq!(document_digest(&sent), document_digest(&e.document()));
    // An empty document still gets its tag, as valid JSON.
    let mut bare = Event::new("s".into(), "x".into(), t(0), Map::new(), "{}".into()).into_journaled();
    book.tag(&mut bare, t(0));
    let v: Value = serde_json::from_str(&line(&bare)).unwrap();
    assert_eq!(v["auditrelay"]["window"], json!(1));
}

#[test]
fn windows_are_numbered_from_one_chained_and_each_manifest_proves_itself() {
    let mut book = Book::new("siem", Vec::new());
    let first = book.close(["okta", "github"], t(10), "relay01");
    assert_eq!(first.manifests.len(), 2, "an empty window gets its manifest too");
    let okta1 = first.manifests.iter().find(|m| m.source == "okta").unwrap().clone();
    assert_eq!((okta1.window, okta1.count, okta1.indices), (1, 0, 0));
    assert_eq!(okta1.previous, Digest::default());
    assert_eq!(okta1.expected_digest(), okta1.digest);
    let mut e = event("okta", 0);
    book.tag(&mut e, t(11));
    assert_eq!(e.window.as_ref().map(|w| (w.window, w.index)), Some((2, 0)));
    book.confirm(&e, 0, None, false, t(12));
    let second = book.close(["okta", "github"], t(20), "relay01");
    let okta2 = second.manifests.iter().find(|m| m.source == "okta").unwrap();
    assert_eq!((okta2.window, okta2.count, okta2.indices), (2, 1, 1));
    assert_eq!(okta2.previous, okta1.digest);
    assert_eq!((okta2.first_delivery, okta2.last_delivery), (Some(t(12)), Some(t(12))));
    let mut tampered = okta2.clone();
    tampered.count = 2;
    assert_ne!(tampered.expected_digest(), tampered.digest);
}

#[test]
fn a_window_reloaded_from_its_committed_state_hands_out_the_same_positions_again() {
    let mut book = Book::new("siem", Vec::new());
    let mut a = event("okta", 0);
    book.tag(&mut a, t(0));
    book.confirm(&a, 0, None, false, t(1));
    let committed = book.take_dirty();
    // Sent but never confirmed: a crash before the commit.
    let mut b = event("okta", 1);
    book.tag(&mut b, t(2));
    let mut again = Book::new("siem", committed);
    let mut b2 = event("okta", 1);
    again.tag(&mut b2, t(3));
    assert_eq!(b.window, b2.window, "the resend carries the same tag, so it is the same document");
    assert_eq!(line(&b), line(&b2));
}

#[test]
fn a_source_removed_from_the_config_gets_its_last_manifest_then_retires() {
    let mut book = Book::new("siem", Vec::new());
    let mut e = event("gone", 0);
    book.tag(&mut e, t(0));
    book.confirm(&e, 0, None, false, t(0));
    let last = book.close(["okta"], t(1), "relay01");
    assert!(last.manifests.iter().any(|m| m.source == "gone" && m.count == 1));
    let after = book.close(["okta"], t(2), "relay01");
    assert_eq!(after.retired, vec!["gone".to_owned()]);
    assert!(after.manifests.iter().all(|m| m.source == "okta"));
}

#[test]
fn verify_finds_nothing_wrong_in_a_clean_delivery_and_counts_identical_copies_as_duplicates() {
    let mut lines: Vec<String> = deliver(3, 5).concat();
    lines.push(lines[2].clone());
    lines.push("not json at all".into());
    lines.push(r#"{"message":"untagged"}"#.into());
    let r = check(lines);
    assert!(r.ok, "{}", r.text());
    let s = &r.streams[0];
    assert_eq!((s.windows_checked, s.events, s.duplicates), (3, 15, 1));
    assert_eq!((r.unreadable, r.untagged), (1, 1));
}

#[test]
fn verify_names_the_window_and_position_of_a_removed_event() {
    let mut windows = deliver(3, 5);
    let removed = windows[1].remove(3);
    let r = check(windows.concat());
    assert!(!r.ok);
    let index: Value = serde_json::from_str(&removed).unwrap();
    assert_eq!(index["auditrelay"]["index"], json!(3));
    assert_eq!(
        r.streams[0].problems,
        vec![Problem::MissingEvents { window: 2, missing: 1, count: 5, indices: vec![3], ids: Vec::new() }],
        "{}",
        r.text()
    );
    assert!(r.text().contains("MISSING EVENTS: window 2: 1 of 5 missing, at index 3"), "{}", r.text());
}

#[test]
fn verify_finds_an_altered_field_as_a_digest_mismatch() {
    let mut windows = deliver(2, 4);
    windows[0][1] = windows[0][1].replace("user1", "user9");
    let r = check(windows.concat());
    assert_eq!(r.streams[0].problems, vec![Problem::EventsAltered { window: 1 }], "{}", r.text());
    // Both the altered copy and the original held: the position conflicts.
    let mut windows = deliver(2, 4);
    let altered = windows[1][0].replace("user4", "user0");
    windows[1].push(altered);
    let r = check(windows.concat());
    assert!(
        matches!(r.streams[0].problems[..], [Problem::ConflictingEvents { window: 2, index: 0, .. }]),
        "{}",
        r.text()
    );
}

#[test]
fn verify_finds_a_deleted_manifest_as_a_sequence_gap_and_an_altered_one_by_its_digest() {
    let mut windows = deliver(4, 2);
    windows[1].pop();
    let r = check(windows.concat());
    assert!(r.streams[0].problems.contains(&Problem::MissingManifests { from: 2, to: 2 }), "{}", r.text());

    let mut windows = deliver(2, 2);
    let m = windows[0].pop().unwrap();
    windows[0].push(m.replace("\\\"count\\\":2", "\\\"count\\\":3").replace("\"count\":2", "\"count\":3"));
    let r = check(windows.concat());
    assert!(r.streams[0].problems.contains(&Problem::ManifestAltered { window: 1 }), "{}", r.text());
}

#[test]
fn events_resent_into_a_later_window_after_a_crash_are_duplicates_not_gaps() {
    // Window 1 sent e0..e2, then e3 was sent but not confirmed when the
    // agent died; it restarted, closed window 1 at once and resent e3 as
    // window 2's first event.
    let mut book = Book::new("siem", Vec::new());
    let mut lines = Vec::new();
    for i in 0..3 {
        let mut e = event("okta", i);
        book.tag(&mut e, t(0));
        lines.push(line(&e));
        book.confirm(&e, 0, None, false, t(0));
    }
    let committed = book.take_dirty();
    let mut lost = event("okta", 3);
    book.tag(&mut lost, t(0));
    lines.push(line(&lost));
    let mut book = Book::new("siem", committed);
    lines.push(manifest_line(&book.close(["okta"], t(1), "relay01").manifests[0]));
    let mut resent = event("okta", 3);
    book.tag(&mut resent, t(2));
    lines.push(line(&resent));
    book.confirm(&resent, 0, None, false, t(2));
    lines.push(manifest_line(&book.close(["okta"], t(3), "relay01").manifests[0]));
    let r = check(lines.clone());
    assert!(r.ok, "{}", r.text());
    assert_eq!((r.streams[0].events, r.streams[0].duplicates), (4, 1));
    // The same extra event with nothing like it later is reported.
    lines.retain(|l| !l.contains("\"window\":2,\"index\":0"));
    let r = check(lines);
    assert!(
        r.streams[0].problems.iter().any(|p| matches!(p, Problem::UnexpectedEvents { window: 1, .. })),
        "{}",
        r.text()
    );
}

#[test]
fn positions_the_receiver_rejected_are_not_missing() {
    let mut book = Book::new("siem", Vec::new());
    let mut lines = Vec::new();
    for i in 0..3 {
        let mut e = event("okta", i);
        book.tag(&mut e, t(0));
        let rejected = i == 1;
        if !rejected {
            lines.push(line(&e));
        }
        book.confirm(&e, 0, None, rejected, t(0));
    }
    let m = book.close(["okta"], t(1), "relay01").manifests.remove(0);
    assert_eq!((m.count, m.indices, m.rejected.clone()), (2, 3, vec![1]));
    lines.push(manifest_line(&m));
    let r = check(lines);
    assert!(r.ok, "{}", r.text());
}

#[test]
fn verify_reads_splunk_exports_hec_bodies_and_syslog_lines() {
    let windows = deliver(1, 2).concat();
    let splunk: Vec<String> =
        windows.iter().map(|l| json!({ "preview": false, "result": { "_raw": l } }).to_string()).collect();
    assert!(check(splunk).ok);
    let hec: Vec<String> = windows.iter().map(|l| format!("{{\"time\":1.5,\"event\":{l}}}")).collect();
    let r = check(hec);
    assert!(r.ok && r.streams[0].events == 2, "{}", r.text());
    let syslog: Vec<String> =
        windows.iter().map(|l| format!("<110>1 2026-01-01T00:00:00Z relay01 auditrelay - - - {l}")).collect();
    let r = check(syslog);
    assert!(r.ok && r.streams[0].windows_checked == 1, "{}", r.text());
    assert!(matches!(read("<13>junk { not json"), Record::Unreadable));
}

#[test]
fn windows_after_the_last_manifest_are_open_and_before_the_first_unchecked() {
    let mut windows = deliver(4, 2);
    windows[3].pop(); // window 4 not closed yet in what was exported
    let lines: Vec<String> = windows[1..].concat(); // the export starts at window 2
    let r = check(lines);
    assert!(r.ok, "{}", r.text());
    let s = &r.streams[0];
    assert_eq!(s.checked_range, Some((3, 3)), "window 2 lacks manifest 1 before it: not checked");
    assert_eq!(s.open_windows, vec![(4, 2)]);
}

/// The fast path (member reordering of the agent's own text) and the
/// canonical form of the parsed document agree, for documents with nested
/// objects, arrays of objects, escapes, control characters, non-ASCII,
/// floats and keys needing escapes: a disagreement would make `verify`
/// report an untouched event as altered.
#[test]
fn the_fast_digest_of_a_sent_document_equals_the_canonical_one() {
    let hostile = [
        json!({ "z": 1, "a": [ { "y": 2.5, "b": null }, [3, {"k": "v"}] ], "m": { "é": "\u{2028}\n\t\"\\", "A": -0.000001 } }),
        json!({ "user": { "name": "bob\u{0}", "email": "b@x" }, "event": { "type": ["change"], "action": "a/b" }, "\"q\"": true }),
        json!({ "source": { "ip": "198.51.100.1" }, "labels": {}, "nums": [1e300, -5, 0, 18446744073709551615u64] }),
    ];
    let mut book = Book::new("out\"put", Vec::new());
    for (i, fields) in hostile.iter().enumerate() {
        let Value::Object(map) = fields.clone() else { unreachable!() };
        let raw = format!("{{\"n\":{i},\"s\":\"\\u0001 é\"}}");
        let mut e = Event::new("src".into(), format!("id{i}"), t(0), map, raw).into_journaled();
        book.tag(&mut e, t(0));
        let sent: Value = serde_json::from_str(&line(&e)).unwrap();
        assert_eq!(event_digest(&e), document_digest(&sent), "document {i}: {}", line(&e));
        assert_eq!(event_digest(&e), document_digest(&e.document()));
    }
}

fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop::sample::select(vec!["event", "original", "a", "B", "b\"\\", "ü\n", "", "id", "\u{7f}", "z"])
        .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,8}|[\u{0}-\u{1f}\u{2028}\"\\\\]{0,4}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
    /// Whatever the fields and the raw event, the digest the agent chains
    /// is the canonical digest of what the receiver parses.
    #[test]
    fn the_digest_chained_is_the_digest_verify_computes(fields in any_json(), raw in "\\PC{0,16}") {
        let Value::Object(map) = fields else { return Ok(()) };
        let mut book = Book::new("o", Vec::new());
        let mut e = Event::new("s".into(), "i".into(), t(0), map, raw).into_journaled();
        book.tag(&mut e, t(0));
        let sent: Value = serde_json::from_str(&line(&e)).unwrap();
        proptest::prop_assert_eq!(event_digest(&e), document_digest(&sent), "{}", line(&e));
    }

    /// The fast reordering, where it takes the text at all, writes what
    /// the canonical form of the parsed value is; the text it refuses goes
    /// to the slow path, which is that form by definition.
    #[test]
    fn reordering_serde_jsons_text_is_the_canonical_form(v in any_json()) {
        let text = serde_json::to_vec(&v).unwrap();
        let mut fast = Vec::new();
        if reorder(&text, &mut fast).is_ok() {
            let mut slow = Vec::new();
            canonical(&v, &mut slow);
            proptest::prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&slow));
        }
    }
}

/// A document of the usual shape (keys without escapes) takes the fast
/// path, and text it does not expect is refused rather than misread.
#[test]
fn usual_documents_take_the_fast_path_and_odd_text_does_not() {
    let doc = json!({"user": {"name": "bob \"b\" \\ é\u{1}", "id": 7}, "@timestamp": "2024-05-01T10:00:00Z",
                     "event": {"original": "{\"a\":1}", "type": ["change", {"z": 1, "a": [true, null, -1.5e-7]}]},
                     "auditrelay": {"window": 1, "output": "o", "index": 0}, "labels": {}, "tags": []});
    let mut fast = Vec::new();
    reorder(&serde_json::to_vec(&doc).unwrap(), &mut fast).unwrap();
    let mut slow = Vec::new();
    canonical(&doc, &mut slow);
    assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(slow).unwrap());
    for odd in [
        &b"{\"a\": 1}"[..],
        b"{\"a\":1,\"a\":2}",
        b"{\"a\\u0062\":1}",
        b"{\"a\":1}x",
        b"[1,",
        b"{\"a\"",
        b"",
        b"\"open",
    ] {
        assert!(reorder(odd, &mut Vec::new()).is_err(), "{}", String::from_utf8_lossy(odd));
    }
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 2), "]".repeat(MAX_DEPTH + 2));
    assert!(reorder(deep.as_bytes(), &mut Vec::new()).is_err());
}

#[test]
fn a_tag_written_by_hand_is_its_value_and_digests_are_lowercase_hex() {
    let tag = WindowTag { output: "a\"b\\é".into(), window: 7, index: u64::MAX };
    let mut out = Vec::new();
    tag.write(&mut out);
    assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), tag.value());
    let d = Digest::of(b"abc");
    assert_eq!(d.hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(Digest::parse(&d.hex()), Some(d));
}

#[test]
fn missing_positions_are_named_from_the_journal_entries_of_their_source() {
    let mut windows = deliver(2, 5);
    windows[1].remove(2);
    let mut r = check(windows.concat());
    let mut asked = Vec::new();
    let named = r.name_missing(|source, first, last| {
        asked.push((source.to_owned(), first, last));
        (5..10).map(|i| format!("okta-{i}")).collect()
    });
    assert_eq!(named, 1);
    assert_eq!(asked, vec![("okta".to_owned(), 0, 0)], "deliver() confirms every event at journal seq 0");
    assert!(matches!(&r.streams[0].problems[0], Problem::MissingEvents { ids, .. } if ids == &["okta-7".to_owned()]));
    assert!(r.text().contains("(event.id okta-7 from the agent's journal)"), "{}", r.text());
    // The journal let them go: nothing named, the finding stays.
    let mut r = check(deliver(2, 5).concat().into_iter().filter(|l| !l.contains("okta-7")).collect::<Vec<_>>());
    assert_eq!(r.name_missing(|_, _, _| Vec::new()), 0);
    assert!(!r.ok);
}
