//! The keys of a `type = "file"` output beyond the common ones and what it
//! checks about them.

use crate::outputs::common::{JsonPayload, OutputSpec};
use crate::settings::{Problems, Validate};
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

/// The required keys of a `file` output, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// Path of the JSON-lines file; `-` is stdout.
    pub path: PathBuf,
}

impl Validate for FileConfig {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        let path = p.required(at, "path", self.path.as_ref(), "is required (\"-\" for stdout)");
        Some(Required { path: path?.clone() })
    }
}

impl OutputSpec for FileConfig {
    fn sends_documents(&self) -> bool {
        self.payload != JsonPayload::Raw
    }
}
