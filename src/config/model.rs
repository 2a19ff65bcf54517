//! The TOML model: one struct per table, `deny_unknown_fields` everywhere,
//! defaults from named functions. Sources and outputs are flat structs with
//! a `type` key; [`super::validate`] rejects keys that do not belong to the
//! chosen type, with their key path.

use super::secret::SecretRef;
use super::units::{Dur, Rate, Size, StartAt};
use crate::event::Payload;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Process-wide settings.
    #[serde(default)]
    pub agent: AgentConfig,
    /// The APIs to poll.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Where events go.
    #[serde(default, rename = "output")]
    pub outputs: Vec<OutputConfig>,
    /// Several agents sharing the sources through etcd; `None` = one agent.
    #[serde(default)]
    pub cluster: Option<super::cluster::ClusterConfig>,
}

/// `[agent]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Directory of the sled database (journal, cursors, offsets).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Journal size at which sources stop polling until outputs catch up.
    #[serde(default = "default_max_journal_size")]
    pub max_journal_size: Size,
    /// `text` (for journald) or `json` (for log shippers).
    #[serde(default)]
    pub log_format: LogFormat,
    /// Log filter, `info` by default; `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Address for `/health` and `/metrics`; off when unset.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// How long SIGTERM may take to drain before in-flight sends are abandoned.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Dur,
    /// Host name sent to SIEMs (HEC `host`, syslog HOSTNAME); the system's by default.
    #[serde(default)]
    pub hostname: Option<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            state_dir: default_state_dir(),
            max_journal_size: default_max_journal_size(),
            log_format: LogFormat::default(),
            log_level: default_log_level(),
            listen: None,
            shutdown_timeout: default_shutdown_timeout(),
            hostname: None,
        }
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/auditrelay")
}
fn default_max_journal_size() -> Size {
    Size(1 << 30)
}
fn default_log_level() -> String {
    "info".into()
}
fn default_shutdown_timeout() -> Dur {
    Dur::secs(30)
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The kinds of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    /// OpenCTI GraphQL `audits`.
    Opencti,
    /// SEKOIA.IO activity log.
    Sekoia,
    /// Invicti Enterprise audit log.
    Invicti,
    /// Keepnet Labs audit log.
    Keepnet,
    /// Guance audit events.
    Guance,
    /// Any JSON API.
    HttpJson,
    /// Built-in generator of sample events.
    Demo,
}

impl SourceType {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Opencti => "opencti",
            SourceType::Sekoia => "sekoia",
            SourceType::Invicti => "invicti",
            SourceType::Keepnet => "keepnet",
            SourceType::Guance => "guance",
            SourceType::HttpJson => "http_json",
            SourceType::Demo => "demo",
        }
    }
}

