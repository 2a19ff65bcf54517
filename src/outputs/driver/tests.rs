//! The driver on paused time against a scripted fake receiver: each send
//! is handed to the test, which answers it (confirmed, failed, some events
//! rejected) when it chooses. No test sleeps: tokio's clock is paused and
//! jumps to the next timer whenever every task waits, so timings are exact.

use super::*;
use crate::outputs::OutputContext;
use crate::settings::units::{Dur, Size};
use crate::state::{Cursor, State};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::OutputHealth;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

const OUTPUT: &str = "fake";
const SOURCE: &str = "demo";
/// Slack for the timer wheel's millisecond ticks.
const TICK: Duration = Duration::from_millis(1);

/// One send as the receiver saw it, waiting for the test's answer.
struct Call {
    ids: Vec<String>,
    /// Each event's (window, index), with manifests on.
    tags: Vec<Option<(u64, u64)>>,
    at: Instant,
    reply: oneshot::Sender<Result<Delivery, SendError>>,
}

impl Call {
    fn answer(self, r: Result<Delivery, SendError>) {
        let _ = self.reply.send(r);
    }
    fn ok(self) {
        self.answer(Ok(Delivery::default()));
    }
    fn fail(self, e: SendError) {
        self.answer(Err(e));
    }
}

/// A receiver that hands every batch to the test and returns its answer.
/// Forkable when the test runs more than one batch in flight.
struct FakeSink {
    calls: mpsc::UnboundedSender<Call>,
    forks: bool,
}

impl Sink for FakeSink {
    async fn send(&mut self, batch: &[Event]) -> Result<Delivery, SendError> {
        let (reply, answer) = oneshot::channel();
        let ids = batch.iter().map(|e| e.id.clone()).collect();
        let tags = batch.iter().map(|e| e.window.as_ref().map(|w| (w.window, w.index))).collect();
        let _ = self.calls.send(Call { ids, tags, at: Instant::now(), reply });
        answer.await.unwrap_or_else(|_| Err(SendError::transient("the test dropped the call")))
    }
    async fn healthcheck(&mut self) -> Result<(), SendError> {
        Ok(())
    }
    fn fork(&self) -> Option<Self> {
        self.forks.then(|| FakeSink { calls: self.calls.clone(), forks: true })
    }
}

/// The wall clock the driver is given: fixed, so dead letters' times are known.
fn noon() -> DateTime<Utc> {
    DateTime::from_timestamp(1_777_636_800, 0).unwrap()
}

fn settings(max_events: usize, timeout: Duration) -> DriverSettings {
    DriverSettings {
        name: OUTPUT.into(),
        batch: BatchConfig { max_events, max_bytes: Size::parse("16MiB").unwrap(), timeout: Dur(timeout) },
        max_eps: None,
        retry_max_interval: Duration::from_secs(60),
        max_in_flight: 1,
        manifest_interval: None,
        manifest_stream: None,
    }
}

/// `e<from>` .. `e<to - 1>`.
fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("e{i}")).collect()
}

