//! Untrusted bytes cannot stop a source or forge a log line: what a
//! receiver or etcd sends back reaches the log excerpted, with its control
//! characters escaped.

use crate::common::agent::{tail, wait_until_or, TestDir, DEADLINE};
use crate::wire::{response, Wire};

/// The text a hostile peer hopes to see as a log line of its own.
const FORGED: &str = "2026-12-07T00:00:00.000000Z  INFO auditrelay::pipeline: FORGED all events delivered";

fn assert_no_forged_line(log: &str) {
    for line in log.lines() {
        assert!(!line.starts_with(FORGED), "a peer forged a log line:\n{line}");
    }
    assert!(!log.contains('\u{1b}'), "an ANSI escape reached the log");
}

#[test]
fn a_hec_reply_and_an_etcd_error_cannot_forge_log_lines() {
    let hec_text = format!("busy\n{FORGED}\u{1b}[2J");
    let hec = Wire::start(move |_| {
        let body = serde_json::json!({ "text": hec_text, "code": 9 }).to_string();
        response(503, &[], &body)
    });
    let dir = TestDir::new();
    let cfg = format!(
        "{}[[source]]\nname = \"demo\"\ntype = \"demo\"\ninterval = \"1s\"\n[[output]]\nname = \"hec\"\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"t\"\nack = false\nretry_max_interval = \"1s\"\n",
        dir.agent_section(),
        hec.url()
    );
    let agent = dir.start_with(&cfg);
    wait_until_or(
        "HEC's refusal to be logged",
        DEADLINE,
        || agent.stderr().contains("FORGED"),
        || tail(&agent.stderr(), 20),
    );
    let log = agent.stop();
    assert_no_forged_line(&log);

    let etcd_text = format!("etcdserver: no leader\n{FORGED}");
    let etcd = Wire::start(move |_| response(500, &[], &serde_json::json!({ "error": etcd_text }).to_string()));
    let dir = TestDir::new();
    let cfg = format!(
        "{}[cluster]\netcd = [\"{}\"]\n[[source]]\nname = \"demo\"\ntype = \"demo\"\n[[output]]\nname = \"file\"\ntype = \"file\"\npath = \"{}\"\n",
        dir.agent_section(),
        etcd.url(),
        dir.file("out.jsonl").display()
    );
    let agent = dir.start_with(&cfg);
    let log_path = dir.logs().pop().expect("the agent's log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_until_or("etcd's error to be logged", DEADLINE, || log().contains("FORGED"), || tail(&log(), 20));
    let log = agent.kill();
    assert_no_forged_line(&log);
}
