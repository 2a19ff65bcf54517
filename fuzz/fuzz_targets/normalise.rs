//! `normalise`: see `targets_common::normalise` and fuzz/README.md.
#![no_main]

#[path = "../targets_common.rs"]
mod targets_common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets_common::normalise(data));
