//! `agent.listen` against stalled clients (issue #24, "the listener cannot
//! starve the agent"): the real binary under `ulimit -n 256`, an `http_json`
//! source into a file output, and 300 connections to `/health` that send
//! half a request line and then nothing. The source's API closes every
//! connection after its answer, so each poll needs a new descriptor. Before
//! the listener had a connection cap and a header-read timeout, it accepted
//! every stalled connection: the source's polls then failed with "Too many
//! open files" and `/health` never answered.

use crate::common::agent::{
    file_ids, file_output, retry_spawn, tail, wait_until_or, TestDir, BIN, DEADLINE, EXIT_POLL,
};
use crate::common::rsyslog::free_tcp_port;
use crate::common::Server;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The agent's descriptor limit (soft and hard).
const NOFILE: u32 = 256;
/// Stalled connections held open: more than the agent has descriptors.
const STALLED: usize = 300;
/// How soon after the stalled connections opened a fresh client gets its
/// `/health` answer. Each batch of stalled connections the listener takes
/// in is dropped at its header-read timeout, so the fresh client waits
/// for about `STALLED / cap` timeouts (4 x 2 s with the shipped values).
const HEALTH_WITHIN: Duration = Duration::from_secs(15);
/// Events that must reach the file while the stalled connections are held
/// (the source polls every 200 ms and gets one new event each time).
const MORE_EVENTS: usize = 10;

/// `auditrelay run` under `ulimit -n NOFILE`, stderr to a log; killed on
/// drop.
struct Limited {
    child: Child,
    log: PathBuf,
}

impl Limited {
    fn start(dir: &TestDir) -> Limited {
        let log = dir.file("stderr-0.log");
        let child = retry_spawn(|| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("ulimit -n {NOFILE} && exec \"$0\" \"$@\""))
                .arg(BIN)
                .args(["run", "--config"])
                .arg(dir.config_path())
                .env_remove("RUST_LOG")
                .env_remove("CREDENTIALS_DIRECTORY")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()
        });
        Limited { child, log }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// The descriptor limit the agent runs with, from `/proc`.
    fn nofile(&self) -> Option<u32> {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    }

    /// SIGTERM; the exit code, or a panic with the log after `DEADLINE`.
    fn stop(mut self) -> Option<i32> {
        let ok = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("kill");
        assert!(ok.success(), "kill -TERM failed");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code();
            }
            assert!(Instant::now() < deadline, "agent did not exit within {DEADLINE:?}\n{}", self.stderr());
            std::thread::sleep(EXIT_POLL);
        }
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET path` (HTTP/1.0: the server closes after the answer), waiting at
/// most `timeout` for the whole exchange: the status, or `None`.
fn http_status(addr: &str, path: &str, timeout: Duration) -> Option<u16> {
    if timeout.is_zero() {
        return None;
    }
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    resp.split(' ').nth(1)?.parse().ok()
}

/// An audit API that answers every request with one new event, 1 ms after
/// the window's start (`since`, so the source keeps it), and closes the
/// connection (`Connection: close`): every poll opens a new socket.
fn closing_api() -> Server {
    async fn audit(
        State(next): State<Arc<AtomicU64>>,
        Query(q): Query<HashMap<String, String>>,
    ) -> axum::response::Response {
        let Some(since) = q.get("since").and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok()) else {
            return (axum::http::StatusCode::BAD_REQUEST, "since must be an RFC 3339 time").into_response();
        };
        let k = next.fetch_add(1, Ordering::SeqCst);
        let at = since.with_timezone(&chrono::Utc) + chrono::Duration::milliseconds(1);
        let event = json!({
            "id": format!("tick-{k:06}"),
            "created_at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "action": "login",
        });
        ([("connection", "close")], Json(json!({ "data": { "items": [event] } }))).into_response()
    }
    let router = axum::Router::new().route("/audit", axum::routing::get(audit)).with_state(Arc::new(AtomicU64::new(1)));
    Server::start(router)
}

fn events(file: &Path) -> usize {
    file_ids(file).len()
}

#[test]
fn stalled_connections_to_the_listener_do_not_starve_the_source_or_health() {
    let _turn = crate::common::exclusive("security::listener");
    let dir = TestDir::new();
    let listen = format!("127.0.0.1:{}", free_tcp_port());
    let file = dir.file("events.jsonl");
    let api = closing_api();
    dir.write_config(&format!(
        "{}[[source]]\nname = \"api\"\ntype = \"http_json\"\nurl = \"{}/audit\"\nevents = \"/data/items\"\nid = \"/id\"\n\
         timestamp = \"/created_at\"\nparams = {{ since = \"{{{{cursor}}}}\" }}\ninterval = \"200ms\"\nlag = \"0s\"\nlookback = \"0s\"\nstart_at = \"1h\"\noutputs = [\"file\"]\n\n{}",
        dir.agent_section_with(&format!("listen = \"{listen}\"")),
        api.url(),
        file_output("file", &file, 100),
    ));
    let mut agent = Limited::start(&dir);
    wait_until_or(
        "the agent delivering and healthy",
        DEADLINE,
        || events(&file) > 0 && http_status(&listen, "/health", Duration::from_secs(5)) == Some(200),
        || tail(&agent.stderr(), 40),
    );
    assert_eq!(agent.nofile(), Some(NOFILE), "the agent does not run under ulimit -n {NOFILE}");

    // Half a request line each, then silence; held until the end.
    let stalled: Vec<TcpStream> = (0..STALLED)
        .map(|i| {
            let mut s = TcpStream::connect(&listen).unwrap_or_else(|e| panic!("stalled connection {i}: {e}"));
            s.write_all(b"GET /hea").unwrap_or_else(|e| panic!("stalled connection {i}: {e}"));
            s
        })
        .collect();
    let flood = Instant::now();

    let before = events(&file);
    wait_until_or(
        &format!("{MORE_EVENTS} more events in the file while {STALLED} stalled connections are open"),
        DEADLINE,
        || events(&file) >= before + MORE_EVENTS,
        || format!("{} events, {before} before the stalled connections\n{}", events(&file), tail(&agent.stderr(), 40)),
    );

    let deadline = flood + HEALTH_WITHIN;
    wait_until_or(
        &format!("/health 200 on a fresh connection within {HEALTH_WITHIN:?} of {STALLED} stalled ones"),
        HEALTH_WITHIN,
        || http_status(&listen, "/health", deadline.saturating_duration_since(Instant::now())) == Some(200),
        || tail(&agent.stderr(), 40),
    );
    eprintln!("/health answered {:?} after the stalled connections opened", flood.elapsed());
    let after_health = events(&file);
    wait_until_or(
        "events still arriving after /health answered",
        DEADLINE,
        || events(&file) > after_health,
        || tail(&agent.stderr(), 40),
    );

    assert!(agent.running(), "the agent stopped:\n{}", agent.stderr());
    let log = agent.stderr();
    assert!(!log.contains("Too many open files"), "the agent ran out of descriptors:\n{}", tail(&log, 40));
    drop(stalled);
    assert_eq!(agent.stop(), Some(0), "the agent did not exit 0 after SIGTERM:\n{log}");
}