/// A driver on a real state in a temporary directory, and the receiving
/// end of its fake sink.
struct Harness {
    state: Arc<State>,
    metrics: Arc<Metrics>,
    output_health: OutputHealth,
    calls: mpsc::UnboundedReceiver<Call>,
    cancel: CancellationToken,
    driver: tokio::task::JoinHandle<Result<(), StateError>>,
    journaled: usize,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(settings: DriverSettings) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(dir.path()).unwrap());
        // A new output starts at the journal's tail: register it first.
        assert_eq!(state.offset_or_tail(OUTPUT).await.unwrap(), 0);
        let metrics = Arc::new(Metrics::default());
        let output_health = OutputHealth::default();
        let ctx = OutputContext {
            state: state.clone(),
            metrics: metrics.clone(),
            output_health: output_health.clone(),
            hostname: "relay01".into(),
            clock: Arc::new(noon),
        };
        let (tx, calls) = mpsc::unbounded_channel();
        let sink = FakeSink { calls: tx, forks: settings.max_in_flight > 1 };
        let cancel = CancellationToken::new();
        let driver = tokio::spawn(run(settings, sink, Routes::default(), ctx, cancel.clone()));
        Harness { state, metrics, output_health, calls, cancel, driver, journaled: 0, _dir: dir }
    }

    /// Journal `n` more events as one page, numbered on from the last.
    async fn journal(&mut self, n: usize) {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let events: Vec<Event> = ids(self.journaled..self.journaled + n)
            .into_iter()
            .map(|id| Event::new(SOURCE.into(), id.clone(), t, serde_json::Map::new(), format!("{{\"id\":\"{id}\"}}")))
            .collect();
        self.state.append(SOURCE, &events, &Cursor::default()).await.unwrap();
        self.journaled += n;
    }

    /// The next send; fails the test when none comes within `within`.
    async fn next_call(&mut self, within: Duration) -> Call {
        let call = tokio::time::timeout(within, self.calls.recv()).await;
        call.unwrap_or_else(|_| panic!("no send within {within:?}")).expect("the driver is running")
    }

    /// Fails the test when a send comes within `d`.
    async fn no_call_within(&mut self, d: Duration) {
        if let Ok(call) = tokio::time::timeout(d, self.calls.recv()).await {
            panic!("unexpected send of {:?}", call.map(|c| c.ids));
        }
    }

    fn offset(&self) -> u64 {
        self.state.offsets().get(OUTPUT).unwrap().unwrap()
    }

    /// Wait for the offset to reach `want` (the commit follows the answer).
    async fn committed(&self, want: u64) {
        for _ in 0..1000 {
            if self.offset() == want {
                return;
            }
            tokio::time::sleep(TICK).await;
        }
        panic!("offset is {}, expected {want}", self.offset());
    }

    /// Let every task run to its next wait (commits included).
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fn metric(&self, name: &'static str) -> f64 {
        self.metrics.get(name, &[("output", OUTPUT)])
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.driver.await.unwrap().unwrap();
    }
}

/// (a) A partial batch waits exactly `batch.timeout` from when its first
/// entry was read, never less; a full batch goes at once.
#[tokio::test(start_paused = true)]
async fn a_batch_goes_when_full_or_when_its_timeout_expires_not_before() {
    let timeout = Duration::from_secs(2);
    let mut h = Harness::start(settings(3, timeout)).await;

    let t0 = Instant::now();
    h.journal(2).await;
    h.no_call_within(timeout - TICK).await;
    let call = h.next_call(TICK * 10).await;
    assert_eq!(call.ids, ids(0..2));
    let waited = call.at - t0;
    assert!(waited >= timeout && waited <= timeout + TICK, "a partial batch went after {waited:?}");
    call.ok();
    h.committed(2).await;

    // Four more: three fill a batch, which goes at once; the one left over
    // waits its own timeout.
    let t1 = Instant::now();
    h.journal(4).await;
    let call = h.next_call(timeout).await;
    assert_eq!(call.ids, ids(2..5));
    assert!(call.at - t1 < TICK, "a full batch waited {:?}", call.at - t1);
    call.ok();
    let call = h.next_call(timeout * 2).await;
    assert_eq!(call.ids, ids(5..6));
    let waited = call.at - t1;
    assert!(waited >= timeout && waited <= timeout + TICK, "the rest went after {waited:?}");
    call.ok();
    h.committed(6).await;
    assert_eq!(h.metric(metric::EVENTS_SENT), 6.0);
    h.stop().await;
}

/// (b) At `max_eps = 10` in batches of 5, the first second's worth (two
/// batches) goes at once, then one batch every 500 ms; 40 events take
/// 3.5 s, and each arrives once, in order.
#[tokio::test(start_paused = true)]
async fn batches_are_paced_to_max_eps() {
    let mut s = settings(5, Duration::from_millis(100));
    s.max_eps = Some(10);
    let mut h = Harness::start(s).await;
    let t0 = Instant::now();
    h.journal(40).await;
    let mut at = Vec::new();
    for k in 0..8 {
        let call = h.next_call(Duration::from_secs(5)).await;
        assert_eq!(call.ids, ids(5 * k..5 * k + 5));
        at.push(call.at - t0);
        call.ok();
    }
    let expected: Vec<Duration> =
        [0, 0, 500, 1000, 1500, 2000, 2500, 3000].into_iter().map(Duration::from_millis).collect();
    for (k, (got, want)) in at.iter().zip(&expected).enumerate() {
        assert!(got.abs_diff(*want) <= TICK * 2, "batch {k} went at {got:?}, expected {want:?} (all: {at:?})");
    }
    h.committed(40).await;
    h.no_call_within(Duration::from_secs(10)).await;
    h.stop().await;
}

