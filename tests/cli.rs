//! The command line as an operator meets it: config errors name their key
//! path and exit 2 (`check` and `run`), `status --json` while `run` runs,
//! and SIGTERM: exit 0 within `shutdown_timeout`, and the next start sends
//! nothing twice.

use crate::common;

use common::agent::{command, HecOutput, TestDir, DEADLINE};
use common::api::FakeApi;
use common::hec::{FakeHec, Mode, HEC_TOKEN};
use common::{api_config, assert_at_least_once, assert_exactly_once, wait_hec_has};
use std::time::Duration;

fn source(extra: &str) -> String {
    format!(
        "[[source]]\nname = \"api\"\ntype = \"http_json\"\nurl = \"http://127.0.0.1:9/audit\"\nevents = \"/items\"\ntimestamp = \"/t\"\n{extra}\n"
    )
}

fn hec_output(token: &str) -> String {
    format!("[[output]]\nname = \"hec\"\ntype = \"splunk_hec\"\nurl = \"http://127.0.0.1:9\"\ntoken = \"{token}\"\n")
}

#[test]
fn config_errors_exit_2_and_name_the_key_path() {
    let cases = [
        ("unknown key", source("ratte = \"5/s\""), hec_output("t"), "source[0].ratte"),
        ("missing secret", source(""), hec_output("${NOT_SET_VAR}"), "output[0].token"),
        ("bad duration", source("interval = \"5 parsecs\""), hec_output("t"), "source[0].interval"),
    ];
    for (what, src, out, path) in cases {
        let dir = TestDir::new();
        dir.write_config(&format!("{}\n{src}\n{out}", dir.agent_section()));
        for sub in ["check", "run"] {
            let mut c = command(&[sub, "--config"]);
            c.arg(dir.config_path());
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(c.output());
            });
            let out = rx
                .recv_timeout(DEADLINE)
                .unwrap_or_else(|_| panic!("{what}: `{sub}` did not exit"))
                .expect("run auditrelay");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what}: `{sub}` exits 2; stderr:\n{stderr}");
            assert!(stderr.contains(path), "{what}: `{sub}` names {path}; stderr:\n{stderr}");
            if what == "missing secret" {
                assert!(stderr.contains("NOT_SET_VAR"), "{what}: `{sub}` names the variable:\n{stderr}");
            }
        }
    }
}

/// An unknown key, a bad duration and an unset `${ENV}` in one file:
/// `check` lists all three in one run, each with its key path and line.
#[test]
fn check_lists_every_problem_in_one_run_with_lines() {
    let dir = TestDir::new();
    let agent = dir.agent_section();
    let text =
        format!("{agent}\n{}\n{}", source("ratte = \"5/s\"\ninterval = \"5 parsecs\""), hec_output("${NOT_SET_VAR}"));
    dir.write_config(&text);
    let line = |key: &str| text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    let out = dir.cli(&["check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for (path, key) in [("source[0].ratte", "ratte"), ("source[0].interval", "interval"), ("output[0].token", "token")]
    {
        let l = stderr.lines().find(|l| l.trim_start().starts_with(path));
        let l = l.unwrap_or_else(|| panic!("{path} is not listed:\n{stderr}"));
        assert!(l.ends_with(&format!("(line {})", line(key))), "{path} names its line: {l}");
    }
    assert!(stderr.contains("NOT_SET_VAR"), "{stderr}");
    assert!(stderr.contains("3 problem(s)"), "{stderr}");
}

#[test]
fn status_json_works_while_run_is_running() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    let expected = api.add_history(20);
    let agent = dir.start_with(&api_config(&dir, &api, &HecOutput::new("hec", &hec.url(), HEC_TOKEN).toml()));
    wait_hec_has(&hec, &expected, "the history", || agent.stderr());
    let status = std::cell::RefCell::new(serde_json::Value::Null);
    common::agent::wait_until_or(
        "status --json to show the output caught up",
        DEADLINE,
        || {
            *status.borrow_mut() = dir.try_status_json().unwrap_or_default();
            status.borrow()["outputs"][0]["offset"] == 20
        },
        || status.borrow().to_string(),
    );
    let status = status.into_inner();
    let s = &status["sources"][0];
    assert_eq!(s["name"], "api");
    assert_eq!(s["type"], "http_json");
    assert_eq!(s["healthy"], true, "{status}");
    chrono::DateTime::parse_from_rfc3339(s["cursor"].as_str().unwrap()).expect("cursor is RFC 3339");
    assert!(s["last_poll"].is_string(), "{status}");
    assert!(s["last_error"].is_null(), "{status}");
    let o = &status["outputs"][0];
    assert_eq!(o["name"], "hec");
    assert_eq!(o["type"], "splunk_hec");
    assert_eq!(o["backlog"], 0, "{status}");
    assert_eq!(o["dead_letters"], 0, "{status}");
    assert_eq!(o["healthy"], true, "{status}");
    assert_eq!(status["journal"]["next_seq"], 20, "{status}");
    let table = dir.cli(&["status"]);
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains("running agent's snapshot"));
    agent.stop();
}

