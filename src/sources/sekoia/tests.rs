use super::*;
use crate::sources::testkit::{self, resp, sent_json, t, window};

/// The three event samples of Sekoia's integration catalogue
/// (`sekoiaio-activity-logs_do_not_edit_manually.md`), as the intake
/// normalises them.
const SAMPLES: &str = include_str!("samples.json");

fn api(cap: u64) -> Sekoia {
    Sekoia::new(&url::Url::parse("https://app.sekoia.io/api").unwrap(), cap)
}

const FROM: &str = "2024-05-01T10:00:00.1234567Z";
const TO: &str = "2024-05-01T11:00:00Z";

fn query(state: Option<&Value>) -> Query<'_> {
    testkit::query(window(FROM, TO), state, 100)
}

/// Walk one step: the request, then the page parsed from `answer`.
fn step(a: &Sekoia, state: Option<&Value>, answer: Value) -> (ApiRequest, ApiPage) {
    let q = query(state);
    let req = a.request(&q).unwrap();
    let page = a.parse(&q, &resp(200, &answer)).unwrap();
    (req, page)
}

fn next_state(p: &ApiPage) -> Value {
    match &p.next {
        Next::Page(s) | Next::Wait(_, s) => s.clone(),
        other => panic!("expected another step, got {other:?}"),
    }
}

#[test]
fn full_job_flow_creates_waits_and_pages() {
    let a = api(MAX_LAST_EVENTS);
    let (req, p) = step(&a, None, json!({ "uuid": "job-1" }));
    assert_eq!(req.method, reqwest::Method::POST);
    assert_eq!(req.url.as_str(), "https://app.sekoia.io/api/v1/sic/conf/events/search/jobs");
    let body = sent_json(&req);
    assert_eq!(body["term"], json!(format!("sekoiaio.intake.dialect_uuid:\"{DIALECT_UUID}\"")));
    assert_eq!(body["earliest_time"], "2024-05-01T10:00:00.123456Z");
    assert_eq!(body["latest_time"], "2024-05-01T11:00:00.000000Z");
    assert_eq!(body["visible"], false);
    assert_eq!(body["max_last_events"], json!(MAX_LAST_EVENTS));
    assert!(p.events.is_empty());

    let s = next_state(&p);
    let (req, p) = step(&a, Some(&s), json!({ "uuid": "job-1", "status": 1, "total": 0 }));
    assert_eq!(req.url.as_str(), "https://app.sekoia.io/api/v1/sic/conf/events/search/jobs/job-1");
    assert!(matches!(p.next, Next::Wait(d, _) if d == Duration::from_secs(1)));
    let s = next_state(&p);
    let (_, p) = step(&a, Some(&s), json!({ "uuid": "job-1", "status": 0 }));
    assert!(matches!(p.next, Next::Wait(d, _) if d == Duration::from_secs(2)), "waits grow");
    let s = next_state(&p);
    let (_, p) = step(&a, Some(&s), json!({ "uuid": "job-1", "status": 2, "total": 3 }));

    let samples: Vec<Value> = serde_json::from_str(SAMPLES).unwrap();
    let s = next_state(&p);
    let (req, p) = step(&a, Some(&s), json!({ "items": samples[..2], "total": 3 }));
    assert_eq!(
        req.url.as_str(),
        "https://app.sekoia.io/api/v1/sic/conf/events/search/jobs/job-1/events?limit=100&offset=0"
    );
    assert_eq!(p.events.len(), 2);
    let s = next_state(&p);
    let (req, p) = step(&a, Some(&s), json!({ "items": samples[2..], "total": 3 }));
    assert!(req.url.as_str().ends_with("events?limit=100&offset=2"));
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.next, Next::Done);
}

#[test]
fn an_empty_window_is_done_after_one_results_page() {
    let a = api(MAX_LAST_EVENTS);
    // Once the term has found events, an empty window is a quiet one.
    a.guard.settle();
    let s = state(&Step::Events { ranges: vec![(t(FROM), t(TO))], job: "j".into(), offset: 0 });
    let (_, p) = step(&a, Some(&s), json!({ "items": [], "total": 0 }));
    assert_eq!(p.next, Next::Done);
}

