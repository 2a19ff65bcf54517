//! The shared integration-test harness. Every server binds `127.0.0.1:0`;
//! nothing else is ever contacted.
//!
//! - [`hec`]: a fake Splunk HTTP Event Collector with indexer acks and
//!   switchable failure modes (busy, refusing, hanging, losing an ack,
//!   rejecting one event).
//! - [`api`]: a fake JSON audit API for the `http_json` source, with a fault
//!   queue (429, 500, HTML, a repeating page token).
//! - [`agent`]: the real binary as a child process (SIGTERM, SIGKILL, stderr,
//!   `status --json`, other subcommands), the agent in-process, config
//!   snippets and poll-until helpers.
//! - [`compliance`]: the checks every source must pass, run against a
//!   [`compliance::FakeVendor`].
//! - [`rsyslog`]: a real `rsyslogd` on 127.0.0.1 writing what it parsed.
//! - [`lazyfs`]: a LazyFS mount (FUSE) whose unsynced writes a test drops
//!   on command: a power cut.
//! - [`certs`]: a test CA and certificates it signs (`openssl` CLI).
//! - [`runs`]: knobs from the environment, seeds and their replay note,
//!   medians and numbers for the outcome tables.
//!
//! `tests/main.rs` declares it once for every suite; a suite's file uses it
//! with `use crate::common;`. The servers run on one shared background tokio
//! runtime, so tests themselves are plain blocking `#[test]`s. [`exclusive`]
//! keeps the suites that load the whole machine apart.
#![allow(dead_code)]

pub mod agent;
pub mod api;
pub mod certs;
pub mod compliance;
pub mod hec;
pub mod lazyfs;
pub mod rsyslog;
pub mod runs;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Condvar, Mutex, OnceLock};

/// The background runtime every fake server runs on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-servers")
            .enable_all()
            .build()
            .expect("test runtime")
    })
}

/// Run a future on the background runtime and wait for it.
pub fn block_on<F: Future + Send + 'static>(f: F) -> F::Output
where
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().expect("background task finished")
}

/// Who holds [`exclusive`]: a suite and how many of its tests, and the
/// suites of the tests waiting for a turn.
struct Turn {
    suite: Option<&'static str>,
    holders: usize,
    waiting: Vec<&'static str>,
}

impl Turn {
    /// Whether a test of `suite` may start now: nobody holds the turn, or
    /// its own suite does and no other suite waits (so none waits forever).
    fn admits(&self, suite: &'static str) -> bool {
        self.holders == 0 || (self.suite == Some(suite) && self.waiting.iter().all(|w| *w == suite))
    }
}

static EXCLUSIVE: (Mutex<Turn>, Condvar) =
    (Mutex::new(Turn { suite: None, holders: 0, waiting: Vec::new() }), Condvar::new());

/// A test's share of its suite's turn (see [`exclusive`]); the next suite
/// may start once the last share is dropped, also on panic.
pub struct Exclusive {
    _private: (),
}

/// Wait until no test of another heavy suite runs, then hold the turn for
/// `suite` until the guard is dropped. The heavy suites (power loss on
/// LazyFS, the etcd fleet, the fault tables, the listener under `ulimit -n`)
/// each had their own binary, and binaries ran one after another, before
/// the integration tests became one binary (#25); they load every core,
/// mount file systems or time what they measure, so two of them must not
/// overlap. Tests of the same suite share the turn, as they ran in parallel
/// in their own binary; the light suites' tests run beside them.
pub fn exclusive(suite: &'static str) -> Exclusive {
    let (lock, cv) = &EXCLUSIVE;
    let mut turn = lock.lock().unwrap_or_else(|e| e.into_inner());
    if !turn.admits(suite) {
        turn.waiting.push(suite);
        turn = cv.wait_while(turn, |t| !t.admits(suite)).unwrap_or_else(|e| e.into_inner());
        let me = turn.waiting.iter().position(|w| *w == suite).expect("own entry");
        turn.waiting.remove(me);
    }
    turn.suite = Some(suite);
    turn.holders += 1;
    Exclusive { _private: () }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        let (lock, cv) = &EXCLUSIVE;
        let mut turn = lock.lock().unwrap_or_else(|e| e.into_inner());
        turn.holders -= 1;
        if turn.holders == 0 {
            turn.suite = None;
            cv.notify_all();
        }
    }
}

/// How often each id occurs.
pub fn counts(ids: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for id in ids {
        *m.entry(id.clone()).or_insert(0) += 1;
    }
    m
}

/// Ids delivered more than once, with their count.
pub fn duplicates(ids: &[String]) -> BTreeMap<String, usize> {
    counts(ids).into_iter().filter(|(_, n)| *n > 1).collect()
}

/// Ids of `expected` not in `delivered`.
pub fn missing(delivered: &[String], expected: &[String]) -> Vec<String> {
    let have: HashSet<&String> = delivered.iter().collect();
    expected.iter().filter(|id| !have.contains(id)).cloned().collect()
}

