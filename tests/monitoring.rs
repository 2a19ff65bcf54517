//! The shipped alert rules (`packaging/prometheus/auditrelay.rules.yml`)
//! and Grafana dashboard (`packaging/grafana/auditrelay.json`) against a
//! real Prometheus scraping the real agent, all on 127.0.0.1.
//!
//! The agent runs a demo source and an `http_json` source into a file output
//! and a fake HEC (one event rejected: a dead letter), a second `http_json`
//! source whose API refuses the token (401) and a HEC output whose collector
//! is busy (503): every metric the rules and panels use then has series.
//! Prometheus loads the rules and scrapes every second. Checked:
//! - every rule is loaded and evaluates without error;
//! - every metric selector in a rule or panel matches series, and every
//!   label a matcher, `by` or `on` names is a label of that metric in the
//!   agent's `/metrics` (or Prometheus's `job`/`instance`);
//! - the alerts for the injected failures have a result naming the right
//!   source or output, and `AuditrelayDown` has none;
//! - every dashboard query returns data.
//!
//! `promtool test rules` (run by `.ci/run`) tests the rules' thresholds.
//! Needs the `prometheus` binary (Debian package `prometheus`): without it
//! the test is skipped with a note, except under `CI`, where it fails.

use crate::common;

use common::agent::{file_ids, file_output, HecOutput, TestDir, DEADLINE};
use common::api::FakeApi;
use common::hec::{FakeHec, Mode, HEC_TOKEN};
use common::rsyslog::free_tcp_port;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/prometheus/auditrelay.rules.yml");
const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/grafana/auditrelay.json");

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["job", "instance"];

/// How often the readiness loop asks Prometheus again (it scrapes and
/// evaluates on its own clock; the loop ends once ready, or at the
/// deadline).
const PROMETHEUS_POLL: Duration = Duration::from_millis(250);

/// `GET path` on `addr` (HTTP/1.0, so no chunked body): status and body.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split(' ').nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

fn find_on_path(bin: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(bin)).find(|p| p.is_file())
}

/// A Prometheus server on 127.0.0.1 with its own data directory, killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Prometheus {
    fn start(bin: &Path, dir: &Path, agent: &str) -> Prometheus {
        let addr = format!("127.0.0.1:{}", free_tcp_port());
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {RULES}\nscrape_configs:\n  - job_name: auditrelay\n    static_configs:\n      - targets: ['{agent}']\n"
            ),
        )
        .unwrap();
        let log = dir.join("prometheus.log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`: the `data` of a successful answer, or the error.
    fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = http_get(&self.addr, &format!("/api/v1/{path}")).ok_or("no answer")?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
        if v["status"] != "success" {
            return Err(format!("HTTP {status}: {}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"].clone())
    }

    /// An instant query's result vector (a scalar answer is one unlabelled sample).
    fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let q: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
        let data = self.api(&format!("query?query={q}"))?;
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"].as_array().cloned().unwrap_or_default()),
            Some("scalar") => Ok(vec![serde_json::json!({ "metric": {}, "value": data["result"] })]),
            other => Err(format!("unexpected result type {other:?}")),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One metric selector found in a PromQL expression: the metric name and the
/// label names its matchers use.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Selector {
    text: String,
    metric: String,
    labels: Vec<String>,
}

/// The selectors of our own metrics (and `up`) in `expr`, and the label
/// names of every `by (...)`, `without (...)`, `on (...)` and
/// `ignoring (...)` clause. A small scanner, enough for the expressions we
/// ship (selectors are always written `name{...}` or bare `name`).
fn scan(expr: &str) -> (Vec<Selector>, Vec<String>) {
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut sels = Vec::new();
    let mut grouping = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            // Skip string literals (label values).
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if !ident(b[i]) || (i > 0 && ident(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && ident(b[i]) {
            i += 1;
        }
        let word = &expr[start..i];
        let rest = expr[i..].trim_start();
        if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&word) && rest.starts_with('(') {
            let close = rest.find(')').unwrap();
            grouping.extend(rest[1..close].split(',').map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()));
            i = expr.len() - rest.len() + close + 1;
            continue;
        }
        if word == "up" || word.starts_with("auditrelay_") {
            let mut labels = Vec::new();
            let mut end = i;
            if expr[i..].starts_with('{') {
                let close = i + expr[i..].find('}').unwrap();
                for m in expr[i + 1..close].split(',') {
                    let name: String =
                        m.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() {
                        labels.push(name);
                    }
                }
                end = close + 1;
            }
            sels.push(Selector { text: expr[start..end].to_owned(), metric: word.to_owned(), labels });
            i = end;
        }
    }
    (sels, grouping)
}

