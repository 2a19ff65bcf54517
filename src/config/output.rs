//! `[[output]]`: its name, the keys every output has ([`OutputCommon`],
//! owned by `outputs`) and one typed struct per output type
//! ([`OutputKind`], the registry in `outputs/kinds.rs`), chosen by the
//! `type` key and read in two passes as sources are (see
//! [`super::source`]).

pub use crate::outputs::{OutputCommon, OutputKind};

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