#[test]
fn a_job_at_the_cap_is_split_and_searched_again() {
    let a = api(5);
    let s = state(&Step::Events { ranges: vec![(t(FROM), t(TO))], job: "j".into(), offset: 0 });
    let (_, p) = step(&a, Some(&s), json!({ "items": [{ "event": { "id": "x" } }], "total": 5 }));
    assert!(p.events.is_empty(), "a possibly truncated job is set aside");
    let s = next_state(&p);
    let (req, p) = step(&a, Some(&s), json!({ "uuid": "j2" }));
    let body = sent_json(&req);
    assert_eq!(body["earliest_time"], "2024-05-01T10:00:00.123456Z");
    assert_eq!(body["latest_time"], "2024-05-01T10:30:00.061729Z");
    // The second half follows the first once the first is read.
    let Step::Status { ranges, .. } = serde_json::from_value(next_state(&p)).unwrap() else { panic!() };
    assert_eq!(ranges.len(), 2);
    let s = state(&Step::Events { ranges, job: "j2".into(), offset: 0 });
    let (_, p) = step(&a, Some(&s), json!({ "items": [{ "event": { "id": "y" } }], "total": 1 }));
    assert_eq!(p.events.len(), 1);
    let (req, _) = step(&a, Some(&next_state(&p)), json!({ "uuid": "j3" }));
    assert_eq!(sent_json(&req)["earliest_time"], "2024-05-01T10:30:00.061728Z");
    assert_eq!(sent_json(&req)["latest_time"], "2024-05-01T11:00:00.000000Z");
}

#[test]
fn failures_of_the_job_are_loud() {
    let a = api(5);
    let status =
        state(&Step::Status { ranges: vec![(t(FROM), t(TO))], job: "j".into(), polls: 0, waited: Waited::default() });
    let events = state(&Step::Events { ranges: vec![(t(FROM), t(TO))], job: "j".into(), offset: 2 });
    let tiny = state(&Step::Events { ranges: vec![(t(TO), t(TO))], job: "j".into(), offset: 0 });
    let cases = [
        (None, json!({ "id": "no uuid" }), "without a uuid"),
        (Some(&status), json!({ "status": 3 }), "ended with status 3"),
        (Some(&status), json!({ "state": "done" }), "has no status"),
        (Some(&events), json!({ "items": [], "total": 4 }), "no items at offset 2 of 4"),
        (Some(&events), json!({ "results": [] }), "without items"),
        (Some(&events), json!({ "items": [] }), "without total"),
        (Some(&tiny), json!({ "items": [], "total": 9 }), "more than one search job holds"),
    ];
    for (s, body, want) in cases {
        let e = a.parse(&query(s), &resp(200, &body)).unwrap_err();
        assert!(e.0.contains(want), "{e} should contain {want:?}");
    }
    assert!(
        matches!(a.verdict(403, b"{\"message\":\"forbidden\"}"), Some(Verdict::Auth(d)) if d.contains("read events"))
    );
}

