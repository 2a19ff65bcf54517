//! The small HTTP endpoint on `agent.listen`: `/health` (200 when every
//! source and output is healthy, 503 with a JSON body naming what is not)
//! and `/metrics` (Prometheus text format).
//!
//! Anyone who can reach the port is a client, so the listener must not be
//! able to starve the agent (issue #24): its own accept loop holds at most
//! [`MAX_CONNECTIONS`] connections (more wait in the kernel's backlog,
//! costing the agent no descriptor), drops a connection that has not sent
//! its request headers within [`HEADER_READ_TIMEOUT`] (which also closes
//! idle keep-alive connections) and any connection after
//! [`CONNECTION_LIFETIME`], and outlives accept errors. `axum::serve` has
//! none of these: under `ulimit -n 256`, 300 connections that never
//! finished their headers took every descriptor, the sources' polls failed
//! with "Too many open files" and `/health` never answered.

use super::metrics::Metrics;
use crate::telemetry::metrics::name as metric;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connections served at once. The clients are a Prometheus scraper and a
/// health probe or two, so 64 is ample, and small next to the 1024
/// descriptors an agent started outside systemd gets by default: the
/// sources, outputs and the state keep the rest. At the cap the loop stops
/// accepting until a connection ends.
const MAX_CONNECTIONS: usize = 64;

/// Time a connection gets to send a request's headers, from its accept
/// and again after each answer (so it is also how long an idle keep-alive
/// connection stays). A scraper or probe sends its few hundred bytes at
/// once; a client that trickles them holds a connection slot, and a fresh
/// client queued behind `n` of those waits about `n / MAX_CONNECTIONS`
/// times this long, so it is short.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection is closed this long after its accept, whatever it is
/// doing: the answers are small and computed at once, so only a client
/// that reads them very slowly (or keeps a connection busy forever) ever
/// gets here.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// At shutdown, how long a connection gets to finish the answer it is
/// writing (answers are computed at once). A connection still sending its
/// headers is not waited for to its header timeout. Under the pipeline's
/// own bound on the server's stop, so the loop returns by itself.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// The pause after an accept error other than a failed connection
/// (out of descriptors or memory: EMFILE, ENFILE, ENOBUFS, ENOMEM).
/// Accepting again at once would fail again at once, a busy loop; the
/// waiting connection stays in the backlog meanwhile.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(200);

/// At most one warning about accept errors this often (with the number of
/// errors since the last one): a descriptor shortage lasting minutes must
/// not flood the log at every [`ACCEPT_ERROR_PAUSE`].
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// What the accept loop holds to (the constants above; tests use smaller
/// values).
#[derive(Debug, Clone, Copy)]
struct Limits {
    connections: usize,
    header_read: Duration,
    lifetime: Duration,
}

const LIMITS: Limits =
    Limits { connections: MAX_CONNECTIONS, header_read: HEADER_READ_TIMEOUT, lifetime: CONNECTION_LIFETIME };

/// The health verdict from the `auditrelay_up` gauges: components that have
/// not reported yet (just started) count as healthy.
pub fn health(metrics: &Metrics) -> (bool, serde_json::Value) {
    let mut failing = Vec::new();
    let mut ok = Vec::new();
    for (labels, v) in metrics.series(metric::UP) {
        let Some((kind, name)) = labels.first() else { continue };
        let entry = json!({ "kind": kind, "name": name });
        if v >= 1.0 {
            ok.push(entry);
        } else {
            failing.push(entry);
        }
    }
    if let Some((_, up)) = metrics.series(metric::CLUSTER_ETCD_UP).first() {
        let entry = json!({ "kind": "cluster", "name": "etcd" });
        if *up >= 1.0 {
            ok.push(entry);
        } else {
            failing.push(entry);
        }
    }
    let healthy = failing.is_empty();
    (healthy, json!({ "status": if healthy { "ok" } else { "unhealthy" }, "unhealthy": failing, "healthy": ok }))
}