/// (c) A receiver that keeps failing is retried forever, the waits doubling
/// from [`RETRY_FIRST`] to `retry_max_interval` (±30 % jitter); the failing
/// batch is resent as it was, what was journaled meanwhile waits behind
/// it, and after recovery everything lands once, in order.
#[tokio::test(start_paused = true)]
async fn transient_failures_back_off_to_retry_max_interval_forever_and_lose_nothing() {
    let max = Duration::from_secs(8);
    let mut s = settings(3, Duration::from_millis(100));
    s.retry_max_interval = max;
    let mut h = Harness::start(s).await;
    h.journal(3).await;
    let mut call = h.next_call(Duration::from_secs(1)).await;
    h.journal(3).await;
    let mut waits = Vec::new();
    for _ in 0..12 {
        let failed_at = call.at;
        call.fail(SendError::transient("HTTP 503"));
        call = h.next_call(max * 2).await;
        assert_eq!(call.ids, ids(0..3), "the failed batch is resent first, unchanged");
        waits.push(call.at - failed_at);
        assert!(h.output_health.an_output_is_down(), "the output reports itself down while failing");
    }
    for (i, wait) in waits.iter().enumerate() {
        let base = (RETRY_FIRST * 2u32.pow(i as u32)).min(max);
        let (lo, hi) = (base.mul_f64(0.7).saturating_sub(TICK), base.mul_f64(1.3) + TICK);
        assert!((lo..=hi).contains(wait), "retry {i} after {wait:?}, expected {base:?} ±30% (all: {waits:?})");
    }
    assert!(waits[4..].iter().all(|w| *w >= max.mul_f64(0.7) - TICK), "the waits reach the maximum: {waits:?}");
    assert_eq!(h.offset(), 0, "nothing is committed while the receiver fails");
    assert_eq!(h.metric(metric::RETRIES), 12.0);

    call.ok();
    let call = h.next_call(Duration::from_secs(1)).await;
    assert_eq!(call.ids, ids(3..6));
    call.ok();
    h.committed(6).await;
    assert!(!h.output_health.an_output_is_down(), "healthy again");
    assert_eq!(h.metric(metric::EVENTS_SENT), 6.0);
    h.stop().await;
}

/// (c') A refused credential or configuration is retried too, forever,
/// but slowly: from [`REFUSED_RETRY_FIRST`] (or `retry_max_interval`, when
/// shorter) up to [`REFUSED_RETRY_MAX`] (or `retry_max_interval`, when longer).
#[tokio::test(start_paused = true)]
async fn refused_credentials_are_retried_slowly_up_to_five_minutes() {
    let mut h = Harness::start(settings(1, Duration::from_millis(100))).await;
    h.journal(1).await;
    let mut call = h.next_call(Duration::from_secs(1)).await;
    let mut waits = Vec::new();
    for _ in 0..8 {
        let failed_at = call.at;
        call.fail(SendError::auth("HTTP 403"));
        call = h.next_call(REFUSED_RETRY_MAX * 2).await;
        waits.push(call.at - failed_at);
    }
    for (i, wait) in waits.iter().enumerate() {
        let base = (REFUSED_RETRY_FIRST * 2u32.pow(i as u32)).min(REFUSED_RETRY_MAX);
        let (lo, hi) = (base.mul_f64(0.7).saturating_sub(TICK), base.mul_f64(1.3) + TICK);
        assert!((lo..=hi).contains(wait), "retry {i} after {wait:?}, expected {base:?} ±30% (all: {waits:?})");
    }
    call.ok();
    h.committed(1).await;
    h.stop().await;
}

