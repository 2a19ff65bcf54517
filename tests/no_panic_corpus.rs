//! Every committed fuzz corpus file through the function its fuzz target
//! runs (`fuzz/targets_common.rs`), so each parser and encoder meets the
//! whole corpus on every `cargo test`, without cargo-fuzz or a nightly
//! compiler. A failure names the target and the file; reproduce it from
//! `fuzz/` with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> corpus/<target>/<file>`.
//!
//! Inputs that still fail are kept out of `fuzz/corpus/` (which must pass)
//! in `fuzz/regressions/<target>/`, each with an `#[ignore]`d test named
//! after what breaks (below, or in tests/proptest_journal.rs when the harm
//! is an unreadable journal entry); un-ignore it with the fix and move the
//! input into the corpus.

#[path = "../fuzz/targets_common.rs"]
mod targets_common;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.expect("read corpus entry").path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Run `target` over each file, reporting every file that panics.
fn run(name: &str, target: targets_common::Target, files: &[PathBuf]) -> Vec<String> {
    let mut failures = Vec::new();
    for file in files {
        let data = std::fs::read(file).expect("read corpus file");
        if let Err(panic) = std::panic::catch_unwind(|| target(&data)) {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failures.push(format!("{name}: {}: {msg}", file.display()));
        }
    }
    failures
}

#[test]
fn every_corpus_file_runs_without_panic() {
    let mut failures = Vec::new();
    let mut total = 0;
    for (name, target) in targets_common::TARGETS {
        let files = files(&fuzz_dir().join("corpus").join(name));
        assert!(!files.is_empty(), "fuzz/corpus/{name}/ has no seed files");
        total += files.len();
        failures.extend(run(name, *target, &files));
    }
    assert!(failures.is_empty(), "{} of {total} corpus files failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    for (name, _) in targets_common::TARGETS {
        let path = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            text.contains(&format!("targets_common::{name}(")),
            "{} does not run targets_common::{name}",
            path.display()
        );
    }
}

/// Run `name`'s target over `fuzz/regressions/<name>/<file>`, failing with
/// the panic message.
fn regression(name: &str, file: &str) {
    let (_, target) = targets_common::TARGETS.iter().find(|(n, _)| *n == name).expect("a target of that name");
    let failures = run(name, *target, &[fuzz_dir().join("regressions").join(name).join(file)]);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `timestamp_format = "%Q"` (any pattern chrono cannot format) passes
/// `config::validate` (it only asks for a `%`), then every `request()`
/// panics in `TimeFormat::write` (src/sources/http_json/time_format.rs, `t.format(p)
/// .to_string()`: "a Display implementation returned an error
/// unexpectedly"), called from `HttpJson::expand` even when the URL has no
/// placeholder. Found by the `config` fuzz target (the second file is its
/// original input, `%s%]`).
#[test]
fn http_json_invalid_strftime_timestamp_format_does_not_panic() {
    regression("config", "http_json_invalid_strftime_timestamp_format.toml");
    regression("config", "http_json_invalid_strftime_found_by_fuzzer.toml");
}

/// A Sekoia item with a dotted key under `@timestamp` (`"@timestamp.x": 1`)
/// gets past `keep_ecs`'s skip list (src/sources/sekoia/mod.rs, which skips the
/// exact paths `@timestamp`, `message`, `event.original`), so the normalised
/// fields hold `"@timestamp": {"x": 1}`, and `event::normalise`
/// (src/event.rs, `fields.extend(n.fields)` after inserting `@timestamp`)
/// lets it replace the event's time in the document every output sends.
#[test]
fn sekoia_dotted_timestamp_key_keeps_the_document_time() {
    regression("sekoia", "dotted_timestamp_key.json");
}

/// `payload = "raw"` promises "the API's JSON untouched", and journaled ECS
/// fields are re-read from JSON. serde_json is built without its
/// `float_roundtrip` feature (Cargo.toml), so its float parser is not
/// correctly rounded: `8014440…3120` (112 digits) is read as
/// `8.014440000000001e111` instead of `8.01444e111`, and that text read back
/// gives `8.014440000000002e111`. Each parse can move a float by a bit. Found
/// by the `normalise` fuzz target (the targets now tolerate last-bit float
/// differences, see `same` in fuzz/targets_common.rs).
#[test]
fn raw_numbers_are_forwarded_untouched() {
    use auditrelay::encode::json;
    use auditrelay::event::{self, Normalised, Observer, Payload};
    let path = fuzz_dir().join("regressions/normalise/float_not_round_tripped.json");
    let text = std::fs::read_to_string(path).expect("regression input");
    let raw: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let exact: f64 = text.trim().parse().expect("a number");
    assert_eq!(raw.as_f64(), Some(exact), "the API's number is read correctly rounded");
    let observer = Observer { vendor: "V", product: "P" };
    let ev = event::normalise("s", observer, &raw, Normalised::default(), chrono::Utc::now());
    let sent = json::encode(&ev, Payload::Raw);
    assert_eq!(String::from_utf8_lossy(&sent), ev.raw, "the raw payload is the journaled raw text");
    let back: f64 = String::from_utf8_lossy(&sent).parse().expect("a number");
    assert_eq!(back, exact, "the number sent is the number the API sent");
}
