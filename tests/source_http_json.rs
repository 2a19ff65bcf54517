//! The `http_json` source against the fake JSON audit API: the shared
//! source compliance checks, and the pagination-loop report.

mod common;

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

/// An event without a readable time fails its poll before anything of
/// the page is journaled; stderr names the source, the event, the pointer
/// and the format; the next poll takes the page again and nothing is lost
/// or repeated.
#[test]
fn an_event_without_a_readable_time_fails_the_poll_and_loses_nothing() {
    let api = FakeApi::start("api-token");
    let dir = TestDir::new();
    let expected = api.add_history(12);
    api.push_fault(ApiFault::Untimed);
    let agent = start_agent(&dir, &api, "untimed");
    wait_until_or(
        "every event after the failed poll",
        DEADLINE,
        || common::missing(&file_ids(&dir.file("out.jsonl")), &expected).is_empty(),
        || format!("{}\ndelivered {:?}", tail(&agent.stderr(), 30), file_ids(&dir.file("out.jsonl"))),
    );
    let log = agent.stop();
    let line = log.lines().find(|l| l.contains("has no readable time")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("untimed") && line.contains("of page 1"), "names the source and the page: {line}");
    assert!(line.contains(r#"no "rfc3339" time at "/created_at""#), "says what was looked for: {line}");
    assert!(line.contains("yesterday"), "and what was found: {line}");
    common::assert_exactly_once(&file_ids(&dir.file("out.jsonl")), &expected, "after an untimed event");
}

compliance_tests!(FakeApi::start("api-token"));
