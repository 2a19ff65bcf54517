//! `syslog` and `qradar` outputs: encode each event as one syslog message
//! and hand the batch to a [`SyslogSender`] (UDP, TCP or TLS).
//!
//! `type = "syslog"`, for any syslog receiver (rsyslog, syslog-ng, a SIEM's
//! syslog listener):
//!
//! | key | default | |
//! | --- | --- | --- |
//! | `format` | `rfc5424` | or `rfc3164` (BSD) |
//! | `payload` | `json` | the normalised ECS event with `event.original`; `raw` is the API's JSON as is; `cef` an ArcSight CEF record |
//! | `facility` | `local0` | see below |
//! | `app_name` | `auditrelay` | RFC 5424 APP-NAME, RFC 3164 TAG |
//! | `transport` | `tcp` | `udp`, `tcp` or `tls` |
//! | `framing` | `octet-counting` | or `newline` (TCP/TLS only) |
//! | `max_message_size` | UDP: 8192; TCP/TLS: none | longer messages are cut (or dead-lettered with `truncate = false`) |
//!
//! `type = "qradar"`, IBM QRadar's syslog listener: LEEF 2.0 after an
//! RFC 3164 header (`<PRI>Mmm dd hh:mm:ss host LEEF:2.0|…`), which QRadar
//! and BSD parsers read with TAG `LEEF`; see `encode::leef`. Defaults:
//! `transport = "tcp"`; framing by transport ([`qradar_framing`]): over
//! TCP `newline`, what QRadar's Syslog protocol listener reads (LEEF lines
//! never contain a line break); over TLS `octet-counting`, the only
//! framing of RFC 5425, which QRadar's TLS Syslog protocol implements (IBM's
//! "Multiple log sources over TLS Syslog" routes "RFC3164-, RFC5425- or
//! RFC5424-compliant" events; its "TLS Syslog protocol configuration
//! options" page has no framing setting). `framing` overrides either;
//! `delimiter = "x09"` (tab), `max_message_size` 4096 over UDP (QRadar's
//! usual maximum payload length) and no limit over TCP/TLS, and
//! `max_eps` 5000 ([`QRADAR_DEFAULT_MAX_EPS`], applied through
//! `outputs::default_max_eps`), the cap of IBM's own Disconnected Log
//! Collector, so a backlog does not flood the EPS licence.
//!
//! **Facility `local0`.** Audit events of SaaS platforms are not the relay
//! host's own `auth`/`authpriv` messages, and a receiver that files those
//! into its local `auth.log` would mix the two. `local0` is the facility a
//! SIEM engineer routes on (`if $syslogfacility-text == "local0"`), so it is
//! the default for both types; `facility` changes it. Severity follows
//! `event.outcome`: failure is `warning`, anything else `notice`.
//!
//! HOSTNAME is the agent's host name (`agent.hostname`), which
//! QRadar uses to pick the log source; PROCID is the agent's process id.
//! RFC 5424 messages carry `[auditrelay@32473 source="…" id="…"]` so a
//! receiver can dedupe on `event.id` after a resend.

pub mod config;

pub use config::{
    LeefPayload, QradarConfig, Required, SyslogConfig, SyslogFormat, SyslogPayload, QRADAR_DEFAULT_MAX_EPS,
};

use super::{BuildCtx, Delivery, Endpoint, OutputCommon, SendError, Sink};
use crate::encode::leef::Delimiter;
use crate::encode::{cef, json, leef, rfc3164, rfc5424, Device, Facility, SyslogHeader};
use crate::event::{Event, Payload};
use crate::settings::units::{Dur, Size};
use crate::settings::{Problem, Problems, TlsConfig, Validate};
use crate::telemetry::metrics::name as metric;
use crate::telemetry::metrics::Metrics;
use crate::transport::syslog::{host_of, Framing, SenderConfig, SyslogError, SyslogSender, Transport};
use std::sync::Arc;
use std::time::Duration;

/// The facility of both output types unless `facility` says otherwise.
pub const DEFAULT_FACILITY: Facility = Facility::LOCAL0;

/// APP-NAME / TAG of `syslog` outputs unless `app_name` says otherwise.
pub const DEFAULT_APP_NAME: &str = "auditrelay";

/// `max_message_size` of a `syslog` output over UDP without one: rsyslog's
/// default maximum message size.
pub const SYSLOG_UDP_MAX_MESSAGE_SIZE: usize = 8192;

