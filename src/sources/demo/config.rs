//! The keys of a `type = "demo"` source: the generator makes no requests,
//! so it takes none of the HTTP keys (`check` says so).

use crate::settings::units::Rate;
use crate::settings::{Problems, Validate};
use crate::sources::common::SourceSpec;
use serde::Deserialize;

/// `type = "demo"`: the built-in generator of sample events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Events generated per period (`"10/s"` by default).
    #[serde(default)]
    pub rate: Option<Rate>,
}

impl Validate for DemoConfig {
    type Valid = ();
    /// The demo requires no key.
    fn validate(&self, _at: &str, _p: &mut Problems) -> Option<()> {
        Some(())
    }
}

impl SourceSpec for DemoConfig {
    fn url(&self) -> Option<&url::Url> {
        None
    }
    fn credential_header(&self) -> Option<&str> {
        None
    }
    fn makes_requests(&self) -> bool {
        false
    }
}
