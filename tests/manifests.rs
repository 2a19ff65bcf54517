//! Completeness manifests end to end with the real binary: the agent
//! delivers an API's events with manifests every second to a file and to
//! HEC, then `auditrelay verify` reads what the receiver holds: clean runs
//! (including ones SIGKILLed mid-delivery) report nothing; a removed event,
//! an altered field and a deleted manifest are each found and named.

use crate::common;

use auditrelay::manifest::verify::{read, verify, Report};
use common::agent::{file_output, HecOutput, TestDir, DEADLINE};
use common::api::FakeApi;
use common::api_config;
use common::hec::{FakeHec, HEC_TOKEN};
use std::path::Path;
use std::time::Duration;

/// The complete lines of a file (a line being written is left out).
fn lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    complete.lines().map(str::to_owned).collect()
}

fn report(lines: &[String]) -> Report {
    verify(lines.iter().map(|l| read(l)))
}

/// Every one of `n` events is in a window whose manifest is in `lines`.
fn all_closed(lines: &[String], n: u64) -> bool {
    let r = report(lines);
    r.streams.iter().any(|s| s.source == "api" && s.events == n && s.open_windows.is_empty())
}

/// `auditrelay verify FILE`: exit code and text.
fn verify_cli(file: &Path, json: bool) -> (Option<i32>, String) {
    let mut args = vec!["verify", file.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    let out = common::agent::command(&args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn write(dir: &TestDir, name: &str, lines: &[String]) -> std::path::PathBuf {
    let path = dir.file(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn file_config(dir: &TestDir, api: &FakeApi, out: &Path) -> String {
    let output = file_output("archive", out, 7) + "manifest_interval = \"1s\"\n";
    api_config(dir, api, &output)
}

#[test]
fn verify_passes_a_clean_delivery_and_names_each_removed_altered_or_missing_record() {
    let (api, dir) = (FakeApi::start("api-token"), TestDir::new());
    let expected = api.add_history(40);
    let out = dir.file("events.jsonl");
    // A second output that is down keeps every entry in the journal, so
    // `verify --config` can name a missing event from it.
    let down = FakeHec::start(HEC_TOKEN);
    down.set_mode(common::hec::Mode::Refuse);
    let lagging = HecOutput { ack: false, ..HecOutput::new("lagging", &down.url(), HEC_TOKEN) }.toml();
    dir.write_config(&(file_config(&dir, &api, &out) + &lagging));
    let agent = dir.start();
    let manifests =
        |lines: &[String]| lines.iter().filter(|l| l.contains("\"dataset\":\"auditrelay.manifest\"")).count();
    common::agent::wait_until_or(
        "every event in a closed window, and three manifests",
        DEADLINE,
        || {
            let held = lines(&out);
            all_closed(&held, expected.len() as u64) && manifests(&held) >= 3
        },
        || agent.stderr(),
    );
    agent.stop();
    let held = lines(&out);
    let (code, text) = verify_cli(&out, false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("source api → output archive") && text.contains("40 events"), "{text}");
    assert!(text.contains("verify: complete"), "{text}");

    // An event removed after the hand-off: its window and position.
    let victim = held.iter().position(|l| l.contains(&format!("\"id\":\"{}\"", expected[17]))).unwrap();
    let tag: serde_json::Value = serde_json::from_str(&held[victim]).unwrap();
    let (window, index) = (tag["auditrelay"]["window"].as_u64().unwrap(), tag["auditrelay"]["index"].as_u64().unwrap());
    let mut removed = held.clone();
    removed.remove(victim);
    let (code, text) = verify_cli(&write(&dir, "removed.jsonl", &removed), false);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("MISSING EVENTS: window {window}: 1 of")), "{text}");
    assert!(text.contains(&format!("at index {index}")), "{text}");
    // With the agent's config (agent stopped), the id from its journal.
    let removed_file = write(&dir, "removed.jsonl", &removed);
    let config = dir.config_path();
    let out = common::agent::command(&["verify", removed_file.to_str().unwrap(), "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("(event.id {} from the agent's journal)", expected[17])), "{text}");

    // One field altered.
    let mut altered = held.clone();
    let doc: serde_json::Value = serde_json::from_str(&altered[victim]).unwrap();
    let action = doc["event"]["action"].as_str().unwrap().to_owned();
    altered[victim] = altered[victim].replacen(&format!("\"action\":\"{action}\""), "\"action\":\"nothing-to-see\"", 1);
    assert_ne!(altered[victim], held[victim]);
    let (code, text) = verify_cli(&write(&dir, "altered.jsonl", &altered), false);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("ALTERED EVENTS: window {window}")), "{text}");

    // A manifest deleted: a gap in the sequence.
    let manifests: Vec<usize> = held
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("\"dataset\":\"auditrelay.manifest\""))
        .map(|(i, _)| i)
        .collect();
    assert!(manifests.len() >= 3, "one manifest a second: {}", manifests.len());
    let mut deleted = held.clone();
    let gone: serde_json::Value = serde_json::from_str(&deleted.remove(manifests[1])).unwrap();
    let w = gone["auditrelay"]["manifest"]["window"].as_u64().unwrap();
    let (code, text) = verify_cli(&write(&dir, "deleted.jsonl", &deleted), true);
    assert_eq!(code, Some(1), "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let problems = &json["streams"][0]["problems"];
    assert!(
        problems.as_array().unwrap().iter().any(|p| p["kind"] == "missing_manifests" && p["from"] == w && p["to"] == w),
        "{text}"
    );
}

#[test]
fn sigkilled_mid_delivery_three_times_verify_reports_no_gap() {
    let (api, dir) = (FakeApi::start("api-token"), TestDir::new());
    let mut expected = api.add_history(60);
    let out = dir.file("events.jsonl");
    dir.write_config(&file_config(&dir, &api, &out));
    for round in 0..3 {
        let agent = dir.start();
        let before = lines(&out).len();
        common::agent::wait_until_or(
            "some delivery before the kill",
            DEADLINE,
            || lines(&out).len() > before + 3,
            || agent.stderr(),
        );
        agent.kill();
        expected.extend(api.add_now(5 + round));
    }
    let agent = dir.start();
    common::agent::wait_until_or(
        "every event in a closed window after three kills",
        DEADLINE,
        || all_closed(&lines(&out), expected.len() as u64),
        || agent.stderr(),
    );
    agent.stop();
    let (code, text) = verify_cli(&out, false);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn verify_checks_what_hec_received_and_finds_an_event_the_indexer_lost() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    let expected = api.add_history(30);
    let output =
        HecOutput { extra: "manifest_interval = \"1s\"".into(), ..HecOutput::new("splunk", &hec.url(), HEC_TOKEN) };
    dir.write_config(&api_config(&dir, &api, &output.toml()));
    let agent = dir.start();
    let bodies = || hec.verify_lines();
    common::agent::wait_until_or(
        "every event in a closed window at HEC",
        DEADLINE + Duration::from_secs(30),
        || all_closed(&bodies(), expected.len() as u64),
        || agent.stderr(),
    );
    agent.stop();
    let held = bodies();
    let r = report(&held);
    assert!(r.ok, "{}", r.text());
    let stream = r.streams.iter().find(|s| s.output == "splunk").unwrap();
    assert_eq!(stream.events, expected.len() as u64);
    let mut lost = held.clone();
    let i = lost.iter().position(|l| l.contains(&expected[3])).unwrap();
    lost.remove(i);
    let (code, text) = verify_cli(&write(&dir, "splunk.jsonl", &lost), false);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("MISSING EVENTS"), "{text}");
}
