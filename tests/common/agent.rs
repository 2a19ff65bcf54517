//! Running the agent: the real binary as a child process ([`Agent`]), or
//! in-process through `auditrelay::pipeline::run` ([`InProcess`]); a temp
//! directory holding the config, the state and the logs ([`TestDir`]);
//! config snippets; and poll-until helpers.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_auditrelay");

/// The usual deadline for something the agent should do promptly.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often the poll-until helpers ([`wait_until`], the fakes' and tools'
/// wait loops) look again. A wait is needed between looks only so as not
/// to spin: every such loop ends on its condition or at its deadline.
pub const POLL: Duration = Duration::from_millis(50);

/// How often [`Agent::wait`] and the other exit waits look at the child: an
/// exit is timed (`Exit::took`), so finer than [`POLL`].
pub const EXIT_POLL: Duration = Duration::from_millis(20);

/// Between two attempts to start the binary while a concurrent build
/// replaces it ([`retry_spawn`]): nothing to poll but the next attempt.
const SPAWN_RETRY: Duration = Duration::from_millis(200);

/// How often [`InProcess::start`] looks whether the agent is ready.
const READY_POLL: Duration = Duration::from_millis(10);

/// Poll `f` every [`POLL`] until it is true; panic naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, f: impl FnMut() -> bool) {
    wait_until_or(what, timeout, f, String::new);
}

/// [`wait_until`], adding `context()` (a log, what arrived) to the panic.
pub fn wait_until_or(what: &str, timeout: Duration, mut f: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}\n{}", context());
        }
        std::thread::sleep(POLL);
    }
}