/// `max_message_size` of a `qradar` output over UDP without one: QRadar's
/// usual maximum syslog payload length.
pub const QRADAR_UDP_MAX_MESSAGE_SIZE: usize = 4096;

/// The shortest write timeout a `timeout` gives the sender.
const MIN_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// A qradar output's framing when `framing` is not set: newline over
/// TCP (QRadar's Syslog listener), octet counting over TLS. UDP has none.
///
/// Over TLS: IBM's "TLS Syslog protocol configuration options"
/// (<https://www.ibm.com/docs/en/dsm?topic=options-tls-syslog-protocol-configuration>)
/// describe a listener on 6514, the port of RFC 5425, with no framing
/// parameter at all, so the listener reads the one framing that RFC
/// defines, `MSG-LEN SP SYSLOG-MSG` (RFC 5425 §4.3). `framing` overrides
/// it for a relay in front of QRadar that wants lines.
pub fn qradar_framing(transport: Transport) -> Framing {
    match transport {
        Transport::Tls => Framing::OctetCounting,
        Transport::Tcp | Transport::Udp => Framing::Newline,
    }
}

/// Name of the counter of messages cut to `max_message_size`.
pub const TRUNCATED_METRIC: &str = metric::EVENTS_TRUNCATED;

/// The body of a `syslog` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// JSON: the normalised event or the raw API JSON.
    Json(Payload),
    /// An ArcSight CEF record.
    Cef,
}

/// How one event becomes one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// RFC 5424 with the `auditrelay@…` structured data.
    Rfc5424(Body),
    /// RFC 3164.
    Rfc3164(Body),
    /// QRadar: RFC 3164 header and LEEF 2.0.
    Leef(Delimiter),
}

/// A `syslog` or `qradar` output.
pub struct SyslogSink {
    name: String,
    encoding: Encoding,
    header: SyslogHeader,
    device: Device,
    sender: SyslogSender,
    metrics: Option<Arc<Metrics>>,
    truncated: u64,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("name", &self.name)
            .field("encoding", &self.encoding)
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

/// `address` with the transport's well-known port added when it has none
/// (validation asks for `host:port`, so this is only a safety net).
pub fn with_default_port(address: &str, transport: Transport) -> String {
    let bracketed_bare = address.starts_with('[') && address.ends_with(']');
    if host_of(address) != address && !bracketed_bare {
        return address.to_owned();
    }
    let host = address.trim_start_matches('[').trim_end_matches(']');
    if host.contains(':') {
        format!("[{host}]:{}", transport.default_port())
    } else {
        format!("{host}:{}", transport.default_port())
    }
}

fn problem(at: &str, key: &str, message: impl Into<String>) -> Problem {
    Problem::new(format!("{at}.{key}"), message)
}

/// What both output types set up a sender from, their own keys read.
struct Settings<'a> {
    name: &'a str,
    tls: Option<&'a TlsConfig>,
    address: &'a str,
    transport: Transport,
    framing: Framing,
    facility: Facility,
    app_name: &'a str,
    max_message_size: Option<Size>,
    udp_max_message_size: usize,
    truncate: Option<bool>,
    timeout: Option<Dur>,
    encoding: Encoding,
}

impl<'a> Settings<'a> {
    fn syslog(name: &'a str, tls: Option<&'a TlsConfig>, c: &'a SyslogConfig, required: &'a Required) -> Self {
        let body = match c.payload {
            SyslogPayload::Json => Body::Json(Payload::Normalised),
            SyslogPayload::Raw => Body::Json(Payload::Raw),
            SyslogPayload::Cef => Body::Cef,
        };
        Settings {
            name,
            tls,
            address: &required.address,
            transport: c.transport,
            framing: c.framing.unwrap_or(Framing::OctetCounting),
            facility: c.facility.unwrap_or(DEFAULT_FACILITY),
            app_name: c.app_name.as_deref().unwrap_or(DEFAULT_APP_NAME),
            max_message_size: c.max_message_size,
            udp_max_message_size: SYSLOG_UDP_MAX_MESSAGE_SIZE,
            truncate: c.truncate,
            timeout: c.timeout,
            encoding: match c.format {
                SyslogFormat::Rfc5424 => Encoding::Rfc5424(body),
                SyslogFormat::Rfc3164 => Encoding::Rfc3164(body),
            },
        }
    }

