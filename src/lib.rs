//! auditrelay: pulls audit logs out of SaaS and on-prem APIs and delivers
//! them to Splunk HEC, QRadar or syslog with an at-least-once guarantee.
//!
//! The binary (`main.rs`) only parses the command line; everything else is
//! here so tests can drive it.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod encode;
pub mod event;
pub mod outputs;
pub mod pipeline;
pub mod probe;
pub mod retry;
pub mod settings;
pub mod signals;
pub mod sources;
pub mod state;
pub mod telemetry;
pub mod transport;
