//! The coordinator task: lease, membership, checkpoints, takes and
//! releases (the rules are in the module header of `cluster`). Each
//! balancing tick reads the members and owner keys, lets
//! [`plan`](super::plan::plan) decide, and carries the plan out.
//!
//! It talks to etcd through [`Store`]: the real client in the agent, an
//! in-memory etcd with leases on tokio's clock in `tests.rs`, where whole
//! fleets (deaths, outages, handovers, reloads) run on paused time and
//! every tick checks that no source runs twice or without its live owner
//! key.

use super::etcd::{self, Etcd, EtcdError, Store};
use super::plan::{plan, Action, Member, Mine, Owner, Plan, Why};
use super::{agent_name, decode_checkpoint, Command, Link, StoredCheckpoint, CHECKPOINT_INTERVAL};
use crate::config::cluster::ClusterConfig;
use crate::config::Config;
use crate::settings::secret::Env;
use crate::state::{Cursor, State};
use crate::telemetry::metrics::name as metric;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::OutputHealth;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the agent reads the fleet and rebalances.
const BALANCE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a release waits for the outputs to deliver what the source
/// journaled before checkpointing what they did.
const RELEASE_DRAIN: Duration = Duration::from_secs(5);
/// How long the coordinator waits for the pipeline to start or stop a poller.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The lease-renewal timing for a `lease_ttl`: stop polling when a third
/// is left. A third, not less: an etcd leader that just lost its quorum
/// still renews leases until it notices (up to an election timeout), so
/// the last renewal can succeed a moment after the outage began.
fn margin(ttl: Duration) -> Duration {
    ttl / 3
}

/// Renew every fifth of `lease_ttl`, so that a renewal lost to an etcd
/// leader election still leaves time for the next ones.
fn renew_every(ttl: Duration) -> Duration {
    ttl / 5
}

/// After a failed renewal, try again this soon.
const RENEW_RETRY: Duration = Duration::from_millis(250);

/// A source this agent owns.
struct Owned {
    /// Create revision of its owner key: the fencing token.
    revision: i64,
    /// The cursor last checkpointed, and when.
    written: Option<Cursor>,
    written_at: Instant,
}

struct Coordinator<S> {
    etcd: Arc<S>,
    name: String,
    prefix: String,
    ttl: Duration,
    state: Arc<State>,
    /// Whether some output is down: a handover then stops waiting for
    /// the source's events to drain.
    output_health: OutputHealth,
    metrics: Arc<Metrics>,
    config: watch::Receiver<Arc<Config>>,
    commands: mpsc::Sender<Command>,
    leave: CancellationToken,
    /// The lease, 0 when none.
    lease: i64,
    /// The lease held when the agent stopped polling for want of renewals.
    suspended: Option<i64>,
    /// Until when the lease is surely alive (renewal sent + ttl − margin).
    alive: watch::Receiver<Instant>,
    alive_tx: Arc<watch::Sender<Instant>>,
    /// The task renewing the lease.
    keepalive: Option<tokio::task::JoinHandle<()>>,
    owned: BTreeMap<String, Owned>,
    /// Whether the last etcd call failed (logged once per outage).
    down: bool,
}

/// Build the etcd client and start the coordinator for `cfg.cluster`.
/// `None` without `[cluster]`.
pub fn start(
    cfg: &Config,
    state: Arc<State>,
    output_health: OutputHealth,
    metrics: Arc<Metrics>,
    env: &dyn Env,
) -> Option<Result<Link, EtcdError>> {
    let cluster = cfg.cluster.as_ref()?;
    let etcd = match Etcd::new(cluster, env, request_timeout(cluster.lease_ttl.get())) {
        Ok(e) => Arc::new(e),
        Err(e) => return Some(Err(e)),
    };
    Some(Ok(spawn(etcd, cluster, cfg, state, output_health, metrics)))
}

