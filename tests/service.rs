//! Running the real binary like a service: /health and /metrics while
//! events flow, `status --json` while `run` runs, SIGHUP reloads (added
//! output, removed source, invalid file), SIGTERM, and `replay`.
//!
//! The demo source is deterministic: event `evt-k` happened at
//! `2020-01-01 + k / rate`, so ids are consecutive numbers and a gap or a
//! repeat is a lost or duplicated event.

use crate::common::agent::{DEADLINE, POLL};
use crate::common::rsyslog::free_tcp_port;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_auditrelay");

struct Agent {
    child: Child,
    dir: PathBuf,
}

impl Agent {
    fn start(dir: &Path, config: &str) -> Agent {
        std::fs::write(dir.join("agent.toml"), config).unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(dir.join("agent.toml"))
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        Agent { child, dir: dir.to_path_buf() }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success());
    }

    fn stop(mut self) -> (i32, String) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut log = String::new();
                std::fs::File::open(self.dir.join("stderr.log")).unwrap().read_to_string(&mut log).unwrap();
                return (status.code().unwrap_or(-1), log);
            }
            assert!(Instant::now() < deadline, "agent did not stop within 30s");
            std::thread::sleep(POLL);
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// [`crate::common::agent::wait_until`] with the usual deadline.
fn wait_until(what: &str, f: impl FnMut() -> bool) {
    crate::common::agent::wait_until(what, DEADLINE, f);
}

/// Delivered events of a JSON-lines file: (source, k) in file order.
fn delivered(path: &Path) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let id = v["event"]["id"].as_str().unwrap();
            (v["labels"]["source"].as_str().unwrap().to_owned(), id.trim_start_matches("evt-").parse().unwrap())
        })
        .collect()
}

/// Per source: check ids are consecutive and unique; return (first, last).
fn contiguous(events: &[(String, u64)]) -> BTreeMap<String, (u64, u64)> {
    let mut by_source: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (s, k) in events {
        by_source.entry(s.clone()).or_default().push(*k);
    }
    by_source
        .into_iter()
        .map(|(s, ks)| {
            for w in ks.windows(2) {
                assert_eq!(w[1], w[0] + 1, "source {s}: after evt-{} came evt-{} (lost or duplicated)", w[0], w[1]);
            }
            (s, (ks[0], *ks.last().unwrap()))
        })
        .collect()
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).unwrap().parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn demo_source(name: &str, rate: &str) -> String {
    format!("[[source]]\nname = \"{name}\"\ntype = \"demo\"\nrate = \"{rate}\"\ninterval = \"300ms\"\nstart_at = \"3s\"\n\n")
}

fn file_output(name: &str) -> String {
    format!("[[output]]\nname = \"{name}\"\ntype = \"file\"\npath = \"{name}.jsonl\"\nbatch = {{ timeout = \"100ms\" }}\n\n")
}

#[test]
fn health_metrics_and_status_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_tcp_port());
    let cfg = format!(
        "[agent]\nstate_dir = \"state\"\nlisten = \"{addr}\"\n\n{}{}",
        demo_source("demo", "50/s"),
        file_output("out")
    );
    let agent = Agent::start(dir.path(), &cfg);
    wait_until("events delivered", || delivered(&dir.path().join("out.jsonl")).len() > 100);

    let (code, body) = http_get(&addr, "/health");
    assert_eq!(code, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");

    let (code, text) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    let names: std::collections::BTreeSet<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap()).collect();
    let expected: std::collections::BTreeSet<&str> =
        auditrelay::telemetry::metrics::METRICS.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(names, expected, "metric names are a contract");
    let sent: f64 = text
        .lines()
        .find(|l| l.starts_with("auditrelay_events_sent_total{output=\"out\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(sent > 0.0);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let labels = line.split_once('{').map(|(_, r)| r.split('}').next().unwrap()).unwrap_or("");
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let key = pair.split('=').next().unwrap();
            assert!(["source", "output", "status"].contains(&key), "unexpected label {key} in {line}");
        }
    }

    // The running agent holds the database; status reads its snapshot,
    // rewritten every 2 s.
    let mut status = Value::Null;
    wait_until("status --json with a cursor", || {
        let out = Command::new(BIN)
            .args(["status", "--json", "--config"])
            .arg(dir.path().join("agent.toml"))
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        status = serde_json::from_slice(&out.stdout).unwrap();
        status["sources"][0]["cursor"].is_string()
    });
    assert_eq!(status["sources"][0]["name"], "demo");
    assert_eq!(status["sources"][0]["healthy"], true);
    assert_eq!(status["outputs"][0]["name"], "out");
    assert!(status["outputs"][0]["offset"].as_u64().unwrap() > 0);

    let (code, log) = agent.stop();
    assert_eq!(code, 0, "{log}");
    contiguous(&delivered(&dir.path().join("out.jsonl")));
}

