//! The `syslog` and `qradar` outputs against a real rsyslog.
//!
//! Each test starts its own `rsyslogd -n` as a child process, with a config
//! written into a temporary directory (work directory, pid file and output
//! all inside it) and inputs on free 127.0.0.1 ports: `imudp`, `imptcp`
//! (plain TCP; it accepts octet-counted and LF-framed messages on one port)
//! and `imtcp` with the GnuTLS driver for RFC 5425 TLS, using a CA and server
//! certificate made by the `openssl` CLI at test time. rsyslog writes what it
//! parsed, property by property, as one JSON object per message
//! (`option.jsonf`), so the tests check each header field as a receiver saw
//! it, not as we meant to write it.
//!
//! Without `rsyslogd` (or `openssl`, for TLS) a test is skipped with a loud
//! message, unless the `CI` environment variable is set: then it fails.
//! Install them with `apt-get install rsyslog rsyslog-gnutls openssl`
//! (listed in `.ci/packages.txt`).

use crate::common;

use auditrelay::config::{OutputConfig, OutputKind, Problem};
use auditrelay::event::Event;
use auditrelay::outputs::syslog::SyslogSink;
use auditrelay::outputs::{Delivery, Sink};
use common::agent::POLL;
use common::rsyslog::{openssl, rsyslogd, Rsyslog};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const HOST: &str = "relay01";

/// Between two sends of a batch that failed, as the driver's retry would
/// wait (the receiver restarts or is not listening yet): retrying at once
/// would spin.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// The restart test's sender: between the batches it sends (so that the
/// receiver's restart meets the stream mid-way), and after a failed send.
const SEND_EVERY: Duration = Duration::from_millis(5);
const RESEND_AFTER: Duration = Duration::from_millis(50);

/// How long rsyslog stays down in the restart test: the fake outage the
/// sender must ride through (a scripted delay, not a wait).
const DOWN_FOR: Duration = Duration::from_millis(500);

/// How often the restart test looks whether enough went through to restart
/// the receiver: finer than [`POLL`], the sender streams fast.
const RESTART_POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// Tools (the receiver itself is `common::rsyslog`)

/// A test CA and a server certificate for `localhost` and 127.0.0.1 signed
/// by it, in `dir`: `ca.pem`, `server.pem`, `server.key`.
fn make_certs(openssl: &Path, dir: &Path) {
    common::certs::make_ca(openssl, dir);
    common::certs::issue(openssl, dir, "server", "localhost", "serverAuth");
}

// ---------------------------------------------------------------------------
// Events and sinks

fn event(n: usize) -> Event {
    let outcome = if n % 3 == 0 { "failure" } else { "success" };
    serde_json::from_value(json!({
        "source": "opencti",
        "id": format!("ev-{n}"),
        "timestamp": "2026-08-22T12:00:00.123456Z",
        "fields": {
            "@timestamp": "2026-08-22T12:00:00.123456Z",
            "event": {"id": format!("ev-{n}"), "action": "login", "outcome": outcome, "category": ["authentication"]},
            "user": {"name": format!("user{n}"), "email": format!("user{n}@example.com")},
            "source": {"ip": "192.0.2.7"},
            "labels": {"source": "opencti"},
            "message": format!("login by user{n}")
        },
        "raw": json!({"id": format!("ev-{n}"), "n": n}).to_string()
    }))
    .unwrap()
}

/// An event whose values try to break framing and escaping: quotes,
/// brackets, backslashes, line breaks, the LEEF delimiter, non-ASCII.
fn hostile(n: usize) -> Event {
    let mut e = event(n);
    let nasty = "a\"b]c\\d\ne\r\tf|g=h 日本 Zoë";
    e.id = format!("ev-{n}-\"]\\x");
    let mut fields = e.fields().clone();
    fields["user"]["name"] = json!(nasty);
    fields["message"] = json!(format!("line one\nline two {nasty}"));
    e.set_fields(fields);
    e.raw = json!({"id": e.id, "note": nasty, "pad": "x".repeat(20_000)}).to_string();
    e
}

