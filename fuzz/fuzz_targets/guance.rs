//! `guance`: see `targets_common::guance` and fuzz/README.md.
#![no_main]

#[path = "../targets_common.rs"]
mod targets_common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets_common::guance(data));
