//! `[[output]]`: the keys every output has ([`OutputCommon`]) and one typed
//! struct per output type ([`OutputKind`], in [`super::output_types`]),
//! chosen by the `type` key and read in two passes as sources are (see
//! [`super::source`]).

use super::model::{BatchConfig, TlsConfig};
pub use super::output_types::OutputKind;
use super::units::Dur;
use super::validate::Problems;
use serde::Deserialize;

/// `[[output]]`: its name, the keys every output has, and its type's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputConfig {
    /// Unique name, used in offsets and metrics.
    pub name: String,
    /// The keys every output type has.
    pub common: OutputCommon,
    /// The type (`type = "splunk_hec"`) and its own keys.
    pub kind: OutputKind,
}

impl OutputConfig {
    /// The `type` as written in the file.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }
}

/// The keys every `[[output]]` has, whatever its type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputCommon {
    /// Events per second at most; 0 = no limit. Pacing delays, never drops.
    #[serde(default)]
    pub max_eps: Option<u32>,
    /// Batch limits.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Longest wait between retries.
    #[serde(default = "default_retry_max_interval")]
    pub retry_max_interval: Dur,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Longest wait between retries of an output.
pub const DEFAULT_RETRY_MAX_INTERVAL: Dur = Dur::secs(60);

fn default_retry_max_interval() -> Dur {
    DEFAULT_RETRY_MAX_INTERVAL
}

impl Default for OutputCommon {
    fn default() -> Self {
        OutputCommon {
            max_eps: None,
            batch: BatchConfig::default(),
            retry_max_interval: DEFAULT_RETRY_MAX_INTERVAL,
            tls: None,
        }
    }
}

/// What an output type's struct says about itself beyond its keys.
pub trait OutputSpec {
    /// Report what the types could not rule out (a required key left
    /// unset, an address without a port). `at` is the output's key path.
    fn validate(&self, at: &str, common: &OutputCommon, p: &mut Problems);
    /// The keys holding its credentials (none: it sends none).
    fn secrets(&self) -> Vec<super::secret::SecretKey<'_>> {
        Vec::new()
    }
    /// `max_eps` when the config sets none.
    fn default_max_eps(&self) -> Option<u32> {
        None
    }
}
