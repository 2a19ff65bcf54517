//! Untrusted bytes cannot stop a source or forge a log line: what a
//! receiver or etcd sends back reaches the log excerpted, with its control
//! characters escaped.

use super::wire::{response, response_bytes, Wire};
use crate::common::agent::{file_ids, file_output, tail, wait_until_or, TestDir, DEADLINE};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// One event with a byte that is not UTF-8 and one without a readable
/// time, between good ones: the two are set aside durably as the source's
/// dead letters (their bytes as sent, still there after a SIGKILL), the
/// others arrive, and the source goes on polling.
#[test]
fn a_poisoned_event_is_set_aside_while_its_neighbours_arrive() {
    // SIGKILL: the set-aside events were made durable before the page.
    poisoned_page_is_set_aside(&TestDir::new(), |agent| agent.kill());
}

/// The same with the state on LazyFS and a power cut (SIGKILL, then every
/// write not synced dropped) once the good events arrived: the set-aside
/// events were synced before the page was journaled.
#[test]
fn a_set_aside_event_survives_a_power_cut() {
    let _turn = crate::common::exclusive("power_loss");
    let Some(fs) = crate::common::lazyfs::LazyFs::mount_or_skip("a_set_aside_event_survives_a_power_cut") else {
        return;
    };
    poisoned_page_is_set_aside(&TestDir::with_state_dir(&fs.join("state")), |agent| {
        let log = agent.kill();
        fs.power_cut();
        log
    });
}

/// An API whose first page holds an event that is not UTF-8 and one without
/// a readable time between two good ones, then nothing.
fn poisoned_api() -> Wire {
    let served = AtomicBool::new(false);
    Wire::start(move |_| {
        if served.swap(true, Ordering::SeqCst) {
            return response(200, &[], r#"{"items":[]}"#);
        }
        let t = |m: i64| (chrono::Utc::now() - chrono::Duration::minutes(m)).to_rfc3339();
        let mut body = format!(
            r#"{{"items":[{{"id":"good-1","time":"{}"}},{{"id":"bad-utf8","time":"{}","actor":"ev"#,
            t(40),
            t(30)
        )
        .into_bytes();
        body.extend_from_slice(b"\xff\xfe");
        body.extend_from_slice(
            format!(r#"il"}},{{"id":"untimed","time":"yesterday"}},{{"id":"good-2","time":"{}"}}]}}"#, t(20))
                .as_bytes(),
        );
        response_bytes(200, &[], &body)
    })
}

/// Run an agent in `dir` on [`poisoned_api`] until the good events arrived
/// and it polled on, stop it with `stop` (which returns its log), and check
/// the two poisoned events are listed as the source's dead letters.
fn poisoned_page_is_set_aside(dir: &TestDir, stop: impl FnOnce(crate::common::agent::Agent) -> String) {
    let api = poisoned_api();
    let cfg = format!(
        "{}[[source]]\nname = \"api\"\ntype = \"http_json\"\nurl = \"{}/audit\"\nevents = \"/items\"\nid = \"/id\"\ntimestamp = \"/time\"\ninterval = \"1s\"\nstart_at = \"1h\"\n{}",
        dir.agent_section(),
        api.url(),
        file_output("file", &dir.file("out.jsonl"), 5)
    );
    let agent = dir.start_with(&cfg);
    wait_until_or(
        "the good events, and more polls after the page",
        DEADLINE,
        || file_ids(&dir.file("out.jsonl")).len() == 2 && api.seen().len() >= 3,
        || tail(&agent.stderr(), 20),
    );
    let log = stop(agent);
    assert_eq!(file_ids(&dir.file("out.jsonl")), ["good-1", "good-2"]);
    assert!(log.contains("2 event(s) of page 1 cannot be read and are set aside"), "{}", tail(&log, 20));
    let out = dir.cli(&["dead-letters", "list", "--source", "api"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let letters: Vec<serde_json::Value> = listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(letters.len(), 2, "{listed}");
    let utf8 = letters.iter().find(|l| l["reason"].as_str().unwrap().contains("is not valid UTF-8")).expect(&listed);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(utf8["bytes_base64"].as_str().unwrap()).unwrap();
    assert!(bytes.windows(2).any(|w| w == b"\xff\xfe"), "the bytes as sent");
    assert!(letters.iter().any(|l| l["reason"].as_str().unwrap().contains("has no readable time")), "{listed}");
}
