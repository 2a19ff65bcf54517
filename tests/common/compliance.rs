//! The checks every source must pass, run against a fake of its vendor's API
//! (STYLE.md: "one shared helper checks what every source must do").
//!
//! A vendor's test implements [`FakeVendor`] for its fake API and calls
//! [`run_source_compliance`] (or the two halves, [`check_delivery`] and
//! [`check_wrong_credentials`], as separate `#[test]`s so they run in
//! parallel):
//!
//! ```ignore
//! use crate::common;
//! #[test]
//! fn compliance() {
//!     let api = FakeOpencti::start();
//!     common::compliance::check_delivery(&api);
//! }
//! ```
//!
//! The real binary runs with the vendor's `[[source]]` block and a `file`
//! output (JSON lines, read back by `event.id`). What is checked:
//!
//! 1. the full history (events added before the agent starts) is delivered
//!    exactly once;
//! 2. events added while the agent runs are picked up;
//! 3. each [`Fault`] injected mid-run is hit (the agent logs a line naming
//!    the source and saying it is retrying) and neither loses nor duplicates
//!    an event;
//! 4. after SIGTERM (exit 0) and a restart, nothing already journaled is
//!    polled again: no duplicates, and new events still arrive;
//! 5. after SIGKILL and a restart, nothing is lost (a file-output batch may
//!    come twice);
//! 6. with wrong credentials, the agent's stderr and `status --json` name
//!    the source and say the credentials were refused (the words
//!    "refused" and "credentials"), and the agent keeps running.
//!
//! Every event id `add_events` returns must be the `event.id` the agent
//! delivers for it.

use super::agent::{file_ids, file_output, tail, Agent, TestDir, DEADLINE};
use super::{assert_at_least_once, assert_exactly_once, duplicates, missing};
use serde_json::Value;

/// A failure the fake API serves on its next request (or its next few,
/// for a vendor whose client retries in one step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429, with `Retry-After: N` seconds when given.
    TooManyRequests {
        /// Seconds to wait.
        retry_after: Option<u64>,
    },
    /// HTTP 500.
    ServerError,
    /// A 200 whose body is not what the API sends (an HTML page, truncated
    /// JSON, the wrong shape).
    Garbage,
    /// The vendor's own way of saying "slow down" through a 401 or 403 (for
    /// example Guance's rate-limit error code). A vendor without one serves
    /// [`Fault::TooManyRequests`] instead.
    Throttle401,
}

/// Every fault, in the order the checks inject them.
pub const ALL_FAULTS: [Fault; 5] = [
    Fault::TooManyRequests { retry_after: Some(1) },
    Fault::TooManyRequests { retry_after: None },
    Fault::ServerError,
    Fault::Garbage,
    Fault::Throttle401,
];

/// A fake vendor API, as the compliance checks drive it. Implementations
/// are shared with the checks by reference from the test thread, so they
/// need interior mutability (a `Mutex` around the fake's state) but not
/// `Sync`.
pub trait FakeVendor {
    /// `http://127.0.0.1:PORT` of the fake (for messages).
    fn base_url(&self) -> String;

    /// Publish `n` new events and return their ids (the `event.id` the agent
    /// must deliver), oldest first. Their times must be "now" or later than
    /// anything published before, never in the past: the checks call this
    /// while the agent runs.
    fn add_events(&self, n: usize) -> Vec<String>;

    /// Serve `fault` on the next API request.
    fn inject(&self, fault: Fault);

    /// The `[[source]]` block (header line included) reading this fake with
    /// valid credentials: `type`, `url`, the credentials as literals, and
    /// any vendor key the fake needs. The checks add `interval = "1s"`,
    /// `lag = "0s"`, `lookback = "0s"`, `start_at = "1h"` and
    /// `page_size = 7` right after the header, each only when the block
    /// does not set it.
    fn source_toml(&self, name: &str) -> String;

    /// The same block with credentials the fake refuses.
    fn wrong_credentials_toml(&self, name: &str) -> String;
}