    fn qradar(name: &'a str, tls: Option<&'a TlsConfig>, c: &'a QradarConfig, required: &'a Required) -> Self {
        Settings {
            name,
            tls,
            address: &required.address,
            transport: c.transport,
            framing: c.framing.unwrap_or(qradar_framing(c.transport)),
            facility: c.facility.unwrap_or(DEFAULT_FACILITY),
            app_name: DEFAULT_APP_NAME,
            max_message_size: c.max_message_size,
            udp_max_message_size: QRADAR_UDP_MAX_MESSAGE_SIZE,
            truncate: c.truncate,
            timeout: None,
            encoding: Encoding::Leef(c.delimiter.unwrap_or(Delimiter::TAB)),
        }
    }
}

// The registry lines of `type = "syslog"` and `type = "qradar"`.
super::output!(SyslogConfig => build_syslog);
super::output!(QradarConfig => build_qradar);

fn build_syslog(c: &SyslogConfig, required: Required, ctx: BuildCtx<'_>) -> Result<SyslogSink, Vec<Problem>> {
    let settings = Settings::syslog(ctx.name, ctx.common.tls.as_ref(), c, &required);
    let mut sink = SyslogSink::from_settings(settings, ctx.at, ctx.hostname)?;
    sink.set_metrics(ctx.metrics);
    Ok(sink)
}

fn build_qradar(c: &QradarConfig, required: Required, ctx: BuildCtx<'_>) -> Result<SyslogSink, Vec<Problem>> {
    let settings = Settings::qradar(ctx.name, ctx.common.tls.as_ref(), c, &required);
    let mut sink = SyslogSink::from_settings(settings, ctx.at, ctx.hostname)?;
    sink.set_metrics(ctx.metrics);
    Ok(sink)
}

/// A type's keys checked ([`Validate`]), or their problems.
fn checked<C: Validate>(c: &C, at: &str) -> Result<C::Valid, Vec<Problem>> {
    let mut p = Problems::default();
    c.validate(at, &mut p).ok_or_else(|| p.into_parts().0)
}

impl SyslogSink {
    /// Build a `syslog` output from its keys (checked here, by its
    /// [`Validate`] impl), its `name` and the keys every output has: loads
    /// the TLS files; the connection is made on the first send or health
    /// check.
    pub fn syslog(
        c: &SyslogConfig,
        name: &str,
        common: &OutputCommon,
        at: &str,
        hostname: &str,
    ) -> Result<Self, Vec<Problem>> {
        let required = checked(c, at)?;
        Self::from_settings(Settings::syslog(name, common.tls.as_ref(), c, &required), at, hostname)
    }

    /// Build a `qradar` output, as [`SyslogSink::syslog`] does a `syslog` one.
    pub fn qradar(
        c: &QradarConfig,
        name: &str,
        common: &OutputCommon,
        at: &str,
        hostname: &str,
    ) -> Result<Self, Vec<Problem>> {
        let required = checked(c, at)?;
        Self::from_settings(Settings::qradar(name, common.tls.as_ref(), c, &required), at, hostname)
    }

    fn from_settings(cfg: Settings<'_>, at: &str, hostname: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let transport = cfg.transport;
        let address = cfg.address;
        let max_message_size = cfg
            .max_message_size
            .map(|s| usize::try_from(s.bytes()).unwrap_or(usize::MAX))
            .or((transport == Transport::Udp).then_some(cfg.udp_max_message_size));
        let mut sender_cfg = SenderConfig::new(with_default_port(address, transport), transport);
        sender_cfg.framing = cfg.framing;
        sender_cfg.max_message_size = max_message_size;
        sender_cfg.truncate = cfg.truncate.unwrap_or(true);
        sender_cfg.tls = cfg.tls.cloned();
        if let Some(t) = cfg.timeout {
            sender_cfg.write_timeout = t.get().max(MIN_WRITE_TIMEOUT);
        }
        if transport == Transport::Tls && cfg.tls.is_some_and(|t| t.insecure_skip_verify) {
            tracing::warn!(output = %cfg.name, "tls.insecure_skip_verify = true: the receiver's certificate is NOT verified; anyone on the path can read and alter these events");
        }
        if transport == Transport::Udp {
            tracing::warn!(output = %cfg.name, "transport = \"udp\" has no delivery guarantee: events the network drops are lost; use tcp or tls for audit data");
        }
        let sender = SyslogSender::new(sender_cfg).map_err(|e| {
            let key = if matches!(e, SyslogError::ServerName(_)) { "tls.server_name" } else { "tls" };
            problems.push(problem(at, key, e.to_string()));
        });
        let (Ok(sender), true) = (sender, problems.is_empty()) else {
            return Err(problems);
        };
        let header = SyslogHeader {
            facility: cfg.facility,
            severity: None,
            hostname: hostname.to_owned(),
            app_name: cfg.app_name.to_owned(),
            procid: std::process::id().to_string(),
        };
        Ok(SyslogSink {
            name: cfg.name.to_owned(),
            encoding: cfg.encoding,
            header,
            device: Device::default(),
            sender,
            metrics: None,
            truncated: 0,
        })
    }