/// Assert every expected id was delivered exactly once and nothing else was.
pub fn assert_exactly_once(delivered: &[String], expected: &[String], what: &str) {
    let lost = missing(delivered, expected);
    assert!(lost.is_empty(), "{what}: {} event(s) lost: {lost:?}", lost.len());
    let dup = duplicates(delivered);
    assert!(dup.is_empty(), "{what}: {} event(s) duplicated: {dup:?}", dup.len());
    let known: HashSet<&String> = expected.iter().collect();
    let extra: Vec<&String> = delivered.iter().filter(|id| !known.contains(id)).collect();
    assert!(extra.is_empty(), "{what}: unexpected events delivered: {extra:?}");
}

/// Assert nothing expected is missing, nothing unknown arrived, and at most
/// `max_dups` extra copies in total (at-least-once after a crash or resend:
/// at most one batch).
pub fn assert_at_least_once(delivered: &[String], expected: &[String], max_dups: usize, what: &str) -> usize {
    let lost = missing(delivered, expected);
    assert!(lost.is_empty(), "{what}: {} event(s) lost: {lost:?}", lost.len());
    let known: HashSet<&String> = expected.iter().collect();
    let extra: Vec<&String> = delivered.iter().filter(|id| !known.contains(id)).collect();
    assert!(extra.is_empty(), "{what}: unexpected events delivered: {extra:?}");
    let dup = duplicates(delivered);
    let copies: usize = dup.values().map(|n| n - 1).sum();
    assert!(copies <= max_dups, "{what}: {copies} duplicate copies, more than one batch ({max_dups}): {dup:?}");
    copies
}

/// Connection control shared by a server's listener and its connections:
/// while `refusing`, new connections are closed at once; bumping the
/// generation breaks every open connection at its next read or write.
#[derive(Debug, Default)]
pub struct Gate {
    refusing: std::sync::atomic::AtomicBool,
    generation: std::sync::atomic::AtomicU64,
    refused: std::sync::atomic::AtomicUsize,
}

impl Gate {
    /// Refuse (close) new connections and break open ones, or accept again.
    pub fn set_refusing(&self, on: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        self.refusing.store(on, SeqCst);
        if on {
            self.generation.fetch_add(1, SeqCst);
        }
    }

    /// Break every open connection (keep-alive ones included).
    pub fn break_connections(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Connections closed at once because the server was refusing.
    pub fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// After a failed `accept` (e.g. out of descriptors) the fake server's
/// listener waits this long before it tries again, as a real server would:
/// retrying at once would spin.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

struct GatedListener {
    inner: tokio::net::TcpListener,
    gate: std::sync::Arc<Gate>,
}

impl axum::serve::Listener for GatedListener {
    type Io = GatedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (GatedStream, std::net::SocketAddr) {
        use std::sync::atomic::Ordering::SeqCst;
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.gate.refusing.load(SeqCst) {
                        self.gate.refused.fetch_add(1, SeqCst);
                        drop(stream);
                        continue;
                    }
                    let generation = self.gate.generation.load(SeqCst);
                    return (GatedStream { inner: stream, generation, gate: self.gate.clone() }, addr);
                }
                Err(_) => tokio::time::sleep(ACCEPT_RETRY).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection that fails once its gate's generation moves on.
struct GatedStream {
    inner: tokio::net::TcpStream,
    generation: u64,
    gate: std::sync::Arc<Gate>,
}

impl GatedStream {
    fn broken(&self) -> bool {
        self.gate.generation.load(std::sync::atomic::Ordering::SeqCst) != self.generation
    }
}

fn reset() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::ConnectionReset)
}

impl tokio::io::AsyncRead for GatedStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.broken() {
            return std::task::Poll::Ready(Err(reset()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for GatedStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.broken() {
            return std::task::Poll::Ready(Err(reset()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A running loopback HTTP server; stops (and breaks its connections) when
/// dropped.
pub struct Server {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its connection control.
    pub gate: std::sync::Arc<Gate>,
    cancel: tokio_util::sync::CancellationToken,
}

impl Server {
    /// Serve `router` on `127.0.0.1:0` on the background runtime.
    pub fn start(router: axum::Router) -> Server {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let gate = std::sync::Arc::new(Gate::default());
        let cancel = tokio_util::sync::CancellationToken::new();
        let (g, c) = (gate.clone(), cancel.clone());
        runtime().spawn(async move {
            let inner = tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
            let listener = GatedListener { inner, gate: g };
            tokio::select! {
                _ = axum::serve(listener, router) => {}
                _ = c.cancelled() => {}
            }
        });
        Server { addr, gate, cancel }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.gate.set_refusing(true);
    }
}

/// A config with one `http_json` source named `api` reading `api` (test
/// defaults: 1 s interval, pages of 7) and the given output block.
pub fn api_config(dir: &agent::TestDir, api: &api::FakeApi, output: &str) -> String {
    format!(
        "{}\n{}{}",
        dir.agent_section(),
        compliance::with_test_defaults(&api.source_block("api", &api.token())),
        output
    )
}

/// Wait until every id of `expected` reached the fake HEC.
pub fn wait_hec_has(hec: &hec::FakeHec, expected: &[String], what: &str, log: impl Fn() -> String) {
    agent::wait_until_or(
        what,
        agent::DEADLINE,
        || missing(&hec.event_ids(), expected).is_empty(),
        || format!("missing {:?}\nagent log:\n{}", missing(&hec.event_ids(), expected), agent::tail(&log(), 40)),
    );
}
