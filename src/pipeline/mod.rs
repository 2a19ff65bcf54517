//! The running agent: builds and starts every output and source, collects
//! journal garbage, writes the status snapshot, applies reloads (unchanged
//! components keep running, removed ones stop, new ones start) and drains
//! on shutdown within `agent.shutdown_timeout`.

mod fleet;
pub mod replay;
pub mod snapshot;

use crate::config::{Config, OutputConfig, Problem, SourceConfig};
use crate::outputs::driver::{DriverSettings, Routes};
use crate::outputs::{Output, OutputContext};
use crate::settings::secret::Env;
use crate::sources::poller::{Clock, SourceContext};
use crate::state::{State, StateError};
use crate::telemetry::metrics::name as metric;
use crate::telemetry::metrics::Metrics;
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

/// What the agent needs from its surroundings; fields are parameters so
/// tests can drive shutdown, reload and the clock.
pub struct Runtime {
    /// The state database.
    pub state: Arc<State>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// The clock sources use.
    pub clock: Clock,
    /// Where secrets come from.
    pub env: Arc<dyn Env + Send + Sync>,
    /// Cancelled to shut down.
    pub shutdown: CancellationToken,
    /// Each message is a reload request carrying the new config, or the
    /// problems that made the new file invalid (logged; the old config stays).
    pub reload: mpsc::Receiver<Result<Config, Vec<Problem>>>,
    /// Sent once every source and output has started (systemd READY=1).
    pub ready: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Task<C> {
    cfg: C,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

struct Running {
    sources: HashMap<String, Task<SourceConfig>>,
    outputs: HashMap<String, Task<OutputConfig>>,
    routes: Routes,
    config: Config,
    /// With `[cluster]`: the sources this agent owns (only those poll);
    /// `None`: every source.
    owned: Option<HashSet<String>>,
    /// Which outputs are down, told by the outputs to the sources and the
    /// coordinator.
    output_health: OutputHealth,
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
        Some(Err(e)) => {
            return Err(AgentError::Config(vec![Problem { path: "cluster".into(), message: e.to_string() }]))
        }
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

type Built = (Vec<(OutputConfig, Box<dyn Output>)>, Vec<(SourceConfig, crate::sources::poller::Poller)>);

async fn build_all(
    cfg: &Config,
    rt: &Runtime,
    output_health: &OutputHealth,
    outputs: &[OutputConfig],
    sources: &[SourceConfig],
) -> Result<Built, Vec<Problem>> {
    let octx = OutputContext {
        state: rt.state.clone(),
        metrics: rt.metrics.clone(),
        output_health: output_health.clone(),
        hostname: cfg.hostname(),
        clock: rt.clock.clone(),
    };
    let sctx = SourceContext {
        state: rt.state.clone(),
        metrics: rt.metrics.clone(),
        output_health: output_health.clone(),
        clock: rt.clock.clone(),
        max_journal_bytes: cfg.agent.max_journal_size.bytes(),
        run_ahead_bytes: crate::sources::poller::RUN_AHEAD,
        pages: crate::sources::poller::pages_in_hand(),
        fetches: crate::sources::poller::fetch_slots(),
        http: Arc::default(),
        // The sources started together spread their first polls.
        first_poll_spread: crate::sources::poller::first_poll_spread(sources.len()),
    };
    let mut problems = Vec::new();
    let mut built_outputs = Vec::new();
    for o in outputs {
        let i = cfg.outputs.iter().position(|x| x.name == o.name).unwrap_or(0);
        let channel = match rt.state.channel(&o.name).await {
            Ok(c) => c,
            Err(e) => {
                problems.push(Problem {
                    path: format!("output[{i}]"),
                    message: format!("cannot store the HEC channel: {e}"),
                });
                continue;
            }
        };
        // Fix a new output's start offset now, before any source of this
        // build can journal: otherwise the first pages polled at a first
        // start could land below the offset the output later takes as its
        // start (its health check runs first) and never reach it.
        if let Err(e) = rt.state.offset_or_tail(&o.name).await {
            problems.push(Problem { path: format!("output[{i}]"), message: format!("cannot store the offset: {e}") });
            continue;
        }
        let at = format!("output[{i}]");
        let ctx = crate::outputs::BuildCtx {
            name: &o.name,
            common: &o.common,
            at: &at,
            env: rt.env.as_ref(),
            hostname: &octx.hostname,
            channel,
            metrics: rt.metrics.clone(),
        };
        match crate::outputs::build(&o.kind, ctx) {
            Ok(sink) => built_outputs.push((o.clone(), sink)),
            Err(p) => problems.extend(p),
        }
    }
    let mut built_sources = Vec::new();
    for s in sources {
        let i = cfg.sources.iter().position(|x| x.name == s.name).unwrap_or(0);
        let at = format!("source[{i}]");
        match crate::sources::build(&s.name, &s.common, &s.kind, &at, rt.env.as_ref(), sctx.clone()) {
            Ok(p) => built_sources.push((s.clone(), p)),
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok((built_outputs, built_sources))
    } else {
        Err(problems)
    }
}

fn start(
    running: &mut Running,
    cfg: &Config,
    rt: &Runtime,
    built: Built,
    tasks: &CancellationToken,
    fatal: &mpsc::UnboundedSender<StateError>,
) {
    {
        let mut routes = running.routes.write().unwrap_or_else(|p| p.into_inner());
        *routes = cfg.sources.iter().map(|s| (s.name.clone(), s.common.outputs.clone())).collect();
    }
    let octx = OutputContext {
        state: rt.state.clone(),
        metrics: rt.metrics.clone(),
        output_health: running.output_health.clone(),
        hostname: cfg.hostname(),
        clock: rt.clock.clone(),
    };
    let (outputs, sources) = built;
    for (o, mut sink) in outputs {
        let cancel = tasks.child_token();
        let settings = DriverSettings {
            name: o.name.clone(),
            batch: o.common.batch,
            max_eps: o.common.max_eps.or_else(|| crate::outputs::default_max_eps(&o.kind)).filter(|n| *n > 0),
            retry_max_interval: o.common.retry_max_interval.get(),
            max_in_flight: sink.max_in_flight(),
            manifest_interval: o.common.manifests(o.kind.spec().sends_documents()),
            manifest_stream: cfg.cluster.as_ref().map(|c| format!("{}@{}", o.name, crate::cluster::agent_name(c, cfg))),
        };
        rt.metrics.register_output(&o.name);
        let (routes, ctx, c, fatal) = (running.routes.clone(), octx.clone(), cancel.clone(), fatal.clone());
        let name = o.name.clone();
        let handle = tokio::spawn(async move {
            if let Err(e) = sink.healthcheck().await {
                tracing::warn!(output = %name, "health check failed at start: {e}; events wait in the journal until it recovers");
            }
            if let Err(e) = sink.run(settings, routes, ctx, c).await {
                let _ = fatal.send(e);
            }
        });
        running.outputs.insert(o.name.clone(), Task { cfg: o, cancel, handle });
    }
    for (s, poller) in sources {
        if running.owned.as_ref().is_some_and(|owned| !owned.contains(&s.name)) {
            continue;
        }
        rt.metrics.register_source(&s.name, poller.settings().interval);
        let cancel = tasks.child_token();
        let (c, fatal) = (cancel.clone(), fatal.clone());
        let handle = tokio::spawn(async move {
            if let Err(e) = poller.run(c).await {
                let _ = fatal.send(e);
            }
        });
        running.sources.insert(s.name.clone(), Task { cfg: s, cancel, handle });
    }
}

async fn stop<C>(task: Task<C>, grace: Duration) {
    task.cancel.cancel();
    let _ = tokio::time::timeout(grace, task.handle).await;
}

async fn reload(
    running: &mut Running,
    new: Config,
    rt: &Runtime,
    tasks: &CancellationToken,
    fatal: &mpsc::UnboundedSender<StateError>,
) {
    if new.agent != running.config.agent {
        tracing::warn!("[agent] settings changed; they take effect at the next restart");
    }
    if new.cluster != running.config.cluster {
        tracing::warn!("[cluster] settings changed; they take effect at the next restart");
    }
    let changed_outputs: Vec<OutputConfig> =
        new.outputs.iter().filter(|o| running.outputs.get(&o.name).is_none_or(|t| t.cfg != **o)).cloned().collect();
    let changed_sources: Vec<SourceConfig> =
        new.sources.iter().filter(|s| running.sources.get(&s.name).is_none_or(|t| t.cfg != **s)).cloned().collect();
    // Build the new and changed components before stopping anything, so a
    // new file whose secrets cannot be read leaves everything running.
    let built = match build_all(&new, rt, &running.output_health, &changed_outputs, &changed_sources).await {
        Ok(b) => b,
        Err(problems) => {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            tracing::error!("new configuration rejected, the running one stays:\n  {}", list.join("\n  "));
            return;
        }
    };
    let grace = running.config.agent.shutdown_timeout.get();
    let stale_sources: Vec<String> = running
        .sources
        .keys()
        .filter(|n| !new.sources.iter().any(|s| &s.name == *n) || changed_sources.iter().any(|s| &s.name == *n))
        .cloned()
        .collect();
    for name in &stale_sources {
        if let Some(t) = running.sources.remove(name) {
            stop(t, grace).await;
        }
    }
    let stale_outputs: Vec<String> = running
        .outputs
        .keys()
        .filter(|n| !new.outputs.iter().any(|o| &o.name == *n) || changed_outputs.iter().any(|o| &o.name == *n))
        .cloned()
        .collect();
    for name in &stale_outputs {
        if let Some(t) = running.outputs.remove(name) {
            stop(t, grace).await;
        }
    }
    for name in stale_sources.iter().filter(|n| !new.sources.iter().any(|s| &s.name == *n)) {
        rt.metrics.forget("source", name);
    }
    for name in stale_outputs.iter().filter(|n| !new.outputs.iter().any(|o| &o.name == *n)) {
        rt.metrics.forget("output", name);
    }
    start(running, &new, rt, built, tasks, fatal);
    tracing::info!(
        started_sources = changed_sources.len(),
        started_outputs = changed_outputs.len(),
        stopped_sources = stale_sources.len(),
        stopped_outputs = stale_outputs.len(),
        "configuration reloaded"
    );
    running.config = new;
}

/// Apply `replay --force` requests: stop the source, move its cursor, start
/// it again.
async fn apply_replays(
    running: &mut Running,
    rt: &Runtime,
    tasks: &CancellationToken,
    fatal: &mpsc::UnboundedSender<StateError>,
    reported: &mut HashSet<std::path::PathBuf>,
) {
    for req in replay::take(&running.config.agent.state_dir, reported) {
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                continue;
            }
        };
        let Some(cfg) = running.config.sources.iter().find(|s| s.name == req.source).cloned() else {
            tracing::error!(source = %req.source, "replay requested for a source that is not configured");
            continue;
        };
        if running.owned.as_ref().is_some_and(|o| !o.contains(&req.source)) {
            tracing::error!(source = %req.source, "replay: this agent does not own the source in the fleet; run the replay on its owner (auditrelay status)");
            continue;
        }
        if let Some(t) = running.sources.remove(&req.source) {
            stop(t, running.config.agent.shutdown_timeout.get()).await;
        }
        let cursor = crate::state::Cursor { time: Some(req.from), ..Default::default() };
        if let Err(e) = rt.state.set_cursor(&req.source, &cursor).await {
            let _ = fatal.send(e);
            return;
        }
        match build_all(&running.config, rt, &running.output_health, &[], std::slice::from_ref(&cfg)).await {
            Ok(built) => {
                let config = running.config.clone();
                start(running, &config, rt, built, tasks, fatal);
                tracing::info!(source = %req.source, from = %crate::event::rfc3339(req.from), "replaying: cursor moved back, source restarted");
            }
            Err(problems) => {
                let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
                tracing::error!(source = %req.source, "replay: the source could not be restarted: {}", list.join("; "));
            }
        }
    }
}

/// What housekeeping remembers from one tick to the next.
#[derive(Default)]
struct Kept {
    /// Replay requests reported as impossible to remove (never applied).
    replays: HashSet<std::path::PathBuf>,
    ticks: u64,
    /// Journal tail and status generation at the last snapshot, and when.
    snapshot: Option<((u64, u64), tokio::time::Instant)>,
}

/// The status snapshot is rewritten when something changed, and at least
/// this often (so `status` shows a recent time on an idle agent).
const SNAPSHOT_REFRESH: Duration = Duration::from_secs(30);

async fn housekeep(running: &Running, rt: &Runtime, kept: &mut Kept) -> Result<(), StateError> {
    kept.ticks += 1;
    let outputs: Vec<String> = running.config.outputs.iter().map(|o| o.name.clone()).collect();
    // The 250 ms tick collects while the journal holds anything; this one
    // runs now and then on an empty journal too, to forget the offsets of
    // outputs removed from the config.
    if rt.state.journal().bytes() == 0 && kept.ticks % 15 == 1 {
        rt.state.collect_garbage(&outputs).await?;
    }
    rt.metrics.set(metric::JOURNAL_BYTES, &[], rt.state.journal().bytes() as f64);
    let tail = rt.state.journal().next_seq();
    for o in &outputs {
        if let Some(off) = rt.state.offsets().get(o)? {
            rt.metrics.set(metric::BACKLOG_EVENTS, &[("output", o)], tail.saturating_sub(off) as f64);
        }
    }
    let key = (tail, rt.state.status().generation());
    let now = tokio::time::Instant::now();
    if kept.snapshot.is_none_or(|(k, at)| k != key || now - at >= SNAPSHOT_REFRESH) {
        if let Err(e) = snapshot::write(&running.config, &rt.state) {
            tracing::debug!("status snapshot not written: {e}");
        }
        kept.snapshot = Some((key, now));
    }
    let backlog: u64 = outputs
        .iter()
        .filter_map(|o| rt.state.offsets().get(o).ok().flatten())
        .map(|off| tail.saturating_sub(off))
        .sum();
    let status = format!(
        "STATUS={} source(s), {} output(s), backlog {backlog} event(s), journal {} KiB\nWATCHDOG=1",
        running.sources.len(),
        running.outputs.len(),
        rt.state.journal().bytes() / 1024
    );
    crate::telemetry::notify::notify(&status);
    Ok(())
}

/// When journal garbage collection is due: every `interval` while the
/// journal holds events; while it is empty (an idle agent), not until the
/// next append, so an idle agent does no store reads.
///
/// The wait re-checks the journal each time it is entered: a catch-up's
/// journal is empty for a moment after each collection, and a guard
/// evaluated once when the agent's `select!` was entered kept collection
/// off until another branch (the 2 s housekeeping) fired, so a source at
/// `max_journal_size` waited ~2 s per journal-full of events.
struct GcClock {
    tick: tokio::time::Interval,
    tail: tokio::sync::watch::Receiver<u64>,
}

impl GcClock {
    fn new(state: &State, interval: Duration) -> Self {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        GcClock { tick, tail: state.journal().subscribe() }
    }

    /// Resolves when a collection is due. Cancel-safe.
    async fn due(&mut self, state: &State) {
        while state.journal().bytes() == 0 {
            // An append moves the tail; a closed channel cannot happen
            // while the state lives, but would fall back to ticking.
            if self.tail.changed().await.is_err() {
                break;
            }
        }
        self.tick.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::state::Cursor;

    async fn append_one(state: &State, id: &str) {
        let ev = Event::new("s".into(), id.into(), chrono::Utc::now(), serde_json::Map::new(), "{}".into());
        state.append("s", &[ev], &Cursor::default()).await.unwrap();
    }

    /// Collection is never due on an empty journal, due within a tick of an
    /// append, and again after the journal was emptied and refilled (a
    /// catch-up at `max_journal_size` does this every few hundred ms).
    #[tokio::test(start_paused = true)]
    async fn gc_is_due_while_the_journal_holds_events_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let mut gc = GcClock::new(&state, Duration::from_millis(50));
        let quiet = Duration::from_millis(300);
        let soon = Duration::from_secs(5);
        assert!(tokio::time::timeout(quiet, gc.due(&state)).await.is_err(), "due on an empty journal");

        append_one(&state, "1").await;
        tokio::time::timeout(soon, gc.due(&state)).await.expect("not due after an append");
        tokio::time::timeout(soon, gc.due(&state)).await.expect("not due again while events remain");

        state.commit("o", 1, &[]).await.unwrap();
        assert_eq!(state.collect_garbage(&["o".to_owned()]).await.unwrap(), 1);
        assert_eq!(state.journal().bytes(), 0);
        assert!(tokio::time::timeout(quiet, gc.due(&state)).await.is_err(), "due once emptied");

        append_one(&state, "2").await;
        tokio::time::timeout(soon, gc.due(&state)).await.expect("not due after the journal refilled");
    }
}