/// Label names of every metric in the agent's `/metrics` text.
fn exported_labels(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            out.entry(t.split(' ').next().unwrap().to_owned()).or_default();
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap().to_owned();
            let labels = line.split_once('{').map(|(_, r)| r.split('}').next().unwrap()).unwrap_or("");
            let set = out.entry(name).or_default();
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                set.insert(pair.split('=').next().unwrap().to_owned());
            }
        }
    }
    out
}

/// Every `expr` of a panel's targets, with its panel's title (rows included).
fn dashboard_queries(dash: &Value) -> Vec<(String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push((p["title"].as_str().unwrap_or("?").to_owned(), t["expr"].as_str().unwrap().to_owned()));
            }
            walk(p["panels"].as_array().map(Vec::as_slice).unwrap_or_default(), out);
        }
    }
    let mut out = Vec::new();
    walk(dash["panels"].as_array().unwrap(), &mut out);
    out
}

/// The dashboard's variables as Grafana sends them with "All" selected.
fn expand_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$job", "auditrelay")
        .replace("$instance", ".+")
        .replace("$source", ".+")
        .replace("$output", ".+")
}

/// The dashboard JSON is well formed for Grafana: unique panel ids, a
/// grid position and the data source variable on every panel, a refId on
/// every target, and only the variables it defines.
fn check_dashboard_shape(dash: &Value) {
    let vars: BTreeSet<&str> =
        dash["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(vars, BTreeSet::from(["datasource", "job", "instance", "source", "output"]));
    let mut ids = BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id in {p}");
        assert!(p["gridPos"]["w"].as_u64().is_some() && p["gridPos"]["h"].as_u64().is_some(), "gridPos: {p}");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert!(t["refId"].is_string(), "target without refId in {}", p["title"]);
            let expr = t["expr"].as_str().unwrap();
            for var in expr.split('$').skip(1) {
                let name: String = var.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                assert!(
                    name == "__rate_interval" || vars.contains(name.as_str()),
                    "unknown variable ${name} in {expr}"
                );
            }
        }
    }
}

/// `expr` evaluates; each of its selectors names an exported metric, with
/// labels that metric has, and matches series; each `by`/`on` label is one
/// of its metrics' labels. What fails is added to `problems`.
fn check(
    prom: &Prometheus,
    exported: &BTreeMap<String, BTreeSet<String>>,
    problems: &mut Vec<String>,
    what: &str,
    expr: &str,
) {
    if let Err(e) = prom.query(expr) {
        problems.push(format!("{what}: {expr}: {e}"));
    }
    let (sels, grouping) = scan(expr);
    assert!(!sels.is_empty(), "{what}: no metric found in {expr}");
    let none = BTreeSet::new();
    for sel in &sels {
        let known = match exported.get(&sel.metric) {
            Some(k) => k,
            None if sel.metric == "up" => &none,
            None => {
                problems.push(format!("{what}: {} is not exported by the agent", sel.metric));
                continue;
            }
        };
        for l in &sel.labels {
            if !known.contains(l) && !TARGET_LABELS.contains(&l.as_str()) {
                problems.push(format!("{what}: {} has no label {l} (it has {known:?})", sel.metric));
            }
        }
        match prom.query(&format!("count({})", sel.text)) {
            Ok(r) if !r.is_empty() => {}
            other => problems.push(format!("{what}: no series for {}: {other:?}", sel.text)),
        }
    }
    let all: BTreeSet<&String> = sels.iter().filter_map(|s| exported.get(&s.metric)).flatten().collect();
    for l in &grouping {
        if !all.contains(l) && !TARGET_LABELS.contains(&l.as_str()) {
            problems.push(format!("{what}: groups by {l}, which none of its metrics has"));
        }
    }
}