/// [`FakeVendor`] for a fake built the usual way: a `server`
/// ([`Server`](super::Server)), a `state: Mutex<…>` whose `faults` queue
/// the next requests pop, `add(n)` publishing events and `block(name,
/// credential)` writing its `[[source]]` block. `$good` is the credential
/// the fake accepts, `$bad` one it refuses:
/// `fake_vendor!(FakeOpencti, TOKEN, "not-a-token");`
macro_rules! fake_vendor {
    ($fake:ty, $good:expr, $bad:expr) => {
        impl $crate::common::compliance::FakeVendor for $fake {
            fn base_url(&self) -> String {
                self.server.url()
            }
            fn add_events(&self, n: usize) -> Vec<String> {
                self.add(n)
            }
            fn inject(&self, fault: $crate::common::compliance::Fault) {
                self.state.lock().unwrap().faults.push_back(fault);
            }
            fn source_toml(&self, name: &str) -> String {
                self.block(name, $good)
            }
            fn wrong_credentials_toml(&self, name: &str) -> String {
                self.block(name, $bad)
            }
        }
    };
}
pub(crate) use fake_vendor;

/// The source name the checks use.
pub const SOURCE: &str = "vendor";

/// A negative check's window: with the checks' `interval = "1s"`, two
/// more polls and a margin. What must not happen (an event delivered by a
/// poll that should fail or find nothing) leaves nothing to poll for, so
/// the checks wait this long and then look.
pub const MORE_POLLS: std::time::Duration = std::time::Duration::from_millis(2500);

/// How long after publishing new events the crash check SIGKILLs the
/// agent: a scripted moment (the events may be unpolled, polled or in a
/// batch by then; each is covered by the assertions), not a wait for
/// something to happen.
const CRASH_AFTER: std::time::Duration = std::time::Duration::from_millis(300);

/// Keys the checks add to the vendor's block when it does not set them.
const DEFAULT_KEYS: [(&str, &str); 5] =
    [("interval", "\"1s\""), ("lag", "\"0s\""), ("lookback", "\"0s\""), ("start_at", "\"1h\""), ("page_size", "7")];

