//! Hostile-peer tests: what a client of the agent's own endpoints can do
//! to it, all on 127.0.0.1.
//!
//! - [`listener`]: connections to `agent.listen` that never finish their
//!   headers neither exhaust the agent's descriptors nor stop its sources.

mod common;

#[path = "security/listener.rs"]
mod listener;