async fn health_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let (ok, body) = health(&m);
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.render())
}

/// Bind `addr` (an error when it is taken) and serve until `cancel`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    Ok(tokio::spawn(accept_loop(listener, router(metrics), LIMITS, cancel)))
}

fn router(metrics: Arc<Metrics>) -> Router {
    Router::new().route("/health", get(health_handler)).route("/metrics", get(metrics_handler)).with_state(metrics)
}

/// Accept and serve connections within `limits` until `cancel`; then stop
/// accepting and wait for the connections to close (each within
/// [`SHUTDOWN_GRACE`]).
async fn accept_loop(listener: TcpListener, app: Router, limits: Limits, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    let connections = TaskTracker::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    let mut errors = AcceptErrors::default();
    loop {
        // A slot before the accept: at the cap, new connections wait in
        // the kernel's backlog and hold no descriptor of ours.
        let slot = tokio::select! {
            _ = cancel.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                // Only a closed semaphore fails, and nothing closes it.
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                connections.spawn(serve_connection(http.clone(), stream, app.clone(), limits, slot, cancel.clone()));
            }
            // A connection that failed before we took it (reset, aborted):
            // the next accept is another connection, so no pause, which
            // would let a peer slow accepting down by resetting on purpose.
            Err(e) if is_connection_error(&e) => {
                tracing::debug!("health/metrics endpoint: a connection failed before it was accepted: {e}");
            }
            Err(e) => {
                errors.warn(&e, Instant::now());
                drop(slot);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                }
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serve one connection until it ends, its [`Limits::lifetime`] is up, or
/// `cancel` (then: the answer in progress, for at most [`SHUTDOWN_GRACE`],
/// and close). The slot is given back when this returns.
async fn serve_connection(
    http: http1::Builder,
    stream: TcpStream,
    app: Router,
    limits: Limits,
    _slot: OwnedSemaphorePermit,
    cancel: CancellationToken,
) {
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let lifetime = tokio::time::sleep(limits.lifetime);
    let mut lifetime = std::pin::pin!(lifetime);
    let ended = tokio::select! {
        ended = conn.as_mut() => Some(ended),
        _ = &mut lifetime => None,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                ended = conn.as_mut() => Some(ended),
                _ = &mut lifetime => None,
                _ = tokio::time::sleep(SHUTDOWN_GRACE) => None,
            }
        }
    };
    match ended {
        Some(Ok(())) => {}
        // Timeouts and clients that went away: theirs to worry about.
        Some(Err(e)) => tracing::debug!("health/metrics connection ended: {e}"),
        None => tracing::debug!("health/metrics connection closed at its lifetime or at shutdown"),
    }
}

/// Errors of one incoming connection, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}

/// Accept errors seen, for a warning at most every
/// [`ACCEPT_ERROR_LOG_INTERVAL`].
#[derive(Debug, Default)]
struct AcceptErrors {
    last_warning: Option<Instant>,
    /// Errors since the last warning, not logged.
    unlogged: u64,
}