/// Insert the test defaults right after the `[[source]]` header.
pub fn with_test_defaults(block: &str) -> String {
    let sets = |key: &str| {
        block.lines().any(|l| {
            let l = l.trim_start();
            l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    };
    let extra: String = DEFAULT_KEYS.iter().filter(|(k, _)| !sets(k)).map(|(k, v)| format!("{k} = {v}\n")).collect();
    let mut out = String::new();
    let mut done = false;
    for line in block.lines() {
        out.push_str(line);
        out.push('\n');
        if !done && line.trim() == "[[source]]" {
            out.push_str(&extra);
            done = true;
        }
    }
    assert!(done, "source_toml must start with a [[source]] header line:\n{block}");
    out.push('\n');
    out
}

/// The whole config: agent, the vendor's source, a file output `out`.
fn config(dir: &TestDir, block: &str) -> String {
    format!("{}\n{}{}", dir.agent_section(), with_test_defaults(block), file_output("out", &dir.file("out.jsonl"), 5))
}

/// Lines of the log naming the source and saying it retries.
fn retry_lines(log: &str) -> usize {
    log.lines().filter(|l| l.contains(SOURCE) && l.contains("retrying")).count()
}

/// Wait until every id in `expected` is in the output file; fail at once on
/// a duplicate.
fn wait_delivered(dir: &TestDir, agent: &Agent, expected: &[String], what: &str, vendor: &dyn FakeVendor) {
    let out = dir.file("out.jsonl");
    super::agent::wait_until_or(
        what,
        DEADLINE,
        || {
            let got = file_ids(&out);
            let dup = duplicates(&got);
            assert!(dup.is_empty(), "{what}: duplicated {dup:?}\n{}", tail(&agent.stderr(), 40));
            missing(&got, expected).is_empty()
        },
        || {
            format!(
                "fake API {}: still missing {:?}\nagent log:\n{}",
                vendor.base_url(),
                missing(&file_ids(&out), expected),
                tail(&agent.stderr(), 40)
            )
        },
    );
}

/// Run one source `block` (test defaults added) into a JSON-lines file in
/// `dir` with batches of `batch` until every id in `ids` arrived, stop the
/// agent, and check each arrived exactly once (`what` names the case).
/// Returns the file, for checks of the events themselves.
pub fn deliver_to_file(dir: &TestDir, block: &str, batch: usize, ids: &[String], what: &str) -> std::path::PathBuf {
    deliver_to_file_logged(dir, block, batch, ids, what).0
}

/// [`deliver_to_file`], returning the agent's log too.
pub fn deliver_to_file_logged(
    dir: &TestDir,
    block: &str,
    batch: usize,
    ids: &[String],
    what: &str,
) -> (std::path::PathBuf, String) {
    let out = dir.file("out.jsonl");
    let cfg = format!("{}\n{}{}", dir.agent_section(), with_test_defaults(block), file_output("out", &out, batch));
    let agent = dir.start_with(&cfg);
    super::agent::wait_until_or(
        what,
        DEADLINE,
        || missing(&file_ids(&out), ids).is_empty(),
        || tail(&agent.stderr(), 20),
    );
    let log = agent.stop();
    assert_exactly_once(&file_ids(&out), ids, what);
    (out, log)
}

/// Checks 1–5: history, live events, faults, clean restart, crash restart.
pub fn check_delivery(vendor: &dyn FakeVendor) {
    let dir = TestDir::new();
    let out = dir.file("out.jsonl");
    let mut expected = vendor.add_events(20);
    let agent = dir.start_with(&config(&dir, &vendor.source_toml(SOURCE)));

    // 1. The full history, exactly once.
    wait_delivered(&dir, &agent, &expected, "the full history", vendor);
    assert_exactly_once(&file_ids(&out), &expected, "history");

    // 2. Events published while the agent runs.
    expected.extend(vendor.add_events(5));
    wait_delivered(&dir, &agent, &expected, "events added while running", vendor);

    // 3. Each fault, mid-run.
    for fault in ALL_FAULTS {
        let before = retry_lines(&agent.stderr());
        vendor.inject(fault);
        expected.extend(vendor.add_events(3));
        wait_delivered(&dir, &agent, &expected, &format!("events after {fault:?}"), vendor);
        super::agent::wait_until_or(
            &format!("a log line naming source {SOURCE:?} retrying after {fault:?}"),
            DEADLINE,
            || retry_lines(&agent.stderr()) > before,
            || tail(&agent.stderr(), 40),
        );
        assert_exactly_once(&file_ids(&out), &expected, &format!("after {fault:?}"));
    }

    // 4. A clean restart re-polls nothing already journaled.
    let log = agent.stop();
    assert!(!log.contains("panicked"), "{log}");
    let agent = dir.start();
    expected.extend(vendor.add_events(4));
    wait_delivered(&dir, &agent, &expected, "events after a restart", vendor);
    let before = file_ids(&out).len();
    // Two more polls of nothing new must not bring anything back.
    std::thread::sleep(MORE_POLLS);
    assert_eq!(file_ids(&out).len(), before, "polls after the restart delivered events again");
    assert_exactly_once(&file_ids(&out), &expected, "after a clean restart");

    // 5. A crash: nothing lost; at most one file batch (5 events) again.
    expected.extend(vendor.add_events(6));
    std::thread::sleep(CRASH_AFTER);
    agent.kill();
    let agent = dir.start();
    expected.extend(vendor.add_events(2));
    super::agent::wait_until_or(
        "events after a crash",
        DEADLINE,
        || missing(&file_ids(&out), &expected).is_empty(),
        || tail(&agent.stderr(), 40),
    );
    agent.stop();
    assert_at_least_once(&file_ids(&out), &expected, 5, "after SIGKILL and restart");
}

/// Check 6: wrong credentials are reported, naming the source.
pub fn check_wrong_credentials(vendor: &dyn FakeVendor) {
    let dir = TestDir::new();
    vendor.add_events(3);
    let mut agent = dir.start_with(&config(&dir, &vendor.wrong_credentials_toml(SOURCE)));
    let refused = |text: &str| {
        text.lines().any(|l| {
            let low = l.to_lowercase();
            l.contains(SOURCE) && low.contains("refused") && low.contains("credentials")
        })
    };
    super::agent::wait_until_or(
        "stderr to say the source's credentials were refused",
        DEADLINE,
        || refused(&agent.stderr()),
        || agent.stderr(),
    );
    let status = std::cell::RefCell::new(Value::Null);
    super::agent::wait_until_or(
        "status --json to show the source unhealthy",
        DEADLINE,
        || {
            *status.borrow_mut() = dir.try_status_json().unwrap_or_default();
            status.borrow()["sources"][0]["healthy"] == Value::Bool(false)
        },
        || status.borrow().to_string(),
    );
    let status = status.into_inner();
    let source = &status["sources"][0];
    assert_eq!(source["name"], SOURCE, "{status}");
    let err = source["last_error"].as_str().unwrap_or_default();
    assert!(refused(err), "status last_error should say the credentials were refused: {err:?}");
    assert!(agent.is_running(), "refused credentials must not stop the agent");
    agent.stop();
    assert!(file_ids(&dir.file("out.jsonl")).is_empty(), "nothing can be delivered without credentials");
}

/// Check 7: `check --connect` reports the API reachable with accepted
/// credentials, and the wrong credentials as a failure naming the source.
pub fn check_connect(vendor: &dyn FakeVendor) {
    let dir = TestDir::new();
    vendor.add_events(2);
    dir.write_config(&config(&dir, &vendor.source_toml(SOURCE)));
    let out = dir.cli(&["check", "--connect"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check --connect failed:\n{text}");
    assert!(text.contains(&format!("ok    source {SOURCE}")) && text.contains("credentials accepted"), "{text}");
    assert!(text.contains("ok    source") && text.contains("TCP"), "the TCP stage is reported: {text}");
    dir.write_config(&config(&dir, &vendor.wrong_credentials_toml(SOURCE)));
    let out = dir.cli(&["check", "--connect"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "wrong credentials must fail check --connect:\n{text}");
    assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains(SOURCE)), "{text}");
}

/// Every check.
pub fn run_source_compliance(vendor: &dyn FakeVendor) {
    check_delivery(vendor);
    check_wrong_credentials(vendor);
    check_connect(vendor);
}

/// The three compliance tests (`check_delivery`, `check_wrong_credentials`,
/// `check_connect`) for a fake vendor, each on a freshly started fake:
/// `common::compliance::compliance_tests!(FakeX::start());` in a
/// `tests/source_*.rs` file.
macro_rules! compliance_tests {
    ($start:expr) => {
        #[test]
        fn compliance_delivers_history_live_events_through_faults_and_restarts() {
            $crate::common::compliance::check_delivery(&$start);
        }

        #[test]
        fn compliance_reports_refused_credentials() {
            $crate::common::compliance::check_wrong_credentials(&$start);
        }

        #[test]
        fn compliance_check_connect_reports_success_and_refused_credentials() {
            $crate::common::compliance::check_connect(&$start);
        }
    };
}
pub(crate) use compliance_tests;

/// What every silent-empty guard must do (issue 18): with a guess the API
/// does not honour (`block` names the source, the fake answers nothing
/// under the guess), `check --connect` and every poll fail with a message
/// containing `says` while events lie in the window, and the cursor stays;
/// once `fix` makes the fake honour the guess, every id of `ids` arrives
/// exactly once.
pub fn check_wrong_guess_is_loud(block: &str, says: &str, fix: impl FnOnce(), ids: &[String]) {
    let dir = TestDir::new();
    let out = dir.file("out.jsonl");
    let cfg = format!("{}\n{}{}", dir.agent_section(), with_test_defaults(block), file_output("out", &out, 5));
    dir.write_config(&cfg);
    let (code, text) = dir.check_connect();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains(says)), "{text}");

    let agent = dir.start_with(&cfg);
    let named = || dir.last_error(0).contains(says);
    super::agent::wait_until_or("the guess to be named", DEADLINE, named, || tail(&agent.stderr(), 20));
    std::thread::sleep(MORE_POLLS); // more polls (interval 1s): none may pass
    assert!(file_ids(&out).is_empty());
    fix();
    super::agent::wait_until_or(
        "every event",
        DEADLINE,
        || missing(&file_ids(&out), ids).is_empty(),
        || tail(&agent.stderr(), 20),
    );
    agent.stop();
    assert_exactly_once(&file_ids(&out), ids, "once the guess holds");
}
