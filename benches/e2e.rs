//! End-to-end benchmark of the whole process: the release `auditrelay`
//! binary as a child, a fast fake JSON API (pages pre-serialised in memory,
//! so it is never the bottleneck) and a fast fake receiver, all on
//! 127.0.0.1. Reports events/s, MiB/s, CPU seconds per million events and
//! peak RSS for each output, the added latency at a steady 1,000 events/s,
//! the idle cost of 10 sources with nothing new, and many sources in one
//! agent (`many`: catch-up, RSS, idle CPU and file descriptors).
//!
//! ```sh
//! cargo bench --bench e2e                 # everything, 3 runs each, medians
//! cargo bench --bench e2e -- throughput   # only the throughput rows
//! BENCH_SOURCES=100,1000,3000 cargo bench --bench e2e -- many   # many sources in one agent
//! BENCH_EVENTS=500000 BENCH_RUNS=5 BENCH_IDLE_SECS=60 cargo bench --bench e2e
//! BENCH_OUTPUT="HEC, no" cargo bench --bench e2e -- throughput   # one output only
//! BENCH_BIN=/tmp/auditrelay-old cargo bench --bench e2e -- throughput   # another build
//! BENCH_WRAP="perf record -g -o /tmp/agent.data --" BENCH_RUNS=1 cargo bench --bench e2e -- throughput
//! ```

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Datelike;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "common/payload.rs"]
mod payload;
use payload::{event, page_body, source};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------- fake API

#[derive(Clone)]
struct Api {
    pages: Arc<Vec<Bytes>>,
    live: Option<Arc<LiveFeed>>,
    /// Serve this many events in pages of 1,000 built on request (the soak
    /// run: too many to hold in memory).
    generate: Option<usize>,
    /// Requests answered (the many-sources row counts the idle polls).
    requests: Arc<AtomicU64>,
}

/// Events that become visible at a steady rate (latency test).
struct LiveFeed {
    start: Instant,
    start_ts: chrono::DateTime<chrono::Utc>,
    eps: f64,
}

async fn api_audit(State(api): State<Api>, Query(q): Query<HashMap<String, String>>) -> (StatusCode, Bytes) {
    api.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(live) = &api.live {
        let since = q.get("since").and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        let visible = (live.start.elapsed().as_secs_f64() * live.eps) as usize;
        let from = since.map_or(0, |s| {
            let ms = (s.with_timezone(&chrono::Utc) - live.start_ts).num_milliseconds().max(0) as f64;
            (ms * live.eps / 1000.0).ceil() as usize
        });
        let items: Vec<Value> = (from..visible.min(from + 1000))
            .map(|i| event(i, live.start_ts + chrono::Duration::microseconds((i as f64 * 1e6 / live.eps) as i64)))
            .collect();
        let body = serde_json::to_vec(&json!({"data": {"items": items}, "next_cursor": null})).unwrap_or_default();
        return (StatusCode::OK, body.into());
    }
    let page: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    // A new poll from a cursor past the history's start: nothing new (the
    // history starts at 2025-01-01; the first poll asks from 2024-12-31).
    let since = q.get("since").and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    if !q.contains_key("cursor") && since.is_some_and(|s| s.year() >= 2025) {
        return (StatusCode::OK, Bytes::from_static(b"{\"data\":{\"items\":[]},\"next_cursor\":null}"));
    }
    if let Some(total) = api.generate {
        return (StatusCode::OK, page_body(page * 1000, (page * 1000 + 1000).min(total), total, page).into());
    }
    match api.pages.get(page) {
        Some(b) => (StatusCode::OK, b.clone()),
        None => (StatusCode::OK, Bytes::from_static(b"{\"data\":{\"items\":[]},\"next_cursor\":null}")),
    }
}

fn prebuild_pages(n: usize, page_size: usize) -> (Vec<Bytes>, u64) {
    let mut pages = Vec::new();
    let mut bytes = 0u64;
    let mut i = 0;
    while i < n {
        let end = (i + page_size).min(n);
        let body = page_body(i, end, n, pages.len());
        bytes += body.len() as u64;
        pages.push(Bytes::from(body));
        i = end;
    }
    (pages, bytes)
}

// ---------------------------------------------------------------- fake receivers

