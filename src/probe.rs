//! `check --connect`: one real request to every source and a health check
//! of every output, each reported on its own line with what to do about a
//! failure. Uses a throwaway state directory, so it works while the agent
//! runs.

use crate::config::secret::ProcessEnv;
use crate::config::Config;
use crate::outputs::Sink;
use crate::sources::poller::SourceContext;
use crate::state::State;
use crate::telemetry::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Probe everything; returns the number of failures.
pub async fn probe_all(cfg: &Config) -> usize {
    let dir = std::env::temp_dir().join(format!("auditrelay-check-{}", std::process::id()));
    let state = match State::open(&dir) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            println!("FAIL  cannot create a scratch state in {}: {e}", dir.display());
            return 1;
        }
    };
    let mut failures = 0;
    let ctx = SourceContext {
        state: state.clone(),
        metrics: Arc::new(Metrics::default()),
        clock: crate::sources::poller::system_clock(),
        max_journal_bytes: u64::MAX,
    };
    for (i, s) in cfg.sources.iter().enumerate() {
        let at = format!("source[{i}]");
        let poller = match crate::sources::build(s, &at, &ProcessEnv, ctx.clone()) {
            Ok(p) => p,
            Err(problems) => {
                failures += 1;
                for p in problems {
                    println!("FAIL  source {}: {p}", s.name);
                }
                continue;
            }
        };
        let cancel = CancellationToken::new();
        let guard = cancel.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            guard.cancel();
        });
        match poller.probe(&cancel).await {
            Ok(n) => println!(
                "ok    source {} ({}): answered, {n} event(s) in the last hour's first page",
                s.name,
                s.kind.as_str()
            ),
            Err(crate::sources::SourceError::Cancelled) => {
                failures += 1;
                println!("FAIL  source {}: no answer within 60s (check the URL, DNS, firewall and proxy)", s.name);
            }
            Err(e) => {
                failures += 1;
                println!("FAIL  {e}");
            }
        }
        timer.abort();
    }
    let hostname = crate::pipeline::hostname(cfg);
    for (i, o) in cfg.outputs.iter().enumerate() {
        let at = format!("output[{i}]");
        let channel = uuid::Uuid::new_v4().to_string();
        let mut sink = match crate::outputs::build(o, &at, &ProcessEnv, &hostname, channel) {
            Ok(s) => s,
            Err(problems) => {
                failures += 1;
                for p in problems {
                    println!("FAIL  output {}: {p}", o.name);
                }
                continue;
            }
        };
        match tokio::time::timeout(Duration::from_secs(30), sink.healthcheck()).await {
            Ok(Ok(())) => println!("ok    output {} ({}): reachable and accepting", o.name, o.kind.as_str()),
            Ok(Err(e)) => {
                failures += 1;
                println!("FAIL  output {}: {e}", o.name);
            }
            Err(_) => {
                failures += 1;
                println!(
                    "FAIL  output {}: no answer within 30s (check the address, firewall and TLS settings)",
                    o.name
                );
            }
        }
    }
    drop(ctx);
    drop(state);
    let _ = std::fs::remove_dir_all(&dir);
    failures
}