/// (d) With three batches in flight, confirmations that come back out of
/// order commit in journal order: nothing past a batch not yet confirmed
/// (even one that failed and is being retried) is committed.
#[tokio::test(start_paused = true)]
async fn batches_confirmed_out_of_order_commit_in_journal_order() {
    let mut s = settings(2, Duration::from_millis(100));
    s.max_in_flight = 3;
    let mut h = Harness::start(s).await;
    let t0 = Instant::now();
    h.journal(6).await;
    let mut calls = Vec::new();
    for _ in 0..3 {
        calls.push(h.next_call(Duration::from_secs(1)).await);
    }
    calls.sort_by(|a, b| a.ids.cmp(&b.ids));
    assert_eq!(calls.iter().map(|c| c.ids.clone()).collect::<Vec<_>>(), [ids(0..2), ids(2..4), ids(4..6)]);
    assert!(calls.iter().all(|c| c.at - t0 < TICK), "all three went before any was confirmed");
    h.no_call_within(Duration::from_secs(1)).await;
    let [first, second, third]: [Call; 3] = calls.try_into().ok().unwrap();

    second.ok();
    Harness::settle().await;
    assert_eq!(h.offset(), 0, "the second batch's confirmation is held behind the first");

    first.fail(SendError::transient("connection reset"));
    let retry = h.next_call(Duration::from_secs(5)).await;
    assert_eq!(retry.ids, ids(0..2), "the first batch is resent");
    assert_eq!(h.offset(), 0, "nothing past the failing first batch is committed");

    retry.ok();
    h.committed(4).await;
    Harness::settle().await;
    assert_eq!(h.offset(), 4, "the third batch is not confirmed yet");

    third.ok();
    h.committed(6).await;
    assert_eq!(h.metric(metric::EVENTS_SENT), 6.0);
    h.stop().await;
}

/// (e) An event the receiver rejects for good goes to the dead-letter
/// queue, stamped with the driver's clock; the rest of its batch counts as
/// delivered and the offset moves past all of it; nothing is resent.
#[tokio::test(start_paused = true)]
async fn a_rejected_event_is_dead_lettered_and_the_rest_committed() {
    let mut h = Harness::start(settings(4, Duration::from_millis(100))).await;
    h.journal(4).await;
    let call = h.next_call(Duration::from_secs(1)).await;
    assert_eq!(call.ids, ids(0..4));
    call.answer(Ok(Delivery { rejected: vec![(1, "invalid data format".into())] }));
    h.committed(4).await;

    let dead = h.state.dead_letters().list(OUTPUT).unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].seq, dead[0].event.id.as_str()), (1, "e1"));
    assert_eq!(dead[0].reason, "invalid data format");
    assert_eq!(dead[0].at, crate::event::rfc3339(noon()));
    assert_eq!(h.metric(metric::EVENTS_SENT), 3.0);
    assert_eq!(h.metric(metric::EVENTS_DEAD_LETTERED), 1.0);
    assert_eq!(h.metric(metric::LAST_SEND), noon().timestamp() as f64);
    h.no_call_within(Duration::from_secs(60)).await;
    h.stop().await;
}

/// Shutdown ends a backoff at once and leaves the offset where it was, so
/// the failed batch is sent again by the next run.
#[tokio::test(start_paused = true)]
async fn shutdown_during_a_backoff_stops_at_once_and_commits_nothing() {
    let mut h = Harness::start(settings(2, Duration::from_millis(100))).await;
    h.journal(2).await;
    let call = h.next_call(Duration::from_secs(1)).await;
    call.fail(SendError::transient("HTTP 503"));
    Harness::settle().await;
    let t = Instant::now();
    let (state, cancel, driver) = (h.state.clone(), h.cancel.clone(), h.driver);
    cancel.cancel();
    driver.await.unwrap().unwrap();
    assert!(t.elapsed() < TICK, "the driver waited {:?} to stop", t.elapsed());
    assert_eq!(state.offsets().get(OUTPUT).unwrap(), Some(0));
}