    /// Count truncated messages in `metrics` as well
    /// ([`TRUNCATED_METRIC`], label `output`).
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    /// Messages cut to `max_message_size` since the sink was built.
    pub fn truncated_total(&self) -> u64 {
        self.truncated
    }

    /// The message for one event, without framing.
    pub fn encode(&self, event: &Event) -> Vec<u8> {
        let body = |body: Body| match body {
            Body::Json(payload) => json::encode(event, payload),
            Body::Cef => cef::encode(event, &self.device),
        };
        match self.encoding {
            Encoding::Rfc5424(b) => rfc5424::encode(event, &self.header, &body(b), Some(rfc5424::SdOptions::default())),
            Encoding::Rfc3164(b) => rfc3164::encode(event, &self.header, &body(b)),
            Encoding::Leef(delimiter) => leef::qradar_message(event, &self.header, &self.device, delimiter),
        }
    }

    /// The transport settings in force (address with port, limits).
    pub fn sender_config(&self) -> &SenderConfig {
        self.sender.config()
    }
}

fn send_error(e: SyslogError) -> SendError {
    if e.is_config() {
        SendError::config(e.to_string())
    } else {
        SendError::transient(e.to_string())
    }
}

impl Sink for SyslogSink {
    async fn send(&mut self, batch: &[Event]) -> Result<Delivery, SendError> {
        let messages: Vec<Vec<u8>> = batch.iter().map(|e| self.encode(e)).collect();
        let report = self.sender.send(&messages).await.map_err(send_error)?;
        if report.truncated > 0 {
            if let Some(m) = &self.metrics {
                m.add(TRUNCATED_METRIC, &[("output", &self.name)], report.truncated as u64);
            }
            let first = self.truncated == 0;
            self.truncated += report.truncated as u64;
            if first {
                let max = self.sender.config().limit().unwrap_or_default();
                tracing::warn!(output = %self.name, count = report.truncated, "messages longer than max_message_size ({max} bytes) were cut; counted in {TRUNCATED_METRIC} (logged once)");
            }
        }
        Ok(Delivery { rejected: report.rejected })
    }

    async fn healthcheck(&mut self) -> Result<(), SendError> {
        self.sender.check().await.map_err(send_error)
    }

    fn endpoint(&self) -> Endpoint<'_> {
        let cfg = self.sender.config();
        Endpoint::Address(&cfg.address, cfg.transport)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::testkit::{output, Output as OutputConfig};
    use crate::outputs::OutputKind;
    use crate::outputs::{default_max_eps, ErrorKind};

    const HOST: &str = "relay01";

    /// Build the sink of an output read from a file.
    fn sink_of(cfg: &OutputConfig, at: &str) -> Result<SyslogSink, Vec<Problem>> {
        match &cfg.kind {
            OutputKind::Syslog(c) => SyslogSink::syslog(c, &cfg.name, &cfg.common, at, HOST),
            OutputKind::Qradar(c) => SyslogSink::qradar(c, &cfg.name, &cfg.common, at, HOST),
            other => panic!("not a syslog output: {}", other.type_name()),
        }
    }

    fn event() -> Event {
        serde_json::from_value(serde_json::json!({
            "source": "opencti", "id": "ev-1", "timestamp": "2026-08-22T12:00:00.123456Z",
            "fields": {"event": {"action": "login", "outcome": "failure"}, "user": {"name": "bob"}},
            "raw": "{\"id\":\"ev-1\"}"
        }))
        .unwrap()
    }