#[test]
fn alert_rules_and_dashboard_queries_hold_against_a_real_prometheus() {
    let Some(prometheus) = find_on_path("prometheus") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus is not installed (apt-get install prometheus): .ci/run installs it"
        );
        eprintln!("SKIPPED: prometheus not on PATH (apt-get install prometheus)");
        return;
    };
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    check_dashboard_shape(&dash);

    let (api, denied) = (FakeApi::start_with_prefix("api-token", "ok"), FakeApi::start_with_prefix("other", "no"));
    let (hec, busy) = (FakeHec::start(HEC_TOKEN), FakeHec::start(HEC_TOKEN));
    busy.set_mode(Mode::Busy);
    let ids = api.add_history(30);
    let dir = TestDir::new();
    let listen = format!("127.0.0.1:{}", free_tcp_port());
    let file = dir.file("events.jsonl");
    let config = format!(
        "{agent}\
         [[source]]\nname = \"demo\"\ntype = \"demo\"\nrate = \"20/s\"\ninterval = \"1s\"\nstart_at = \"10s\"\noutputs = [\"file\", \"busy\"]\n\n\
         {api}outputs = [\"hec\"]\ninterval = \"1s\"\n\n\
         {denied}interval = \"1s\"\noutputs = [\"hec\"]\n\n\
         {file}{hec}{busy}",
        agent = dir.agent_section_with(&format!("listen = \"{listen}\"")),
        api = api.source_block("api", "api-token"),
        denied = denied.source_block("denied", "wrong-token"),
        file = file_output("file", &file, 100),
        hec = HecOutput::new("hec", &hec.url(), HEC_TOKEN).toml(),
        busy = HecOutput::new("busy", &busy.url(), HEC_TOKEN).toml(),
    );
    let agent = dir.start_with(&config);
    let metrics = || http_get(&listen, "/metrics").map(|(_, b)| b).unwrap_or_default();
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    common::agent::wait_until_or(
        "events in the file and at the HEC, a 401 and a failing output",
        DEADLINE,
        || {
            let m = metrics();
            file_ids(&file).len() > 20
                && value(&m, "auditrelay_events_sent_total{output=\"hec\"}") >= ids.len() as f64
                && value(&m, "auditrelay_requests_total{source=\"denied\",status=\"401\"}") >= 1.0
                && value(&m, "auditrelay_up{output=\"busy\"}") == 0.0
                && m.contains("auditrelay_up{output=\"busy\"}")
                && m.contains("auditrelay_cursor_lag_seconds{source=\"demo\"}")
        },
        || format!("{}\n{}", metrics(), agent.stderr()),
    );
    let exported = exported_labels(&metrics());

    let tmp = tempfile::tempdir().unwrap();
    let prom = Prometheus::start(&prometheus, tmp.path(), &listen);
    // Up, a few scrapes in (increase() and deriv() need two samples), and
    // every rule evaluated at least once.
    let started = Instant::now();
    let rules = loop {
        let ready = prom.query("count_over_time(up{job=\"auditrelay\"}[1m]) >= 4").map(|r| !r.is_empty());
        let groups = prom.api("rules").ok();
        let evaluated = groups.as_ref().is_some_and(|g| {
            g["groups"].as_array().is_some_and(|gs| {
                !gs.is_empty()
                    && gs.iter().all(|g| g["lastEvaluation"].as_str().is_some_and(|t| !t.starts_with("0001")))
            })
        });
        if ready == Ok(true) && evaluated {
            break groups.unwrap();
        }
        assert!(started.elapsed() < DEADLINE, "Prometheus not ready: {ready:?}\n{}", prom.log());
        std::thread::sleep(PROMETHEUS_POLL);
    };
    assert_eq!(prom.query("up{job=\"auditrelay\"} == 1").unwrap().len(), 1, "the agent is scraped");

    // A dead letter while Prometheus watches (one from before its first
    // scrape is no increase): the collector rejects the API's next event.
    let last: u64 = ids.last().unwrap().trim_start_matches("ok").parse().unwrap();
    hec.reject(&format!("ok{:06}", last + 1));
    api.add_now(3);
    let dead = "increase(auditrelay_events_dead_lettered_total{output=\"hec\"}[15m]) > 0";
    common::agent::wait_until_or(
        "a dead letter seen by Prometheus",
        DEADLINE,
        || prom.query(dead).is_ok_and(|r| !r.is_empty()),
        || format!("{}\n{}", metrics(), agent.stderr()),
    );

    let mut alerts = BTreeMap::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["name"].as_str().unwrap().to_owned();
            assert_eq!(rule["health"], "ok", "rule {name}: {}", rule["lastError"]);
            alerts.insert(name, rule["query"].as_str().unwrap().to_owned());
        }
    }
    let expected: BTreeSet<&str> = [
        "AuditrelayDown",
        "AuditrelaySourceFailing",
        "AuditrelaySourceAuthFailing",
        "AuditrelaySourceNotPolled",
        "AuditrelayCursorLag",
        "AuditrelayOutputFailing",
        "AuditrelayOutputStalled",
        "AuditrelayBacklogGrowing",
        "AuditrelayDeadLetters",
        "AuditrelayEventsSetAside",
        "AuditrelayManifestsStopped",
        "AuditrelayJournalNearFull",
        "AuditrelayJournalFull",
    ]
    .into();
    assert_eq!(alerts.keys().map(String::as_str).collect::<BTreeSet<_>>(), expected);

    let mut problems = Vec::new();
    for (name, expr) in &alerts {
        check(&prom, &exported, &mut problems, name, expr);
    }
    let panels = dashboard_queries(&dash);
    assert!(panels.len() >= 15, "{} panel queries", panels.len());
    for (title, expr) in &panels {
        let expr = expand_variables(expr);
        check(&prom, &exported, &mut problems, title, &expr);
        match prom.query(&expr) {
            Ok(r) if !r.is_empty() => {}
            other => problems.push(format!("panel {title}: no data for {expr}: {other:?}")),
        }
    }
    // The dashboard's variables list the agent's job, instance, sources and outputs.
    for v in dash["templating"]["list"].as_array().unwrap().iter().filter(|v| v["type"] == "query") {
        let q = expand_variables(v["query"]["query"].as_str().unwrap());
        let (inner, label) = q.strip_prefix("label_values(").unwrap().rsplit_once(',').unwrap();
        let label = label.trim().trim_end_matches(')');
        let values: BTreeSet<String> = prom
            .query(&format!("count by ({label}) ({inner})"))
            .unwrap()
            .iter()
            .map(|s| s["metric"][label].as_str().unwrap_or_default().to_owned())
            .collect();
        let want: BTreeSet<String> = match label {
            "job" => ["auditrelay"].map(String::from).into(),
            "instance" => [listen.clone()].into(),
            "source" => ["api", "demo", "denied"].map(String::from).into(),
            _ => ["busy", "file", "hec"].map(String::from).into(),
        };
        assert_eq!(values, want, "variable {}", v["name"]);
    }
    assert!(problems.is_empty(), "{} problem(s):\n  {}", problems.len(), problems.join("\n  "));

    // The injected failures show in the alerts' expressions (before their
    // `for:` delay), and the agent is not down.
    let firing = |alert: &str, label: &str| -> BTreeSet<String> {
        let r = prom.query(&alerts[alert]).unwrap();
        r.iter().map(|s| s["metric"][label].as_str().unwrap_or_default().to_owned()).collect()
    };
    assert_eq!(firing("AuditrelaySourceAuthFailing", "source"), ["denied".to_owned()].into());
    assert_eq!(firing("AuditrelaySourceFailing", "source"), ["denied".to_owned()].into());
    assert_eq!(firing("AuditrelayOutputFailing", "output"), ["busy".to_owned()].into());
    assert_eq!(firing("AuditrelayDeadLetters", "output"), ["hec".to_owned()].into());
    assert!(firing("AuditrelayDown", "instance").is_empty());
    assert!(firing("AuditrelayJournalFull", "instance").is_empty());
    assert!(firing("AuditrelayCursorLag", "source").is_empty());
    drop(prom);
    agent.stop();
}