/// `[[source]]`: common keys plus the keys of each type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name, used in cursors, metrics and `labels.source`.
    pub name: String,
    /// Which API this is.
    #[serde(rename = "type")]
    pub kind: SourceType,
    /// Base URL of the API (the full endpoint for `http_json`).
    #[serde(default)]
    pub url: Option<String>,
    /// API token (`${ENV}` or literal).
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// File holding the API token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Invicti user id.
    #[serde(default)]
    pub user_id: Option<SecretRef>,
    /// File holding the Invicti user id.
    #[serde(default)]
    pub user_id_file: Option<PathBuf>,
    /// OAuth2 client id (Keepnet).
    #[serde(default)]
    pub client_id: Option<SecretRef>,
    /// OAuth2 client secret (Keepnet).
    #[serde(default)]
    pub client_secret: Option<SecretRef>,
    /// File holding the OAuth2 client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Time between polls once caught up.
    #[serde(default)]
    pub interval: Option<Dur>,
    /// Where a source without a cursor starts: RFC 3339 or a duration back.
    #[serde(default)]
    pub start_at: Option<StartAt>,
    /// Events asked for per request.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Requests to this API, e.g. `"5/s"`.
    #[serde(default)]
    pub rate_limit: Option<Rate>,
    /// Events younger than this are left for the next poll.
    #[serde(default)]
    pub lag: Option<Dur>,
    /// Re-ask this far behind the cursor; ids already taken are dropped.
    #[serde(default)]
    pub lookback: Option<Dur>,
    /// Request timeout.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Larger responses are refused.
    #[serde(default)]
    pub max_response_size: Option<Size>,
    /// Outputs this source's events go to; every output by default.
    #[serde(default)]
    pub outputs: Option<Vec<String>>,
    /// TLS settings for the API connection.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Extra HTTP headers on every request.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// `http_json`: `GET` or `POST`.
    #[serde(default)]
    pub method: Option<String>,
    /// `http_json`: request body for POST, templated.
    #[serde(default)]
    pub body: Option<String>,
    /// `http_json`: authentication.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// `http_json`: JSON pointer to the array of events.
    #[serde(default)]
    pub events: Option<String>,
    /// `http_json`: JSON pointer to an event's id.
    #[serde(default)]
    pub id: Option<String>,
    /// `http_json`: JSON pointer to an event's time.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// `http_json`: `rfc3339`, `unix`, `unix_ms` or a strftime pattern.
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// `http_json`: query parameters, templated.
    #[serde(default)]
    pub params: Option<BTreeMap<String, String>>,
    /// `http_json`: how to get the next page.
    #[serde(default)]
    pub pagination: Option<PaginationConfig>,
    /// `http_json`: `asc` (default) or `desc` when the API lists newest first.
    #[serde(default)]
    pub order: Option<Order>,
    /// `http_json`: ECS field → JSON pointer into the event.
    #[serde(default)]
    pub fields: Option<BTreeMap<String, String>>,
    /// `demo`: events generated per period.
    #[serde(default)]
    pub rate: Option<Rate>,
    /// `opencti`: also collect `History` (knowledge changes).
    #[serde(default)]
    pub include_history: Option<bool>,
    /// `guance`: the DQL query for audit events.
    #[serde(default)]
    pub query: Option<String>,
    /// Longest time window asked for in one poll (catch-up is split).
    #[serde(default)]
    pub max_window: Option<Dur>,
}

/// Listing order of an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Oldest first: the cursor can advance page by page.
    #[default]
    Asc,
    /// Newest first: a window is read completely before its cursor moves.
    Desc,
}

/// `http_json` authentication.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        #[serde(default)]
        token: Option<SecretRef>,
        /// File holding the token.
        #[serde(default)]
        token_file: Option<PathBuf>,
    },
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        #[serde(default)]
        password: Option<SecretRef>,
        /// File holding the password.
        #[serde(default)]
        password_file: Option<PathBuf>,
    },
    /// A custom header holding the secret, e.g. `X-API-Key`.
    Header {
        /// Header name.
        name: String,
        /// Header value.
        #[serde(default)]
        value: Option<SecretRef>,
        /// File holding the header value.
        #[serde(default)]
        value_file: Option<PathBuf>,
    },
    /// OAuth2 client credentials; the token is renewed before it expires.
    Oauth2 {
        /// Token endpoint URL.
        token_url: String,
        /// Client id.
        client_id: SecretRef,
        /// Client secret.
        #[serde(default)]
        client_secret: Option<SecretRef>,
        /// File holding the client secret.
        #[serde(default)]
        client_secret_file: Option<PathBuf>,
        /// Requested scope.
        #[serde(default)]
        scope: Option<String>,
    },
}

/// `http_json` pagination.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaginationConfig {
    /// One request per poll.
    None,
    /// `{{page}}` counts up from `start` until a short page.
    Page {
        /// First page number.
        #[serde(default = "one")]
        start: u64,
    },
    /// `{{offset}}` grows by the events received until a short page.
    Offset,
    /// A token from the response, sent back as `param`.
    Next {
        /// JSON pointer to the next token in the response.
        next: String,
        /// Query parameter that carries it.
        param: String,
    },
    /// The `Link: <…>; rel="next"` response header.
    Link,
}

fn one() -> u64 {
    1
}

/// The kinds of output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    /// Splunk HTTP Event Collector.
    SplunkHec,
    /// IBM QRadar: LEEF 2.0 over syslog.
    Qradar,
    /// Any syslog receiver.
    Syslog,
    /// JSON lines to a file or stdout.
    File,
}

impl OutputType {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputType::SplunkHec => "splunk_hec",
            OutputType::Qradar => "qradar",
            OutputType::Syslog => "syslog",
            OutputType::File => "file",
        }
    }
}

