//! The keys of the `syslog` and `qradar` outputs beyond the common ones,
//! what they check about them, and the closed vocabularies of their values
//! (the transports and framings are `transport`'s, [`Transport`] and
//! [`Framing`]).

use crate::encode::leef::Delimiter;
use crate::encode::Facility;
use crate::outputs::common::OutputSpec;
use crate::settings::units::{Dur, Size};
use crate::settings::{Problem, Problems, Validate};
use crate::transport::framing::{Framing, Transport};
use serde::{Deserialize, Deserializer};

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

/// The required key of a `syslog` or `qradar` output, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// `host:port`, with a port.
    pub address: String,
}

impl Validate for SyslogConfig {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        validate_syslog(at, self.address.as_ref(), self.transport, self.framing, self.max_message_size, p)
    }
}

impl OutputSpec for SyslogConfig {
    fn sends_documents(&self) -> bool {
        self.payload == SyslogPayload::Json
    }
    fn warnings(&self, at: &str) -> Vec<Problem> {
        cleartext_transport(at, self.transport)
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

impl Validate for QradarConfig {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        validate_syslog(at, self.address.as_ref(), self.transport, self.framing, self.max_message_size, p)
    }
}

impl OutputSpec for QradarConfig {
    fn default_max_eps(&self) -> Option<u32> {
        Some(QRADAR_DEFAULT_MAX_EPS)
    }
    fn warnings(&self, at: &str) -> Vec<Problem> {
        cleartext_transport(at, self.transport)
    }
}

/// The warning for a syslog stream sent over plain `tcp` or `udp`.
fn cleartext_transport(at: &str, transport: Transport) -> Vec<Problem> {
    match transport {
        Transport::Tcp | Transport::Udp => vec![Problem::new(
            format!("{at}.transport"),
            format!(
                "is {}: the audit events travel unencrypted and unauthenticated; set transport = \"tls\"",
                transport.as_str()
            ),
        )],
        Transport::Tls => Vec::new(),
    }
}

fn validate_syslog(
    at: &str,
    address: Option<&String>,
    transport: Transport,
    framing: Option<Framing>,
    max_message_size: Option<Size>,
    p: &mut Problems,
) -> Option<Required> {
    let before = p.0.len();
    let address = p.required(at, "address", address, "is required (host:port)");
    if let Some(a) = address {
        let ok =
            a.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|n| n > 0));
        if !ok {
            p.add(format!("{at}.address"), format!("{a:?} must be host:port (e.g. \"qradar.example.com:6514\")"));
        }
    }
    if framing.is_some() && transport == Transport::Udp {
        p.add(format!("{at}.framing"), "UDP sends one message per datagram; framing applies to tcp and tls only");
    }
    if let Some(n) = max_message_size {
        if n.bytes() < 480 || n.bytes() > 65_507 && transport == Transport::Udp {
            p.add(format!("{at}.max_message_size"), "must be at least 480 bytes (and at most 65507 over UDP)");
        }
    }
    let required = Required { address: address?.clone() };
    (p.0.len() == before).then_some(required)
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