impl AcceptErrors {
    /// Note an error at `now`; returns whether it was logged.
    fn warn(&mut self, e: &io::Error, now: Instant) -> bool {
        if self.last_warning.is_some_and(|at| now.duration_since(at) < ACCEPT_ERROR_LOG_INTERVAL) {
            self.unlogged += 1;
            return false;
        }
        tracing::warn!(
            unlogged_since_last = self.unlogged,
            "health/metrics endpoint cannot accept a connection: {e}; retrying in {ACCEPT_ERROR_PAUSE:?} (the connection waits in the backlog)"
        );
        self.last_warning = Some(now);
        self.unlogged = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// The accept loop on 127.0.0.1:0 with `limits`, on its own runtime
    /// thread; the address and the token that stops it.
    fn start(limits: Limits) -> (SocketAddr, CancellationToken, std::thread::JoinHandle<()>) {
        let cancel = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let c = cancel.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                accept_loop(listener, router(Arc::new(Metrics::default())), limits, c).await;
            });
        });
        (rx.recv().unwrap(), cancel, thread)
    }

    fn get_health(addr: SocketAddr) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /health HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        resp
    }

    fn stalled(addr: SocketAddr) -> std::net::TcpStream {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /hea").unwrap();
        s
    }

    #[test]
    fn a_connection_without_its_headers_is_closed_at_the_header_timeout() {
        let limits =
            Limits { connections: 4, header_read: Duration::from_millis(300), lifetime: Duration::from_secs(30) };
        let (addr, cancel, thread) = start(limits);
        let mut s = stalled(addr);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t0 = std::time::Instant::now();
        let mut rest = Vec::new();
        // Closed (EOF, or reset after an error answer), not left hanging.
        let _ = s.read_to_end(&mut rest);
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(5), "closed after {took:?}");
        cancel.cancel();
        thread.join().unwrap();
    }

    #[test]
    fn at_the_cap_a_new_client_waits_for_a_slot_and_is_then_served() {
        let limits =
            Limits { connections: 2, header_read: Duration::from_millis(400), lifetime: Duration::from_secs(30) };
        let (addr, cancel, thread) = start(limits);
        let held: Vec<_> = (0..4).map(|_| stalled(addr)).collect();
        let t0 = std::time::Instant::now();
        let resp = get_health(addr);
        let took = t0.elapsed();
        assert!(resp.starts_with("HTTP/1.0 200"), "{resp}");
        // Two rounds of two stalled connections went first, each dropped at
        // its header timeout.
        assert!(took >= Duration::from_millis(700), "served after {took:?}, before the stalled ones timed out");
        drop(held);
        cancel.cancel();
        thread.join().unwrap();
    }

    #[test]
    fn a_connection_is_closed_at_its_lifetime_even_while_busy() {
        let limits =
            Limits { connections: 2, header_read: Duration::from_secs(30), lifetime: Duration::from_millis(300) };
        let (addr, cancel, thread) = start(limits);
        let mut s = stalled(addr);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t0 = std::time::Instant::now();
        let _ = s.read_to_end(&mut Vec::new());
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(5), "closed after {took:?}");
        cancel.cancel();
        thread.join().unwrap();
    }

    #[test]
    fn shutdown_closes_stalled_connections_and_returns() {
        let limits = Limits { connections: 2, header_read: Duration::from_secs(30), lifetime: Duration::from_secs(30) };
        let (addr, cancel, thread) = start(limits);
        let _held = stalled(addr);
        assert!(get_health(addr).starts_with("HTTP/1.0 200"));
        let t0 = std::time::Instant::now();
        cancel.cancel();
        thread.join().unwrap();
        let took = t0.elapsed();
        assert!(took < SHUTDOWN_GRACE + Duration::from_secs(1), "shutdown took {took:?}");
    }

    #[test]
    fn accept_errors_are_logged_at_most_once_per_interval() {
        let mut errors = AcceptErrors::default();
        let emfile = io::Error::from_raw_os_error(24);
        let t0 = Instant::now();
        assert!(errors.warn(&emfile, t0));
        assert!(!errors.warn(&emfile, t0 + ACCEPT_ERROR_PAUSE));
        assert!(!errors.warn(&emfile, t0 + ACCEPT_ERROR_LOG_INTERVAL - Duration::from_millis(1)));
        assert_eq!(errors.unlogged, 2);
        assert!(errors.warn(&emfile, t0 + ACCEPT_ERROR_LOG_INTERVAL));
        assert_eq!(errors.unlogged, 0);
    }

    #[test]
    fn failed_connections_are_told_from_listener_errors() {
        assert!(is_connection_error(&io::Error::from(io::ErrorKind::ConnectionAborted)));
        assert!(!is_connection_error(&io::Error::from_raw_os_error(24)));
    }
}