/// `[[output]]`: common keys plus the keys of each type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Unique name, used in offsets and metrics.
    pub name: String,
    /// Which receiver this is.
    #[serde(rename = "type")]
    pub kind: OutputType,
    /// Events per second at most; 0 = no limit. Pacing delays, never drops.
    #[serde(default)]
    pub max_eps: Option<u32>,
    /// Batch limits.
    #[serde(default)]
    pub batch: BatchConfig,
    /// `normalised` (ECS with `event.original`) or `raw`.
    #[serde(default)]
    pub payload: Option<String>,
    /// Longest wait between retries.
    #[serde(default = "default_retry_max_interval")]
    pub retry_max_interval: Dur,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `splunk_hec`: base URL, e.g. `https://splunk:8088`.
    #[serde(default)]
    pub url: Option<String>,
    /// `splunk_hec`: HEC token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// `splunk_hec`: file holding the HEC token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `splunk_hec`: index.
    #[serde(default)]
    pub index: Option<String>,
    /// `splunk_hec`: sourcetype.
    #[serde(default)]
    pub sourcetype: Option<String>,
    /// `splunk_hec`: source; the event's source name by default.
    #[serde(default)]
    pub source: Option<String>,
    /// `splunk_hec`: indexer acknowledgement.
    #[serde(default)]
    pub ack: Option<bool>,
    /// `splunk_hec`: resend a batch not acknowledged by then.
    #[serde(default)]
    pub ack_timeout: Option<Dur>,
    /// `splunk_hec`: batches sent before the first is confirmed (default 1).
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    /// `splunk_hec`: gzip request bodies (default true).
    #[serde(default)]
    pub compression: Option<bool>,
    /// `splunk_hec`: HTTP request timeout; `syslog`/`qradar`: write timeout.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// `syslog`/`qradar`: `host:port`.
    #[serde(default)]
    pub address: Option<String>,
    /// `syslog`/`qradar`: `udp`, `tcp` or `tls`.
    #[serde(default)]
    pub transport: Option<String>,
    /// `syslog`: `rfc5424` or `rfc3164`.
    #[serde(default)]
    pub format: Option<String>,
    /// `syslog`/`qradar`: `octet-counting` or `newline` (TCP/TLS).
    #[serde(default)]
    pub framing: Option<String>,
    /// `syslog`/`qradar`: facility name or number.
    #[serde(default)]
    pub facility: Option<String>,
    /// `syslog`: APP-NAME.
    #[serde(default)]
    pub app_name: Option<String>,
    /// `syslog`/`qradar`: longest message, truncated or dead-lettered above it
    /// (default over UDP only: 8KiB syslog, 4KiB qradar).
    #[serde(default)]
    pub max_message_size: Option<Size>,
    /// `syslog`/`qradar`: truncate oversize UDP messages (true) or dead-letter them.
    #[serde(default)]
    pub truncate: Option<bool>,
    /// `qradar`: LEEF attribute delimiter (one character or hex like `x09`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// `file`: path of the JSON-lines file; `-` is stdout.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

fn default_retry_max_interval() -> Dur {
    Dur::secs(60)
}

/// `batch = { max_events, max_bytes, timeout }`
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Events per batch at most.
    #[serde(default = "default_batch_events")]
    pub max_events: usize,
    /// Encoded bytes per batch at most (one larger event is sent alone).
    #[serde(default = "default_batch_bytes")]
    pub max_bytes: Size,
    /// Longest wait for a batch to fill.
    #[serde(default = "default_batch_timeout")]
    pub timeout: Dur,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: default_batch_events(),
            max_bytes: default_batch_bytes(),
            timeout: default_batch_timeout(),
        }
    }
}

fn default_batch_events() -> usize {
    500
}
fn default_batch_bytes() -> Size {
    Size(1 << 20)
}
fn default_batch_timeout() -> Dur {
    Dur::secs(1)
}

/// `tls = { ca_file, cert_file, key_file, server_name, insecure_skip_verify }`
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra CA bundle (PEM) trusted besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM) for mTLS.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Name to verify instead of the host in the URL or address.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Turn certificate verification off (logged as a warning at every start).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl OutputConfig {
    /// The payload setting, parsed (validation has rejected bad values).
    pub fn payload_kind(&self) -> Payload {
        match self.payload.as_deref() {
            Some("raw") => Payload::Raw,
            _ => Payload::Normalised,
        }
    }
}
