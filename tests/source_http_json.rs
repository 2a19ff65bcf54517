//! The `http_json` source against the fake JSON audit API: the shared
//! source compliance checks, and the pagination-loop report.

use crate::common;

use common::agent::{file_ids, file_output, tail, wait_until_or, TestDir, DEADLINE};
use common::api::{ApiFault, FakeApi};
use common::compliance::with_test_defaults;

/// An agent with one `http_json` source named `name` on `api`, delivering
/// to `out.jsonl` in `dir`.
fn start_agent(dir: &TestDir, api: &FakeApi, name: &str) -> common::agent::Agent {
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&api.source_block(name, "api-token")),
        file_output("out", &dir.file("out.jsonl"), 5)
    );
    dir.start_with(&cfg)
}

/// A next-page token that answers itself is a loop: the poll stops, stderr
/// says "pagination loop", and the next poll goes on from the cursor
/// without losing or repeating an event.
#[test]
fn repeating_next_token_is_reported_as_a_pagination_loop() {
    let api = FakeApi::start("api-token");
    let dir = TestDir::new();
    let mut expected = api.add_history(12);
    api.push_fault(ApiFault::RepeatToken);
    let agent = start_agent(&dir, &api, "loopy");
    wait_until_or(
        "the pagination loop to be logged",
        DEADLINE,
        || agent.stderr().contains("pagination loop"),
        || agent.stderr(),
    );
    expected.extend(api.add_now(9));
    wait_until_or(
        "every event after the loop",
        DEADLINE,
        || common::missing(&file_ids(&dir.file("out.jsonl")), &expected).is_empty(),
        || {
            format!(
                "{}\ndelivered {:?}\nserved {:?}",
                tail(&agent.stderr(), 30),
                file_ids(&dir.file("out.jsonl")),
                api.served()
            )
        },
    );
    let log = agent.stop();
    let line = log.lines().find(|l| l.contains("pagination loop")).unwrap();
    assert!(line.contains("loopy"), "the loop report names the source: {line}");
    common::assert_exactly_once(&file_ids(&dir.file("out.jsonl")), &expected, "after a pagination loop");
}

/// An event without a readable time is set aside durably as a dead letter
/// of its source (`dead-letters list --source`), the log names the
/// source, the page, the pointer, the format and what was found, and the
/// page's other events arrive once each: one poisoned event neither blocks
/// its page nor is lost (issue #24; it used to fail every poll).
#[test]
fn an_event_without_a_readable_time_is_set_aside_and_its_page_goes_on() {
    let api = FakeApi::start("api-token");
    let dir = TestDir::new();
    let mut expected = api.add_history(12);
    api.push_fault(ApiFault::Untimed);
    let agent = start_agent(&dir, &api, "untimed");
    // The fault makes the first page's last event untimed (page_size 7).
    let poisoned = expected.remove(6);
    wait_until_or(
        "every other event",
        DEADLINE,
        || common::missing(&file_ids(&dir.file("out.jsonl")), &expected).is_empty(),
        || format!("{}\ndelivered {:?}", tail(&agent.stderr(), 30), file_ids(&dir.file("out.jsonl"))),
    );
    let log = agent.stop();
    let line = log.lines().find(|l| l.contains("set aside")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("untimed") && line.contains("of page 1"), "names the source and the page: {line}");
    assert!(line.contains(r#"no "rfc3339" time at "/created_at""#), "says what was looked for: {line}");
    assert!(line.contains("yesterday"), "and what was found: {line}");
    common::assert_exactly_once(&file_ids(&dir.file("out.jsonl")), &expected, "around an untimed event");
    let out = dir.cli(&["dead-letters", "list", "--source", "untimed"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains(&poisoned) && listed.contains("yesterday"), "the event as sent: {listed}");
}

common::compliance::compliance_tests!(FakeApi::start("api-token"));