    #[test]
    fn syslog_defaults_are_rfc5424_json_local0_tcp_octet_counting() {
        let cfg = output("[[output]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"127.0.0.1:6601\"\n");
        let sink = sink_of(&cfg, "output[0]").unwrap();
        let s = sink.sender_config();
        assert_eq!((s.transport, s.framing, s.max_message_size), (Transport::Tcp, Framing::OctetCounting, None));
        let msg = String::from_utf8(sink.encode(&event())).unwrap();
        let pid = std::process::id();
        let want = format!(
            "<132>1 2026-08-22T12:00:00.123456Z relay01 auditrelay {pid} login [auditrelay@32473 source=\"opencti\" id=\"ev-1\"] {{"
        );
        assert!(msg.starts_with(&want), "{msg}");
        let body: serde_json::Value = serde_json::from_str(&msg[msg.find("] ").unwrap() + 2..]).unwrap();
        assert_eq!(body["event"]["original"], "{\"id\":\"ev-1\"}");
        assert_eq!(default_max_eps(&cfg.kind), None);
    }

    #[test]
    fn syslog_rfc3164_cef_and_raw() {
        let base = "[[output]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"127.0.0.1:6601\"\nformat = \"rfc3164\"\n";
        let cef = sink_of(&output(&format!("{base}payload = \"cef\"\nfacility = \"auth\"\napp_name = \"x-y\"\n")), "o")
            .unwrap();
        let msg = String::from_utf8(cef.encode(&event())).unwrap();
        let pid = std::process::id();
        assert!(
            msg.starts_with(&format!("<36>Aug 22 12:00:00 relay01 xy[{pid}]: CEF:0|auditrelay|auditrelay|")),
            "{msg}"
        );
        let raw = sink_of(&output(&format!("{base}payload = \"raw\"\ntransport = \"udp\"\n")), "o").unwrap();
        assert!(String::from_utf8(raw.encode(&event())).unwrap().ends_with(": {\"id\":\"ev-1\"}"));
        assert_eq!(raw.sender_config().max_message_size, Some(SYSLOG_UDP_MAX_MESSAGE_SIZE));
    }

    #[test]
    fn qradar_defaults_are_leef_over_tcp_newline_tls_octet_counting_with_5000_eps() {
        let cfg = output("[[output]]\nname = \"q\"\ntype = \"qradar\"\naddress = \"127.0.0.1:514\"\n");
        let sink = sink_of(&cfg, "output[0]").unwrap();
        let s = sink.sender_config();
        assert_eq!((s.transport, s.framing), (Transport::Tcp, Framing::Newline));
        let msg = String::from_utf8(sink.encode(&event())).unwrap();
        assert!(msg.starts_with("<132>Aug 22 12:00:00 relay01 LEEF:2.0|auditrelay|auditrelay|"), "{msg}");
        assert!(msg.contains("|login|x09|devTime=1787400000123\t"), "{msg}");
        assert_eq!(default_max_eps(&cfg.kind), Some(5000));

        // TLS Syslog: RFC 5425 framing, as the README says; overridable.
        let tls =
            output("[[output]]\nname = \"q\"\ntype = \"qradar\"\naddress = \"127.0.0.1:6514\"\ntransport = \"tls\"\n");
        let s = sink_of(&tls, "output[0]").unwrap().sender_config().clone();
        assert_eq!((s.transport, s.framing), (Transport::Tls, Framing::OctetCounting));
        let tls = output("[[output]]\nname = \"q\"\ntype = \"qradar\"\naddress = \"127.0.0.1:6514\"\ntransport = \"tls\"\nframing = \"newline\"\n");
        assert_eq!(sink_of(&tls, "output[0]").unwrap().sender_config().framing, Framing::Newline);
        let one_line = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let docs = one_line(include_str!("../../../docs/outputs.md"));
        assert!(
            docs.contains(
                "TCP uses newline framing (what QRadar's Syslog listener reads), TLS uses octet counting (RFC 5425"
            ),
            "docs/outputs.md's QRadar section states the defaults"
        );
        let readme = one_line(include_str!("../../../README.md"));
        assert!(
            readme.contains("TCP uses newline framing, TLS octet counting (RFC 5425"),
            "the README's QRadar line states the defaults"
        );

        let udp = output("[[output]]\nname = \"q\"\ntype = \"qradar\"\naddress = \"127.0.0.1:514\"\ntransport = \"udp\"\ndelimiter = \"^\"\n");
        let sink = sink_of(&udp, "output[0]").unwrap();
        assert_eq!(sink.sender_config().max_message_size, Some(QRADAR_UDP_MAX_MESSAGE_SIZE));
        assert!(String::from_utf8(sink.encode(&event())).unwrap().contains("|x5E|devTime="));
    }

