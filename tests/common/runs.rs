//! Seeded, repeatable runs for the suites that draw their timings from a
//! seed (`faults.rs`, `power_loss.rs`): knobs read from the environment,
//! the seed and the note that replays a failing run, and the numbers of
//! their outcome tables.

use std::time::Duration;

/// A number from the environment variable `name`, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// The seed in the environment variable `name`, or one from the clock and
/// the process id.
pub fn seed_from_env(name: &str) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a u64")),
        Err(_) => {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
        }
    }
}

/// Prints the seed and the command that replays the run when it panics.
pub struct SeedNote {
    /// The seed's variable (`FAULT_SEED`).
    pub var: &'static str,
    /// Settings that make the replay one run (`FAULT_RUNS=1`).
    pub one_run: String,
    /// The test's module in the integration binary (`faults`).
    pub file: &'static str,
    /// The `#[test]`.
    pub test: &'static str,
    /// This run's seed.
    pub seed: u64,
}

impl Drop for SeedNote {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let Self { var, one_run, file, test, seed } = self;
            eprintln!(
                "\n*** {test} failed with {var}={seed}; replay: {var}={seed} {one_run} cargo test --test integration {file}::{test}\n"
            );
        }
    }
}

/// The median (the upper one of an even count); zero for none.
pub fn median(mut v: Vec<Duration>) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[v.len() / 2]
}

/// `12,345`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A panic's message.
pub fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}
