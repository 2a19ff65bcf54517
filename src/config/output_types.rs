//! The keys of each output type beyond the common ones, one struct per
//! type, each denying the keys it does not declare, and the closed
//! vocabularies of their values (`transport = "tcp"` is
//! [`Transport::Tcp`] from the moment it is read).

use super::output::{OutputCommon, OutputSpec};
use super::registry::kinds;
use super::secret::{SecretKey, SecretRef};
use super::units::{Dur, Size};
use super::validate::Problems;
use crate::encode::leef::Delimiter;
use crate::encode::Facility;
use crate::event::Payload;
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;

// The registry of output types: one line each.
kinds! { OutputKind: super::output::OutputSpec, "output";
    /// Splunk HTTP Event Collector.
    SplunkHec(SplunkHecConfig) = "splunk_hec",
    /// IBM QRadar: LEEF 2.0 over syslog.
    Qradar(QradarConfig) = "qradar",
    /// Any syslog receiver.
    Syslog(SyslogConfig) = "syslog",
    /// JSON lines to a file or stdout.
    File(FileConfig) = "file",
}

/// `type = "splunk_hec"`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// Base URL, e.g. `https://splunk:8088`.
    #[serde(default)]
    pub url: Option<String>,
    /// HEC token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the HEC token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Index.
    #[serde(default)]
    pub index: Option<String>,
    /// Sourcetype.
    #[serde(default)]
    pub sourcetype: Option<String>,
    /// Source; the event's source name by default.
    #[serde(default)]
    pub source: Option<String>,
    /// Indexer acknowledgement.
    #[serde(default)]
    pub ack: Option<bool>,
    /// Resend a batch not acknowledged by then.
    #[serde(default)]
    pub ack_timeout: Option<Dur>,
    /// Batches sent before the first is confirmed (default 1).
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    /// Gzip request bodies (default true).
    #[serde(default)]
    pub compression: Option<bool>,
    /// HTTP request timeout.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// `normalised` (default, ECS with `event.original`), `json` (the same) or `raw`.
    #[serde(default)]
    pub payload: JsonPayload,
}

impl OutputSpec for SplunkHecConfig {
    fn secrets(&self) -> Vec<SecretKey<'_>> {
        vec![SecretKey::new("token", self.token.as_ref(), self.token_file.as_ref())]
    }
    fn validate(&self, at: &str, _common: &OutputCommon, p: &mut Problems) {
        match &self.url {
            Some(u) => p.check_url(format!("{at}.url"), u),
            None => p.add(format!("{at}.url"), "is required (e.g. \"https://splunk.example.com:8088\")"),
        }
        if self.token.is_none() && self.token_file.is_none() {
            p.add(format!("{at}.token"), "is required (or token_file)");
        }
        if self.ack_timeout.is_some_and(|d| d.get() < std::time::Duration::from_secs(1)) {
            p.add(format!("{at}.ack_timeout"), "must be at least 1s");
        }
        if self.max_in_flight.is_some_and(|n| !(1..=64).contains(&n)) {
            p.add(format!("{at}.max_in_flight"), "must be between 1 and 64");
        }
    }
}

/// `type = "syslog"`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port`.
    #[serde(default)]
    pub address: Option<String>,
    /// `udp`, `tcp` (default) or `tls`.
    #[serde(default)]
    pub transport: Transport,
    /// `rfc5424` (default) or `rfc3164`.
    #[serde(default)]
    pub format: SyslogFormat,
    /// `octet-counting` (default) or `newline` (TCP/TLS).
    #[serde(default)]
    pub framing: Option<Framing>,
    /// Facility name or number.
    #[serde(default, deserialize_with = "facility")]
    pub facility: Option<Facility>,
    /// APP-NAME.
    #[serde(default)]
    pub app_name: Option<String>,
    /// Longest message (default over UDP only: 8KiB).
    #[serde(default)]
    pub max_message_size: Option<Size>,
    /// Truncate oversize UDP messages (true) or dead-letter them.
    #[serde(default)]
    pub truncate: Option<bool>,
    /// Write timeout.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// `json` (default), `cef` or `raw`.
    #[serde(default)]
    pub payload: SyslogPayload,
}

impl OutputSpec for SyslogConfig {
    fn validate(&self, at: &str, _common: &OutputCommon, p: &mut Problems) {
        validate_syslog(at, self.address.as_deref(), self.transport, self.framing, self.max_message_size, p);
    }
}

