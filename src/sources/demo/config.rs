//! The keys of a `type = "demo"` source: the generator makes no requests,
//! so it takes none of the HTTP keys (`check` says so).

use crate::settings::units::Rate;
use crate::settings::Problems;
use crate::sources::common::{SourceCommon, SourceSpec};
use serde::Deserialize;

/// `type = "demo"`: the built-in generator of sample events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Events generated per period (`"10/s"` by default).
    #[serde(default)]
    pub rate: Option<Rate>,
}

impl SourceSpec for DemoConfig {
    fn url(&self) -> Option<&str> {
        None
    }
    fn validate(&self, _at: &str, _common: &SourceCommon, _p: &mut Problems) {}
    fn credential_header(&self) -> Option<&str> {
        None
    }
    fn makes_requests(&self) -> bool {
        false
    }
}
