//! The registry of output types: one line per type, naming its `type`, its
//! config struct (in the output's folder, `outputs/<name>/config.rs`) and
//! what the type is. A new output is its folder and its line here.

use super::common::OutputSpec;
#[cfg(test)]
use super::example::ExampleConfig;
use super::file::FileConfig;
use super::splunk_hec::SplunkHecConfig;
use super::syslog::{QradarConfig, SyslogConfig};
use super::{BuildCtx, Built};
use crate::settings::registry::kinds;

kinds! { OutputKind: OutputSpec, "output", BuildCtx<'_> => Built;
    /// Splunk HTTP Event Collector.
    SplunkHec(SplunkHecConfig) = "splunk_hec",
    /// IBM QRadar: LEEF 2.0 over syslog.
    Qradar(QradarConfig) = "qradar",
    /// Any syslog receiver.
    Syslog(SyslogConfig) = "syslog",
    /// JSON lines to a file or stdout.
    File(FileConfig) = "file",
    /// The output kept as documentation (`outputs/example/`), a type of
    /// the tests only: users cannot configure it.
    #[cfg(test)]
    Example(ExampleConfig) = "example",
}