/// A shape error describes the body by its keys and value types: the
/// intake key an item carries (or any other string) is never quoted.
#[test]
fn shape_errors_do_not_quote_an_intake_key() {
    let a = api(5);
    let events = state(&Step::Events { ranges: vec![(t(FROM), t(TO))], job: "j".into(), offset: 0 });
    let key = "0123456789abcdef-intake-key-SECRET";
    let item =
        json!({ "sekoiaio.intake.key": key, "customer": { "intake_key": key }, "message": format!("key={key}") });
    let cases = [
        (Some(&events), json!({ "results": [item.clone(), item.clone()] }), "without items"),
        (Some(&events), json!({ "items": [item.clone()] }), "without total"),
        (None, json!({ "id": key, "detail": [item] }), "without a uuid"),
    ];
    for (s, body, want) in cases {
        let e = a.parse(&query(s), &resp(200, &body)).unwrap_err().0;
        assert!(e.contains(want), "{e}");
        assert!(!e.contains("SECRET") && !e.contains("0123456789"), "the intake key is quoted: {e}");
    }
    let e = a.parse(&query(Some(&events)), &resp(200, &json!({ "items": [json!({"a": 1})] }))).unwrap_err().0;
    assert!(e.ends_with(r#"{"items": [{"a": number}]}"#), "the keys and types are shown: {e}");
    let wide: serde_json::Map<String, Value> = (0..100).map(|i| (format!("field{i}"), json!("v"))).collect();
    let e = a.parse(&query(Some(&events)), &resp(200, &Value::Object(wide))).unwrap_err().0;
    assert!(e.chars().count() < 300 && e.ends_with('…'), "{e}");
}

#[test]
fn samples_keep_their_ecs_fields_and_map_to_ours() {
    let a = api(MAX_LAST_EVENTS);
    let samples: Vec<Value> = serde_json::from_str(SAMPLES).unwrap();
    let e: Vec<_> = samples
        .iter()
        .map(|raw| crate::event::normalise("sekoia", a.observer(), raw, a.normalise(raw), Utc::now()))
        .collect();

    assert_eq!(e[0].id, "25e373f2-83d1-490e-ae7e-133231e0253a");
    assert_eq!(e[0].timestamp, t("2022-02-22T16:31:58.286485Z"));
    assert_eq!(e[0].str_field("@timestamp"), Some("2022-02-22T16:31:58.286485Z"));
    assert_eq!(e[0].str_field("event.action"), Some("intake-format-picture-retrieval"));
    assert_eq!(e[0].outcome(), "success");
    assert_eq!(e[0].str_field("source.ip"), Some("1.2.3.4"));
    assert_eq!(e[0].str_field("client.ip"), Some("1.2.3.4"), "the intake's ECS fields are kept");
    assert_eq!(e[0].str_field("user.id"), Some("54e0ec48-8430-4ba2-b70b-710341f41447"));
    assert!(e[0].str_field("user_agent.original").unwrap().starts_with("Mozilla/5.0 (Macintosh"));
    assert_eq!(e[0].str_field("sekoiaio.intake.dialect_uuid"), Some(DIALECT_UUID));
    assert_eq!(e[0].fields()["event"]["category"], json!(["web"]));
    assert_eq!(e[0].fields()["event"]["type"], json!(["access"]));
    assert_eq!(e[0].str_field("observer.vendor"), Some("SEKOIA.IO"));
    assert!(
        !e[0].str_field("message").unwrap().starts_with('{'),
        "message is ours, the raw record stays in event.original"
    );

    // The record nested as an object, no action name: method and path.
    assert_eq!(e[1].str_field("event.action"), Some("GET /v1/me"));
    assert_eq!(e[1].outcome(), "failure");
    assert_eq!(e[1].str_field("source.ip"), Some("141.229.130.228"));

    // An API key acting: no user uuid, the key's identity stands in.
    assert_eq!(e[2].str_field("event.action"), Some("POST /v2/inthreat/bundles"));
    assert_eq!(e[2].str_field("user.id"), Some("9cd287a4-4a61-4bf1-998a-74087098adf4"));
    assert_eq!(e[2].fields()["event"]["type"], json!(["change"]));
    assert_eq!(e[2].str_field("user_agent.original"), Some("python-requests/2.26.0"));
}

#[test]
fn flat_dotted_items_are_read_too() {
    let a = api(MAX_LAST_EVENTS);
    let raw = json!({
        "@timestamp": "2024-05-01T10:00:00.5Z", "event.id": "e1", "client.ip": "192.0.2.1",
        "client.user.id": "u1", "sekoiaio.activity.action.name": "login", "event.outcome": "success"
    });
    let e = crate::event::normalise("s", a.observer(), &raw, a.normalise(&raw), Utc::now());
    assert_eq!(e.id, "e1");
    assert_eq!(e.str_field("event.action"), Some("login"));
    assert_eq!(e.str_field("source.ip"), Some("192.0.2.1"));
    assert_eq!(e.str_field("user.id"), Some("u1"));
    assert_eq!(e.fields()["client"]["ip"], json!("192.0.2.1"), "dotted keys become nested ECS");
}

/// The shape the search API really returns (flat dotted keys, time in
/// `timestamp`, `__event_id`), from the SekoiaXDR integration's test data:
/// demisto/content `Packs/SekoiaXDR/Integrations/SekoiaXDR/test_data/SekoiaXDR_retrieve_events.json`
/// (an endpoint-agent event; the activity log's items have the same form).
const SEARCH_EVENTS: &str = include_str!("search_events_sample.json");

/// Read `body` as the results page of a finished job.
fn results_page(a: &Sekoia, body: Value) -> ApiPage {
    let s = state(&Step::Events { ranges: vec![(t(FROM), t(TO))], job: "j".into(), offset: 0 });
    a.parse(&query(Some(&s)), &resp(200, &body)).unwrap()
}

fn events_of(a: &Sekoia, page: &ApiPage) -> Vec<crate::event::Event> {
    page.events
        .iter()
        .map(|raw| {
            let n = a.normalise(raw);
            assert!(n.timestamp.is_some(), "no readable time in {raw}");
            crate::event::normalise("sekoia", a.observer(), raw, n, Utc::now())
        })
        .collect()
}

#[test]
fn recorded_search_results_are_read_flat_with_timestamp_and_event_id() {
    let a = api(MAX_LAST_EVENTS);
    let page = results_page(&a, serde_json::from_str(SEARCH_EVENTS).unwrap());
    let e = &events_of(&a, &page)[0];
    assert_eq!(e.timestamp, t("2024-04-25T14:11:10.652Z"), "the time is in `timestamp`");
    assert_eq!(e.id, "0b83c211-6e79-4a28");
    assert_eq!(e.str_field("@timestamp"), Some("2024-04-25T14:11:10.652Z"));
    assert_eq!(e.fields()["host"]["name"], "laptop-test", "dotted keys become nested ECS");
    assert_eq!(e.fields()["user"]["name"], "joe.done");
    assert_eq!(e.fields()["process"]["parent"]["pid"], 1002);
    assert_eq!(e.str_field("event.action"), Some("process-created"));
    assert_eq!(e.fields()["event"]["category"], json!(["process"]), "the intake's category is kept, as an ECS array");
    assert_eq!(e.outcome(), "success");
    assert_eq!(e.fields()["sekoiaio"]["intake"]["dialect_uuid"], "250e4095-fa08-4101");
    assert!(e.fields().get("timestamp").is_none() && e.fields().get("__event_id").is_none());
    assert!(e.fields().get("host.name").is_none(), "no dotted key is left as it came");
}

#[test]
fn an_item_without_event_id_is_known_by_its_index_id() {
    let a = api(MAX_LAST_EVENTS);
    let raw = json!({ "__event_id": "ZXZlbnRz", "timestamp": "2024-05-01T10:00:00.25", "client.ip": "192.0.2.9",
                      "sekoiaio.activity.client.id": "k1", "http.request.method": "DELETE", "url.path": "/v1/x" });
    let e = &events_of(&a, &ApiPage::parsed(vec![raw], Next::Done))[0];
    assert_eq!(e.id, "ZXZlbnRz");
    assert_eq!(e.timestamp, t("2024-05-01T10:00:00.25Z"), "a time without zone is UTC");
    assert_eq!(e.str_field("event.action"), Some("DELETE /v1/x"));
    assert_eq!(e.str_field("user.id"), Some("k1"), "the acting client stands in for the user");
    assert_eq!(e.str_field("source.ip"), Some("192.0.2.9"));
    assert_eq!(e.fields()["event"]["type"], json!(["deletion"]));
}

#[test]
fn intake_keys_are_never_forwarded() {
    let a = api(MAX_LAST_EVENTS);
    let mut nested: Value = serde_json::from_str::<Vec<Value>>(SAMPLES).unwrap()[0].clone();
    nested["sekoiaio"]["intake"]["key"] = json!("NESTED-KEY-1");
    nested["customer"] = json!({ "intake_key": "NESTED-KEY-2", "id": "c1" });
    let mixed = json!({ "timestamp": "2024-05-01T10:00:00Z", "event.id": "m1",
                        "sekoiaio.intake": { "key": "MIXED-KEY-1", "name": "n" },
                        "message": json!({ "customer.intake_key": "MESSAGE-KEY-1", "a": 1 }).to_string() });
    // `event.intake_key` is "The intake key" in Sekoia's event fields
    // (SEKOIA-IO/documentation docs/xdr/features/investigate/querying_events.md),
    // and any other key ending in `intake_key`, at any depth (#26).
    let documented = json!({ "timestamp": "2024-05-01T10:00:00Z", "event.id": "d1",
                             "event.intake_key": "EVENT-KEY-1",
                             "event": { "intake_key": "EVENT-KEY-2", "dataset": "x" },
                             "related": [{ "source_intake_key": "DEEP-KEY-1" }],
                             "message": json!({ "event": { "intake_key": "MESSAGE-KEY-2" } }).to_string() });
    let mut body: Value = serde_json::from_str(SEARCH_EVENTS).unwrap();
    let items = body["items"].as_array_mut().unwrap();
    items.push(nested);
    items.push(mixed);
    items.push(documented);
    let page = results_page(&a, body);
    let secrets = ["WJ4KkMbT8wkiFVk", "NESTED-KEY-", "MIXED-KEY-1", "MESSAGE-KEY-", "EVENT-KEY-", "DEEP-KEY-1"];
    for (raw, e) in page.events.iter().zip(events_of(&a, &page)) {
        let mut doc = Vec::new();
        e.write_document(&mut doc);
        let doc = String::from_utf8(doc).unwrap();
        for s in secrets {
            assert!(!doc.contains(s), "{s} forwarded in {doc}");
            assert!(!raw.to_string().contains(s), "{s} left in the raw event {raw}");
        }
    }
    let e = events_of(&a, &page);
    assert_eq!(e[0].fields()["customer"]["intake_name"], "Sekoia Agent ARY", "the rest of customer.* stays");
    assert_eq!(e[1].fields()["customer"]["id"], "c1");
    assert_eq!(e[2].fields()["sekoiaio"]["intake"]["name"], "n");
    assert!(page.events[2]["message"].as_str().unwrap().contains("\"a\":1"));
    assert_eq!(e[3].fields()["event"]["dataset"], "x", "the rest of event.* stays");
}

/// Walk a job to its results: create, done at once, `events` as the first
/// page of results (`total` their number). Returns the create request and
/// the page.
fn run_job(a: &Sekoia, state: Option<&Value>, events: Vec<Value>) -> (ApiRequest, Result<ApiPage, ShapeError>) {
    let (create, p) = step(a, state, json!({ "uuid": "job-g" }));
    let (_, p) = step(a, Some(&next_state(&p)), json!({ "uuid": "job-g", "status": 2, "total": events.len() }));
    let s = next_state(&p);
    let q = query(Some(&s));
    let total = events.len();
    (create, a.parse(&q, &resp(200, &json!({ "items": events, "total": total }))))
}

/// A term that matches nothing looks like a quiet community: the first
/// walk that finds nothing in its whole window searches it once more by
/// the activity log's agent; an activity-log event there fails the poll
/// naming the term and `query`, every empty walk after it too.
#[test]
fn an_empty_window_is_searched_once_more_by_the_activity_logs_agent() {
    let a = api(MAX_LAST_EVENTS);
    let (_, p) = run_job(&a, None, vec![]);
    let p = p.unwrap();
    assert!(p.events.is_empty());
    let guard = next_state(&p);
    assert_eq!(crate::sources::api::guard_of(Some(&guard)), Some("other_mark"), "{guard}");
    let found = json!({ "timestamp": "2024-05-01T10:30:00.5Z", "__event_id": "e-1", "agent.name": "sekoia.webapi",
                        "sekoiaio.intake.key": "secret-intake-key" });
    let (create, verdict) = run_job(&a, Some(&guard), vec![found.clone()]);
    let body = sent_json(&create);
    assert_eq!(body["term"], json!(GUARD_TERM));
    assert_eq!(body["max_last_events"], json!(10));
    assert_eq!(body["earliest_time"], "2024-05-01T10:00:00.123456Z", "the same window");
    let e = verdict.unwrap_err();
    assert!(e.0.contains("sekoiaio.intake.dialect_uuid") && e.0.contains("set query"), "{e}");
    assert!(!e.0.contains("secret-intake-key"), "{e}");
    assert!(!e.0.contains("  "), "{e}");
    // Not settled: the next empty walk asks again.
    let (_, p) = run_job(&a, None, vec![]);
    assert_eq!(crate::sources::api::guard_of(Some(&next_state(&p.unwrap()))), Some("other_mark"));

    // Nothing of the activity log there (or only outside the window, or
    // another intake's events): a quiet community, settled for the process.
    let quiet = api(MAX_LAST_EVENTS);
    let (_, p) = run_job(&quiet, None, vec![]);
    let guard = next_state(&p.unwrap());
    let other = json!({ "timestamp": "2024-05-01T10:30:00Z", "agent.name": "winlogbeat" });
    let old = json!({ "timestamp": "2024-04-30T10:30:00Z", "agent": { "name": "sekoia.webapi" } });
    let (_, verdict) = run_job(&quiet, Some(&guard), vec![other, old]);
    let p = verdict.unwrap();
    assert!(p.events.is_empty(), "the guard's results are never taken");
    assert_eq!(p.next, Next::Done);
    let (_, p) = run_job(&quiet, None, vec![]);
    assert_eq!(p.unwrap().next, Next::Done, "asked once per process");
}

/// Regression (#26): a guard that found nothing settled the term for the
/// process, so a quiet first window (the default history window is an
/// hour) meant a wrong term was never checked again. Now only events under
/// the term settle it; a quiet guard runs again on an empty walk an hour
/// (walk time) after the last one.
#[test]
fn a_quiet_guard_runs_again_an_hour_later_and_only_events_settle_it() {
    let a = api(MAX_LAST_EVENTS);
    let empty_walk = |a: &Sekoia, from: &str, to: &str| {
        let s = state(&Step::Events { ranges: vec![(t(from), t(to))], job: "j".into(), offset: 0 });
        let q = testkit::query(window(from, to), Some(&s), 100);
        let next = a.parse(&q, &resp(200, &json!({ "items": [], "total": 0 }))).unwrap().next;
        matches!(&next, Next::Page(s) if crate::sources::api::guard_of(Some(s)) == Some(OTHER_MARK))
    };
    assert!(empty_walk(&a, FROM, TO), "the first empty walk runs the guard");
    // The guard found nothing: the walks of the next hour do not ask again…
    assert!(!empty_walk(&a, TO, "2024-05-01T11:30:00Z"));
    assert!(!empty_walk(&a, "2024-05-01T11:30:00Z", "2024-05-01T11:59:59Z"));
    // …the first empty walk an hour after the last guard does.
    assert!(empty_walk(&a, "2024-05-01T11:59:59Z", "2024-05-01T12:00:00Z"), "re-checked after an hour");
    // Events under the term settle it for good.
    let p = results_page(&a, serde_json::from_str(SEARCH_EVENTS).unwrap());
    assert!(!p.events.is_empty());
    assert!(!empty_walk(&a, "2024-05-01T12:00:00Z", "2024-05-01T14:00:00Z"));
    assert!(!empty_walk(&a, "2024-05-02T12:00:00Z", "2024-05-02T14:00:00Z"), "settled");
}

#[test]
fn query_replaces_the_search_term() {
    let env = crate::settings::secret::tests::FakeEnv::default();
    let text = "url = \"https://api.sekoia.io\"\ntoken = \"k\"\n\
                query = 'sekoiaio.intake.dialect:\"sekoia.io activity logs\"'\n";
    let cfg: super::SekoiaConfig = crate::sources::testkit::keys(text).unwrap();
    let (api, _) = crate::sources::testkit::build(&cfg, &env).unwrap();
    let req = api.request(&query(None)).unwrap();
    assert_eq!(sent_json(&req)["term"], "sekoiaio.intake.dialect:\"sekoia.io activity logs\"");
}

/// Regression (#26): a walk gave up after 120 waits (~19 min) while
/// SEKOIA.IO's own library (SEKOIA-IO/automation-library, the operation
/// center's `get_events`) waits up to 20 min for a job to start and 30 min
/// for it to run; the next poll then created another job, using up the
/// tenant's job budget. Now a job is waited for as long as the vendor
/// waits, and a walk that failed leaves its job to the next one.
#[test]
fn a_busy_tenants_job_is_waited_for_as_the_vendor_does_and_then_reused() {
    let a = api(MAX_LAST_EVENTS);
    let status = |queued: u64, running: u64| {
        state(&Step::Status {
            ranges: vec![(t(FROM), t(TO))],
            job: "job-1".into(),
            polls: 40,
            waited: Waited { queued, running },
        })
    };
    let (_, p) = step(&a, Some(&status(JOB_START_WAIT.as_secs() - 10, 0)), json!({ "uuid": "job-1", "status": 0 }));
    assert!(matches!(p.next, Next::Wait(d, _) if d == Duration::from_secs(10)), "still waited for: {:?}", p.next);
    let s = status(JOB_START_WAIT.as_secs(), 0);
    let e = a.parse(&query(Some(&s)), &resp(200, &json!({ "uuid": "job-1", "status": 0 }))).unwrap_err();
    assert!(e.0.contains("waited 20 min to start"), "{e}");
    let s = status(JOB_START_WAIT.as_secs(), JOB_RUN_WAIT.as_secs() - 10);
    let ok = a.parse(&query(Some(&s)), &resp(200, &json!({ "uuid": "job-1", "status": 1 })));
    assert!(ok.is_ok(), "running: up to 30 min");
    let s = status(0, JOB_RUN_WAIT.as_secs());
    let e = a.parse(&query(Some(&s)), &resp(200, &json!({ "uuid": "job-1", "status": 1 }))).unwrap_err();
    assert!(e.0.contains("waited 30 min to finish"), "{e}");
    assert!(a.defaults().max_poll_time.unwrap() >= JOB_START_WAIT + JOB_RUN_WAIT, "the walk may wait that long");

    // A walk creates job-7 and fails while it runs: the next walk from the
    // same cursor asks about job-7 instead of creating a job, and then
    // searches the rest of its longer window.
    let b = api(MAX_LAST_EVENTS);
    let (create, _) = step(&b, None, json!({ "uuid": "job-7" }));
    assert_eq!(create.method, reqwest::Method::POST);
    let later = "2024-05-01T11:20:00Z";
    let q = testkit::query(window(FROM, later), None, 100);
    let req = b.request(&q).unwrap();
    assert_eq!(req.method, reqwest::Method::GET, "no new job");
    assert!(req.url.as_str().ends_with("/jobs/job-7"), "{}", req.url);
    let p = b.parse(&q, &resp(200, &json!({ "uuid": "job-7", "status": 2, "total": 0 }))).unwrap();
    let s = next_state(&p);
    let q = testkit::query(window(FROM, later), Some(&s), 100);
    let p = b.parse(&q, &resp(200, &json!({ "items": [], "total": 0 }))).unwrap();
    let s = next_state(&p);
    let q = testkit::query(window(FROM, later), Some(&s), 100);
    let req = b.request(&q).unwrap();
    let body = sent_json(&req);
    assert_eq!(body["earliest_time"], "2024-05-01T11:00:00.000000Z", "the rest of the window");
    assert_eq!(body["latest_time"], "2024-05-01T11:20:00.000000Z");
    // A job that ended is not asked about again.
    let req = b.request(&testkit::query(window(FROM, later), None, 100)).unwrap();
    assert_eq!(req.method, reqwest::Method::POST);
}