/// A temp directory with the config (`agent.toml`), the state (`state/`,
/// or elsewhere: [`TestDir::with_state_dir`]), output files and the
/// agent's stderr logs.
pub struct TestDir {
    tmp: tempfile::TempDir,
    /// `agent.state_dir` when it is not `state/` in here (on another file
    /// system, e.g. a LazyFS mount).
    state: Option<PathBuf>,
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDir {
    /// A fresh directory.
    pub fn new() -> TestDir {
        TestDir { tmp: tempfile::tempdir().expect("tempdir"), state: None }
    }

    /// A fresh directory whose config puts the state at `state` instead.
    pub fn with_state_dir(state: &Path) -> TestDir {
        TestDir { state: Some(state.to_owned()), ..TestDir::new() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// A file in it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.file("agent.toml")
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.state.clone().unwrap_or_else(|| self.file("state"))
    }

    /// The agent's stderr logs, one per start, in order.
    pub fn logs(&self) -> Vec<PathBuf> {
        (0..).map(|i| self.file(&format!("stderr-{i}.log"))).take_while(|p| p.exists()).collect()
    }

    /// `[agent]` with the state here, host name `relay-test` and a 5 s
    /// shutdown timeout.
    pub fn agent_section(&self) -> String {
        self.agent_section_with("")
    }

    /// [`TestDir::agent_section`] plus more `[agent]` keys.
    pub fn agent_section_with(&self, extra: &str) -> String {
        let mut s = format!("[agent]\nstate_dir = \"{}\"\nhostname = \"relay-test\"\n", self.state_dir().display());
        if !extra.contains("shutdown_timeout") {
            s.push_str("shutdown_timeout = \"5s\"\n");
        }
        s.push_str(extra);
        s.push('\n');
        s
    }

    /// Write the config file.
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// Run a subcommand to completion: `auditrelay ARGS --config agent.toml`.
    pub fn cli(&self, args: &[&str]) -> Output {
        retry_spawn(|| command(args).arg("--config").arg(self.config_path()).output())
    }

    /// `status --json`, parsed; panics unless it exits 0.
    pub fn status_json(&self) -> Value {
        let out = self.cli(&["status", "--json"]);
        assert!(out.status.success(), "status --json failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// `status --json`, parsed, or `None` when it fails (just after a start
    /// the running agent may not have written its first snapshot yet).
    pub fn try_status_json(&self) -> Option<Value> {
        let out = self.cli(&["status", "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `check --connect` on the config file: its exit code and its stdout
    /// and stderr together.
    pub fn check_connect(&self) -> (Option<i32>, String) {
        let out = self.cli(&["check", "--connect"]);
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    }

    /// Source `i`'s last error in `status --json` ("" while there is none
    /// or no status yet).
    pub fn last_error(&self, i: usize) -> String {
        let status = self.try_status_json().unwrap_or_default();
        status["sources"][i]["last_error"].as_str().unwrap_or_default().to_owned()
    }

    /// Start the binary with the config file as it is.
    pub fn start(&self) -> Agent {
        Agent::start(self)
    }

    /// Write the config and start the binary.
    pub fn start_with(&self, config: &str) -> Agent {
        self.write_config(config);
        Agent::start(self)
    }
}

/// `auditrelay ARGS` with a clean environment for logging and secrets.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("RUST_LOG").env_remove("NOT_SET_VAR").env_remove("CREDENTIALS_DIRECTORY");
    c
}

/// Start a process, retrying for a few seconds while the binary is being
/// replaced ("text file busy", or briefly missing) by a concurrent build.
pub fn retry_spawn<T>(mut f: impl FnMut() -> std::io::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e)
                if Instant::now() < deadline
                    && (e.raw_os_error() == Some(26) || e.kind() == std::io::ErrorKind::NotFound) =>
            {
                std::thread::sleep(SPAWN_RETRY);
            }
            Err(e) => panic!("cannot run {BIN}: {e}"),
        }
    }
}

/// How a stopped agent ended.
#[derive(Debug)]
pub struct Exit {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// From the signal to the exit.
    pub took: Duration,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// The binary running `run --config agent.toml`, stderr to a log file.
pub struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    /// Start `auditrelay run` on the directory's config.
    pub fn start(dir: &TestDir) -> Agent {
        Agent::spawn(dir, |_| {})
    }

    /// [`Agent::start`] as another user (the service's user, when the
    /// tests run as root).
    pub fn start_as(dir: &TestDir, uid: u32, gid: u32) -> Agent {
        use std::os::unix::process::CommandExt;
        Agent::spawn(dir, |c| {
            c.uid(uid).gid(gid);
        })
    }

    fn spawn(dir: &TestDir, adapt: impl Fn(&mut Command)) -> Agent {
        let n = (0..).find(|i| !dir.file(&format!("stderr-{i}.log")).exists()).unwrap_or(0);
        let log = dir.file(&format!("stderr-{n}.log"));
        let child = retry_spawn(|| {
            let mut c = command(&["run", "--config"]);
            adapt(&mut c);
            c.arg(dir.config_path())
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()
        });
        Agent { child, log }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal by name (`TERM`, `HUP`, `INT`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().expect("kill");
        assert!(ok.success(), "kill -{sig} failed");
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Wait for it to exit on its own.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    /// SIGTERM, then wait up to `timeout` for the exit (panics if it does not
    /// exit by then).
    pub fn terminate(mut self, timeout: Duration) -> Exit {
        let t0 = Instant::now();
        self.signal("TERM");
        let st = self.wait(timeout);
        let took = t0.elapsed();
        let stderr = self.stderr();
        match st {
            Some(st) => Exit { code: st.code(), took, stderr },
            None => panic!("agent did not exit within {timeout:?} of SIGTERM\n{stderr}"),
        }
    }

    /// SIGTERM and expect exit code 0 within 30 s; returns stderr.
    pub fn stop(self) -> String {
        let exit = self.terminate(DEADLINE);
        assert_eq!(exit.code, Some(0), "agent did not exit 0 after SIGTERM:\n{}", exit.stderr);
        exit.stderr
    }

    /// SIGKILL (no chance to commit or flush anything more) and reap.
    pub fn kill(mut self) -> String {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
        self.stderr()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The agent in this process: `pipeline::run` on its own runtime thread,
/// with a cancellation token for shutdown. No logging is set up.
pub struct InProcess {
    shutdown: tokio_util::sync::CancellationToken,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    reload: tokio::sync::mpsc::Sender<Result<auditrelay::config::Config, Vec<auditrelay::config::Problem>>>,
}

impl InProcess {
    /// Parse `config` and run it; returns once every source and output has
    /// started.
    pub fn start(config: &str) -> InProcess {
        use auditrelay::pipeline::{run, Runtime};
        let cfg = auditrelay::config::parse(config).unwrap_or_else(|p| panic!("invalid test config: {p:?}"));
        let state = Arc::new(auditrelay::state::State::open(&cfg.agent.state_dir).expect("open state"));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (reload, reload_rx) = tokio::sync::mpsc::channel(4);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let rt = Runtime {
            state,
            metrics: Arc::new(auditrelay::telemetry::metrics::Metrics::default()),
            clock: auditrelay::sources::poller::system_clock(),
            env: Arc::new(auditrelay::settings::secret::ProcessEnv),
            shutdown: shutdown.clone(),
            reload: reload_rx,
            ready: Some(ready_tx),
        };
        let thread = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            runtime.block_on(run(cfg, rt)).map_err(|e| e.to_string())
        });
        let mut agent = InProcess { shutdown, thread: Some(thread), reload };
        let deadline = Instant::now() + DEADLINE;
        let mut ready_rx = ready_rx;
        loop {
            match ready_rx.try_recv() {
                Ok(()) => break,
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    let err = agent.thread.take().map(|t| t.join());
                    panic!("in-process agent stopped before it was ready: {err:?}");
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                    assert!(Instant::now() < deadline, "in-process agent not ready within {DEADLINE:?}");
                    std::thread::sleep(READY_POLL);
                }
            }
        }
        agent
    }

    /// Hand it a new configuration, as SIGHUP would.
    pub fn reload(&self, config: &str) {
        let parsed = auditrelay::config::parse(config);
        self.reload.blocking_send(parsed).expect("agent running");
    }

    /// Cancel and wait for `run` to return.
    pub fn stop(mut self) -> Result<(), String> {
        self.shutdown.cancel();
        self.thread.take().expect("running").join().expect("agent thread panicked")
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A `splunk_hec` output, as TOML.
#[derive(Debug, Clone)]
pub struct HecOutput {
    /// Output name.
    pub name: String,
    /// Collector base URL.
    pub url: String,
    /// HEC token.
    pub token: String,
    /// Indexer acknowledgement.
    pub ack: bool,
    /// `ack_timeout`.
    pub ack_timeout: String,
    /// `batch.max_events`.
    pub max_events: usize,
    /// `batch.timeout`.
    pub batch_timeout: String,
    /// More keys, one per line.
    pub extra: String,
}

impl HecOutput {
    /// Defaults: acks on, `ack_timeout = "2s"`, batches of 10 or 200 ms,
    /// index `audit`, sourcetype `auditrelay:test`, `retry_max_interval = "1s"`.
    pub fn new(name: &str, url: &str, token: &str) -> HecOutput {
        HecOutput {
            name: name.into(),
            url: url.into(),
            token: token.into(),
            ack: true,
            ack_timeout: "2s".into(),
            max_events: 10,
            batch_timeout: "200ms".into(),
            extra: String::new(),
        }
    }

    /// The `[[output]]` block.
    pub fn toml(&self) -> String {
        format!(
            "[[output]]\nname = \"{}\"\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"{}\"\nindex = \"audit\"\nsourcetype = \"auditrelay:test\"\nack = {}\nack_timeout = \"{}\"\nretry_max_interval = \"1s\"\nbatch = {{ max_events = {}, timeout = \"{}\" }}\n{}\n",
            self.name, self.url, self.token, self.ack, self.ack_timeout, self.max_events, self.batch_timeout, self.extra
        )
    }
}

/// A `file` output (JSON lines) with batches of at most `max_events` or 200 ms.
pub fn file_output(name: &str, path: &Path, max_events: usize) -> String {
    format!(
        "[[output]]\nname = \"{name}\"\ntype = \"file\"\npath = \"{}\"\nretry_max_interval = \"1s\"\nbatch = {{ max_events = {max_events}, timeout = \"200ms\" }}\n\n",
        path.display()
    )
}

/// The complete lines of a JSON-lines file, parsed (a line still being
/// written is left out).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad JSON line ({e}): {l}", path.display())))
        .collect()
}

/// `event.id` of every event line of a JSON-lines output file, in file
/// order (completeness manifests left out).
pub fn file_ids(path: &Path) -> Vec<String> {
    read_jsonl(path)
        .iter()
        .filter(|v| v.pointer("/auditrelay/manifest").is_none())
        .map(|v| {
            v.pointer("/event/id")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("line without event.id: {v}"))
                .to_owned()
        })
        .collect()
}

/// The last `n` lines of a log, for panic messages.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
