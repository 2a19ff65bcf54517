//! `http_json` → Splunk HEC end to end, against the fake API and the fake
//! collector: exactly-once delivery with indexer acks and the envelope's
//! shape; HEC busy, a lost ack and a rejected event; the API's faults.

use crate::common;

use common::agent::{HecOutput, InProcess, TestDir, DEADLINE};
use common::api::{ApiFault, FakeApi};
use common::hec::{FakeHec, Mode, HEC_TOKEN};
use common::{api_config, assert_at_least_once, assert_exactly_once, wait_hec_has};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn epoch(rfc3339: &str) -> f64 {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap();
    t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9
}

#[test]
fn every_event_arrives_exactly_once_with_acks_in_a_well_formed_envelope() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    hec.set_index_delay(Duration::from_millis(300)); // the first ack queries answer false
    let mut expected = api.add_history(40);
    let agent = dir.start_with(&api_config(&dir, &api, &HecOutput::new("hec", &hec.url(), HEC_TOKEN).toml()));
    wait_hec_has(&hec, &expected, "the history", || agent.stderr());
    expected.extend(api.add_now(5));
    wait_hec_has(&hec, &expected, "events added while running", || agent.stderr());
    agent.stop();

    assert_exactly_once(&hec.event_ids(), &expected, "HEC with acks");
    assert_eq!(hec.event_ids(), api.ids(), "delivered in the API's order");
    assert!(hec.ack_queries() > 0, "acks were polled");
    let posts = hec.posts();
    assert!(posts.iter().all(|p| p.gzip), "bodies are gzip");
    let channel = posts[0].channel.clone().expect("a channel");
    uuid::Uuid::parse_str(&channel).expect("the channel is a GUID");
    assert!(posts.iter().all(|p| p.channel.as_deref() == Some(channel.as_str())), "one channel per output");

    let mut fractional = 0;
    for r in hec.received() {
        let env = &r.envelope;
        let raw = api.event(&r.event_id).unwrap();
        let ev = &env["event"];
        assert_eq!(env["host"], "relay-test", "{env}");
        assert_eq!(env["source"], "api", "{env}");
        assert_eq!(env["sourcetype"], "auditrelay:test", "{env}");
        assert_eq!(env["index"], "audit", "{env}");
        assert_eq!(env["fields"]["event_id"], raw["id"], "{env}");
        // time: epoch seconds with the fraction of @timestamp.
        let time = env["time"].as_f64().unwrap_or_else(|| panic!("time is a number: {env}"));
        let created = epoch(raw["created_at"].as_str().unwrap());
        assert!((time - created).abs() < 1e-6, "time {time} is not created_at {created}: {env}");
        assert!((time - epoch(ev["@timestamp"].as_str().unwrap())).abs() < 1e-6, "{env}");
        if time.fract() != 0.0 {
            fractional += 1;
        }
        // ECS fields and the raw event.
        assert_eq!(ev["event"]["id"], raw["id"]);
        assert_eq!(ev["event"]["action"], raw["action"]);
        let outcome = if raw["status"] == "failure" { "failure" } else { "success" };
        assert_eq!(ev["event"]["outcome"], outcome, "{env}");
        assert_eq!(ev["user"]["name"], raw["actor"]["name"]);
        assert_eq!(ev["user"]["email"], raw["actor"]["email"]);
        assert_eq!(ev["user"]["id"], raw["actor"]["id"]);
        assert_eq!(ev["source"]["ip"], raw["ip"]);
        assert_eq!(ev["user_agent"]["original"], raw["user_agent"]);
        assert_eq!(ev["labels"]["source"], "api");
        assert_eq!(ev["observer"]["vendor"], "generic");
        assert_eq!(ev["observer"]["product"], "http_json");
        assert!(ev["message"].as_str().is_some_and(|m| !m.is_empty()), "{env}");
        let original: Value = serde_json::from_str(ev["event"]["original"].as_str().expect("event.original")).unwrap();
        assert_eq!(original, raw, "event.original is the API's event");
    }
    assert!(fractional > 0, "some times carry milliseconds");
}

#[test]
fn hec_busy_for_a_while_then_everything_arrives_in_order() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    hec.set_mode(Mode::Busy);
    let mut expected = api.add_history(30);
    let agent = dir.start_with(&api_config(&dir, &api, &HecOutput::new("hec", &hec.url(), HEC_TOKEN).toml()));
    common::agent::wait_until("several 503 code 9 answers", DEADLINE, || hec.busy_replies() >= 3);
    expected.extend(api.add_now(6));
    common::agent::wait_until_or(
        "the live events to be journaled while HEC is busy",
        DEADLINE,
        || dir.try_status_json().is_some_and(|s| s["journal"]["next_seq"].as_u64() == Some(expected.len() as u64)),
        || agent.stderr(),
    );
    assert!(hec.event_ids().is_empty(), "nothing accepted while busy");
    hec.set_mode(Mode::Up);
    wait_hec_has(&hec, &expected, "everything once HEC is back", || agent.stderr());
    let log = agent.stop();
    assert!(log.contains("receiver unavailable") && log.contains("code 9"), "{log}");
    assert!(log.contains("healthy again"), "{log}");
    assert_exactly_once(&hec.event_ids(), &expected, "after HEC was busy");
    assert_eq!(hec.event_ids(), api.ids(), "in the API's order");
}

