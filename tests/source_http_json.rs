//! The `http_json` source against the fake JSON audit API: the shared
//! source compliance checks, and the pagination-loop report.

mod common;

use common::agent::{file_ids, file_output, tail, wait_until_or, TestDir, DEADLINE};
use common::api::{ApiFault, FakeApi};
use common::compliance::with_test_defaults;

/// A next-page token that answers itself is a loop: the poll stops, stderr
/// says "pagination loop", and the next poll goes on from the cursor
/// without losing or repeating an event.
#[test]
fn repeating_next_token_is_reported_as_a_pagination_loop() {
    let api = FakeApi::start("api-token");
    let dir = TestDir::new();
    let mut expected = api.add_history(12);
    api.push_fault(ApiFault::RepeatToken);
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&api.source_block("loopy", "api-token")),
        file_output("out", &dir.file("out.jsonl"), 5)
    );
    let agent = dir.start_with(&cfg);
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

compliance_tests!(FakeApi::start("api-token"));