#[derive(Default)]
struct Received {
    events: AtomicU64,
    ack_ids: AtomicU64,
    latencies_ms: Mutex<Vec<f64>>,
    track_latency: bool,
}

impl Received {
    fn note(&self, lines: &[u8]) {
        let n = lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() as u64;
        if self.track_latency {
            let now = chrono::Utc::now();
            let mut lat = self.latencies_ms.lock().unwrap();
            for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if let Ok(v) = serde_json::from_slice::<Value>(line) {
                    let t = v["time"].as_f64().unwrap_or(0.0);
                    lat.push(now.timestamp_micros() as f64 / 1000.0 - t * 1000.0);
                }
            }
        }
        self.events.fetch_add(n, Ordering::Relaxed);
    }
}

async fn hec_event(State(r): State<Arc<Received>>, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let raw = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut out = Vec::new();
        let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out);
        out
    } else {
        body.to_vec()
    };
    r.note(&raw);
    let id = r.ack_ids.fetch_add(1, Ordering::Relaxed);
    Json(json!({"text": "Success", "code": 0, "ackId": id}))
}

async fn hec_ack(body: Bytes) -> Json<Value> {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let acks: serde_json::Map<String, Value> =
        v["acks"].as_array().into_iter().flatten().map(|id| (id.to_string(), Value::Bool(true))).collect();
    Json(json!({ "acks": acks }))
}

/// The fake API serving pre-serialised pages, its base URL.
async fn serve_api(pages: Vec<Bytes>) -> String {
    serve_counted_api(pages, Arc::default()).await
}

/// [`serve_api`], counting the requests it answers into `requests`.
async fn serve_counted_api(pages: Vec<Bytes>, requests: Arc<AtomicU64>) -> String {
    serve(Router::new().route("/audit", get(api_audit)).with_state(Api {
        pages: Arc::new(pages),
        live: None,
        generate: None,
        requests,
    }))
    .await
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn tcp_sink(r: Arc<Received>) -> String {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let r = r.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        // newline framing: one message per line
                        Ok(n) => r
                            .events
                            .fetch_add(buf[..n].iter().filter(|b| **b == b'\n').count() as u64, Ordering::Relaxed),
                    };
                }
            });
        }
    });
    addr.to_string()
}

// ---------------------------------------------------------------- the agent

struct Agent {
    child: Child,
    _dir: tempfile::TempDir,
}

/// The release binary, built first; `BENCH_BIN` names another one instead
/// (to compare two builds in one sitting).
fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("BENCH_BIN") {
        return PathBuf::from(bin);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status =
        Command::new(env!("CARGO")).args(["build", "--release", "--quiet"]).current_dir(root).status().unwrap();
    assert!(status.success());
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    target.join("release/auditrelay")
}