    #[test]
    fn build_reports_problems_with_key_paths() {
        // A bad vocabulary is a problem of reading the file, never of build
        // (through the file model: its order is the file's).
        let text = "[[source]]\nname = \"d\"\ntype = \"demo\"\n[[output]]\nname = \"q\"\ntype = \"qradar\"\naddress = \"127.0.0.1:514\"\ntransport = \"sctp\"\ndelimiter = \"abc\"\n";
        let problems = crate::config::parse(text).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["output[0].delimiter", "output[0].transport"], "{problems:?}");
        assert!(problems[1].message.starts_with("unknown variant `sctp`, expected one of `udp`, `tcp`, `tls`"));
        let cfg = output("[[output]]\nname = \"q\"\ntype = \"qradar\"\naddress = \"127.0.0.1:514\"\ntransport = \"tls\"\ntls = { ca_file = \"/nonexistent/ca.pem\" }\n");
        let problems = sink_of(&cfg, "output[0]").unwrap_err();
        assert_eq!(problems[0].path, "output[0].tls");
        assert!(problems[0].message.contains("/nonexistent/ca.pem"), "{}", problems[0].message);
    }

    #[test]
    fn default_ports_fill_in_only_when_missing() {
        assert_eq!(with_default_port("qradar.example.com", Transport::Tls), "qradar.example.com:6514");
        assert_eq!(with_default_port("qradar.example.com:1514", Transport::Tls), "qradar.example.com:1514");
        assert_eq!(with_default_port("10.0.0.1", Transport::Udp), "10.0.0.1:514");
        assert_eq!(with_default_port("[::1]", Transport::Tcp), "[::1]:514");
        assert_eq!(with_default_port("::1", Transport::Tcp), "[::1]:514");
        assert_eq!(with_default_port("[::1]:99", Transport::Tcp), "[::1]:99");
    }

    #[tokio::test]
    async fn send_counts_truncation_and_dead_letters_oversize_udp() {
        let rx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = rx.local_addr().unwrap();
        let base = format!("[[output]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"{addr}\"\ntransport = \"udp\"\nmax_message_size = 480\n");
        let mut big = event();
        big.raw = format!("{{\"pad\":\"{}\"}}", "é".repeat(400));
        let metrics = Arc::new(Metrics::default());
        let mut sink = sink_of(&output(&base), "o").unwrap();
        sink.set_metrics(metrics.clone());
        sink.healthcheck().await.unwrap();
        let d = sink.send(&[event(), big.clone()]).await.unwrap();
        assert_eq!(d, Delivery::default());
        let mut buf = [0u8; 2048];
        let first = rx.recv(&mut buf).await.unwrap();
        assert!(first < 480);
        let second = rx.recv(&mut buf).await.unwrap();
        assert!(second <= 480 && second > 470, "{second}");
        assert!(std::str::from_utf8(&buf[..second]).is_ok());
        assert_eq!(metrics.get(TRUNCATED_METRIC, &[("output", "s")]), 1.0);
        assert_eq!(sink.truncated_total(), 1);

        let mut sink = sink_of(&output(&format!("{base}truncate = false\n")), "o").unwrap();
        let d = sink.send(&[big, event()]).await.unwrap();
        assert_eq!(d.rejected.len(), 1);
        assert_eq!(d.rejected[0].0, 0);
        let n = rx.recv(&mut buf).await.unwrap();
        assert!(std::str::from_utf8(&buf[..n]).unwrap().contains("id=\"ev-1\"]"));
    }

    #[tokio::test]
    async fn unreachable_receiver_is_a_transient_error() {
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let cfg = output(&format!("[[output]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"{addr}\"\n"));
        let mut sink = sink_of(&cfg, "o").unwrap();
        let err = sink.send(&[event()]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient);
        assert!(err.detail.contains(&addr.to_string()), "{}", err.detail);
        assert!(sink.healthcheck().await.is_err());
    }
}
