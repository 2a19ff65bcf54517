//! The pipeline's side of a fleet (`[cluster]`): the coordinator asks it
//! to start and stop pollers, and a poller it stops never asks its API
//! again, since another agent may own the source next.

use super::components::{build_all, start, Running, Runtime, Task};
use crate::config::SourceConfig;
use crate::state::StateError;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a poller gets to end by itself when the fleet's lease may be
/// lost (`StopAll`) before it is aborted: etcd gives its sources away a
/// third of `lease_ttl` after the coordinator asks, at the earliest.
const STOP_ALL_GRACE: Duration = Duration::from_secs(1);

/// Stop a poller for the fleet: once this returns it never asks its API
/// again, since another agent may own the source next. Cancelled first, so
/// it ends between requests; aborted if it has not ended within `grace`
/// (a journal append already under way still completes: a page and its
/// cursor are one record, written whole or not at all).
async fn stop_for_good(mut task: Task<SourceConfig>, grace: Duration) {
    task.cancel.cancel();
    if tokio::time::timeout(grace, &mut task.handle).await.is_err() {
        tracing::warn!(source = %task.cfg.name, "the poller did not stop within {grace:?}; aborted");
        task.handle.abort();
        let _ = task.handle.await;
    }
}

/// The fleet coordinator's next command; never resolves without `[cluster]`.
pub(super) async fn next_command(link: &mut Option<crate::cluster::Link>) -> Option<crate::cluster::Command> {
    match link {
        Some(l) => l.commands.recv().await,
        None => std::future::pending().await,
    }
}

/// Start or stop pollers as the fleet coordinator asks; it is told once done.
pub(super) async fn command(
    running: &mut Running,
    cmd: crate::cluster::Command,
    rt: &Runtime,
    tasks: &CancellationToken,
    fatal: &mpsc::UnboundedSender<StateError>,
) {
    use crate::cluster::Command;
    let grace = running.config.agent.shutdown_timeout.get();
    match cmd {
        Command::Start(name, done) => {
            if let Some(owned) = &mut running.owned {
                owned.insert(name.clone());
            }
            let cfg = running.config.sources.iter().find(|s| s.name == name).cloned();
            if let (Some(cfg), false) = (cfg, running.sources.contains_key(&name)) {
                match build_all(&running.config, rt, &running.output_health, &[], std::slice::from_ref(&cfg)).await {
                    Ok(built) => {
                        let config = running.config.clone();
                        start(running, &config, rt, built, tasks, fatal);
                    }
                    Err(problems) => {
                        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
                        tracing::error!(source = %name, "the source could not be started: {}", list.join("; "));
                    }
                }
            }
            let _ = done.send(());
        }
        Command::Stop(name, done) => {
            if let Some(owned) = &mut running.owned {
                owned.remove(&name);
            }
            if let Some(t) = running.sources.remove(&name) {
                stop_for_good(t, grace).await;
            }
            let _ = done.send(());
        }
        Command::StopAll(done) => {
            if let Some(owned) = &mut running.owned {
                owned.clear();
            }
            let stops: Vec<_> = running.sources.drain().map(|(_, t)| stop_for_good(t, STOP_ALL_GRACE)).collect();
            futures_util::future::join_all(stops).await;
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A poller the fleet stops never asks its API again, even one that
    /// ignores its cancellation: it is aborted after the grace.
    #[tokio::test(start_paused = true)]
    async fn a_poller_the_fleet_stops_never_asks_again_even_if_it_ignores_cancel() {
        let text =
            "[[source]]\nname = \"d\"\ntype = \"demo\"\n[[output]]\nname = \"o\"\ntype = \"file\"\npath = \"-\"\n";
        let cfg = crate::config::parse(text).unwrap().sources.remove(0);
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = asked.clone();
        // A stubborn poller: "asks its API" every 100 ms, never looks at its token.
        let handle = tokio::spawn(async move {
            loop {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let task = Task { cfg, cancel: CancellationToken::new(), handle };
        let started = tokio::time::Instant::now();
        stop_for_good(task, STOP_ALL_GRACE).await;
        assert!(started.elapsed() <= STOP_ALL_GRACE + Duration::from_millis(1), "returned after the grace");
        let after_stop = asked.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), after_stop, "asked again after it was stopped");
    }
}