/// In-process (`pipeline::run`): a batch whose ack never turns true is sent
/// again after `ack_timeout`; the only duplicates are that batch.
#[test]
fn lost_ack_resends_the_batch_after_ack_timeout() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    hec.lose_next_ack();
    let expected = api.add_history(30);
    let output = HecOutput { ack_timeout: "2s".into(), max_events: 10, ..HecOutput::new("hec", &hec.url(), HEC_TOKEN) };
    let agent = InProcess::start(&api_config(&dir, &api, &output.toml()));
    wait_hec_has(&hec, &expected, "every event despite the lost ack", String::new);
    agent.stop().unwrap();

    let ids = hec.event_ids();
    let copies = assert_at_least_once(&ids, &expected, 10, "after a lost ack");
    let lost = hec.posts().into_iter().find(|p| p.ack_id.is_some()).unwrap();
    assert!(copies > 0, "the unacknowledged batch was sent again");
    let dup: BTreeSet<String> = common::duplicates(&ids).into_keys().collect();
    let lost_batch: BTreeSet<String> = lost.event_ids.iter().cloned().collect();
    assert_eq!(dup, lost_batch, "exactly the unacknowledged batch came twice");
}

/// Four batches in flight wait for their acks together: one poller asks
/// about all of them in one request; the batch whose ack is lost is sent
/// again (its events are the only duplicates) and nothing is lost.
#[test]
fn batches_in_flight_are_acknowledged_together_and_a_lost_ack_is_resent() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    hec.set_index_delay(Duration::from_millis(300));
    hec.lose_next_ack();
    let expected = api.add_history(60);
    let output = HecOutput {
        ack_timeout: "2s".into(),
        max_events: 5,
        extra: "max_in_flight = 4\n".into(),
        ..HecOutput::new("hec", &hec.url(), HEC_TOKEN)
    };
    let agent = InProcess::start(&api_config(&dir, &api, &output.toml()));
    wait_hec_has(&hec, &expected, "every event despite the lost ack", String::new);
    agent.stop().unwrap();

    let ids = hec.event_ids();
    let copies = assert_at_least_once(&ids, &expected, 5, "after a lost ack with 4 batches in flight");
    assert!(copies > 0, "the unacknowledged batch was sent again");
    let lost = hec.posts().into_iter().find(|p| p.ack_id.is_some()).unwrap();
    let dup: BTreeSet<String> = common::duplicates(&ids).into_keys().collect();
    assert_eq!(
        dup,
        lost.event_ids.iter().cloned().collect::<BTreeSet<_>>(),
        "only the unacknowledged batch came twice"
    );
    assert!(hec.widest_ack_query() >= 2, "waiting batches are asked about in one request: {}", hec.widest_ack_query());
}

fn dead_letters(dir: &TestDir, output: &str) -> Vec<Value> {
    let out = dir.cli(&["dead-letters", "list", "--output", output]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn rejected_event_scenario(ack: bool) {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    hec.set_use_ack(ack);
    let history = api.add_history(30);
    let bad = history[12].clone();
    hec.reject(&bad);
    let expected: Vec<String> = history.iter().filter(|id| **id != bad).cloned().collect();
    let output = HecOutput { ack, max_events: 10, ..HecOutput::new("hec", &hec.url(), HEC_TOKEN) };
    let agent = dir.start_with(&api_config(&dir, &api, &output.toml()));
    wait_hec_has(&hec, &expected, "every event but the rejected one", || agent.stderr());
    common::agent::wait_until_or(
        "the dead letter to be committed",
        DEADLINE,
        || dir.try_status_json().is_some_and(|s| s["outputs"][0]["dead_letters"] == 1),
        || agent.stderr(),
    );
    let log = agent.stop();
    assert!(log.contains("dead-letter"), "the rejection is logged: {log}");

    let ids = hec.event_ids();
    assert!(!ids.contains(&bad), "the rejected event was never accepted");
    if ack {
        // Events before the bad one got no ackId, so they are resent.
        assert_at_least_once(&ids, &expected, 10, "with acks");
    } else {
        assert_exactly_once(&ids, &expected, "without acks");
    }
    let letters = dead_letters(&dir, "hec");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["event"]["event"]["id"], bad.as_str(), "{letters:?}");
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(reason.contains("Invalid data format") && reason.contains("code 6"), "{reason}");
    assert_eq!(dir.status_json()["outputs"][0]["dead_letters"], 1);
}

#[test]
fn rejected_event_is_dead_lettered_and_the_rest_delivered_with_acks() {
    rejected_event_scenario(true);
}

#[test]
fn rejected_event_is_dead_lettered_and_the_rest_delivered_exactly_once_without_acks() {
    rejected_event_scenario(false);
}

/// 429 with Retry-After, 500, an HTML page and a repeating next token, at
/// the start and again mid-run: nothing lost or duplicated, the loop
/// reported.
#[test]
fn api_faults_neither_lose_nor_duplicate() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    let faults = [
        ApiFault::TooManyRequests { retry_after: Some(1) },
        ApiFault::ServerError,
        ApiFault::Html,
        ApiFault::RepeatToken,
    ];
    let mut expected = api.add_history(20);
    for f in &faults {
        api.push_fault(f.clone());
    }
    let agent = dir.start_with(&api_config(&dir, &api, &HecOutput::new("hec", &hec.url(), HEC_TOKEN).toml()));
    wait_hec_has(&hec, &expected, "the history through the faults", || agent.stderr());
    common::api::wait_faults_served(&api, DEADLINE);
    for f in &faults {
        api.push_fault(f.clone());
        expected.extend(api.add_now(8));
    }
    wait_hec_has(&hec, &expected, "live events through the faults", || agent.stderr());
    common::api::wait_faults_served(&api, DEADLINE);
    let log = agent.stop();
    assert_exactly_once(&hec.event_ids(), &expected, "through API faults");
    for needle in ["HTTP 429", "HTTP 500", "not JSON", "pagination loop"] {
        assert!(log.contains(needle), "{needle:?} is logged:\n{log}");
    }
}

