//! Several agents, one fleet: a real 3-member etcd on 127.0.0.1, agents
//! (the real binary) sharing `CLUSTER_SOURCES` (default 30) `http_json`
//! sources of a fake API and one fake HEC. One run walks the scenarios in
//! turn: SIGKILL an agent, SIGTERM an agent, add a fourth, kill one etcd
//! member, kill two of three and bring them back. Throughout, the fake API
//! records every request with the agent that asked (its `User-Agent`)
//! and when; at the end every event must have reached HEC (lost 0), and
//! no two agents may ever have asked the same source's API at
//! overlapping times. Duplicates and times to resume are printed per
//! scenario.
//!
//! Needs `etcd` (Debian `etcd-server`): skipped with a message when it is
//! missing, failed when `CI` is set.

use crate::common;

use axum::extract::{Path as AxPath, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use common::agent::{Agent, HecOutput, TestDir};
use common::hec::{FakeHec, HEC_TOKEN};
use common::rsyslog::{free_tcp_port, tool};
use common::{duplicates, missing, Server};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Short, for a fast suite; long enough that an etcd leader election
/// (0.5–1 s here) does not outlast the renewals' slack.
const TTL: Duration = Duration::from_secs(4);
/// Events added per source, every this often.
const ADD_EVERY: Duration = Duration::from_millis(500);
/// The fake API's scripted time in flight per request, so that two agents'
/// overlapping polls of a source would show in its record.
const IN_FLIGHT: Duration = Duration::from_millis(20);
/// After a scenario, before its duplicates are counted: a re-sent batch
/// lands within a poll or two and a batch timeout. How many there are is
/// what is measured (and the SIGTERM scenario requires none), so there is
/// no condition to wait for: a window.
const SETTLE: Duration = Duration::from_secs(4);
/// How long after a fifth agent joins it is SIGKILLed: the others are
/// handing sources over to it by then. A scripted moment, not a wait.
const KILL_IN_HANDOVER: Duration = Duration::from_millis(2500);
/// How long the steady state with one etcd member down is watched (etcd's
/// writes counted, no source may move): a window, nothing to wait for.
const ONE_MEMBER_DOWN_FOR: Duration = Duration::from_secs(TTL.as_secs() * 2);
/// How long after quorum is lost no agent may poll: `lease_ttl`, then a
/// margin in which a late request would show. A negative check.
const NO_QUORUM_FOR: Duration = Duration::from_secs(TTL.as_secs() + 3);
/// How often the end of the run looks whether the last windows closed.
const WINDOWS_POLL: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------- etcd

struct Member {
    name: String,
    client: u16,
    peer: u16,
    dir: PathBuf,
    child: Option<Child>,
}

struct Etcd {
    bin: PathBuf,
    members: Vec<Member>,
    initial: String,
    /// With a certificate directory (see [`make_certs`]): client URLs are
    /// https and require a client certificate.
    tls: Option<PathBuf>,
}

impl Etcd {
    fn start(bin: PathBuf, dir: &Path, count: usize) -> Etcd {
        Etcd::start_tls(bin, dir, count, None)
    }

    fn start_tls(bin: PathBuf, dir: &Path, count: usize, tls: Option<PathBuf>) -> Etcd {
        let members: Vec<Member> = (0..count)
            .map(|i| Member {
                name: format!("e{i}"),
                client: free_tcp_port(),
                peer: free_tcp_port(),
                dir: dir.join(format!("e{i}")),
                child: None,
            })
            .collect();
        let initial =
            members.iter().map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer)).collect::<Vec<_>>().join(",");
        let mut etcd = Etcd { bin, members, initial, tls };
        for i in 0..count {
            etcd.spawn(i);
        }
        if etcd.tls.is_none() {
            etcd.wait_healthy();
        }
        etcd
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let log = std::fs::File::create(m.dir.with_extension("log")).expect("etcd log");
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let mut cmd = Command::new(&self.bin);
        if let Some(certs) = &self.tls {
            cmd.arg("--cert-file").arg(certs.join("server.pem")).arg("--key-file").arg(certs.join("server.key"));
            cmd.arg("--client-cert-auth").arg("--trusted-ca-file").arg(certs.join("ca.pem"));
        }
        let child = cmd
            .args(["--name", &m.name, "--data-dir"])
            .arg(&m.dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "auditrelay-test", "--heartbeat-interval", "50"])
            .args(["--election-timeout", "500", "--log-level", "warn", "--logger", "zap"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[i].child = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn endpoints(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.members.iter().map(|m| format!("{scheme}://127.0.0.1:{}", m.client)).collect()
    }

    /// Every running member answers /health with a leader.
    fn wait_healthy(&self) {
        let running: Vec<String> =
            self.members.iter().filter(|m| m.child.is_some()).map(|m| format!("127.0.0.1:{}", m.client)).collect();
        common::agent::wait_until("etcd members healthy", Duration::from_secs(30), || {
            running.iter().all(|a| http_get(a, "/health").is_some_and(|b| b.contains("\"true\"")))
        });
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

// ---------------------------------------------------------------- fake API

#[derive(Debug, Clone)]
struct Request {
    source: usize,
    agent: String,
    start: Instant,
    end: Instant,
}

#[derive(Default)]
struct ApiState {
    events: Vec<Vec<(DateTime<Utc>, String)>>,
    requests: Vec<Request>,
    added: usize,
}

type Shared = Arc<Mutex<ApiState>>;

struct Api {
    shared: Shared,
    server: Server,
}

async fn audit(
    AxPath(k): AxPath<usize>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    State(shared): State<Shared>,
) -> Json<Value> {
    let start = Instant::now();
    // Time in flight, so that overlapping polls would show.
    tokio::time::sleep(IN_FLIGHT).await;
    let agent = headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("?").to_owned();
    let since = q
        .get("since")
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::UNIX_EPOCH);
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    let mut s = shared.lock().unwrap();
    let items: Vec<Value> = s
        .events
        .get(k)
        .map(|evs| {
            evs.iter()
                .filter(|(t, _)| *t >= since)
                .take(limit)
                .map(|(t, id)| json!({"id": id, "created_at": t.to_rfc3339_opts(SecondsFormat::Millis, true), "action": "login"}))
                .collect()
        })
        .unwrap_or_default();
    s.requests.push(Request { source: k, agent, start, end: Instant::now() });
    Json(json!({ "data": { "items": items } }))
}

impl Api {
    fn start(n: usize) -> Api {
        let shared: Shared = Arc::new(Mutex::new(ApiState { events: vec![Vec::new(); n], ..Default::default() }));
        let router = Router::new().route("/s/{k}/audit", get(audit)).with_state(shared.clone());
        Api { shared, server: Server::start(router) }
    }
}

/// One new event per source.
fn add_round(shared: &Shared) {
    {
        let mut s = shared.lock().unwrap();
        s.added += 1;
        let round = s.added;
        for (k, evs) in s.events.iter_mut().enumerate() {
            let t = Utc::now();
            let t = DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap();
            evs.push((t, format!("s{k:02}-{round:06}")));
        }
    }
}

impl Api {
    fn ids(&self) -> Vec<String> {
        self.shared.lock().unwrap().events.iter().flatten().map(|(_, id)| id.clone()).collect()
    }

    fn requests(&self) -> Vec<Request> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Source → the agents that asked for it since `t`.
    fn askers_since(&self, t: Instant) -> BTreeMap<usize, BTreeSet<String>> {
        let mut out: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for r in self.requests().into_iter().filter(|r| r.start >= t) {
            out.entry(r.source).or_default().insert(r.agent);
        }
        out
    }

    fn source_block(&self, k: usize) -> String {
        format!(
            r#"[[source]]
name = "s{k:02}"
type = "http_json"
url = "{url}/s/{k}/audit"
events = "/data/items"
id = "/id"
timestamp = "/created_at"
params = {{ since = "{{{{cursor}}}}", limit = "500" }}
interval = "1s"
lag = "0s"
lookback = "0s"
start_at = "1h"
"#,
            url = self.server.url()
        )
    }
}

/// Adds a round of events every [`ADD_EVERY`] until dropped.
struct Adder {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Adder {
    fn start(api: Shared) -> Adder {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                add_round(&api);
                std::thread::sleep(ADD_EVERY);
            }
        });
        Adder { stop, thread: Some(thread) }
    }

    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

// ---------------------------------------------------------------- agents

struct Fleet {
    dirs: Vec<TestDir>,
    agents: Vec<Option<Agent>>,
}

/// The agent's `agent.listen` address, from its config.
fn listen_of(dir: &TestDir) -> String {
    let text = std::fs::read_to_string(dir.config_path()).unwrap();
    let line = text.lines().find(|l| l.starts_with("listen = ")).unwrap();
    line.trim_start_matches("listen = ").trim_matches('"').to_owned()
}

/// A gauge's value in the agent's `/metrics`.
fn gauge(dir: &TestDir, name: &str) -> Option<f64> {
    let text = http_get(&listen_of(dir), "/metrics")?;
    text.lines().find(|l| l.starts_with(&format!("{name} "))).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn agent_name(i: usize) -> String {
    format!("agent-{i}")
}

fn user_agent(i: usize) -> String {
    format!("auditrelay/{} ({})", env!("CARGO_PKG_VERSION"), agent_name(i))
}

fn config(dir: &TestDir, i: usize, etcd: &Etcd, api: &Api, n: usize, hec: &FakeHec) -> String {
    let endpoints: Vec<String> = etcd.endpoints().iter().map(|e| format!("\"{e}\"")).collect();
    let listen = format!("listen = \"127.0.0.1:{}\"\nshutdown_timeout = \"15s\"\n", free_tcp_port());
    let mut text = dir.agent_section_with(&listen);
    text.push_str(&format!(
        "[cluster]\netcd = [{}]\nname = \"{}\"\nlease_ttl = \"{}s\"\nprefix = \"/fleet-test/\"\n\n",
        endpoints.join(", "),
        agent_name(i),
        TTL.as_secs()
    ));
    for k in 0..n {
        text.push_str(&api.source_block(k));
        text.push('\n');
    }
    // Windows close every 2 s, so handovers fall inside them (issue 28).
    let extra = "manifest_interval = \"2s\"".to_owned();
    text.push_str(&HecOutput { extra, ..HecOutput::new("hec", &hec.url(), HEC_TOKEN) }.toml());
    text
}

impl Fleet {
    fn add(&mut self, etcd: &Etcd, api: &Api, n: usize, hec: &FakeHec) -> usize {
        let i = self.dirs.len();
        let dir = TestDir::new();
        dir.write_config(&config(&dir, i, etcd, api, n, hec));
        self.agents.push(Some(Agent::start(&dir)));
        self.dirs.push(dir);
        i
    }

    fn restart(&mut self, i: usize) {
        self.agents[i] = Some(Agent::start(&self.dirs[i]));
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, a) in self.agents.iter().enumerate() {
            if let Some(a) = a {
                out.push_str(&format!("--- agent-{i}\n{}\n", common::agent::tail(&a.stderr(), 25)));
            }
        }
        out
    }

    fn running(&self) -> Vec<usize> {
        (0..self.agents.len()).filter(|i| self.agents[*i].is_some()).collect()
    }
}

/// Wait until, over the last two seconds, every source was asked by
/// exactly one agent and no agent asked more than its fair share.
fn wait_balanced(api: &Api, fleet: &Fleet, n: usize, what: &str) -> BTreeMap<usize, String> {
    let members = fleet.running().len();
    let fair = n.div_ceil(members);
    let t0 = Instant::now();
    let mut last = BTreeMap::new();
    common::agent::wait_until_or(
        what,
        Duration::from_secs(60),
        || {
            let window = Instant::now() - Duration::from_millis(2500);
            if window < t0 {
                return false;
            }
            let askers = api.askers_since(window);
            let mut per_agent: HashMap<String, usize> = HashMap::new();
            let mut owners = BTreeMap::new();
            for k in 0..n {
                match askers.get(&k) {
                    Some(a) if a.len() == 1 => {
                        let who = a.iter().next().unwrap().clone();
                        *per_agent.entry(who.clone()).or_default() += 1;
                        owners.insert(k, who);
                    }
                    _ => return false,
                }
            }
            last = owners;
            per_agent.len() == members && per_agent.values().all(|c| *c <= fair)
        },
        || format!("{:?}\n{}", api.askers_since(Instant::now() - Duration::from_secs(3)), fleet.logs()),
    );
    println!("  {what}: balanced after {:?} ({members} agents, fair share {fair})", t0.elapsed());
    last
}

/// Time from `t` until every source in `sources` was asked by an agent
/// other than `gone`.
fn wait_resumed(api: &Api, fleet: &Fleet, sources: &[usize], gone: &str, t: Instant, what: &str) -> Duration {
    let mut took = Duration::ZERO;
    common::agent::wait_until_or(
        what,
        Duration::from_secs(60),
        || {
            let reqs = api.requests();
            let mut worst = Duration::ZERO;
            for k in sources {
                match reqs.iter().find(|r| r.source == *k && r.start > t && r.agent != gone) {
                    Some(r) => worst = worst.max(r.start - t),
                    None => return false,
                }
            }
            took = worst;
            true
        },
        || fleet.logs(),
    );
    took
}

fn dup_count(hec: &FakeHec) -> usize {
    duplicates(&hec.event_ids()).values().map(|c| c - 1).sum()
}

/// No two agents asked the same source's API at overlapping times
/// (`check --connect`, which names no agent, probes every source once by
/// design and is not a poller).
fn overlaps(reqs: &[Request]) -> Vec<String> {
    let probe = format!("auditrelay/{}", env!("CARGO_PKG_VERSION"));
    let mut by_source: BTreeMap<usize, Vec<&Request>> = BTreeMap::new();
    for r in reqs.iter().filter(|r| r.agent != probe) {
        by_source.entry(r.source).or_default().push(r);
    }
    let mut out = Vec::new();
    for (k, mut rs) in by_source {
        rs.sort_by_key(|r| r.start);
        for (i, a) in rs.iter().enumerate() {
            for b in rs[i + 1..].iter().take_while(|b| b.start < a.end) {
                if a.agent != b.agent {
                    out.push(format!("source {k}: {} and {} at once", a.agent, b.agent));
                }
            }
        }
    }
    out
}

#[test]
fn a_fleet_shares_sources_fails_over_and_loses_nothing() {
    let _turn = common::exclusive("cluster");
    let Some(bin) = tool("etcd", &["/usr/bin/etcd"], "etcd-server") else { return };
    let n = common::runs::env_usize("CLUSTER_SOURCES", 30);
    let tmp = TestDir::new();
    let mut etcd = Etcd::start(bin, tmp.path(), 3);
    let api = Api::start(n);
    let hec = FakeHec::start(HEC_TOKEN);
    let adder = Adder::start(api.shared.clone());
    let mut fleet = Fleet { dirs: Vec::new(), agents: Vec::new() };
    for _ in 0..3 {
        fleet.add(&etcd, &api, n, &hec);
    }
    println!("cluster suite: {n} sources, lease_ttl {TTL:?}, poll interval 1s");
    let owners = wait_balanced(&api, &fleet, n, "3 agents start");

    // Operating it: status, metrics, check --connect.
    let status = fleet.dirs[0].status_json();
    assert_eq!(status["fleet"]["members"].as_array().map(Vec::len), Some(3), "{status:#}");
    assert_eq!(status["fleet"]["owners"].as_object().map(|o| o.len()), Some(n), "{status:#}");
    let owned: f64 = fleet.dirs.iter().filter_map(|d| gauge(d, "auditrelay_cluster_owned_sources")).sum();
    assert_eq!(owned, n as f64, "owned sources over the fleet's /metrics");
    assert_eq!(gauge(&fleet.dirs[1], "auditrelay_cluster_members"), Some(3.0));
    let (code, out) = fleet.dirs[2].check_connect();
    assert!(out.contains("cluster: ok, etcd"), "{out}");
    assert_eq!(code, Some(0), "{out}");

    // SIGKILL: the dead agent's sources resume elsewhere.
    let victim = user_agent(0);
    let its: Vec<usize> = owners.iter().filter(|(_, a)| **a == victim).map(|(k, _)| *k).collect();
    let dups = dup_count(&hec);
    let t = Instant::now();
    fleet.agents[0].take().unwrap().kill();
    let took = wait_resumed(&api, &fleet, &its, &victim, t, "the killed agent's sources resume");
    println!("  SIGKILL agent-0: its {} sources resumed elsewhere after {took:?}", its.len());
    assert!(took <= TTL + Duration::from_secs(6), "resume took {took:?}");
    let owners = wait_balanced(&api, &fleet, n, "2 agents after SIGKILL");
    fleet.restart(0);
    let owners_after = wait_balanced(&api, &fleet, n, "agent-0 back");
    std::thread::sleep(SETTLE);
    println!("  SIGKILL scenario: {} duplicate(s) so far", dup_count(&hec) - dups);
    let _ = (owners, owners_after);

    // SIGTERM: releases with a checkpoint of what was delivered: no duplicates.
    let dups = dup_count(&hec);
    let owners = wait_balanced(&api, &fleet, n, "before SIGTERM");
    let victim = user_agent(1);
    let its: Vec<usize> = owners.iter().filter(|(_, a)| **a == victim).map(|(k, _)| *k).collect();
    let t = Instant::now();
    let exit = fleet.agents[1].take().unwrap().terminate(Duration::from_secs(30));
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    let took = wait_resumed(&api, &fleet, &its, &victim, t, "the stopped agent's sources resume");
    println!("  SIGTERM agent-1 (exit after {:?}): its {} sources resumed after {took:?}", exit.took, its.len());
    fleet.restart(1);
    wait_balanced(&api, &fleet, n, "agent-1 back");
    std::thread::sleep(SETTLE);
    let sigterm_dups = dup_count(&hec) - dups;
    println!("  SIGTERM scenario (rolling restart of one agent): {sigterm_dups} duplicate(s)");

    // A fourth agent: the others release to it.
    let dups = dup_count(&hec);
    let t = Instant::now();
    fleet.add(&etcd, &api, n, &hec);
    wait_balanced(&api, &fleet, n, "a fourth agent joins");
    println!("  fourth agent: fair share reached after {:?}", t.elapsed());
    std::thread::sleep(SETTLE);
    println!("  fourth agent scenario: {} duplicate(s)", dup_count(&hec) - dups);

    // A fifth agent killed while the others hand sources over to it.
    let dups = dup_count(&hec);
    let fifth = fleet.add(&etcd, &api, n, &hec);
    std::thread::sleep(KILL_IN_HANDOVER);
    let took_some = api
        .askers_since(Instant::now() - Duration::from_secs(2))
        .values()
        .filter(|a| a.contains(&user_agent(fifth)))
        .count();
    fleet.agents[fifth].take().unwrap().kill();
    wait_balanced(&api, &fleet, n, "after SIGKILL during a handover");
    std::thread::sleep(SETTLE);
    println!(
        "  SIGKILL during a handover (agent-{fifth} had {took_some} sources): {} duplicate(s)",
        dup_count(&hec) - dups
    );

    // One etcd member down: nothing changes.
    let owners = wait_balanced(&api, &fleet, n, "before an etcd member dies");
    etcd.kill(0);
    let t = Instant::now();
    let rev0 = revision(&etcd, 1);
    std::thread::sleep(ONE_MEMBER_DOWN_FOR);
    // etcd's store revision counts every write (put, delete, a transaction
    // that wrote): with every source owned and polled, what remains is the
    // checkpoints, at most one per source per CHECKPOINT_INTERVAL (3 s).
    let writes = revision(&etcd, 1) - rev0;
    let per_source_minute = writes as f64 / n as f64 / (t.elapsed().as_secs_f64() / 60.0);
    println!(
        "  etcd writes in steady state: {writes} in {:?} for {n} sources = {per_source_minute:.1} per source per minute",
        t.elapsed()
    );
    assert!(
        per_source_minute <= 21.0,
        "more etcd writes than one checkpoint per source per 3 s: {per_source_minute:.1}"
    );
    let window = Instant::now() - Duration::from_millis(2500);
    let askers = api.askers_since(window);
    for (k, who) in &owners {
        assert_eq!(
            askers.get(k).map(|a| a.iter().cloned().collect::<Vec<_>>()),
            Some(vec![who.clone()]),
            "source {k} moved or stopped with one etcd member down\n{}",
            fleet.logs()
        );
    }
    println!("  one etcd member killed: all {n} sources kept their owner for {:?}", t.elapsed());

    // Two of three down: no quorum; every agent stops polling within the TTL.
    let dups = dup_count(&hec);
    etcd.kill(1);
    let t = Instant::now();
    std::thread::sleep(NO_QUORUM_FOR);
    let late: Vec<Request> = api.requests().into_iter().filter(|r| r.start > t + TTL).collect();
    let late_agents: BTreeSet<&str> = late.iter().map(|r| r.agent.as_str()).collect();
    assert!(
        late.is_empty(),
        "agents polled without etcd quorum: {late_agents:?} {} requests\n{}",
        late.len(),
        fleet.logs()
    );
    let last = api.requests().iter().filter(|r| r.start > t).map(|r| r.start - t).max().unwrap_or_default();
    println!("  two etcd members killed: last API request {last:?} after, none after lease_ttl ({TTL:?})");
    for (i, a) in fleet.agents.iter_mut().enumerate() {
        if let Some(a) = a {
            assert!(a.is_running(), "agent-{i} exited without etcd:\n{}", a.stderr());
        }
    }
    let health = http_get(&listen_of(&fleet.dirs[0]), "/health").unwrap_or_default();
    assert!(health.contains(" 503 ") && health.contains("etcd"), "/health without etcd quorum: {health}");
    etcd.spawn(0);
    etcd.spawn(1);
    etcd.wait_healthy();
    let t = Instant::now();
    wait_balanced(&api, &fleet, n, "etcd quorum back");
    println!("  etcd back: every source polled again after {:?}", t.elapsed());
    std::thread::sleep(SETTLE);
    println!("  etcd quorum loss scenario: {} duplicate(s)", dup_count(&hec) - dups);

    // Everything delivered; nobody ever polled a source another agent was polling.
    adder.stop();
    let expected = api.ids();
    common::agent::wait_until_or(
        "every event in HEC",
        Duration::from_secs(90),
        || missing(&hec.event_ids(), &expected).is_empty(),
        || format!("missing {} events\n{}", missing(&hec.event_ids(), &expected).len(), fleet.logs()),
    );
    let lost = missing(&hec.event_ids(), &expected).len();
    let total_dups = dup_count(&hec);
    let reqs = api.requests();
    let overlapping = overlaps(&reqs);
    println!(
        "  total: {} events, lost {lost}, duplicates {total_dups}, {} API requests, {} overlapping",
        expected.len(),
        reqs.len(),
        overlapping.len()
    );
    // The windows holding the last events close; then what HEC holds is
    // checked as `auditrelay verify` checks a Splunk export: every agent's
    // windows of every source (output `hec@agent-i`) without a gap, through
    // every kill, handover and quorum loss above.
    let report = || {
        let lines = hec.verify_lines();
        auditrelay::manifest::verify::verify(lines.iter().map(|l| auditrelay::manifest::verify::read(l)))
    };
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(15)
        && report()
            .streams
            .iter()
            .any(|s| s.output != format!("hec@{}", agent_name(fifth)) && !s.open_windows.is_empty())
    {
        std::thread::sleep(WINDOWS_POLL);
    }
    let verified = report();
    for i in fleet.running() {
        let exit = fleet.agents[i].take().unwrap().terminate(Duration::from_secs(30));
        assert_eq!(exit.code, Some(0), "agent-{i}:\n{}", exit.stderr);
    }
    let checked: u64 = verified.streams.iter().map(|s| s.windows_checked).sum();
    println!("  manifests: {} streams, {checked} windows checked, ok = {}", verified.streams.len(), verified.ok);
    assert!(verified.ok, "{}", verified.text());
    assert!(verified.streams.iter().all(|s| s.output.starts_with("hec@agent-")), "{}", verified.text());
    assert!(checked >= n as u64, "{}", verified.text());
    assert_eq!(lost, 0);
    assert!(overlapping.is_empty(), "{overlapping:#?}");
    assert_eq!(sigterm_dups, 0, "a SIGTERM handover duplicated events");
}

/// The store revision etcd member `i` reports (it grows by one per write);
/// asked again while the cluster elects a leader.
fn revision(etcd: &Etcd, i: usize) -> u64 {
    let addr = format!("127.0.0.1:{}", etcd.members[i].client);
    let read = || {
        let body = post(&addr, "/v3/kv/range", r#"{"key":"AA=="}"#, None)?;
        let at = body.find("\"revision\":\"")? + "\"revision\":\"".len();
        body[at..].split('"').next()?.parse().ok()
    };
    let mut rev = None;
    common::agent::wait_until("etcd's revision", Duration::from_secs(10), || {
        rev = read();
        rev.is_some()
    });
    rev.unwrap_or_default()
}

fn post(addr: &str, path: &str, body: &str, token: Option<&str>) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = token.map(|t| format!("Authorization: {t}\r\n")).unwrap_or_default();
    write!(s, "POST {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// etcd with authentication on: the agent authenticates, owns its source,
/// and a wrong password fails `check --connect` without printing either.
#[test]
fn a_fleet_member_authenticates_to_etcd() {
    let _turn = common::exclusive("cluster");
    let Some(bin) = tool("etcd", &["/usr/bin/etcd"], "etcd-server") else { return };
    let tmp = TestDir::new();
    let etcd = Etcd::start(bin, tmp.path(), 1);
    let addr = format!("127.0.0.1:{}", etcd.members[0].client);
    for (path, body) in [
        ("/v3/auth/user/add", r#"{"name":"root","password":"root-pw-1"}"#),
        ("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
        ("/v3/auth/enable", "{}"),
    ] {
        let answer = post(&addr, path, body, None).unwrap_or_default();
        assert!(answer.contains(" 200 "), "{path}: {answer}");
    }
    let api = Api::start(1);
    add_round(&api.shared);
    let hec = FakeHec::start(HEC_TOKEN);
    let dir = TestDir::new();
    let pw = dir.file("etcd.password");
    let write = |password: &str| {
        std::fs::write(&pw, password).unwrap();
        let text = config(&dir, 0, &etcd, &api, 1, &hec)
            .replace("[cluster]\n", &format!("[cluster]\nuser = \"root\"\npassword_file = \"{}\"\n", pw.display()));
        dir.write_config(&text);
    };
    write("wrong-pw-2");
    let (code, out) = dir.check_connect();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cluster: FAILED") && out.contains("authentication failed"), "{out}");
    assert!(!out.contains("wrong-pw-2") && !out.contains("root-pw-1"), "{out}");

    write("root-pw-1");
    let agent = Agent::start(&dir);
    common::agent::wait_until_or(
        "the agent owns its source through authenticated etcd",
        Duration::from_secs(30),
        || dir.try_status_json().is_some_and(|s| s["fleet"]["owners"]["s00"] == "agent-0"),
        || agent.stderr(),
    );
    let expected = api.ids();
    common::wait_hec_has(&hec, &expected, "the source's events", || agent.stderr());
    let log = agent.stop();
    assert!(log.contains("released the source") && !log.contains("root-pw-1"), "{log}");
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate,
/// in `dir`: `ca.pem`, `server.pem`/`.key`, `client.pem`/`.key`.
fn make_certs(openssl: &Path, dir: &Path) {
    common::certs::make_ca(openssl, dir);
    // The server certificate serves as a client too: etcd 3.4's JSON gateway
    // dials etcd's own gRPC port with it (without clientAuth: HTTP 503).
    common::certs::issue(openssl, dir, "server", "server", "serverAuth,clientAuth");
    common::certs::issue(openssl, dir, "client", "client", "clientAuth");
}

/// etcd over TLS with client certificates: `ca_file`, `cert_file` and
/// `key_file` reach it; without the client certificate it refuses.
#[test]
fn a_fleet_member_reaches_etcd_over_mtls() {
    let _turn = common::exclusive("cluster");
    let Some(bin) = tool("etcd", &["/usr/bin/etcd"], "etcd-server") else { return };
    let Some(openssl) = common::rsyslog::openssl() else { return };
    let tmp = TestDir::new();
    let certs = tmp.file("certs");
    std::fs::create_dir(&certs).unwrap();
    make_certs(&openssl, &certs);
    let etcd = Etcd::start_tls(bin, tmp.path(), 1, Some(certs.clone()));
    let api = Api::start(1);
    let hec = FakeHec::start(HEC_TOKEN);
    let dir = TestDir::new();
    let base = config(&dir, 0, &etcd, &api, 1, &hec);
    let with = |extra: &str| base.replace("[cluster]\n", &format!("[cluster]\n{extra}"));
    let ca = format!("ca_file = \"{}\"\n", certs.join("ca.pem").display());
    let client = format!(
        "cert_file = \"{}\"\nkey_file = \"{}\"\n",
        certs.join("client.pem").display(),
        certs.join("client.key").display()
    );
    dir.write_config(&with(&format!("{ca}{client}")));
    let out = std::cell::RefCell::new(String::new());
    common::agent::wait_until_or(
        "check --connect reaches etcd over mTLS",
        Duration::from_secs(30),
        || {
            let (code, o) = dir.check_connect();
            *out.borrow_mut() = o;
            code == Some(0)
        },
        || out.borrow().clone(),
    );
    let out = out.into_inner();
    assert!(out.contains("cluster: ok, etcd"), "{out}");
    dir.write_config(&with(&ca));
    let (code, out) = dir.check_connect();
    assert_eq!(code, Some(1), "no client certificate: {out}");
    assert!(out.contains("cluster: FAILED"), "{out}");
}

/// SIGHUP in a fleet: a source added to the file is taken and polled, a
/// source removed is stopped and its owner key released.
#[test]
fn a_fleet_member_applies_a_reload() {
    let _turn = common::exclusive("cluster");
    let Some(bin) = tool("etcd", &["/usr/bin/etcd"], "etcd-server") else { return };
    let tmp = TestDir::new();
    let etcd = Etcd::start(bin, tmp.path(), 1);
    let api = Api::start(3);
    add_round(&api.shared);
    let hec = FakeHec::start(HEC_TOKEN);
    let dir = TestDir::new();
    let two = config(&dir, 0, &etcd, &api, 2, &hec);
    dir.write_config(&two);
    let agent = Agent::start(&dir);
    let owners = |want: &[&str]| {
        dir.try_status_json().is_some_and(|s| {
            let o = s["fleet"]["owners"].as_object().cloned().unwrap_or_default();
            o.len() == want.len() && want.iter().all(|w| o.get(*w).is_some_and(|v| v == "agent-0"))
        })
    };
    common::agent::wait_until_or(
        "two sources owned",
        Duration::from_secs(30),
        || owners(&["s00", "s01"]),
        || agent.stderr(),
    );
    // Three sources: s02 added.
    let listen = two.lines().find(|l| l.starts_with("listen = ")).unwrap().to_owned();
    let three = config(&dir, 0, &etcd, &api, 3, &hec);
    let three = three
        .lines()
        .map(|l| if l.starts_with("listen = ") { listen.clone() } else { l.to_owned() })
        .collect::<Vec<_>>()
        .join("\n");
    dir.write_config(&three);
    agent.signal("HUP");
    common::agent::wait_until_or(
        "the added source owned",
        Duration::from_secs(30),
        || owners(&["s00", "s01", "s02"]),
        || agent.stderr(),
    );
    let t = Instant::now();
    common::agent::wait_until_or(
        "the added source polled",
        Duration::from_secs(30),
        || api.askers_since(t).contains_key(&2),
        || agent.stderr(),
    );
    // Back to two: s02 released.
    dir.write_config(&two);
    agent.signal("HUP");
    common::agent::wait_until_or(
        "the removed source released",
        Duration::from_secs(30),
        || owners(&["s00", "s01"]),
        || agent.stderr(),
    );
    let expected = api.ids();
    common::wait_hec_has(&hec, &expected, "every event", || agent.stderr());
    agent.stop();
}