fn output(toml_text: &str) -> OutputConfig {
    let text = format!("[[source]]\nname = \"demo\"\ntype = \"demo\"\n\n[[output]]\nname = \"out\"\n{toml_text}");
    let cfg = auditrelay::config::parse(&text).unwrap_or_else(|p| panic!("{p:?}"));
    cfg.outputs.into_iter().next().unwrap()
}

fn sink(toml_text: &str) -> SyslogSink {
    build(&output(toml_text)).unwrap_or_else(|p| panic!("{p:?}"))
}

/// The sink of a `syslog` or `qradar` output.
fn build(cfg: &OutputConfig) -> Result<SyslogSink, Vec<Problem>> {
    match &cfg.kind {
        OutputKind::Syslog(c) => SyslogSink::syslog(c, &cfg.name, &cfg.common, "output[0]", HOST),
        OutputKind::Qradar(c) => SyslogSink::qradar(c, &cfg.name, &cfg.common, "output[0]", HOST),
        other => panic!("not a syslog output: {}", other.type_name()),
    }
}

/// Send like the driver would: retry failures (for at most 15 s).
async fn deliver(sink: &mut SyslogSink, batch: &[Event]) -> Delivery {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match sink.send(batch).await {
            Ok(d) => return d,
            Err(e) => {
                assert!(Instant::now() < deadline, "send kept failing: {e}");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// The expected RFC 5424 fields of `e` with a JSON body.
fn check_rfc5424_json(r: &BTreeMap<String, String>, e: &Event) {
    let severity = if e.fields()["event"]["outcome"] == "failure" { 4 } else { 5 };
    assert_eq!(r["pri"], (16 * 8 + severity).to_string(), "{r:?}");
    assert_eq!(r["hostname"], HOST);
    assert_eq!(r["app"], "auditrelay");
    assert_eq!(r["procid"], std::process::id().to_string());
    assert_eq!(r["msgid"], "login");
    let id = e.id.replace('\\', "\\\\").replace('"', "\\\"").replace(']', "\\]");
    assert_eq!(r["sd"], format!("[auditrelay@32473 source=\"opencti\" id=\"{id}\"]"));
    let body: Value = serde_json::from_str(&r["msg"]).unwrap_or_else(|err| panic!("msg is not JSON ({err}): {r:?}"));
    assert_eq!(body["event"]["id"], e.fields()["event"]["id"]);
    assert_eq!(body["user"], e.fields()["user"]);
    assert_eq!(body["message"], e.fields()["message"]);
    assert_eq!(body["labels"]["source"], "opencti");
    assert_eq!(body["event"]["original"], e.raw);
}

/// Records by the event id in their structured data.
fn by_sd_id(records: &[BTreeMap<String, String>]) -> BTreeMap<String, BTreeMap<String, String>> {
    records
        .iter()
        .filter_map(|r| {
            let start = r["sd"].find(" id=\"")? + 5;
            let id = r["sd"].get(start..r["sd"].len().checked_sub(2)?)?;
            Some((id.replace("\\\"", "\"").replace("\\]", "]").replace("\\\\", "\\"), r.clone()))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn udp_rfc5424_json_fields_as_rsyslog_parsed_them() {
    let Some(bin) = rsyslogd() else { return };
    let rs = Rsyslog::start(bin, None);
    let mut s = sink(&format!("type = \"syslog\"\naddress = \"127.0.0.1:{}\"\ntransport = \"udp\"\n", rs.udp));
    // imudp may start a moment after imptcp: probe until one arrives.
    for _ in 0..100 {
        deliver(&mut s, &[event(0)]).await;
        tokio::time::sleep(POLL).await;
        if !rs.records().is_empty() {
            break;
        }
    }
    let events: Vec<Event> = (1..=20).map(event).collect();
    assert_eq!(deliver(&mut s, &events).await, Delivery::default());
    let probes = rs.records().len();
    let records = rs.wait_records(probes + events.len()).await;
    let got = by_sd_id(&records);
    for e in &events {
        let r = got.get(&e.id).unwrap_or_else(|| panic!("{} missing: {records:?}", e.id));
        assert_eq!(r["input"], "imudp");
        check_rfc5424_json(r, e);
    }
}

#[tokio::test]
async fn tcp_octet_counting_rfc5424_json_survives_hostile_values() {
    let Some(bin) = rsyslogd() else { return };
    let rs = Rsyslog::start(bin, None);
    let mut s = sink(&format!("type = \"syslog\"\naddress = \"127.0.0.1:{}\"\n", rs.tcp));
    assert_eq!(s.sender_config().framing.as_str(), "octet-counting");
    s.healthcheck().await.unwrap();
    let events: Vec<Event> = (1..=30).map(|n| if n % 10 == 0 { hostile(n) } else { event(n) }).collect();
    assert_eq!(deliver(&mut s, &events).await, Delivery::default());
    let more: Vec<Event> = (31..=40).map(event).collect();
    deliver(&mut s, &more).await;
    let records = rs.wait_records(40).await;
    assert_eq!(records.len(), 40, "{records:?}");
    let got = by_sd_id(&records);
    for e in events.iter().chain(&more) {
        let r = got.get(&e.id).unwrap_or_else(|| panic!("{} missing: {records:?}", e.id));
        assert_eq!(r["input"], "imptcp");
        check_rfc5424_json(r, e);
    }
}

#[tokio::test]
async fn tcp_newline_framing_keeps_one_message_per_event() {
    let Some(bin) = rsyslogd() else { return };
    let rs = Rsyslog::start(bin, None);
    let mut s = sink(&format!("type = \"syslog\"\naddress = \"127.0.0.1:{}\"\nframing = \"newline\"\n", rs.tcp));
    let events: Vec<Event> = (1..=25).map(|n| if n % 5 == 0 { hostile(n) } else { event(n) }).collect();
    deliver(&mut s, &events).await;
    let records = rs.wait_records(25).await;
    assert_eq!(records.len(), 25, "a message was split or merged: {records:?}");
    let got = by_sd_id(&records);
    for e in &events {
        check_rfc5424_json(&got[&e.id], e);
    }
}

#[tokio::test]
async fn tls_with_a_test_ca_and_rfc3164_cef() {
    let Some(bin) = rsyslogd() else { return };
    let Some(openssl) = openssl() else { return };
    let certs = tempfile::tempdir().unwrap();
    make_certs(&openssl, certs.path());
    let rs = Rsyslog::start(bin, Some(certs.path()));
    let port = rs.tls.unwrap();
    let ca = certs.path().join("ca.pem").display().to_string();

    // RFC 5424 + JSON, verified against the test CA by name (SNI localhost).
    let mut s = sink(&format!(
        "type = \"syslog\"\naddress = \"127.0.0.1:{port}\"\ntransport = \"tls\"\n\
         tls = {{ ca_file = \"{ca}\", server_name = \"localhost\" }}\n"
    ));
    let events: Vec<Event> = (1..=15).map(|n| if n == 7 { hostile(n) } else { event(n) }).collect();
    deliver(&mut s, &events).await;
    s.healthcheck().await.unwrap();

    // RFC 3164 + CEF over the same TLS input, verified by IP address.
    let mut cef = sink(&format!(
        "type = \"syslog\"\naddress = \"127.0.0.1:{port}\"\ntransport = \"tls\"\nformat = \"rfc3164\"\n\
         payload = \"cef\"\ntls = {{ ca_file = \"{ca}\" }}\n"
    ));
    deliver(&mut cef, &[event(100)]).await;

    let records = rs.wait_records(16).await;
    assert_eq!(records.len(), 16, "{records:?}");
    let got = by_sd_id(&records);
    for e in &events {
        let r = &got[&e.id];
        assert_eq!(r["input"], "imtcp");
        check_rfc5424_json(r, e);
    }
    let r = records.iter().find(|r| r["sd"] == "-").unwrap();
    assert_eq!(r["pri"], "133");
    assert_eq!(r["hostname"], HOST);
    assert_eq!(r["program"], "auditrelay");
    assert_eq!(r["tag"], format!("auditrelay[{}]:", std::process::id()));
    // rsyslog keeps the space after "TAG:" in %msg% of a BSD message.
    assert!(r["msg"].trim_start().starts_with("CEF:0|auditrelay|auditrelay|"), "{r:?}");
    assert!(r["msg"].contains("suser=user100"), "{r:?}");

    // Without the test CA the certificate is refused: a configuration error.
    let mut untrusted = sink(&format!("type = \"syslog\"\naddress = \"127.0.0.1:{port}\"\ntransport = \"tls\"\n"));
    let err = untrusted.send(&[event(200)]).await.unwrap_err();
    assert_eq!(err.kind, auditrelay::outputs::ErrorKind::Config, "{err}");
    assert!(err.detail.contains("certificate"), "{err}");
}

/// The LEEF fields of a QRadar message as rsyslog parsed it.
fn check_leef(r: &BTreeMap<String, String>, e: &Event) {
    let severity = if e.fields()["event"]["outcome"] == "failure" { 4 } else { 5 };
    assert_eq!(r["pri"], (16 * 8 + severity).to_string(), "{r:?}");
    assert_eq!(r["hostname"], HOST);
    assert_eq!(r["program"], "LEEF");
    assert_eq!(r["tag"], "LEEF:");
    let version = env!("CARGO_PKG_VERSION");
    let head = format!("2.0|auditrelay|auditrelay|{version}|login|x09|");
    assert!(r["msg"].starts_with(&head), "{r:?}");
    let attrs: BTreeMap<&str, &str> = r["msg"][head.len()..].split('\t').filter_map(|kv| kv.split_once('=')).collect();
    assert_eq!(attrs["devTime"], e.epoch_millis().to_string());
    assert_eq!(attrs["cat"], "authentication");
    assert_eq!(attrs["src"], "192.0.2.7");
    assert_eq!(attrs["eventId"], e.id);
    assert_eq!(attrs["usrName"], e.fields()["user"]["name"].as_str().unwrap());
    assert_eq!(attrs["message"], e.fields()["message"].as_str().unwrap());
}

#[tokio::test]
async fn qradar_leef_over_tcp_and_udp() {
    let Some(bin) = rsyslogd() else { return };
    let rs = Rsyslog::start(bin, None);
    let mut tcp = sink(&format!("type = \"qradar\"\naddress = \"127.0.0.1:{}\"\n", rs.tcp));
    assert_eq!(tcp.sender_config().framing.as_str(), "newline");
    let events: Vec<Event> = (1..=20).map(event).collect();
    deliver(&mut tcp, &events).await;
    let records = rs.wait_records(20).await;
    assert_eq!(records.len(), 20, "{records:?}");
    for (r, e) in records.iter().zip(&events) {
        assert_eq!(r["input"], "imptcp");
        check_leef(r, e);
    }

    let mut udp = sink(&format!("type = \"qradar\"\naddress = \"127.0.0.1:{}\"\ntransport = \"udp\"\n", rs.udp));
    deliver(&mut udp, &[event(21)]).await;
    let records = rs.wait_records(21).await;
    let r = records.iter().find(|r| r["input"] == "imudp").unwrap_or_else(|| panic!("{records:?}"));
    check_leef(r, &event(21));
}

/// rsyslog is stopped (SIGTERM) and started again on the same port while a
/// sender keeps delivering batches with the driver's retry rule: every event
/// must arrive; duplicates are allowed (at-least-once) and reported.
async fn restart_mid_stream(mut rs: Rsyslog, mut s: SyslogSink) {
    const TOTAL: usize = 3000;
    const BATCH: usize = 25;
    let sender = tokio::spawn(async move {
        let mut failures = 0;
        let events: Vec<Event> = (0..TOTAL).map(event).collect();
        for batch in events.chunks(BATCH) {
            loop {
                match s.send(batch).await {
                    Ok(d) => {
                        assert!(d.rejected.is_empty());
                        break;
                    }
                    Err(_) => {
                        failures += 1;
                        tokio::time::sleep(RESEND_AFTER).await;
                    }
                }
            }
            tokio::time::sleep(SEND_EVERY).await;
        }
        failures
    });
    // Let a few hundred events through, then restart the receiver.
    let deadline = Instant::now() + Duration::from_secs(20);
    while rs.records().len() < 300 {
        assert!(Instant::now() < deadline, "nothing arrives: {}", rs.diagnostics());
        tokio::time::sleep(RESTART_POLL).await;
    }
    tokio::task::block_in_place(|| {
        rs.stop();
        std::thread::sleep(DOWN_FOR);
        rs.spawn();
    });
    let failures = tokio::time::timeout(Duration::from_secs(120), sender).await.unwrap().unwrap();
    tokio::task::block_in_place(|| rs.stop());

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for id in rs.records().iter().filter_map(|r| by_sd_id(std::slice::from_ref(r)).into_keys().next()) {
        *seen.entry(id).or_default() += 1;
    }
    let missing: Vec<usize> = (0..TOTAL).filter(|n| !seen.contains_key(&format!("ev-{n}"))).collect();
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    eprintln!("receiver restart: {failures} failed sends, {duplicates} duplicates, {} missing", missing.len());
    assert!(failures > 0, "the restart was not noticed by the sender");
    assert!(missing.is_empty(), "lost {} events: {:?}", missing.len(), &missing[..missing.len().min(50)]);
    assert_eq!(seen.len(), TOTAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_receiver_restarted_mid_stream_loses_nothing() {
    let Some(bin) = rsyslogd() else { return };
    let rs = Rsyslog::start(bin, None);
    let s = sink(&format!("type = \"syslog\"\naddress = \"127.0.0.1:{}\"\n", rs.tcp));
    restart_mid_stream(rs, s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_receiver_restarted_mid_stream_loses_nothing() {
    let Some(bin) = rsyslogd() else { return };
    let Some(openssl) = openssl() else { return };
    let certs = tempfile::tempdir().unwrap();
    make_certs(&openssl, certs.path());
    let rs = Rsyslog::start(bin, Some(certs.path()));
    let ca = certs.path().join("ca.pem").display().to_string();
    let s = sink(&format!(
        "type = \"syslog\"\naddress = \"127.0.0.1:{}\"\ntransport = \"tls\"\ntls = {{ ca_file = \"{ca}\" }}\n",
        rs.tls.unwrap()
    ));
    restart_mid_stream(rs, s).await;
}

/// The generic driver paces a syslog output to `max_eps`: 2,000 journaled
/// events at 200 per second take about 9 s (the first second's worth goes
/// at once) and every one arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_paces_to_max_eps_and_drops_nothing() {
    use auditrelay::outputs::driver::{self, DriverSettings};
    use auditrelay::outputs::OutputContext;
    use auditrelay::state::{Cursor, State};
    use std::sync::Arc;

    let Some(bin) = rsyslogd() else { return };
    let rs = Rsyslog::start(bin, None);
    let cfg = output(&format!("type = \"syslog\"\naddress = \"127.0.0.1:{}\"\nmax_eps = 200\n", rs.tcp));
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(State::open(dir.path()).unwrap());
    let ctx = OutputContext {
        state: state.clone(),
        metrics: Arc::default(),
        output_health: Default::default(),
        hostname: HOST.into(),
        clock: Arc::new(chrono::Utc::now),
    };
    // A new output starts at the journal's tail: register it first.
    state.offset_or_tail(&cfg.name).await.unwrap();
    const TOTAL: usize = 2000;
    let events: Vec<Event> = (0..TOTAL).map(event).collect();
    for page in events.chunks(500) {
        state.append("opencti", page, &Cursor::default()).await.unwrap();
    }
    let settings = DriverSettings {
        name: cfg.name.clone(),
        batch: cfg.common.batch,
        max_eps: cfg.common.max_eps,
        retry_max_interval: Duration::from_secs(1),
        max_in_flight: 1,
        manifest_interval: None,
        manifest_stream: None,
    };
    let sink = build(&cfg).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(driver::run(settings, sink, Arc::default(), ctx, cancel.clone()));
    let deadline = started + Duration::from_secs(30);
    while rs.records().len() < TOTAL && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    let took = started.elapsed();
    cancel.cancel();
    task.await.unwrap().unwrap();
    let ids: std::collections::BTreeSet<String> = by_sd_id(&rs.records()).into_keys().collect();
    assert_eq!(ids.len(), TOTAL, "events were dropped");
    eprintln!("2000 events at max_eps = 200 took {took:?}");
    assert!(took >= Duration::from_secs(8) && took <= Duration::from_secs(20), "took {took:?}");
}