/// Start the coordinator of `cluster` (`cfg`'s) on `store`.
fn spawn<S: Store>(
    store: Arc<S>,
    cluster: &ClusterConfig,
    cfg: &Config,
    state: Arc<State>,
    output_health: OutputHealth,
    metrics: Arc<Metrics>,
) -> Link {
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (config_tx, config_rx) = watch::channel(Arc::new(cfg.clone()));
    let (alive_tx, alive_rx) = watch::channel(Instant::now());
    let leave = CancellationToken::new();
    for m in [metric::CLUSTER_MEMBERS, metric::CLUSTER_OWNED_SOURCES, metric::CLUSTER_ETCD_UP] {
        metrics.set(m, &[], 0.0);
    }
    metrics.add(metric::CLUSTER_HANDOVERS, &[], 0);
    let c = Coordinator {
        etcd: store,
        name: agent_name(cluster, cfg),
        prefix: cluster.prefix(),
        ttl: cluster.lease_ttl.get(),
        state,
        output_health,
        metrics,
        config: config_rx,
        commands: cmd_tx,
        leave: leave.clone(),
        lease: 0,
        suspended: None,
        alive: alive_rx,
        alive_tx: Arc::new(alive_tx),
        keepalive: None,
        owned: BTreeMap::new(),
        down: false,
    };
    let task = tokio::spawn(c.run());
    Link { commands: cmd_rx, config: config_tx, leave, task }
}

/// The shortest etcd request timeout, whatever the lease.
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// etcd requests time out within a lease renewal period.
fn request_timeout(ttl: Duration) -> Duration {
    (ttl / 4).max(MIN_REQUEST_TIMEOUT)
}

/// Resolves once the lease may have expired: the time in `alive` (moved
/// on by every renewal) has passed.
async fn expired(mut alive: watch::Receiver<Instant>) {
    loop {
        let until = *alive.borrow_and_update();
        if Instant::now() >= until {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            changed = alive.changed() => if changed.is_err() {
                // The sender lives as long as the coordinator; if it went,
                // the lease is no longer renewed.
                tokio::time::sleep_until(until).await;
                return;
            },
        }
    }
}