#[test]
fn sighup_adds_output_removes_source_and_refuses_invalid_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[agent]\nstate_dir = \"state\"\nshutdown_timeout = \"5s\"\n\n";
    let cfg_a = format!("{base}{}{}{}", demo_source("a", "40/s"), demo_source("b", "40/s"), file_output("one"));
    let agent = Agent::start(dir.path(), &cfg_a);
    let one = dir.path().join("one.jsonl");
    wait_until("both sources delivering", || {
        let d = delivered(&one);
        d.iter().any(|(s, _)| s == "a") && d.iter().any(|(s, _)| s == "b")
    });

    // Reload: source b removed, output two added.
    let cfg_b = format!("{base}{}{}{}", demo_source("a", "40/s"), file_output("one"), file_output("two"));
    std::fs::write(dir.path().join("agent.toml"), cfg_b).unwrap();
    agent.signal("HUP");
    let two = dir.path().join("two.jsonl");
    wait_until("output two receiving", || delivered(&two).len() > 20);
    wait_until("reload logged", || agent.stderr().contains("configuration reloaded"));
    let b_after_reload = delivered(&one).iter().filter(|(s, _)| s == "b").count();

    // An invalid file is refused and the running config keeps going.
    std::fs::write(dir.path().join("agent.toml"), format!("{base}bogus = 1\n")).unwrap();
    agent.signal("HUP");
    wait_until("invalid file refused", || agent.stderr().contains("new configuration rejected"));
    let before = delivered(&one).len();
    wait_until("still delivering after the refused reload", || delivered(&one).len() > before + 20);

    let (code, log) = agent.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("bogus"), "the refused file's problem is named: {log}");
    let one_events = delivered(&one);
    let ranges = contiguous(&one_events);
    assert!(ranges.contains_key("a") && ranges.contains_key("b"));
    let b_total = one_events.iter().filter(|(s, _)| s == "b").count();
    assert!(b_total <= b_after_reload + 1, "source b stopped polling after it was removed");
    let two_events = delivered(&two);
    let two_ranges = contiguous(&two_events);
    assert_eq!(two_ranges.keys().collect::<Vec<_>>(), vec!["a"], "a new output gets events journaled from its start");
    // The unchanged source kept running: output two's first event is one
    // output one also has, and both end on the same event.
    assert!(two_ranges["a"].0 > ranges["a"].0);
}

#[test]
fn replay_redelivers_exactly_the_replayed_window() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("[agent]\nstate_dir = \"state\"\n\n{}{}", demo_source("demo", "20/s"), file_output("out"));
    let out = dir.path().join("out.jsonl");
    let agent = Agent::start(dir.path(), &cfg);
    wait_until("first run delivers", || delivered(&out).len() > 60);
    let (code, log) = agent.stop();
    assert_eq!(code, 0, "{log}");
    let first = delivered(&out);
    let (lo, hi) = contiguous(&first)["demo"];

    // Replay from the time of event `from_k` (demo: 2020-01-01 + k/20 s).
    let from_k = lo + (hi - lo) / 2;
    let t = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap()
        + chrono::Duration::milliseconds((from_k * 50) as i64);
    let st = Command::new(BIN)
        .args(["replay", "--source", "demo", "--from", &t.to_rfc3339(), "--config"])
        .arg(dir.path().join("agent.toml"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    std::fs::remove_file(&out).unwrap();

    let agent = Agent::start(dir.path(), &cfg);
    wait_until("replayed window delivered", || delivered(&out).iter().any(|(_, k)| *k > hi + 5));
    let (code, log) = agent.stop();
    assert_eq!(code, 0, "{log}");
    let second = delivered(&out);
    let (lo2, _) = contiguous(&second)["demo"];
    assert_eq!(lo2, from_k, "replay starts exactly at the replayed time, nothing earlier");
}

#[test]
fn sigterm_exits_zero_and_the_next_start_sends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("[agent]\nstate_dir = \"state\"\n\n{}{}", demo_source("demo", "100/s"), file_output("out"));
    let out = dir.path().join("out.jsonl");
    for round in 0..3 {
        let agent = Agent::start(dir.path(), &cfg);
        let before = delivered(&out).len();
        wait_until("delivery", || delivered(&out).len() > before + 50);
        let (code, log) = agent.stop();
        assert_eq!(code, 0, "round {round}: {log}");
        assert!(log.contains("stopped cleanly"), "{log}");
    }
    contiguous(&delivered(&out));
}

