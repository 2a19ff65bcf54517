//! A small metrics registry rendered in the Prometheus text format.
//!
//! Updated per page or per batch, never per event, so a mutex-guarded map is
//! cheap enough. Names follow `auditrelay_<noun>_<unit>_total`; labels are
//! low-cardinality (`source`, `output`, `status`), never an event id.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Every metric auditrelay exports, with its type and help text. The list is
/// the contract dashboards rely on; a test pins it.
pub const METRICS: &[(&str, &str, &str)] = &[
    ("auditrelay_events_polled_total", "counter", "Events received from a source's API (before dedupe)."),
    ("auditrelay_events_journaled_total", "counter", "Events written to the journal by a source."),
    (
        "auditrelay_events_dropped_duplicate_total",
        "counter",
        "Events a source dropped as already taken or older than its cursor.",
    ),
    ("auditrelay_events_sent_total", "counter", "Events an output's receiver confirmed."),
    ("auditrelay_events_dead_lettered_total", "counter", "Events an output's receiver rejected for good."),
    ("auditrelay_events_truncated_total", "counter", "Syslog messages an output cut to its max_message_size."),
    ("auditrelay_requests_total", "counter", "HTTP requests made, by source or output and status."),
    ("auditrelay_errors_total", "counter", "Failed polls or sends, by source or output."),
    ("auditrelay_retries_total", "counter", "Retries of a request or batch."),
    ("auditrelay_journal_bytes", "gauge", "Bytes of events in the journal."),
    ("auditrelay_journal_max_bytes", "gauge", "The journal's cap, agent.max_journal_size."),
    ("auditrelay_journal_full", "gauge", "1 while the journal is at max_journal_size and sources are paused."),
    ("auditrelay_backlog_events", "gauge", "Journal entries an output has not delivered yet."),
    ("auditrelay_cursor_lag_seconds", "gauge", "Now minus a source's cursor time."),
    ("auditrelay_poll_interval_seconds", "gauge", "A source's poll interval once caught up."),
    ("auditrelay_last_poll_timestamp_seconds", "gauge", "Time of a source's last successful poll."),
    ("auditrelay_last_send_timestamp_seconds", "gauge", "Time of an output's last confirmed batch."),
    ("auditrelay_up", "gauge", "1 when a source or output is healthy, 0 when not."),
    ("auditrelay_cluster_members", "gauge", "Live agents in the fleet ([cluster] only)."),
    ("auditrelay_cluster_owned_sources", "gauge", "Sources this agent owns and polls ([cluster] only)."),
    ("auditrelay_cluster_handovers_total", "counter", "Sources this agent took over from another agent's checkpoint."),
    ("auditrelay_cluster_etcd_up", "gauge", "1 while etcd answers and the agent's lease is renewed ([cluster] only)."),
];

/// A source's counters, present at 0 from its start so that alert rules and
/// dashboards see every series before its first increment (`rate()` and
/// `increase()` need the zero).
const SOURCE_COUNTERS: &[&str] = &[
    "auditrelay_events_polled_total",
    "auditrelay_events_journaled_total",
    "auditrelay_events_dropped_duplicate_total",
    "auditrelay_errors_total",
    "auditrelay_retries_total",
];

/// An output's counters, present at 0 from its start (see [`SOURCE_COUNTERS`]).
const OUTPUT_COUNTERS: &[&str] = &[
    "auditrelay_events_sent_total",
    "auditrelay_events_dead_lettered_total",
    "auditrelay_errors_total",
    "auditrelay_retries_total",
];

type Key = (&'static str, Vec<(&'static str, String)>);

/// The registry.
#[derive(Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<Key, f64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
}

impl Metrics {
    /// Add to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], n: u64) {
        let mut m = self.values.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(key(name, labels)).or_insert(0.0) += n as f64;
    }

    /// Set a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], v: f64) {
        let mut m = self.values.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(key(name, labels), v);
    }

    /// Read a value (tests and status).
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> f64 {
        let m = self.values.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&key(name, labels)).copied().unwrap_or(0.0)
    }

    /// Every series of one metric: its labels and value.
    pub fn series(&self, name: &str) -> Vec<(Vec<(&'static str, String)>, f64)> {
        let m = self.values.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().filter(|((n, _), _)| *n == name).map(|((_, l), v)| (l.clone(), *v)).collect()
    }

    /// Forget every series carrying `label = value` (a removed source or output).
    pub fn forget(&self, label: &'static str, value: &str) {
        let mut m = self.values.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|(_, labels), _| !labels.iter().any(|(k, v)| *k == label && v == value));
    }

    /// Export a started source's counters at 0 and its poll interval.
    pub fn register_source(&self, name: &str, interval: std::time::Duration) {
        for counter in SOURCE_COUNTERS {
            self.add(counter, &[("source", name)], 0);
        }
        self.set("auditrelay_poll_interval_seconds", &[("source", name)], interval.as_secs_f64());
    }

    /// Export a started output's counters at 0.
    pub fn register_output(&self, name: &str) {
        for counter in OUTPUT_COUNTERS {
            self.add(counter, &[("output", name)], 0);
        }
    }

    /// Render every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let m = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (name, kind, help) in METRICS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, labels), v) in m.iter().filter(|((n, _), _)| n == name) {
                let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                if labels.is_empty() {
                    let _ = writeln!(out, "{n} {v}");
                } else {
                    let _ = writeln!(out, "{n}{{{}}} {v}", labels.join(","));
                }
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.add("auditrelay_events_sent_total", &[("output", "hec")], 3);
        m.add("auditrelay_events_sent_total", &[("output", "hec")], 2);
        m.set("auditrelay_journal_bytes", &[], 10.0);
        let text = m.render();
        assert!(text.contains("# TYPE auditrelay_events_sent_total counter"));
        assert!(text.contains("auditrelay_events_sent_total{output=\"hec\"} 5"));
        assert!(text.contains("auditrelay_journal_bytes 10"));
        m.register_source("api", std::time::Duration::from_secs(60));
        let text = m.render();
        assert!(text.contains("auditrelay_errors_total{source=\"api\"} 0"), "{text}");
        assert!(text.contains("auditrelay_poll_interval_seconds{source=\"api\"} 60"), "{text}");
        m.forget("output", "hec");
        assert_eq!(m.get("auditrelay_events_sent_total", &[("output", "hec")]), 0.0);
    }
}
