//! The running components: each source's and output's task with the config
//! it runs, how a set of them is built (everything or nothing) and started,
//! and how one is stopped. The run loop (`mod.rs`), reloads
//! (`reload.rs`) and the fleet (`fleet.rs`) all start and stop through
//! these.

use crate::config::{Config, OutputConfig, Problem, SourceConfig};
use crate::outputs::driver::{DriverSettings, Routes};
use crate::outputs::{Output, OutputContext};
use crate::settings::secret::Env;
use crate::sources::poller::{Clock, SourceContext};
use crate::state::{State, StateError};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::OutputHealth;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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

pub(super) struct Task<C> {
    pub(super) cfg: C,
    pub(super) cancel: CancellationToken,
    pub(super) handle: JoinHandle<()>,
}

pub(super) struct Running {
    pub(super) sources: HashMap<String, Task<SourceConfig>>,
    pub(super) outputs: HashMap<String, Task<OutputConfig>>,
    pub(super) routes: Routes,
    pub(super) config: Config,
    /// With `[cluster]`: the sources this agent owns (only those poll);
    /// `None`: every source.
    pub(super) owned: Option<HashSet<String>>,
    /// Which outputs are down, told by the outputs to the sources and the
    /// coordinator.
    pub(super) output_health: OutputHealth,
}

pub(super) type Built = (Vec<(OutputConfig, Box<dyn Output>)>, Vec<(SourceConfig, crate::sources::poller::Poller)>);

pub(super) async fn build_all(
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
                problems.push(Problem::new(format!("output[{i}]"), format!("cannot store the HEC channel: {e}")));
                continue;
            }
        };
        // Fix a new output's start offset now, before any source of this
        // build can journal: otherwise the first pages polled at a first
        // start could land below the offset the output later takes as its
        // start (its health check runs first) and never reach it.
        if let Err(e) = rt.state.offset_or_tail(&o.name).await {
            problems.push(Problem::new(format!("output[{i}]"), format!("cannot store the offset: {e}")));
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

pub(super) fn start(
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

pub(super) async fn stop<C>(task: Task<C>, grace: Duration) {
    task.cancel.cancel();
    let _ = tokio::time::timeout(grace, task.handle).await;
}
