//! `http_json_response`: see `targets_common::http_json_response` and fuzz/README.md.
#![no_main]

#[path = "../targets_common.rs"]
mod targets_common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets_common::http_json_response(data));
