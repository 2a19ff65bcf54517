//! Logs and metrics: tracing setup ([`init_logging`]), the metrics
//! registry ([`metrics`]) and the health reporter sources and outputs
//! share ([`health`]).

pub mod health;
pub mod metrics;
pub mod notify;
pub mod server;

use crate::config::LogFormat;

/// Install the global tracing subscriber, writing to stderr so stdout stays
/// free for the `file` output's `path = "-"`. `RUST_LOG` overrides `level`.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