/// Round `r` sends SIGTERM `r` times this long after publishing new events:
/// the signal meets the agent at a different point of polling and sending
/// each round. A scripted moment, not a wait for something to happen.
const SIGTERM_STAGGER: Duration = Duration::from_millis(150);

#[test]
fn sigterm_exits_0_within_shutdown_timeout_and_the_next_start_sends_nothing_twice() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    let mut expected = api.add_history(20);
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section_with("shutdown_timeout = \"3s\""),
        common::compliance::with_test_defaults(&api.source_block("api", "api-token")),
        HecOutput::new("hec", &hec.url(), HEC_TOKEN).toml()
    );
    let mut agent = dir.start_with(&cfg);
    wait_hec_has(&hec, &expected, "the history", || agent.stderr());
    for round in 0..3u32 {
        // Stop while new events are being polled and sent.
        expected.extend(api.add_now(15));
        std::thread::sleep(SIGTERM_STAGGER * round);
        let exit = agent.terminate(Duration::from_secs(10));
        assert_eq!(exit.code, Some(0), "round {round}: {}", exit.stderr);
        assert!(exit.took < Duration::from_secs(3), "round {round}: took {:?}", exit.took);
        assert!(exit.stderr.contains("stopped cleanly"), "{}", exit.stderr);
        agent = dir.start();
        wait_hec_has(&hec, &expected, "every event after the restart", || agent.stderr());
    }
    agent.stop();
    assert_exactly_once(&hec.event_ids(), &expected, "SIGTERM and restarts");
}

/// A send that never completes is abandoned at `shutdown_timeout`: exit 0,
/// and the batch goes again at the next start.
#[test]
fn sigterm_with_a_hanging_send_exits_0_at_shutdown_timeout() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    hec.set_mode(Mode::HangAfterReceive);
    let mut expected = api.add_history(20);
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section_with("shutdown_timeout = \"2s\""),
        common::compliance::with_test_defaults(&api.source_block("api", "api-token")),
        HecOutput::new("hec", &hec.url(), HEC_TOKEN).toml()
    );
    let agent = dir.start_with(&cfg);
    common::agent::wait_until_or("HEC to receive a batch", DEADLINE, || !hec.event_ids().is_empty(), || agent.stderr());
    let exit = agent.terminate(Duration::from_secs(10));
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    assert!(
        exit.took >= Duration::from_millis(1900) && exit.took < Duration::from_secs(4),
        "exits at shutdown_timeout (2s), took {:?}",
        exit.took
    );
    assert!(exit.stderr.contains("shutdown_timeout"), "{}", exit.stderr);
    let in_flight = hec.event_ids().len();

    hec.set_mode(Mode::Up);
    let agent = dir.start();
    expected.extend(api.add_now(3));
    wait_hec_has(&hec, &expected, "every event after the restart", || agent.stderr());
    agent.stop();
    let copies = assert_at_least_once(&hec.event_ids(), &expected, 10, "abandoned send");
    assert_eq!(copies, in_flight, "the abandoned batch, and only it, was sent again");
}

