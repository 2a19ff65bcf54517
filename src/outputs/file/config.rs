//! The keys of a `type = "file"` output beyond the common ones and what it
//! checks about them.

use crate::outputs::common::{JsonPayload, OutputCommon, OutputSpec};
use crate::settings::Problems;
use serde::Deserialize;
use std::path::PathBuf;

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
