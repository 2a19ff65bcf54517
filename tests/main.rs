//! The integration tests: one binary (`cargo test --test integration`), a
//! module per suite. The crate and the shared harness ([`common`]) are
//! compiled and linked once instead of once per suite (#25). Run one suite
//! with its module path as the filter:
//!
//! ```text
//! cargo test --test integration power_loss::
//! cargo test --test integration security::listener::
//! ```
//!
//! The tests of every suite now share one process and run in parallel
//! threads. The suites that load the whole machine or that time what they
//! measure (power loss on LazyFS, the etcd fleet, the fault tables, the
//! listener under `ulimit -n`) take [`common::exclusive`] first, so they
//! never run at the same time as each other.

mod common;

mod cli;
mod cluster;
mod crash;
mod faults;
mod hec;
mod monitoring;
mod no_panic_corpus;
mod power_loss;
mod proptest_journal;
mod security;
mod service;
mod source_guance;
mod source_http_json;
mod source_invicti;
mod source_keepnet;
mod source_opencti;
mod source_sekoia;
mod splunk_samples;
mod syslog_rsyslog;