/// Regression: `status` holds the database lock for a moment while it reads;
/// an agent starting at that moment failed with "another auditrelay is
/// running" and exit 1, and a `status` run in a loop (a monitoring script,
/// the compliance kit's wait loops on a loaded CI host) could hold it at
/// every retry of the start. Now the starting agent takes `run.lock` and
/// waits for a command that holds it; once it holds it, `status` reads the
/// snapshot and never opens the database. Two loops of `status` for longer
/// than the old start's 5 s of retries, three starts: each agent runs and
/// answers `status` with its own snapshot while the loops go on.
#[test]
fn regression_status_in_a_loop_while_run_starts_does_not_fail_the_start() {
    let (api, hec, dir) = (FakeApi::start("api-token"), FakeHec::start(HEC_TOKEN), TestDir::new());
    api.add_history(5);
    dir.write_config(&api_config(&dir, &api, &HecOutput::new("hec", &hec.url(), HEC_TOKEN).toml()));
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let runs = AtomicUsize::new(0);
    let loop_status = |dir: &TestDir, for_: Duration| {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < for_ {
            let _ = dir.cli(&["status", "--json"]);
            runs.fetch_add(1, SeqCst);
        }
    };
    for round in 0..3 {
        let mut agent = None;
        let before = runs.load(SeqCst);
        std::thread::scope(|s| {
            s.spawn(|| loop_status(&dir, Duration::from_secs(6)));
            s.spawn(|| loop_status(&dir, Duration::from_secs(6)));
            // Start once the loops are under way.
            common::agent::wait_until("the status loops to run", DEADLINE, || runs.load(SeqCst) >= before + 2);
            agent = Some(dir.start());
        });
        let mut agent = agent.unwrap();
        assert!(agent.is_running(), "round {round}: the agent failed to start:\n{}", agent.stderr());
        let from_snapshot = || {
            String::from_utf8_lossy(&dir.cli(&["status"]).stdout).contains("status from the running agent's snapshot")
        };
        common::agent::wait_until_or("status from the agent's snapshot", DEADLINE, from_snapshot, || agent.stderr());
        agent.stop();
    }
}

/// The allocator settings RSS was measured with (docs/performance.md) are
/// built into the binary, not left to the environment: a build that lost
/// `.cargo/config.toml`'s `JEMALLOC_SYS_WITH_MALLOC_CONF` fails here.
#[test]
fn the_binary_carries_its_allocator_settings() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditrelay"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stats = String::from_utf8_lossy(&out.stderr);
    assert!(
        stats.contains(r#"config.malloc_conf: "narenas:2,background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0""#),
        "jemalloc was built without the agent's settings:\n{stats}"
    );
    for opt in ["opt.narenas: 2\n", "opt.background_thread: true", "opt.dirty_decay_ms: 100 ", "opt.muzzy_decay_ms: 0 "]
    {
        assert!(stats.contains(opt), "jemalloc does not run with {opt:?}:\n{stats}");
    }
}

/// `[cluster]` is checked like every other table: each problem with its key
/// path, and the etcd password's file is read (its text never printed).
#[test]
fn check_reports_cluster_problems_and_never_prints_the_password() {
    let dir = TestDir::new();
    let pw = dir.file("etcd.password");
    std::fs::write(&pw, "s3cret-etcd-pw\n").unwrap();
    let base = format!(
        "{}[[source]]\nname = \"d\"\ntype = \"demo\"\n[[output]]\nname = \"f\"\ntype = \"file\"\npath = \"-\"\n",
        dir.agent_section()
    );
    dir.write_config(&format!(
        "{base}[cluster]\netcd = [\"ftp://x\"]\nlease_ttl = \"1s\"\nuser = \"u\"\npassword_file = \"{}\"\n",
        dir.file("missing.password").display()
    ));
    let out = dir.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for want in ["cluster.etcd[0]:", "cluster.lease_ttl:", "cluster.password: cannot read"] {
        assert!(text.contains(want), "missing {want:?} in {text}");
    }
    dir.write_config(&format!(
        "{base}[cluster]\netcd = [\"http://127.0.0.1:9\"]\nuser = \"u\"\npassword_file = \"{}\"\n",
        pw.display()
    ));
    let out = dir.cli(&["check"]);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("s3cret"), "{all}");
}