/// Regression: an output took its start offset only after its health check,
/// so at a first start the pages a source journaled meanwhile were never
/// sent to it.
#[test]
fn regression_first_start_with_a_slow_health_check_loses_no_first_page() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    hec.set_health_delay(Duration::from_secs(2));
    let expected = api.add_history(20);
    let agent = dir.start_with(&api_config(&dir, &api, &HecOutput::new("hec", &hec.url(), HEC_TOKEN).toml()));
    wait_hec_has(&hec, &expected, "the first pages", || agent.stderr());
    agent.stop();
    assert_eq!(hec.health_checks(), 1, "the health check ran (slowly) first");
    assert_exactly_once(&hec.event_ids(), &expected, "first start");
}

/// `check --connect` proves the HEC token, not only that HEC answers: its
/// `/health` needs no token, so a wrong one passed and the service then
/// failed with 403 code 4 at the first batch. An empty POST is refused
/// with 403 before anything else is read; the right token gets "No data"
/// and nothing is written.
#[test]
fn check_connect_proves_the_hec_token_without_writing_an_event() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    let run = |token: &str| {
        dir.write_config(&api_config(&dir, &api, &HecOutput::new("hec", &hec.url(), token).toml()));
        dir.check_connect()
    };
    let (code, text) = run("00000000-dead-beef-0000-000000000000");
    assert_eq!(code, Some(1), "a wrong token fails check --connect:\n{text}");
    let fail = text.lines().find(|l| l.starts_with("FAIL") && l.contains("output hec")).unwrap_or_default();
    assert!(fail.contains("refused the token") && fail.contains("403"), "{text}");
    assert!(!text.contains("dead-beef"), "the token is never printed:\n{text}");
    let (code, text) = run(HEC_TOKEN);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.lines().any(|l| l.starts_with("ok    output hec") && l.contains("token accepted")), "{text}");
    assert!(hec.event_ids().is_empty(), "check --connect writes no event");
}

/// Regression (#26): a `url` that already ends in the endpoint path (as
/// the Invicti seed document writes it) is the collector's base, and a url
/// where there is no HEC (404) is reported as a configuration problem
/// naming the URL, not retried silently as a busy receiver.
#[test]
fn a_url_with_the_endpoint_path_delivers_and_a_404_is_a_named_configuration_error() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    let expected = api.add_history(12);
    let with_path = format!("{}/services/collector/event", hec.url());
    let agent = dir.start_with(&api_config(&dir, &api, &HecOutput::new("hec", &with_path, HEC_TOKEN).toml()));
    wait_hec_has(&hec, &expected, "the history through a url with the endpoint path", || agent.stderr());
    agent.stop();
    assert_exactly_once(&hec.event_ids(), &expected, "url with the endpoint path");

    let dir = TestDir::new();
    let wrong = format!("{}/not-hec", hec.url());
    let agent = dir.start_with(&api_config(&dir, &api, &HecOutput::new("hec", &wrong, HEC_TOKEN).toml()));
    common::agent::wait_until_or(
        "the 404 to be reported",
        DEADLINE,
        || agent.stderr().contains("there is no HEC endpoint at"),
        || agent.stderr(),
    );
    let log = agent.stop();
    let line = log.lines().find(|l| l.contains("there is no HEC endpoint at")).unwrap();
    assert!(line.contains("receiver refused the configuration"), "a configuration problem: {line}");
    assert!(line.contains(&format!("{wrong}/services/collector/event")), "names the URL: {line}");
}
