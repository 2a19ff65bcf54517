//! Logs and metrics: tracing setup ([`init_logging`]), the metrics
//! registry ([`metrics`]), the health reporter sources and outputs
//! share ([`health`]) and the signal that some output is down
//! ([`OutputHealth`]).

pub mod health;
pub mod metrics;
pub mod notify;
mod output_health;
pub mod server;

pub use output_health::OutputHealth;

use serde::Deserialize;

/// Longest text of an error that came (in part) from outside — an API, a
/// receiver, etcd — kept for a log line or `status`.
pub const MAX_LOGGED_ERROR: usize = 2048;

/// `text` made safe for one log line: control characters (a newline that
/// would start a forged log line, an ANSI escape) written as `\n`, `\u{1b}`…,
/// and at most [`MAX_LOGGED_ERROR`] bytes. Every error a source or output
/// logs passes here: whatever an API or receiver sent back, the log stays
/// the agent's own.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_LOGGED_ERROR));
    for c in text.chars() {
        if out.len() >= MAX_LOGGED_ERROR {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push(' '),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::printable;

    /// Regression: a HEC reply's `text` forged a whole log line.
    #[test]
    fn printable_escapes_control_characters_and_bounds_the_text() {
        let forged = "bad\n2026-12-07T00:00:00Z  INFO auditrelay: all good\u{1b}[2J";
        let p = printable(forged);
        assert!(!p.contains('\n') && !p.contains('\u{1b}'), "{p}");
        assert_eq!(p, "bad\\n2026-12-07T00:00:00Z  INFO auditrelay: all good\\u{1b}[2J");
        let long = printable(&"é".repeat(5000));
        assert!(long.len() <= super::MAX_LOGGED_ERROR + 4 && long.ends_with('…'));
    }
}
