use super::*;

/// Whether `expired` has resolved by now (the runtime's clock).
async fn resolved(f: &mut std::pin::Pin<Box<impl std::future::Future<Output = ()>>>) -> bool {
    tokio::select! {
        biased;
        _ = f.as_mut() => true,
        _ = tokio::task::yield_now() => false,
    }
}

#[tokio::test(start_paused = true)]
async fn the_lease_expires_at_the_alive_deadline_and_renewals_move_it_on() {
    let ttl = Duration::from_secs(6);
    let t0 = Instant::now();
    let (tx, rx) = watch::channel(t0 + ttl - margin(ttl));
    let mut f = Box::pin(expired(rx));
    assert!(!resolved(&mut f).await);
    // A renewal every fifth of the lease, each moving the deadline to
    // two thirds of the lease after it was sent.
    for k in 1..=4u32 {
        tokio::time::sleep_until(t0 + renew_every(ttl) * k).await;
        assert!(!resolved(&mut f).await, "renewal {k}");
        tx.send(Instant::now() + ttl - margin(ttl)).unwrap();
    }
    let last = Instant::now();
    tokio::time::sleep_until(last + ttl - margin(ttl) - Duration::from_millis(1)).await;
    assert!(!resolved(&mut f).await, "before the deadline");
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(resolved(&mut f).await, "at the deadline");
    assert_eq!(last - t0, renew_every(ttl) * 4);
}