impl Agent {
    fn start(bin: &Path, config: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config
            .replace("STATE_DIR", &dir.path().join("state").display().to_string())
            .replace("OUT_DIR", &dir.path().display().to_string());
        std::fs::write(dir.path().join("agent.toml"), cfg).unwrap();
        // BENCH_WRAP="perf record -g -o /tmp/agent.data --" profiles the agent alone.
        let wrap: Vec<String> =
            std::env::var("BENCH_WRAP").unwrap_or_default().split_whitespace().map(str::to_owned).collect();
        let mut cmd = match wrap.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(dir.path().join("agent.toml"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Agent { child, _dir: dir }
    }

    /// (user + system CPU seconds, peak RSS in KiB) from /proc.
    fn usage(&self) -> (f64, u64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let cpu = (ticks(11) + ticks(12)) / 100.0; // utime, stime (fields 14, 15) in clock ticks
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (cpu, hwm)
    }

    /// Open file descriptors (entries of /proc/PID/fd).
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }

    fn rss_now(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SIGINT first so a wrapping profiler writes its data.
        let _ = Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Row {
    name: String,
    eps: f64,
    mibs: f64,
    cpu_per_m: f64,
    rss_mib: f64,
}

async fn throughput(
    bin: &Path,
    name: &str,
    output: &str,
    received: Arc<Received>,
    api: &str,
    n: usize,
    api_bytes: u64,
) -> Row {
    run_to_count(bin, name, &source("bench", api), output, received, n, api_bytes, |_, _| {}).await
}

/// The agent's config file with `sources` and `output` (`BENCH_JOURNAL`
/// sets `max_journal_size`, default 1 GiB).
fn agent_config(sources: &str, output: &str) -> String {
    let journal = std::env::var("BENCH_JOURNAL").unwrap_or_else(|_| "1GiB".into());
    format!(
        r#"[agent]
state_dir = "STATE_DIR"
max_journal_size = "{journal}"
log_level = "warn"

{sources}
{output}
"#
    )
}

/// Run the agent with `sources` and `output` until `n` events arrived;
/// `sample(events so far, RSS KiB)` is called every 20 ms.
#[allow(clippy::too_many_arguments)]
async fn run_to_count(
    bin: &Path,
    name: &str,
    sources: &str,
    output: &str,
    received: Arc<Received>,
    n: usize,
    api_bytes: u64,
    mut sample: impl FnMut(u64, u64),
) -> Row {
    received.events.store(0, Ordering::Relaxed);
    let mut agent = Agent::start(bin, &agent_config(sources, output));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(600.max(n as u64 / 5_000));
    let mut peak = 0;
    while (received.events.load(Ordering::Relaxed) as usize) < n {
        assert!(
            Instant::now() < deadline,
            "{name}: only {} of {n} events arrived",
            received.events.load(Ordering::Relaxed)
        );
        if let Ok(Some(status)) = agent.child.try_wait() {
            panic!("{name}: the agent exited early with {status}");
        }
        peak = peak.max(agent.usage().1);
        sample(received.events.load(Ordering::Relaxed), agent.rss_now());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let (cpu, hwm) = agent.usage();
    drop(agent);
    Row {
        name: name.into(),
        eps: n as f64 / secs,
        mibs: api_bytes as f64 / secs / (1 << 20) as f64,
        cpu_per_m: cpu / (n as f64 / 1e6),
        rss_mib: hwm.max(peak) as f64 / 1024.0,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    let n = env_usize("BENCH_EVENTS", 200_000);
    let runs = env_usize("BENCH_RUNS", 3);
    let bin = binary();
    println!("auditrelay e2e benchmark: {n} events per run, median of {runs} runs, binary {}", bin.display());

    if "throughput".contains(&filter) || filter.is_empty() {
        let (pages, api_bytes) = prebuild_pages(n, 1000);
        let api = serve_api(pages).await;
        let received = Arc::new(Received::default());
        let hec = fast_hec(received.clone()).await;
        let tcp = tcp_sink(received.clone()).await;
        let in_flight = env_usize("BENCH_IN_FLIGHT", 4);
        let hec_out = |ack: bool| {
            format!("[[output]]\nname = \"hec\"\ntype = \"splunk_hec\"\nurl = \"{hec}\"\ntoken = \"bench\"\nack = {ack}\nmax_in_flight = {in_flight}\nbatch = {{ max_events = 1000, max_bytes = \"2MiB\", timeout = \"1s\" }}\n")
        };
        let mut variants: Vec<(&str, String)> = vec![("HEC, no acks", hec_out(false)), ("HEC, acks", hec_out(true))];
        variants.push((
            "syslog TCP (newline)",
            format!("[[output]]\nname = \"sys\"\ntype = \"syslog\"\naddress = \"{tcp}\"\ntransport = \"tcp\"\nframing = \"newline\"\nbatch = {{ max_events = 1000, timeout = \"1s\" }}\n"),
        ));
        let file_received = received.clone();
        println!("\n| output | events/s | MiB/s (API bytes) | CPU s per 1M events | peak RSS MiB |\n| --- | ---: | ---: | ---: | ---: |");
        let only = std::env::var("BENCH_OUTPUT").unwrap_or_default();
        variants.retain(|(name, _)| name.contains(only.as_str()));
        for (name, out) in &variants {
            let mut rows = Vec::new();
            for _ in 0..runs {
                rows.push(throughput(&bin, name, out, received.clone(), &api, n, api_bytes).await);
            }
            print_row(rows);
        }
        // File output: count lines as they land.
        let mut rows = Vec::new();
        for _ in 0..if "file".contains(only.as_str()) { runs } else { 0 } {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out.jsonl");
            let watcher = {
                let (p, r) = (path.clone(), file_received.clone());
                tokio::spawn(async move {
                    loop {
                        let lines = std::fs::read(&p).map(|b| b.iter().filter(|c| **c == b'\n').count()).unwrap_or(0);
                        r.events.store(lines as u64, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                })
            };
            let out = format!("[[output]]\nname = \"file\"\ntype = \"file\"\npath = \"{}\"\nbatch = {{ max_events = 1000, timeout = \"1s\" }}\n", path.display());
            rows.push(throughput(&bin, "file", &out, file_received.clone(), &api, n, api_bytes).await);
            watcher.abort();
        }
        if !rows.is_empty() {
            print_row(rows);
        }
    }

    if "scale".contains(&filter) || filter.is_empty() {
        scale(&bin, runs).await;
    }
    if "many".contains(&filter) || filter.is_empty() {
        many(&bin).await;
    }
    // Minutes long: only when asked for by name.
    if filter == "soak" {
        soak(&bin).await;
    }
    if "latency".contains(&filter) || filter.is_empty() {
        latency(&bin).await;
    }
    if "idle".contains(&filter) || filter.is_empty() {
        idle(&bin).await;
    }
}

fn print_row(rows: Vec<Row>) {
    let name = rows[0].name.clone();
    println!(
        "| {name} | {:.0} | {:.1} | {:.2} | {:.1} |",
        median(rows.iter().map(|r| r.eps).collect()),
        median(rows.iter().map(|r| r.mibs).collect()),
        median(rows.iter().map(|r| r.cpu_per_m).collect()),
        median(rows.iter().map(|r| r.rss_mib).collect()),
    );
}

/// Added latency (API visible → HEC received) at a steady 1,000 events/s.
async fn latency(bin: &Path) {
    let secs = env_usize("BENCH_LATENCY_SECS", 20);
    let live = Arc::new(LiveFeed { start: Instant::now(), start_ts: chrono::Utc::now(), eps: 1000.0 });
    let api = serve(Router::new().route("/audit", get(api_audit)).with_state(Api {
        pages: Arc::new(Vec::new()),
        live: Some(live),
        generate: None,
        requests: Arc::default(),
    }))
    .await;
    let received = Arc::new(Received { track_latency: true, ..Default::default() });
    let hec = serve(
        Router::new()
            .route("/services/collector/event", post(hec_event))
            .route("/services/collector/ack", post(hec_ack))
            .route("/services/collector/health", get(|| async { Json(json!({"code": 17})) }))
            .with_state(received.clone()),
    )
    .await;
    let config = format!(
        r#"[agent]
state_dir = "STATE_DIR"
log_level = "warn"
[[source]]
name = "live"
type = "http_json"
url = "{api}/audit"
events = "/data/items"
id = "/id"
timestamp = "/created_at"
params = {{ since = "{{{{cursor}}}}" }}
page_size = 1000
start_at = "1s"
interval = "200ms"
[[output]]
name = "hec"
type = "splunk_hec"
url = "{hec}"
token = "bench"
batch = {{ max_events = 500, timeout = "1s" }}
"#
    );
    let agent = Agent::start(bin, &config);
    tokio::time::sleep(Duration::from_secs(secs as u64)).await;
    drop(agent);
    let lat = std::mem::take(&mut *received.latencies_ms.lock().unwrap());
    // Skip the first 2 s of warm-up.
    let mut steady: Vec<f64> = lat.into_iter().skip(2000).collect();
    if steady.is_empty() {
        println!("\nlatency: no events measured");
        return;
    }
    steady.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p = |q: f64| steady[((steady.len() - 1) as f64 * q) as usize];
    println!(
        "\nadded latency at 1,000 events/s (poll interval 200ms, batch.timeout 1s, {} events over {secs}s): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        steady.len(),
        p(0.5),
        p(0.99),
        steady.last().unwrap()
    );
}

/// RSS and CPU of 10 sources polling every 60 s with nothing new.
async fn idle(bin: &Path) {
    let secs = env_usize("BENCH_IDLE_SECS", 300);
    let (pages, _) = prebuild_pages(0, 1);
    let api = serve_api(pages).await;
    let mut config = String::from("[agent]\nstate_dir = \"STATE_DIR\"\nlog_level = \"warn\"\n");
    for i in 0..10 {
        config.push_str(&format!(
            "[[source]]\nname = \"s{i}\"\ntype = \"http_json\"\nurl = \"{api}/audit\"\nevents = \"/data/items\"\ntimestamp = \"/created_at\"\ninterval = \"60s\"\n"
        ));
    }
    config.push_str("[[output]]\nname = \"file\"\ntype = \"file\"\npath = \"OUT_DIR/out.jsonl\"\n");
    let agent = Agent::start(bin, &config);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (cpu0, _) = agent.usage();
    tokio::time::sleep(Duration::from_secs(secs as u64)).await;
    let (cpu1, _) = agent.usage();
    let rss = agent.rss_now();
    println!(
        "\nidle, 10 sources polling every 60s, nothing new, over {secs}s: RSS {:.1} MiB, CPU {:.3} % of one core",
        rss as f64 / 1024.0,
        (cpu1 - cpu0) / secs as f64 * 100.0
    );
}

/// A fake HEC (no acks) counting into `received`.
async fn fast_hec(received: Arc<Received>) -> String {
    serve(
        Router::new()
            .route("/services/collector/event", post(hec_event))
            .route("/services/collector/ack", post(hec_ack))
            .route("/services/collector/health", get(|| async { Json(json!({"code": 17})) }))
            .with_state(received),
    )
    .await
}

fn hec_block(hec: &str) -> String {
    format!("[[output]]\nname = \"hec\"\ntype = \"splunk_hec\"\nurl = \"{hec}\"\ntoken = \"bench\"\nbatch = {{ max_events = 1000, max_bytes = \"2MiB\", timeout = \"1s\" }}\n")
}

/// 100 sources in one agent, each catching up on its own copy of the
/// history (`BENCH_SCALE_EVENTS` per source), to HEC without acks.
async fn scale(bin: &Path, runs: usize) {
    let per = env_usize("BENCH_SCALE_EVENTS", 2_000);
    let (pages, bytes) = prebuild_pages(per, 1000);
    let api = serve_api(pages).await;
    let received = Arc::new(Received::default());
    let hec = fast_hec(received.clone()).await;
    let sources: String = (0..100).map(|i| source(&format!("s{i:03}"), &api)).collect();
    let name = format!("100 sources × {per} events, HEC no acks");
    let mut rows = Vec::new();
    for _ in 0..runs {
        rows.push(
            run_to_count(bin, &name, &sources, &hec_block(&hec), received.clone(), per * 100, bytes * 100, |_, _| {})
                .await,
        );
    }
    println!("\n| scale | events/s | MiB/s (API bytes) | CPU s per 1M events | peak RSS MiB |\n| --- | ---: | ---: | ---: | ---: |");
    print_row(rows);
}

/// Many sources in one agent (`BENCH_SOURCES`, default 1, 100, 1,000 and
/// 3,000), each catching up at once on its own copy of a history of
/// `BENCH_MANY_EVENTS` / N events (default 300,000 in all, pages of up to
/// 1,000 pre-serialised), to HEC without acks and without gzip; then the
/// APIs are quiet while every source polls every 30 s. Reports the
/// catch-up rate and CPU per event, peak RSS, the RSS 15 s after the
/// catch-up, the CPU over `BENCH_MANY_IDLE_SECS` (30) of quiet polling
/// (and the polls the fake API answered then) and the agent's open file
/// descriptors. One run per row (`BENCH_RUNS` for the median of more).
async fn many(bin: &Path) {
    let counts: Vec<usize> = std::env::var("BENCH_SOURCES")
        .unwrap_or_else(|_| "1,100,1000,3000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let total = env_usize("BENCH_MANY_EVENTS", 300_000);
    let idle_secs = env_usize("BENCH_MANY_IDLE_SECS", 30) as u64;
    let runs = env_usize("BENCH_RUNS", 1);
    let settle = Duration::from_secs(15);
    let in_flight = env_usize("BENCH_IN_FLIGHT", 4);
    println!("\n| sources × events | catch-up events/s | CPU µs/event | peak RSS MiB | RSS settled MiB (15 s after) | idle CPU % of one core ({idle_secs} s, 30 s interval) | polls answered while idle | open fds peak / settled |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in counts {
        let per = (total / n.max(1)).max(1);
        let (pages, _) = prebuild_pages(per, 1000);
        let requests = Arc::new(AtomicU64::new(0));
        let api = serve_counted_api(pages, requests.clone()).await;
        let received = Arc::new(Received::default());
        let hec = fast_hec(received.clone()).await;
        let output = format!("[[output]]\nname = \"hec\"\ntype = \"splunk_hec\"\nurl = \"{hec}\"\ntoken = \"bench\"\ncompression = false\nmax_in_flight = {in_flight}\nbatch = {{ max_events = 1000, max_bytes = \"2MiB\", timeout = \"1s\" }}\n");
        let sources: String = (0..n)
            .map(|i| source(&format!("s{i:05}"), &api).replace("interval = \"1s\"", "interval = \"30s\""))
            .collect();
        let config = agent_config(&sources, &output);
        let mut rows: Vec<[f64; 8]> = Vec::new();
        for _ in 0..runs {
            received.events.store(0, Ordering::Relaxed);
            let want = (n * per) as u64;
            let mut agent = Agent::start(bin, &config);
            let t0 = Instant::now();
            let deadline = t0 + Duration::from_secs(600);
            let (mut peak, mut fds_peak, mut tick) = (0u64, 0usize, 0u64);
            while received.events.load(Ordering::Relaxed) < want {
                assert!(
                    Instant::now() < deadline,
                    "{n} sources: only {} of {want} events arrived",
                    received.events.load(Ordering::Relaxed)
                );
                if let Ok(Some(status)) = agent.child.try_wait() {
                    panic!("{n} sources: the agent exited early with {status}");
                }
                peak = peak.max(agent.usage().1);
                if tick % 5 == 0 {
                    fds_peak = fds_peak.max(agent.fds());
                }
                tick += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let secs = t0.elapsed().as_secs_f64();
            let (cpu, hwm) = agent.usage();
            fds_peak = fds_peak.max(agent.fds());
            tokio::time::sleep(settle).await;
            let settled = agent.rss_now();
            let (cpu0, _) = agent.usage();
            let polls0 = requests.load(Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(idle_secs)).await;
            let (cpu1, hwm1) = agent.usage();
            let polls = requests.load(Ordering::Relaxed) - polls0;
            let fds = agent.fds();
            drop(agent);
            rows.push([
                want as f64 / secs,
                cpu / want as f64 * 1e6,
                hwm.max(peak).max(hwm1) as f64 / 1024.0,
                settled as f64 / 1024.0,
                (cpu1 - cpu0) / idle_secs as f64 * 100.0,
                polls as f64,
                fds_peak as f64,
                fds as f64,
            ]);
        }
        let m = |i: usize| median(rows.iter().map(|r| r[i]).collect());
        println!(
            "| {n} × {per} | {:.0} | {:.1} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} / {:.0} |",
            m(0),
            m(1),
            m(2),
            m(3),
            m(4),
            m(5),
            m(6),
            m(7)
        );
    }
}

/// `BENCH_SOAK_EVENTS` (10 million) events through one agent to HEC
/// without acks, pages built on request; RSS sampled along the way to show
/// it does not grow with the number of events.
async fn soak(bin: &Path) {
    let n = env_usize("BENCH_SOAK_EVENTS", 10_000_000);
    let api = serve(Router::new().route("/audit", get(api_audit)).with_state(Api {
        pages: Arc::new(Vec::new()),
        live: None,
        generate: Some(n),
        requests: Arc::default(),
    }))
    .await;
    let received = Arc::new(Received::default());
    let hec = fast_hec(received.clone()).await;
    // RSS (MiB) at each tenth of the run.
    let mut marks: Vec<f64> = Vec::new();
    let row = run_to_count(bin, "soak", &source("soak", &api), &hec_block(&hec), received, n, 0, |done, rss| {
        while marks.len() < 10 && done as usize >= n / 10 * (marks.len() + 1) {
            marks.push(rss as f64 / 1024.0);
        }
    })
    .await;
    let shown: Vec<String> = marks.iter().map(|m| format!("{m:.0}")).collect();
    println!(
        "\nsoak: {n} events, HEC no acks: {:.0} events/s, peak RSS {:.1} MiB; RSS (MiB) at each tenth: {}",
        row.eps,
        row.rss_mib,
        shown.join(", ")
    );
}