impl<S: Store> Coordinator<S> {
    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}/{name}", self.prefix)
    }

    fn outputs(&self) -> Vec<String> {
        self.config.borrow().outputs.iter().map(|o| o.name.clone()).collect()
    }

    fn sources(&self) -> Vec<String> {
        self.config.borrow().sources.iter().map(|s| s.name.clone()).collect()
    }

    async fn run(mut self) {
        tracing::info!(agent = %self.name, etcd = %self.etcd.endpoints(), "joining the fleet");
        let mut tick = tokio::time::interval(BALANCE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let fenced = self.owned.is_empty();
            tokio::select! {
                _ = self.leave.cancelled() => break,
                _ = expired(self.alive.clone()), if !fenced => self.fence().await,
                _ = tick.tick() => {
                    let (leave, alive) = (self.leave.clone(), self.alive.clone());
                    let step = tokio::select! {
                        r = self.step() => Some(r),
                        _ = expired(alive), if !fenced => None,
                        _ = leave.cancelled() => break,
                    };
                    match step {
                        None => self.fence().await,
                        Some(Ok(())) => self.etcd_up(true, None),
                        Some(Err(e)) => self.etcd_up(false, Some(e)),
                    }
                }
            }
        }
        self.leave_fleet().await;
    }

    fn etcd_up(&mut self, up: bool, err: Option<EtcdError>) {
        let up = up && self.lease != 0;
        self.metrics.set(metric::CLUSTER_ETCD_UP, &[], if up { 1.0 } else { 0.0 });
        if let Some(e) = err {
            if !self.down {
                tracing::error!(agent = %self.name, "etcd: {}; sources owned keep polling while the lease is surely alive", crate::telemetry::printable(&e.to_string()));
            }
            self.down = true;
        } else if up && self.down {
            tracing::info!(agent = %self.name, "etcd answers again");
            self.down = false;
        }
    }

    /// Ask the pipeline and wait until it did (or the agent is leaving).
    async fn ask(&self, make: impl FnOnce(oneshot::Sender<()>) -> Command) -> bool {
        let (tx, rx) = oneshot::channel();
        let asked = async { self.commands.send(make(tx)).await.is_ok() && rx.await.is_ok() };
        tokio::select! {
            r = tokio::time::timeout(COMMAND_TIMEOUT, asked) => r.unwrap_or(false),
            _ = self.leave.cancelled() => false,
        }
    }

    /// The lease may have expired: stop every poller, forget what this
    /// agent owned, and start over with a new lease.
    async fn fence(&mut self) {
        tracing::error!(
            agent = %self.name,
            sources = self.owned.len(),
            "no lease renewal for {:?}: stopping every poller before etcd can give the sources to another agent",
            self.ttl - margin(self.ttl)
        );
        self.ask(Command::StopAll).await;
        self.owned.clear();
        if let Some(k) = self.keepalive.take() {
            k.abort();
        }
        // Kept: if etcd still holds the lease when it answers again (a
        // leader election extends every lease), the sources it owns are
        // still this agent's and resume from the local cursors.
        if self.lease != 0 {
            self.suspended = Some(self.lease);
        }
        self.lease = 0;
        self.metrics.set(metric::CLUSTER_OWNED_SOURCES, &[], 0.0);
        self.metrics.set(metric::CLUSTER_ETCD_UP, &[], 0.0);
    }

    /// Take a lease (or get back the one held before an outage), register,
    /// and renew the lease in the background.
    async fn join(&mut self) -> Result<(), EtcdError> {
        if let Some(old) = self.suspended.take() {
            let sent = Instant::now();
            match self.etcd.keepalive(old).await {
                Ok(left) if left > 0 => return self.resume(old, sent).await,
                Ok(_) => {
                    tracing::info!(agent = %self.name, "the lease expired during the outage; joining with a new one")
                }
                Err(e) => {
                    self.suspended = Some(old);
                    return Err(e);
                }
            }
        }
        let sent = Instant::now();
        let lease = self.etcd.grant(self.ttl).await?;
        if let Err(e) = self.register(lease).await {
            let _ = self.etcd.revoke(lease).await;
            return Err(e);
        }
        self.lease = lease;
        self.renew(lease, sent);
        tracing::info!(agent = %self.name, lease, "registered in the fleet");
        Ok(())
    }

    async fn register(&self, lease: i64) -> Result<(), EtcdError> {
        let member = serde_json::json!({"v": 1, "name": self.name, "version": env!("CARGO_PKG_VERSION")});
        self.etcd.put(&self.key("members", &self.name), member.to_string().as_bytes(), lease).await
    }

    /// The lease survived an outage: keep it. The next round finds the
    /// owner keys still bound to it and polls those sources again
    /// ([`Coordinator::adopt`]): nobody else could take them meanwhile.
    async fn resume(&mut self, lease: i64, sent: Instant) -> Result<(), EtcdError> {
        self.lease = lease;
        self.renew(lease, sent);
        self.register(lease).await?;
        tracing::info!(agent = %self.name, "etcd answers again and the lease held: resuming the sources this agent owns");
        Ok(())
    }

    /// Renew `lease` in the background, moving the alive deadline on.
    fn renew(&mut self, lease: i64, sent: Instant) {
        let _ = self.alive_tx.send(sent + self.ttl - margin(self.ttl));
        let (etcd, ttl, alive, name) = (self.etcd.clone(), self.ttl, self.alive_tx.clone(), self.name.clone());
        self.keepalive = Some(tokio::spawn(async move {
            let mut wait = renew_every(ttl);
            loop {
                tokio::time::sleep(wait).await;
                wait = RENEW_RETRY;
                let sent = Instant::now();
                match tokio::time::timeout(request_timeout(ttl), etcd.keepalive(lease)).await {
                    Ok(Ok(left)) if left > 0 => {
                        let _ = alive.send(sent + ttl - margin(ttl));
                        wait = renew_every(ttl);
                    }
                    Ok(Ok(_)) => {
                        tracing::error!(agent = %name, "the lease expired in etcd");
                        let _ = alive.send(Instant::now());
                        return;
                    }
                    Ok(Err(e)) => tracing::warn!(agent = %name, "lease renewal failed: {e}"),
                    Err(_) => tracing::warn!(agent = %name, "lease renewal timed out"),
                }
            }
        }));
    }

    /// One balancing round.
    async fn step(&mut self) -> Result<(), EtcdError> {
        if self.lease == 0 {
            // Join, and balance from the next tick on: agents starting
            // together see each other before taking sources.
            return self.join().await;
        }
        if self.keepalive.as_ref().is_some_and(|k| k.is_finished()) {
            self.fence().await;
            return Ok(());
        }
        // Members and owners only: the checkpoints (the larger values) are
        // read one at a time, when a source is taken.
        let mut kvs = self.etcd.range_prefix(&self.key("members", "")).await?;
        kvs.extend(self.etcd.range_prefix(&self.key("owners", "")).await?);
        let mut members = Vec::new();
        let mut owners = BTreeMap::new();
        for kv in kvs {
            let Some(rest) = kv.key.strip_prefix(&self.prefix) else { continue };
            if let Some(m) = rest.strip_prefix("members/") {
                members.push(Member { name: m.to_owned(), lease: kv.lease });
            } else if let Some(s) = rest.strip_prefix("owners/") {
                let agent = String::from_utf8_lossy(&kv.value).into_owned();
                owners.insert(s.to_owned(), Owner { agent, revision: kv.create_revision, lease: kv.lease });
            }
        }
        let owned: BTreeMap<String, i64> = self.owned.iter().map(|(s, o)| (s.clone(), o.revision)).collect();
        let mine = Mine { name: &self.name, lease: self.lease, owned: &owned };
        let round = plan(&members, &owners, mine, &self.sources());
        if round.fences() {
            // Our member key went (revoked, or another agent with this
            // name): stop and start over.
            tracing::error!(agent = %self.name, "this agent's member key is gone from etcd (another agent with the same cluster.name?)");
            self.fence().await;
            return Ok(());
        }
        self.metrics.set(metric::CLUSTER_MEMBERS, &[], members.len() as f64);
        self.carry_out(round).await?;
        self.checkpoint_due().await?;
        self.metrics.set(metric::CLUSTER_OWNED_SOURCES, &[], self.owned.len() as f64);
        Ok(())
    }

    /// Carry out a round's [`Plan`], in order. A take lost to another
    /// agent is made up from the spares; every other surprise is left to
    /// the next round's plan.
    async fn carry_out(&mut self, plan: Plan) -> Result<(), EtcdError> {
        let fair = plan.fair;
        for action in plan.actions {
            match action {
                // Planned alone, and `step` fences instead of carrying out.
                Action::Fence => return Ok(()),
                Action::Stop(s) => {
                    tracing::error!(agent = %self.name, source = %s, "ownership of the source lost; stopping it");
                    self.ask(|tx| Command::Stop(s.clone(), tx)).await;
                    self.owned.remove(&s);
                }
                Action::Adopt { source, revision } => self.adopt(&source, revision).await?,
                Action::Drop { source, revision } => self.release_key(&source, revision).await,
                Action::Release(s, why) => {
                    if why == Why::OverShare {
                        tracing::info!(agent = %self.name, source = %s, fair, "releasing a source: a new member takes a share");
                    }
                    self.release(&s, true, Instant::now() + RELEASE_DRAIN).await?;
                }
                Action::Take(s) if self.owned.len() < fair => self.acquire(&s).await?,
                Action::Take(_) => {}
            }
        }
        for s in plan.spare {
            if self.owned.len() >= fair {
                break;
            }
            self.acquire(&s).await?;
        }
        Ok(())
    }

    /// Run a source whose owner key is already this agent's: from the
    /// newer of the local cursor and the fleet's checkpoint (everything up
    /// to the local cursor was journaled here and is delivered by this
    /// agent's outputs).
    async fn adopt(&mut self, source: &str, revision: i64) -> Result<(), EtcdError> {
        let checkpoint = self.etcd.get(&self.key("cursors", source)).await?.and_then(|kv| decode_checkpoint(&kv.value));
        let local = self.state.cursors().get(source).ok().flatten();
        if let Some(c) = checkpoint.as_ref().filter(|c| local.as_ref().is_none_or(|l| l.time < c.cursor.time)) {
            if let Err(e) = self.state.set_cursor(source, &c.cursor).await {
                tracing::error!(source = %source, "cannot store the fleet's cursor: {e}");
                return Ok(());
            }
        }
        self.owned.insert(
            source.to_owned(),
            Owned { revision, written: checkpoint.map(|c| c.cursor), written_at: Instant::now() },
        );
        tracing::info!(agent = %self.name, source = %source, "the source's owner key is still this agent's: polling it again");
        if !self.ask(|tx| Command::Start(source.to_owned(), tx)).await {
            tracing::warn!(source = %source, "the pipeline did not start the source");
        }
        Ok(())
    }

    /// Try to take `source`; start it from the fleet's delivered cursor.
    async fn acquire(&mut self, source: &str) -> Result<(), EtcdError> {
        let owner = self.key("owners", source);
        let (won, revision) = self
            .etcd
            .txn_rev(vec![etcd::created_at(&owner, 0)], vec![etcd::put(&owner, self.name.as_bytes(), self.lease)])
            .await?;
        if !won {
            return Ok(());
        }
        let checkpoint = match self.etcd.get(&self.key("cursors", source)).await {
            Ok(kv) => kv.and_then(|kv| decode_checkpoint(&kv.value)),
            Err(e) => {
                // Not knowing where the last owner got to, do not start.
                self.release_key(source, revision).await;
                return Err(e);
            }
        };
        if let Some(c) = &checkpoint {
            if let Err(e) = self.state.set_cursor(source, &c.cursor).await {
                tracing::error!(source = %source, "cannot store the fleet's cursor: {e}");
                self.release_key(source, revision).await;
                return Ok(());
            }
            if c.by != self.name {
                self.metrics.add(metric::CLUSTER_HANDOVERS, &[], 1);
            }
        }
        self.owned.insert(
            source.to_owned(),
            Owned { revision, written: checkpoint.as_ref().map(|c| c.cursor.clone()), written_at: Instant::now() },
        );
        tracing::info!(
            agent = %self.name,
            source = %source,
            from = %checkpoint.as_ref().and_then(|c| c.cursor.time).map_or("its local cursor".into(), crate::event::rfc3339),
            previous = %checkpoint.as_ref().map_or("-", |c| c.by.as_str()),
            "took the source"
        );
        if !self.ask(|tx| Command::Start(source.to_owned(), tx)).await {
            tracing::warn!(source = %source, "the pipeline did not start the source");
        }
        Ok(())
    }

    /// Give up an owner key (no checkpoint).
    async fn release_key(&self, source: &str, revision: i64) {
        let owner = self.key("owners", source);
        let _ = self.etcd.txn(vec![etcd::created_at(&owner, revision)], vec![etcd::delete(&owner)]).await;
    }

    /// Write the delivered cursors that moved, every [`CHECKPOINT_INTERVAL`].
    async fn checkpoint_due(&mut self) -> Result<(), EtcdError> {
        let outputs = self.outputs();
        let due: Vec<String> = self
            .owned
            .iter()
            .filter(|(_, o)| o.written_at.elapsed() >= CHECKPOINT_INTERVAL)
            .map(|(s, _)| s.clone())
            .collect();
        for s in due {
            let delivered = match self.state.delivered_cursor(&s, &outputs) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(source = %s, "cannot read the delivered cursor: {e}");
                    None
                }
            };
            let Some(o) = self.owned.get_mut(&s) else { continue };
            o.written_at = Instant::now();
            let Some(cursor) = delivered.filter(|d| o.written.as_ref() != Some(d)) else { continue };
            let revision = o.revision;
            if self.write_checkpoint(&s, revision, &cursor, false).await? {
                if let Some(o) = self.owned.get_mut(&s) {
                    o.written = Some(cursor);
                }
            } else {
                tracing::error!(agent = %self.name, source = %s, "checkpoint refused: the source is no longer ours; stopping it");
                self.ask(|tx| Command::Stop(s.clone(), tx)).await;
                self.owned.remove(&s);
            }
        }
        Ok(())
    }

    /// Write `cursor` as the source's delivered cursor while its owner key
    /// is the one created at `revision`; with `release`, delete the owner
    /// key in the same transaction. Whether it held.
    async fn write_checkpoint(
        &self,
        source: &str,
        revision: i64,
        cursor: &Cursor,
        release: bool,
    ) -> Result<bool, EtcdError> {
        let owner = self.key("owners", source);
        let value = serde_json::to_vec(&StoredCheckpoint::V1 {
            by: self.name.clone(),
            at: crate::event::rfc3339(chrono::Utc::now()),
            cursor: cursor.clone(),
        })
        .unwrap_or_default();
        let mut ops = vec![etcd::put(&self.key("cursors", source), &value, 0)];
        if release {
            ops.push(etcd::delete(&owner));
        }
        self.etcd.txn(vec![etcd::created_at(&owner, revision)], ops).await
    }

    /// Release a source: stop its poller (unless `stop` is false: stopped
    /// already), give the outputs until `drain_until` to deliver what it
    /// journaled, checkpoint and delete the owner key in one transaction.
    async fn release(&mut self, source: &str, stop: bool, drain_until: Instant) -> Result<(), EtcdError> {
        let Some(o) = self.owned.get(source) else { return Ok(()) };
        let revision = o.revision;
        if stop && !self.ask(|tx| Command::Stop(source.to_owned(), tx)).await {
            tracing::warn!(source = %source, "the pipeline did not confirm the source stopped; keeping it");
            return Ok(());
        }
        let outputs = self.outputs();
        let mut delivered = None;
        loop {
            let local = self.state.cursors().get(source).ok().flatten();
            delivered = self.state.delivered_cursor(source, &outputs).ok().flatten().or(delivered);
            // An output that is down will not catch up now: checkpoint what
            // was delivered (the new owner fetches the rest again).
            if delivered == local || Instant::now() >= drain_until || self.output_health.an_output_is_down() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let result = match &delivered {
            Some(c) => self.write_checkpoint(source, revision, c, true).await,
            None => {
                self.release_key(source, revision).await;
                Ok(true)
            }
        };
        // Stopped either way: if the transaction failed, the owner key
        // stays until the lease ends, and nobody polls the source twice.
        self.owned.remove(source);
        result?;
        let at = delivered.as_ref().and_then(|c| c.time).map_or("-".into(), crate::event::rfc3339);
        tracing::info!(agent = %self.name, source = %source, delivered = %at, "released the source");
        Ok(())
    }

    /// SIGTERM: the pipeline has stopped every poller; checkpoint and
    /// release every source, then leave.
    async fn leave_fleet(mut self) {
        let sources: Vec<String> = self.owned.keys().cloned().collect();
        // The outputs get most of the pipeline's grace period to deliver
        // what the stopped pollers journaled.
        let grace = self.config.borrow().agent.shutdown_timeout.get();
        let drain_until = Instant::now() + grace * 3 / 4;
        for s in sources {
            if let Err(e) = self.release(&s, false, drain_until).await {
                tracing::warn!(source = %s, "could not release the source at stop ({e}); it moves when the lease expires");
            }
        }
        if let Some(k) = self.keepalive.take() {
            k.abort();
        }
        if let Some(old) = self.suspended.take().filter(|_| self.lease == 0) {
            let _ = self.etcd.revoke(old).await;
        }
        if self.lease != 0 {
            match self.etcd.revoke(self.lease).await {
                Ok(()) => tracing::info!(agent = %self.name, "left the fleet"),
                Err(e) => tracing::warn!(agent = %self.name, "could not revoke the lease ({e}); it expires by itself"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