/// `type = "qradar"`: LEEF over syslog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QradarConfig {
    /// `host:port`.
    #[serde(default)]
    pub address: Option<String>,
    /// `udp`, `tcp` (default) or `tls`.
    #[serde(default)]
    pub transport: Transport,
    /// `newline` over TCP, `octet-counting` over TLS by default.
    #[serde(default)]
    pub framing: Option<Framing>,
    /// Facility name or number.
    #[serde(default, deserialize_with = "facility")]
    pub facility: Option<Facility>,
    /// Longest message (default over UDP only: 4KiB).
    #[serde(default)]
    pub max_message_size: Option<Size>,
    /// Truncate oversize UDP messages (true) or dead-letter them.
    #[serde(default)]
    pub truncate: Option<bool>,
    /// LEEF attribute delimiter (one character or hex like `x09`); tab by default.
    #[serde(default, deserialize_with = "delimiter")]
    pub delimiter: Option<Delimiter>,
    /// `leef`, the only one.
    #[serde(default)]
    pub payload: LeefPayload,
}

/// QRadar's licence is per EPS and QRadar drops what overflows its burst
/// queue: the agent paces to IBM's own collector default.
pub const QRADAR_DEFAULT_MAX_EPS: u32 = 5000;

impl OutputSpec for QradarConfig {
    fn validate(&self, at: &str, _common: &OutputCommon, p: &mut Problems) {
        validate_syslog(at, self.address.as_deref(), self.transport, self.framing, self.max_message_size, p);
    }
    fn default_max_eps(&self) -> Option<u32> {
        Some(QRADAR_DEFAULT_MAX_EPS)
    }
}

/// `type = "file"`: JSON lines.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Path of the JSON-lines file; `-` is stdout.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `normalised` (default), `json` (the same) or `raw`.
    #[serde(default)]
    pub payload: JsonPayload,
}

impl OutputSpec for FileConfig {
    fn validate(&self, at: &str, _common: &OutputCommon, p: &mut Problems) {
        if self.path.is_none() {
            p.add(format!("{at}.path"), "is required (\"-\" for stdout)");
        }
    }
}

fn validate_syslog(
    at: &str,
    address: Option<&str>,
    transport: Transport,
    framing: Option<Framing>,
    max_message_size: Option<Size>,
    p: &mut Problems,
) {
    match address {
        Some(a) => {
            let ok = a
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|n| n > 0));
            if !ok {
                p.add(format!("{at}.address"), format!("{a:?} must be host:port (e.g. \"qradar.example.com:6514\")"));
            }
        }
        None => p.add(format!("{at}.address"), "is required (host:port)"),
    }
    if framing.is_some() && transport == Transport::Udp {
        p.add(format!("{at}.framing"), "UDP sends one message per datagram; framing applies to tcp and tls only");
    }
    if let Some(n) = max_message_size {
        if n.bytes() < 480 || n.bytes() > 65_507 && transport == Transport::Udp {
            p.add(format!("{at}.max_message_size"), "must be at least 480 bytes (and at most 65507 over UDP)");
        }
    }
}

/// What a `splunk_hec` or `file` output sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonPayload {
    /// The ECS document with the raw event in `event.original`.
    #[default]
    Normalised,
    /// The same as `normalised`.
    Json,
    /// The API's JSON untouched.
    Raw,
}

impl JsonPayload {
    /// The event's JSON this sends.
    pub fn payload(self) -> Payload {
        match self {
            JsonPayload::Normalised | JsonPayload::Json => Payload::Normalised,
            JsonPayload::Raw => Payload::Raw,
        }
    }
}

/// What a `syslog` output sends in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogPayload {
    /// The ECS document as JSON.
    #[default]
    Json,
    /// ArcSight CEF.
    Cef,
    /// The API's JSON untouched.
    Raw,
}

/// What a `qradar` output sends: LEEF 2.0 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeefPayload {
    /// LEEF 2.0.
    #[default]
    Leef,
}

/// The syslog header format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    /// RFC 5424.
    #[default]
    Rfc5424,
    /// BSD syslog, RFC 3164.
    Rfc3164,
}

/// How syslog messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// One message per datagram (RFC 5426). No delivery guarantee.
    Udp,
    /// A TCP stream of framed messages (RFC 6587).
    #[default]
    Tcp,
    /// TLS over TCP (RFC 5425).
    Tls,
}

impl Transport {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// How messages are delimited in a TCP or TLS stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// `LEN SP MSG` (RFC 6587 §3.4.1, the only framing of RFC 5425).
    #[default]
    OctetCounting,
    /// `MSG LF` (RFC 6587 §3.4.2, "non-transparent").
    Newline,
}

impl Framing {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::OctetCounting => "octet-counting",
            Framing::Newline => "newline",
        }
    }
}

fn facility<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Facility>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!("{text:?} is not a syslog facility (e.g. \"local0\", \"authpriv\" or 0-23)"))
    })
}

fn delimiter<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Delimiter>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(serde::de::Error::custom)
}
