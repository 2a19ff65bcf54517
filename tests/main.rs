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
mod manifests;
mod monitoring;
mod no_panic_corpus;
mod power_loss;
mod proptest_journal;
mod security;
mod service;
mod source_atlassian;
mod source_cloudflare;
mod source_github;
mod source_google_workspace;
mod source_guance;
mod source_http_json;
mod source_invicti;
mod source_keepnet;
mod source_microsoft_365;
mod source_okta;
mod source_onepassword;
mod source_opencti;
mod source_sekoia;
mod source_slack;
mod splunk_samples;
mod syslog_rsyslog;

/// With `autotests = false` a new `tests/<suite>.rs` builds and runs only
/// once it is declared above: a file left out would pass silently.
#[test]
fn every_suite_file_is_a_module_here() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let declared = include_str!("main.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/") {
        let path = entry.expect("tests/ entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".rs")) else {
            continue;
        };
        if name != "main" && !declared.lines().any(|l| l == format!("mod {name};")) {
            missing.push(format!("tests/{name}.rs"));
        }
    }
    assert!(missing.is_empty(), "not declared in tests/main.rs (add `mod <suite>;`): {missing:?}");
}
