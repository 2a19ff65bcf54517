//! A small metrics registry rendered in the Prometheus text format.
//!
//! Updated per page or per batch, never per event, so a mutex-guarded map is
//! cheap enough. Names follow `auditrelay_<noun>_<unit>_total`; labels are
//! low-cardinality (`source`, `output`, `status`), never an event id.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// The name of each metric, for the call sites (a typo is a compile error,
/// not a series nobody scrapes).
pub mod name {
    /// `auditrelay_events_polled_total`.
    pub const EVENTS_POLLED: &str = "auditrelay_events_polled_total";
    /// `auditrelay_events_journaled_total`.
    pub const EVENTS_JOURNALED: &str = "auditrelay_events_journaled_total";
    /// `auditrelay_events_dropped_duplicate_total`.
    pub const EVENTS_DROPPED_DUPLICATE: &str = "auditrelay_events_dropped_duplicate_total";
    /// `auditrelay_events_set_aside_total`.
    pub const EVENTS_SET_ASIDE: &str = "auditrelay_events_set_aside_total";
    /// `auditrelay_events_sent_total`.
    pub const EVENTS_SENT: &str = "auditrelay_events_sent_total";
    /// `auditrelay_events_dead_lettered_total`.
    pub const EVENTS_DEAD_LETTERED: &str = "auditrelay_events_dead_lettered_total";
    /// `auditrelay_events_truncated_total`.
    pub const EVENTS_TRUNCATED: &str = "auditrelay_events_truncated_total";
    /// `auditrelay_requests_total`.
    pub const REQUESTS: &str = "auditrelay_requests_total";
    /// `auditrelay_errors_total`.
    pub const ERRORS: &str = "auditrelay_errors_total";
    /// `auditrelay_retries_total`.
    pub const RETRIES: &str = "auditrelay_retries_total";
    /// `auditrelay_journal_bytes`.
    pub const JOURNAL_BYTES: &str = "auditrelay_journal_bytes";
    /// `auditrelay_journal_max_bytes`.
    pub const JOURNAL_MAX_BYTES: &str = "auditrelay_journal_max_bytes";
    /// `auditrelay_journal_full`.
    pub const JOURNAL_FULL: &str = "auditrelay_journal_full";
    /// `auditrelay_backlog_events`.
    pub const BACKLOG_EVENTS: &str = "auditrelay_backlog_events";
    /// `auditrelay_cursor_lag_seconds`.
    pub const CURSOR_LAG: &str = "auditrelay_cursor_lag_seconds";
    /// `auditrelay_poll_interval_seconds`.
    pub const POLL_INTERVAL: &str = "auditrelay_poll_interval_seconds";
    /// `auditrelay_last_poll_timestamp_seconds`.
    pub const LAST_POLL: &str = "auditrelay_last_poll_timestamp_seconds";
    /// `auditrelay_last_send_timestamp_seconds`.
    pub const LAST_SEND: &str = "auditrelay_last_send_timestamp_seconds";
    /// `auditrelay_manifests_sent_total`.
    pub const MANIFESTS_SENT: &str = "auditrelay_manifests_sent_total";
    /// `auditrelay_manifest_last_sent_timestamp_seconds`.
    pub const MANIFEST_LAST_SENT: &str = "auditrelay_manifest_last_sent_timestamp_seconds";
    /// `auditrelay_manifest_interval_seconds`.
    pub const MANIFEST_INTERVAL: &str = "auditrelay_manifest_interval_seconds";
    /// `auditrelay_up`.
    pub const UP: &str = "auditrelay_up";
    /// `auditrelay_cluster_members`.
    pub const CLUSTER_MEMBERS: &str = "auditrelay_cluster_members";
    /// `auditrelay_cluster_owned_sources`.
    pub const CLUSTER_OWNED_SOURCES: &str = "auditrelay_cluster_owned_sources";
    /// `auditrelay_cluster_handovers_total`.
    pub const CLUSTER_HANDOVERS: &str = "auditrelay_cluster_handovers_total";
    /// `auditrelay_cluster_etcd_up`.
    pub const CLUSTER_ETCD_UP: &str = "auditrelay_cluster_etcd_up";
}