#[tokio::test(start_paused = true)]
async fn a_lease_renewed_no_more_expires_at_its_last_deadline() {
    let until = Instant::now() + Duration::from_secs(4);
    let (tx, rx) = watch::channel(until);
    let mut f = Box::pin(expired(rx));
    assert!(!resolved(&mut f).await);
    drop(tx);
    assert!(!resolved(&mut f).await, "the sender went, the deadline stands");
    tokio::time::sleep_until(until).await;
    assert!(resolved(&mut f).await);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_in_the_past_expires_at_once() {
    let (_tx, rx) = watch::channel(Instant::now());
    tokio::time::timeout(Duration::ZERO, expired(rx)).await.expect("expired at once");
}

#[test]
fn lease_timing_leaves_renewals_before_the_margin() {
    for secs in [2, 4, 10, 60] {
        let ttl = Duration::from_secs(secs);
        // At least three renewals are sent before polling stops.
        assert!(renew_every(ttl) * 3 < ttl - margin(ttl), "{ttl:?}");
        assert!(request_timeout(ttl) >= MIN_REQUEST_TIMEOUT);
        assert!(request_timeout(ttl) <= (ttl / 4).max(MIN_REQUEST_TIMEOUT));
    }
}

// A fleet on the in-memory etcd (`cluster::fake`), on paused time: each
// agent is a coordinator, a real `State` in a temporary directory, and a
// pipeline that "polls" a source by moving its cursor one step every
// [`POLL_EVERY`] (the step's number is the cursor's time in seconds) and
// "delivers" it at once. Every [`TICK`] the test checks the fleet's
// promise: no source runs on two agents, and an agent runs a source only
// while etcd holds its owner key for that agent, bound to a live lease.
// The poll log then shows each source's steps across owners: a new owner
// starts at most one step past where the last stopped (nothing skipped).

mod fleet {
    use super::super::spawn;
    use crate::cluster::fake::{Client, FakeEtcd};
    use crate::cluster::Command;
    use crate::config::Config;
    use crate::state::{Cursor, State};
    use crate::telemetry::metrics::Metrics;
    use chrono::{DateTime, Utc};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::sync::watch;
    use tokio::task::JoinHandle;
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    const TTL: Duration = Duration::from_secs(6);
    const POLL_EVERY: Duration = Duration::from_millis(250);
    const TICK: Duration = Duration::from_millis(50);
    const PREFIX: &str = "/auditrelay/";

    /// `(agent, source, step)` for every poll, in order.
    type Log = Arc<Mutex<Vec<(String, String, i64)>>>;

    fn config(name: &str, sources: &[&str]) -> Arc<Config> {
        let mut text = format!(
            "[cluster]\netcd = [\"http://127.0.0.1:9\"]\nname = \"{name}\"\nlease_ttl = \"{}s\"\n\n",
            TTL.as_secs()
        );
        for s in sources {
            text.push_str(&format!("[[source]]\nname = \"{s}\"\ntype = \"demo\"\n\n"));
        }
        text.push_str("[[output]]\nname = \"out\"\ntype = \"file\"\npath = \"-\"\n");
        Arc::new(crate::config::parse(&text).expect("a valid config"))
    }

    fn step_of(c: &Cursor) -> i64 {
        c.time.map_or(0, |t| t.timestamp())
    }

    fn cursor_at(step: i64) -> Cursor {
        Cursor { time: DateTime::<Utc>::from_timestamp(step, 0), ..Cursor::default() }
    }

    struct Agent {
        name: String,
        client: Arc<Client>,
        running: Arc<Mutex<BTreeMap<String, JoinHandle<()>>>>,
        config: watch::Sender<Arc<Config>>,
        leave: CancellationToken,
        task: JoinHandle<()>,
        pipeline: JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    /// The pipeline's side: start and stop pollers as the coordinator asks.
    fn pipeline(
        name: String,
        state: Arc<State>,
        log: Log,
        running: Arc<Mutex<BTreeMap<String, JoinHandle<()>>>>,
        mut commands: tokio::sync::mpsc::Receiver<Command>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(c) = commands.recv().await {
                let mut r = running.lock().unwrap();
                match c {
                    Command::Start(s, done) => {
                        let poller = poll(name.clone(), s.clone(), state.clone(), log.clone());
                        if let Some(old) = r.insert(s, poller) {
                            old.abort();
                        }
                        let _ = done.send(());
                    }
                    Command::Stop(s, done) => {
                        if let Some(p) = r.remove(&s) {
                            p.abort();
                        }
                        let _ = done.send(());
                    }
                    Command::StopAll(done) => {
                        for (_, p) in std::mem::take(&mut *r) {
                            p.abort();
                        }
                        let _ = done.send(());
                    }
                }
            }
        })
    }

    /// A poller: from the source's cursor, one step per poll, journaled
    /// and delivered by the one output at once.
    fn poll(agent: String, source: String, state: Arc<State>, log: Log) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut step = state.cursors().get(&source).unwrap().as_ref().map_or(0, step_of);
            loop {
                step += 1;
                let range = state.append(&source, &[], &cursor_at(step)).await.unwrap();
                state.commit("out", range.end, &[]).await.unwrap();
                log.lock().unwrap().push((agent.clone(), source.clone(), step));
                tokio::time::sleep(POLL_EVERY).await;
            }
        })
    }

    struct Fleet {
        etcd: FakeEtcd,
        sources: Vec<String>,
        agents: Vec<Agent>,
        log: Log,
    }

    impl Fleet {
        fn new(agents: &[&str], sources: usize) -> Fleet {
            let mut f = Fleet {
                etcd: FakeEtcd::default(),
                sources: (0..sources).map(|k| format!("s{k}")).collect(),
                agents: Vec::new(),
                log: Log::default(),
            };
            for a in agents {
                f.start(a);
            }
            f
        }

        fn start(&mut self, name: &str) {
            let dir = tempfile::tempdir().unwrap();
            let state = Arc::new(State::open(dir.path()).unwrap());
            let sources: Vec<&str> = self.sources.iter().map(String::as_str).collect();
            let cfg = config(name, &sources);
            let client = self.etcd.client();
            let cluster = cfg.cluster.clone().unwrap();
            let health = crate::telemetry::OutputHealth::default();
            let link = spawn(client.clone(), &cluster, &cfg, state.clone(), health, Arc::new(Metrics::default()));
            let running = Arc::default();
            let pipeline = pipeline(name.into(), state, self.log.clone(), Arc::clone(&running), link.commands);
            self.agents.push(Agent {
                name: name.into(),
                client,
                running,
                config: link.config,
                leave: link.leave,
                task: link.task,
                pipeline,
                _dir: dir,
            });
        }

        fn agent(&self, name: &str) -> &Agent {
            self.agents.iter().find(|a| a.name == name).unwrap()
        }

        fn running(&self, name: &str) -> Vec<String> {
            self.agent(name).running.lock().unwrap().keys().cloned().collect()
        }

        /// The fleet's promise, now.
        fn check(&self) {
            let mut on: BTreeMap<String, &str> = BTreeMap::new();
            for a in &self.agents {
                for s in a.running.lock().unwrap().keys() {
                    if let Some(other) = on.insert(s.clone(), &a.name) {
                        panic!("{s} runs on {other} and {}", a.name);
                    }
                    let owner = self.etcd.key(&format!("{PREFIX}owners/{s}"));
                    let owner = owner.unwrap_or_else(|| panic!("{} runs {s} without an owner key", a.name));
                    assert_eq!(owner.value, a.name.as_bytes(), "{} runs {s}, owned by another", a.name);
                    assert!(self.etcd.lease_alive(owner.lease), "{} runs {s} after its lease expired", a.name);
                }
            }
        }

        /// Let `d` pass, checking the promise every tick.
        async fn run(&self, d: Duration) {
            let until = Instant::now() + d;
            while Instant::now() < until {
                tokio::time::sleep(TICK).await;
                self.check();
            }
        }

        /// Run until `done` holds (checking the promise every tick); how
        /// long it took. Fails after `limit`.
        async fn until(&self, limit: Duration, what: &str, done: impl Fn(&Fleet) -> bool) -> Duration {
            let start = Instant::now();
            while !done(self) {
                assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
                tokio::time::sleep(TICK).await;
                self.check();
            }
            start.elapsed()
        }

        fn balanced(&self, names: &[&str], each: usize) -> bool {
            names.iter().all(|n| self.running(n).len() == each)
        }

        /// The host dies: no more polls, no more renewals, no goodbye.
        fn kill(&mut self, name: &str) {
            let i = self.agents.iter().position(|a| a.name == name).unwrap();
            let a = self.agents.remove(i);
            a.client.cut(true);
            a.task.abort();
            a.pipeline.abort();
            for (_, p) in std::mem::take(&mut *a.running.lock().unwrap()) {
                p.abort();
            }
        }

        /// SIGTERM: the pipeline stops its pollers, then the coordinator
        /// releases every source and leaves.
        async fn stop(&mut self, name: &str) {
            let i = self.agents.iter().position(|a| a.name == name).unwrap();
            let a = self.agents.remove(i);
            for (_, p) in std::mem::take(&mut *a.running.lock().unwrap()) {
                p.abort();
            }
            a.leave.cancel();
            tokio::time::timeout(Duration::from_secs(30), a.task).await.expect("left the fleet").unwrap();
            a.pipeline.abort();
        }

        /// Each source's polls as `(agent, first step, last step)` runs.
        fn runs(&self, source: &str) -> Vec<(String, i64, i64)> {
            let mut runs: Vec<(String, i64, i64)> = Vec::new();
            for (a, s, step) in self.log.lock().unwrap().iter().filter(|(_, s, _)| s == source) {
                let _ = s;
                match runs.last_mut() {
                    Some((last, _, end)) if last == a && *step == *end + 1 => *end = *step,
                    _ => runs.push((a.clone(), *step, *step)),
                }
            }
            runs
        }

        /// Nothing skipped: every run starts at most one step past the
        /// furthest step before it. Returns the steps polled twice.
        fn assert_nothing_skipped(&self, source: &str) -> i64 {
            let mut furthest = 0;
            let mut again = 0;
            for (agent, first, last) in self.runs(source) {
                assert!(first <= furthest + 1, "{source}: {agent} started at {first}, past {furthest}: skipped");
                again += (furthest - first + 1).max(0);
                furthest = furthest.max(last);
            }
            again
        }
    }

    #[tokio::test(start_paused = true)]
    async fn three_agents_share_nine_sources_and_never_run_one_twice() {
        let f = Fleet::new(&["a", "b", "c"], 9);
        f.until(Duration::from_secs(10), "3 sources each", |f| f.balanced(&["a", "b", "c"], 3)).await;
        f.run(Duration::from_secs(10)).await;
        assert!(f.balanced(&["a", "b", "c"], 3), "stays balanced");
        for s in &f.sources {
            assert_eq!(f.runs(s).len(), 1, "{s} moved while nothing changed: {:?}", f.runs(s));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_agents_sources_move_after_its_lease_from_its_checkpoint() {
        let mut f = Fleet::new(&["a", "b"], 4);
        f.until(Duration::from_secs(10), "2 sources each", |f| f.balanced(&["a", "b"], 2)).await;
        f.run(Duration::from_secs(8)).await;
        let b_had = f.running("b");
        f.kill("b");
        let moved = f.until(TTL * 2, "a runs all 4", |f| f.running("a").len() == 4).await;
        // Not before etcd let b's lease go (the check above each tick), and
        // within the lease and a balancing tick or two after that.
        assert!(moved >= TTL - Duration::from_secs(2), "moved after {moved:?}");
        assert!(moved <= TTL + Duration::from_secs(2), "moved after {moved:?}");
        f.run(Duration::from_secs(2)).await;
        for s in &b_had {
            let again = f.assert_nothing_skipped(s);
            // From b's last checkpoint: at most a checkpoint interval (and
            // a tick) of steps polled again.
            let most =
                (super::super::CHECKPOINT_INTERVAL + Duration::from_secs(1)).as_millis() / POLL_EVERY.as_millis();
            assert!(again as u128 <= most + 1, "{s}: {again} steps polled again: {:?}", f.runs(s));
            assert_eq!(f.runs(s).last().unwrap().0, "a");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopping_agent_hands_its_sources_over_at_once_and_nothing_twice() {
        let mut f = Fleet::new(&["a", "b"], 4);
        f.until(Duration::from_secs(10), "2 sources each", |f| f.balanced(&["a", "b"], 2)).await;
        f.run(Duration::from_secs(5)).await;
        let b_had = f.running("b");
        f.stop("b").await;
        assert!(f.etcd.keys(&format!("{PREFIX}members/b")).is_empty(), "b left the fleet");
        let moved = f.until(TTL, "a runs all 4", |f| f.running("a").len() == 4).await;
        assert!(moved <= Duration::from_secs(2), "a handover waits for no lease: {moved:?}");
        f.run(Duration::from_secs(2)).await;
        for s in &b_had {
            assert_eq!(f.assert_nothing_skipped(s), 0, "{s} polled twice: {:?}", f.runs(s));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_etcd_outage_stops_polling_before_the_lease_can_expire_and_a_short_one_resumes() {
        let f = Fleet::new(&["a"], 3);
        f.until(Duration::from_secs(10), "a runs 3", |f| f.running("a").len() == 3).await;
        f.run(Duration::from_secs(3)).await;
        let revisions = |f: &Fleet| -> Vec<i64> {
            f.etcd.keys(&format!("{PREFIX}owners/")).iter().map(|kv| kv.create_revision).collect()
        };
        let before = revisions(&f);
        f.agent("a").client.cut(true);
        // Stopped within the lease less its margin (the check proves it is
        // before the lease expires).
        let stopped = f.until(TTL, "a stops polling", |f| f.running("a").is_empty()).await;
        assert!(stopped <= TTL - super::margin(TTL), "stopped after {stopped:?}");
        f.agent("a").client.cut(false);
        f.until(Duration::from_secs(3), "a polls again", |f| f.running("a").len() == 3).await;
        assert_eq!(revisions(&f), before, "the lease held: the same owner keys, adopted");
        for s in &f.sources {
            assert_eq!(f.assert_nothing_skipped(s), 0, "{s}: {:?}", f.runs(s));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_outage_hands_the_sources_to_the_agent_that_can_reach_etcd() {
        let f = Fleet::new(&["a", "b"], 4);
        f.until(Duration::from_secs(10), "2 sources each", |f| f.balanced(&["a", "b"], 2)).await;
        f.run(Duration::from_secs(4)).await;
        f.agent("a").client.cut(true);
        f.until(TTL * 2, "b runs all 4", |f| f.running("b").len() == 4).await;
        assert!(f.running("a").is_empty());
        f.run(Duration::from_secs(5)).await;
        f.agent("a").client.cut(false);
        f.until(Duration::from_secs(15), "a takes its share back", |f| f.balanced(&["a", "b"], 2)).await;
        f.run(Duration::from_secs(3)).await;
        for s in &f.sources {
            f.assert_nothing_skipped(s);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_removed_from_the_config_is_released_with_its_checkpoint() {
        let f = Fleet::new(&["a"], 3);
        f.until(Duration::from_secs(10), "a runs 3", |f| f.running("a").len() == 3).await;
        f.run(Duration::from_secs(2)).await;
        let a = f.agent("a");
        a.config.send(config("a", &["s0", "s1"])).unwrap();
        f.until(Duration::from_secs(3), "s2 released", |f| f.running("a") == ["s0", "s1"]).await;
        f.run(Duration::from_secs(1)).await;
        assert!(f.etcd.key(&format!("{PREFIX}owners/s2")).is_none(), "its owner key went");
        let checkpoint = f.etcd.key(&format!("{PREFIX}cursors/s2")).expect("a checkpoint");
        let checkpoint = crate::cluster::decode_checkpoint(&checkpoint.value).unwrap();
        let last = f.runs("s2").last().unwrap().2;
        assert_eq!(step_of(&checkpoint.cursor), last, "checkpointed where it stopped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_whose_owner_key_another_took_is_stopped_at_the_next_round() {
        let f = Fleet::new(&["a"], 2);
        f.until(Duration::from_secs(10), "a runs 2", |f| f.running("a").len() == 2).await;
        let key = format!("{PREFIX}owners/s0");
        f.etcd.delete(&key);
        f.etcd.put(&key, b"intruder", 0);
        let start = Instant::now();
        while f.running("a").iter().any(|s| s == "s0") {
            assert!(start.elapsed() < Duration::from_secs(3), "a still runs s0");
            tokio::time::sleep(TICK).await;
        }
        f.run(Duration::from_secs(3)).await;
        assert_eq!(f.running("a"), ["s1"], "and does not take it back");
    }
}