/// Manifests: each event goes out tagged with its window and position; at
/// the interval the driver waits for the batch in flight, closes the window
/// (stored before it is sent), sends the manifest, forgets it once
/// confirmed, and the next events open window 2 at position 0.
#[tokio::test(start_paused = true)]
async fn windows_close_after_what_is_in_flight_lands_and_their_manifest_goes_before_the_next_batch() {
    let interval = Duration::from_secs(30);
    let mut h =
        Harness::start(DriverSettings { manifest_interval: Some(interval), ..settings(2, Duration::from_secs(1)) })
            .await;
    h.journal(3).await;
    let call = h.next_call(Duration::from_secs(2)).await;
    assert_eq!(call.tags, vec![Some((1, 0)), Some((1, 1))]);
    call.ok();
    let call = h.next_call(Duration::from_secs(2)).await;
    assert_eq!(call.tags, vec![Some((1, 2))]);
    // Still unanswered when the interval ends: no manifest yet.
    tokio::time::sleep_until(Instant::now() + interval).await;
    h.no_call_within(Duration::from_secs(5)).await;
    call.ok();
    let manifest = h.next_call(TICK * 10).await;
    assert_eq!(manifest.ids, vec![format!("auditrelay-manifest:{OUTPUT}:{SOURCE}:1")]);
    assert_eq!(manifest.tags, vec![None], "a manifest is not itself counted");
    let pending = h.state.manifests().pending(OUTPUT).unwrap();
    assert_eq!(pending.len(), 1, "stored before it is sent");
    assert_eq!((pending[0].window, pending[0].count, pending[0].indices), (1, 3, 3));
    manifest.ok();
    Harness::settle().await;
    assert!(h.state.manifests().pending(OUTPUT).unwrap().is_empty());
    assert_eq!(h.metric(metric::MANIFESTS_SENT), 1.0);
    let windows = h.state.manifests().windows(OUTPUT).unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!((windows[0].1.window, windows[0].1.previous), (2, pending[0].digest));
    h.journal(1).await;
    let call = h.next_call(Duration::from_secs(2)).await;
    assert_eq!(call.tags, vec![Some((2, 0))]);
    call.ok();
    h.committed(4).await;
    h.stop().await;
}

/// A manifest the receiver did not confirm before the agent stopped is
/// stored: the next start sends that same manifest before any batch.
#[tokio::test(start_paused = true)]
async fn a_manifest_unconfirmed_at_shutdown_is_sent_again_first_at_the_next_start() {
    let interval = Duration::from_secs(10);
    let mut h =
        Harness::start(DriverSettings { manifest_interval: Some(interval), ..settings(10, Duration::from_secs(1)) })
            .await;
    h.journal(2).await;
    h.next_call(Duration::from_secs(2)).await.ok();
    let first = h.next_call(interval + Duration::from_secs(1)).await;
    assert_eq!(first.ids.len(), 1);
    h.journal(1).await;
    h.cancel.cancel();
    first.fail(SendError::transient("receiver gone"));
    h.driver.await.unwrap().unwrap();
    let pending = h.state.manifests().pending(OUTPUT).unwrap();
    assert_eq!(pending.len(), 1);

    let (tx, mut calls) = mpsc::unbounded_channel();
    let ctx = OutputContext {
        state: h.state.clone(),
        metrics: h.metrics.clone(),
        output_health: h.output_health.clone(),
        hostname: "relay01".into(),
        clock: Arc::new(noon),
    };
    let cancel = CancellationToken::new();
    let settings = DriverSettings { manifest_interval: Some(interval), ..settings(10, Duration::from_secs(1)) };
    let driver =
        tokio::spawn(run(settings, FakeSink { calls: tx, forks: false }, Routes::default(), ctx, cancel.clone()));
    let again = calls.recv().await.unwrap();
    assert_eq!(again.ids, vec![format!("auditrelay-manifest:{OUTPUT}:{SOURCE}:1")]);
    again.ok();
    let next = calls.recv().await.unwrap();
    assert_eq!(next.tags, vec![Some((2, 0))], "the event after the close is in window 2");
    next.ok();
    Harness::settle().await;
    cancel.cancel();
    driver.await.unwrap().unwrap();
}
