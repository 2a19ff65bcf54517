//! The running agent: builds and starts every output and source, collects
//! journal garbage, writes the status snapshot, applies reloads (unchanged
//! components keep running, removed ones stop, new ones start) and drains
//! on shutdown within `agent.shutdown_timeout`.
//!
//! This file is the supervisor's loop ([`run`]); its parts have a file
//! each: `components` (the running tasks, building and starting a set of
//! them, stopping one), `reload` (a new config, `replay --force`),
//! `housekeeping` (the periodic tick and the garbage-collection clock),
//! `fleet` (what the coordinator asks), `snapshot` and `replay`.

mod components;
mod fleet;
mod housekeeping;
mod reload;
pub mod replay;
pub mod snapshot;

pub use components::Runtime;

use components::{build_all, start, stop, Running};
use housekeeping::{housekeep, GcClock, Kept};
use reload::{apply_replays, reload};

use crate::config::{Config, Problem};
use crate::state::StateError;
use crate::telemetry::metrics::name as metric;
use crate::telemetry::OutputHealth;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Longest time between housekeeping ticks (the systemd watchdog ping, when
/// its interval is shorter, halves it).
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(2);
/// Time between journal garbage collections (see `run`).
const GC_INTERVAL: Duration = Duration::from_millis(50);
/// How long the `/health` and `/metrics` server gets to stop.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration could not be built (exit 2).
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Config(Vec<Problem>),
    /// The state database failed (exit 1).
    #[error(transparent)]
    State(#[from] StateError),
    /// `agent.listen` could not be bound (exit 1).
    #[error("cannot listen on {addr} (agent.listen): {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Run until `rt.shutdown` is cancelled or a fatal error happens.
pub async fn run(cfg: Config, mut rt: Runtime) -> Result<(), AgentError> {
    let (fatal_tx, mut fatal_rx) = mpsc::unbounded_channel::<StateError>();
    let tasks = CancellationToken::new();
    let mut running = Running {
        sources: HashMap::new(),
        outputs: HashMap::new(),
        routes: Arc::new(RwLock::new(HashMap::new())),
        config: cfg.clone(),
        owned: None,
        output_health: OutputHealth::default(),
    };
    if let Some(c) = &cfg.cluster {
        crate::transport::http::set_agent_name(&crate::cluster::agent_name(c, &cfg));
    }
    let server = match cfg.agent.listen {
        Some(addr) => Some(
            crate::telemetry::server::serve(addr, rt.metrics.clone(), tasks.clone())
                .await
                .map_err(|source| AgentError::Listen { addr, source })?,
        ),
        None => None,
    };
    rt.metrics.set(metric::JOURNAL_MAX_BYTES, &[], cfg.agent.max_journal_size.bytes() as f64);
    rt.metrics.set(metric::JOURNAL_FULL, &[], 0.0);
    // `status` reads this snapshot while the agent holds the database.
    let _ = snapshot::write(&cfg, &rt.state);
    // Build everything first: a problem anywhere means nothing starts.
    let built =
        build_all(&cfg, &rt, &running.output_health, &cfg.outputs, &cfg.sources).await.map_err(AgentError::Config)?;
    // A fleet member polls only the sources etcd gives it (none yet).
    let mut link = match crate::cluster::start(
        &cfg,
        rt.state.clone(),
        running.output_health.clone(),
        rt.metrics.clone(),
        rt.env.as_ref(),
    ) {
        None => None,
        Some(Ok(link)) => {
            running.owned = Some(HashSet::new());
            Some(link)
        }
        Some(Err(e)) => return Err(AgentError::Config(vec![Problem::new("cluster", e.to_string())])),
    };
    start(&mut running, &cfg, &rt, built, &tasks, &fatal_tx);
    tracing::info!(
        sources = cfg.sources.len(),
        outputs = cfg.outputs.len(),
        state_dir = %cfg.agent.state_dir.display(),
        "auditrelay started"
    );
    if let Some(ready) = rt.ready.take() {
        let _ = ready.send(());
    }
    crate::telemetry::notify::notify("READY=1");
    // Housekeeping doubles as the systemd watchdog: it pings at most every
    // half watchdog interval, and only while the runtime is turning.
    let tick = crate::telemetry::notify::watchdog_interval()
        .map_or(HOUSEKEEPING_INTERVAL, |w| (w / 2).min(HOUSEKEEPING_INTERVAL));
    let mut housekeeping = tokio::time::interval(tick);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Journal garbage is collected often so a capped journal frees room
    // for the sources soon after the outputs commit: a catch-up journals
    // ~100 MiB/s, and what the outputs passed but is not yet deleted counts
    // against the sources' run-ahead and stays in sled's memory (every
    // 250 ms: ~80 MiB peak RSS to HEC; every 50 ms: ~61 MiB). A collection
    // that finds nothing below every output's offset is one range read.
    let mut gc = GcClock::new(&rt.state, GC_INTERVAL);
    let gc_outputs = |r: &Running| r.config.outputs.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
    let mut kept = Kept::default();
    let result = loop {
        tokio::select! {
            _ = gc.due(&rt.state) => {
                if let Err(e) = rt.state.collect_garbage(&gc_outputs(&running)).await {
                    tracing::error!("fatal state error, stopping: {e}");
                    break Err(AgentError::State(e));
                }
            }
            _ = rt.shutdown.cancelled() => break Ok(()),
            Some(cmd) = fleet::next_command(&mut link) => fleet::command(&mut running, cmd, &rt, &tasks, &fatal_tx).await,
            Some(err) = fatal_rx.recv() => {
                tracing::error!("fatal state error, stopping: {err}");
                break Err(AgentError::State(err));
            }
            Some(new) = rt.reload.recv() => match new {
                Ok(new) => {
                    reload(&mut running, new, &rt, &tasks, &fatal_tx).await;
                    if let Some(link) = &link {
                        let _ = link.config.send(Arc::new(running.config.clone()));
                    }
                }
                Err(problems) => {
                    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    tracing::error!("new configuration rejected, the running one stays:\n  {}", list.join("\n  "));
                }
            },
            _ = housekeeping.tick() => {
                apply_replays(&mut running, &rt, &tasks, &fatal_tx, &mut kept.replays).await;
                if let Err(e) = housekeep(&running, &rt, &mut kept).await {
                    tracing::error!("fatal state error, stopping: {e}");
                    break Err(AgentError::State(e));
                }
            }
        }
    };
    crate::telemetry::notify::notify("STOPPING=1");
    tracing::info!("shutting down: sources stop polling, outputs finish their batch");
    if let (Some(link), Ok(())) = (link.take(), &result) {
        // A fleet member: stop polling, let the outputs deliver, checkpoint
        // and release every source, then stop the outputs.
        let grace = running.config.agent.shutdown_timeout.get();
        let stops: Vec<_> = running.sources.drain().map(|(_, t)| stop(t, grace)).collect();
        futures_util::future::join_all(stops).await;
        link.leave.cancel();
        drop(link.commands);
        if tokio::time::timeout(grace, link.task).await.is_err() {
            tracing::warn!(
                "shutdown_timeout reached before every source was released; the rest move when the lease expires"
            );
        }
    }
    tasks.cancel();
    // After a state failure (a full disk) tasks may be stuck inside sled on
    // a log write it never completes, holding the runtime's threads: do not
    // wait for them (nothing they do now can be made durable; whatever was
    // sent and not committed is sent again at the next start).
    if matches!(result, Err(AgentError::State(_))) {
        return result;
    }
    let grace = running.config.agent.shutdown_timeout.get();
    let handles: Vec<JoinHandle<()>> = running
        .sources
        .into_values()
        .map(|t| t.handle)
        .chain(running.outputs.into_values().map(|t| t.handle))
        .collect();
    let all = futures_util::future::join_all(handles);
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!(
            "shutdown_timeout ({grace:?}) reached; abandoning in-flight sends (they are sent again at next start)"
        );
    }
    if let Some(server) = server {
        let _ = tokio::time::timeout(SERVER_STOP_TIMEOUT, server).await;
    }
    rt.state.flush().await?;
    let _ = snapshot::write(&running.config, &rt.state);
    result
}
