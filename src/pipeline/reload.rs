//! Applying a new config (SIGHUP) and `replay --force` requests to the
//! running agent: changed and new components are built before anything
//! stops, so a file whose secrets cannot be read leaves everything running;
//! unchanged ones keep running.

use super::components::Runtime;
use super::components::{build_all, start, stop, Running};
use super::replay;
use crate::config::{Config, OutputConfig, SourceConfig};
use crate::state::StateError;
use std::collections::HashSet;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) async fn reload(
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
pub(super) async fn apply_replays(
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