#[test]
fn replay_force_while_running_restarts_the_source_from_the_new_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("[agent]\nstate_dir = \"state\"\n\n{}{}", demo_source("demo", "20/s"), file_output("out"));
    let out = dir.path().join("out.jsonl");
    let agent = Agent::start(dir.path(), &cfg);
    wait_until("first events", || delivered(&out).len() > 60);
    let first = delivered(&out);
    let from_k = first[10].1;
    let t = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap()
        + chrono::Duration::milliseconds((from_k * 50) as i64);
    let refused = Command::new(BIN)
        .args(["replay", "--source", "demo", "--from", &t.to_rfc3339(), "--config"])
        .arg(dir.path().join("agent.toml"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "without --force a running agent is not touched");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("another auditrelay is running"));
    let forced = Command::new(BIN)
        .args(["replay", "--force", "--source", "demo", "--from", &t.to_rfc3339(), "--config"])
        .arg(dir.path().join("agent.toml"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    wait_until("replayed events delivered again", || delivered(&out).iter().filter(|(_, k)| *k == from_k).count() == 2);
    let (code, log) = agent.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("replaying"), "{log}");
    let all = delivered(&out);
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, k) in &all {
        *counts.entry(*k).or_default() += 1;
    }
    for (k, n) in &counts {
        if *k < from_k {
            assert_eq!(*n, 1, "evt-{k} before the replayed time is delivered once");
        }
        assert!(*n <= 2, "evt-{k} delivered {n} times");
    }
    let (lo, hi) = (counts.keys().next().copied().unwrap(), counts.keys().last().copied().unwrap());
    assert_eq!(counts.len() as u64, hi - lo + 1, "no gap");
}

/// The syslog output through a crash: SIGKILL mid-stream, restart, and every
/// demo event arrives (ids consecutive per source, duplicates only from the
/// batch in flight).
#[test]
fn syslog_output_survives_sigkill_without_losing_events() {
    use std::io::BufRead;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    // Connections accepted, and those read to their end.
    let conns = std::sync::Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let sink = lines.clone();
    let counts = conns.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (sink, counts) = (sink.clone(), counts.clone());
            counts.0.fetch_add(1, SeqCst);
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(conn).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
                counts.1.fetch_add(1, SeqCst);
            });
        }
    });
    let ks = |lines: &[String]| -> Vec<u64> {
        lines
            .iter()
            .filter_map(|l| l.split_once("{\"@timestamp\"").map(|(_, rest)| format!("{{\"@timestamp\"{rest}")))
            .map(|json| {
                let v: Value = serde_json::from_str(&json).unwrap();
                v["event"]["id"].as_str().unwrap().trim_start_matches("evt-").parse().unwrap()
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[agent]\nstate_dir = \"state\"\n\n{}[[output]]\nname = \"sys\"\ntype = \"syslog\"\naddress = \"{addr}\"\ntransport = \"tcp\"\nframing = \"newline\"\nbatch = {{ max_events = 50, timeout = \"100ms\" }}\n",
        demo_source("demo", "200/s")
    );
    let mut agent = Agent::start(dir.path(), &cfg);
    wait_until("syslog lines", || ks(&lines.lock().unwrap()).len() > 300);
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    let at_kill = ks(&lines.lock().unwrap()).len();
    let agent = Agent::start(dir.path(), &cfg);
    wait_until("delivery after restart", || ks(&lines.lock().unwrap()).len() > at_kill + 300);
    let (code, log) = agent.stop();
    assert_eq!(code, 0, "{log}");
    wait_until("every syslog connection read to its end", || conns.1.load(SeqCst) == conns.0.load(SeqCst));
    let mut all = ks(&lines.lock().unwrap());
    let total = all.len();
    all.sort_unstable();
    all.dedup();
    let dups = total - all.len();
    for w in all.windows(2) {
        assert_eq!(w[1], w[0] + 1, "evt-{} lost after the crash", w[0] + 1);
    }
    assert!(dups <= 50, "at most the batch in flight is sent again: {dups} duplicates");
}