use name as metric;

/// Every metric auditrelay exports, with its type and help text. The list is
/// the contract dashboards rely on; a test pins it.
pub const METRICS: &[(&str, &str, &str)] = &[
    (metric::EVENTS_POLLED, "counter", "Events received from a source's API (before dedupe)."),
    (metric::EVENTS_JOURNALED, "counter", "Events written to the journal by a source."),
    (metric::EVENTS_DROPPED_DUPLICATE, "counter", "Events a source dropped as already taken or older than its cursor."),
    (
        metric::EVENTS_SET_ASIDE,
        "counter",
        "Events a source received but could not read, set aside as its dead letters.",
    ),
    (metric::EVENTS_SENT, "counter", "Events an output's receiver confirmed."),
    (metric::EVENTS_DEAD_LETTERED, "counter", "Events an output's receiver rejected for good."),
    (metric::EVENTS_TRUNCATED, "counter", "Syslog messages an output cut to its max_message_size."),
    (metric::REQUESTS, "counter", "HTTP requests made, by source or output and status."),
    (metric::ERRORS, "counter", "Failed polls or sends, by source or output."),
    (metric::RETRIES, "counter", "Retries of a request or batch."),
    (metric::JOURNAL_BYTES, "gauge", "Bytes of events in the journal."),
    (metric::JOURNAL_MAX_BYTES, "gauge", "The journal's cap, agent.max_journal_size."),
    (metric::JOURNAL_FULL, "gauge", "1 while the journal is at max_journal_size and sources are paused."),
    (metric::BACKLOG_EVENTS, "gauge", "Journal entries an output has not delivered yet."),
    (metric::CURSOR_LAG, "gauge", "Now minus a source's cursor time."),
    (metric::POLL_INTERVAL, "gauge", "A source's poll interval once caught up."),
    (metric::LAST_POLL, "gauge", "Time of a source's last successful poll."),
    (metric::LAST_SEND, "gauge", "Time of an output's last confirmed batch."),
    (metric::MANIFESTS_SENT, "counter", "Completeness manifests an output's receiver confirmed."),
    (
        metric::MANIFEST_LAST_SENT,
        "gauge",
        "Time an output's receiver last confirmed its manifests (its start until the first).",
    ),
    (metric::MANIFEST_INTERVAL, "gauge", "An output's manifest_interval (absent with manifests off)."),
    (metric::UP, "gauge", "1 when a source or output is healthy, 0 when not."),
    (metric::CLUSTER_MEMBERS, "gauge", "Live agents in the fleet ([cluster] only)."),
    (metric::CLUSTER_OWNED_SOURCES, "gauge", "Sources this agent owns and polls ([cluster] only)."),
    (metric::CLUSTER_HANDOVERS, "counter", "Sources this agent took over from another agent's checkpoint."),
    (metric::CLUSTER_ETCD_UP, "gauge", "1 while etcd answers and the agent's lease is renewed ([cluster] only)."),
];

/// A source's counters, present at 0 from its start so that alert rules and
/// dashboards see every series before its first increment (`rate()` and
/// `increase()` need the zero).
const SOURCE_COUNTERS: &[&str] = &[
    metric::EVENTS_POLLED,
    metric::EVENTS_JOURNALED,
    metric::EVENTS_DROPPED_DUPLICATE,
    metric::EVENTS_SET_ASIDE,
    metric::ERRORS,
    metric::RETRIES,
];

/// An output's counters, present at 0 from its start (see [`SOURCE_COUNTERS`]).
const OUTPUT_COUNTERS: &[&str] = &[metric::EVENTS_SENT, metric::EVENTS_DEAD_LETTERED, metric::ERRORS, metric::RETRIES];

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
        self.set(metric::POLL_INTERVAL, &[("source", name)], interval.as_secs_f64());
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
