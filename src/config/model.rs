//! The TOML model: the whole file and `[agent]`; `deny_unknown_fields`
//! everywhere, defaults from named functions. Sources and outputs are
//! typed per type: [`super::source`], [`super::output`]; the tables
//! several components share (`tls`) are `settings`', each component's own
//! (`batch`) its own.

use super::output::OutputConfig;
use super::source::SourceConfig;
use crate::settings::units::{Dur, Size};
use crate::telemetry::LogFormat;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The whole file. Each table is read on its own by [`super::collect`],
/// which names the keys here (`agent`, `source`, `output`, `cluster`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// `[agent]`: process-wide settings.
    pub agent: AgentConfig,
    /// `[[source]]`: the APIs to poll.
    pub sources: Vec<SourceConfig>,
    /// `[[output]]`: where events go.
    pub outputs: Vec<OutputConfig>,
    /// `[cluster]`: several agents sharing the sources through etcd;
    /// `None` = one agent.
    pub cluster: Option<super::cluster::ClusterConfig>,
}

impl Config {
    /// The host name reported to SIEMs (and a fleet member's default
    /// name): `agent.hostname`, else the kernel's host name.
    pub fn hostname(&self) -> String {
        self.agent.hostname.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_owned())
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "localhost".into())
        })
    }
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
