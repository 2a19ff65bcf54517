//! Outputs: the [`Sink`] trait each receiver implements, the generic
//! [`driver`] that owns batching, pacing, retries and offset commits, and
//! one module per receiver.

pub mod driver;
pub mod file;
pub mod splunk_hec;
pub mod syslog;

use crate::config::secret::Env;
use crate::config::{OutputConfig, OutputKind, Problem};
use crate::event::Event;
use crate::state::State;
use crate::telemetry::metrics::Metrics;
use std::future::Future;
use std::sync::Arc;

/// What a receiver did with a batch it confirmed.
#[derive(Debug, Default, PartialEq)]
pub struct Delivery {
    /// Events rejected for good: their index in the batch and the receiver's
    /// reason. They go to the dead-letter tree; the rest was delivered.
    pub rejected: Vec<(usize, String)>,
}

/// How a failed send is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Network failure, timeout, 5xx, busy, ack timeout: back off and retry.
    Transient,
    /// Credentials refused: unhealthy; retry slowly.
    Auth,
    /// The receiver refuses the configuration (wrong index, acks disabled):
    /// unhealthy; retry slowly until an operator fixes it. Never drops.
    Config,
}

/// A failed send. Carries no secret.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct SendError {
    /// How to retry.
    pub kind: ErrorKind,
    /// What happened.
    pub detail: String,
}

impl SendError {
    /// A transient failure.
    pub fn transient(detail: impl Into<String>) -> Self {
        SendError { kind: ErrorKind::Transient, detail: detail.into() }
    }
    /// Credentials refused.
    pub fn auth(detail: impl Into<String>) -> Self {
        SendError { kind: ErrorKind::Auth, detail: detail.into() }
    }
    /// Configuration refused.
    pub fn config(detail: impl Into<String>) -> Self {
        SendError { kind: ErrorKind::Config, detail: detail.into() }
    }
}

/// A receiver. `send` returns only once the receiver confirmed the batch
/// (HTTP 2xx and the indexer acknowledgement, a flushed socket, an fsync).
pub trait Sink: Send + 'static {
    /// Encode and deliver a batch.
    fn send(&mut self, batch: &[Event]) -> impl Future<Output = Result<Delivery, SendError>> + Send;
    /// Check that the receiver is reachable and accepts our credentials.
    fn healthcheck(&mut self) -> impl Future<Output = Result<(), SendError>> + Send;
    /// Another handle on the same receiver, so the driver can send a batch
    /// while an earlier one waits for its confirmation; `None` (the default)
    /// when batches must go one at a time (a syslog stream, a file).
    fn fork(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// What outputs share with the rest of the agent.
#[derive(Clone)]
pub struct OutputContext {
    /// The state database.
    pub state: Arc<State>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Host name to report (HEC `host`, syslog HOSTNAME).
    pub hostname: String,
}

/// A built output of any type, ready to hand to the driver.
pub enum AnySink {
    /// Splunk HEC.
    Hec(splunk_hec::Hec),
    /// JSON lines.
    File(file::FileSink),
    /// Syslog or QRadar (LEEF over syslog); boxed, it is the largest.
    Syslog(Box<syslog::SyslogSink>),
}

impl Sink for AnySink {
    async fn send(&mut self, batch: &[Event]) -> Result<Delivery, SendError> {
        match self {
            AnySink::Hec(s) => s.send(batch).await,
            AnySink::File(s) => s.send(batch).await,
            AnySink::Syslog(s) => s.send(batch).await,
        }
    }
    async fn healthcheck(&mut self) -> Result<(), SendError> {
        match self {
            AnySink::Hec(s) => s.healthcheck().await,
            AnySink::File(s) => s.healthcheck().await,
            AnySink::Syslog(s) => s.healthcheck().await,
        }
    }
    fn fork(&self) -> Option<Self> {
        match self {
            AnySink::Hec(s) => Some(AnySink::Hec(s.clone())),
            AnySink::File(_) | AnySink::Syslog(_) => None,
        }
    }
}

impl AnySink {
    /// [`Sink::healthcheck`], then, where the receiver takes credentials a
    /// health check does not prove, a request that proves them and writes
    /// nothing (HEC: an empty POST, see [`splunk_hec::Hec::check_token`]).
    /// Syslog and QRadar take no credentials beyond a TLS client
    /// certificate, which the handshake already proved.
    pub async fn check_credentials(&mut self) -> Result<(), SendError> {
        self.healthcheck().await?;
        match self {
            AnySink::Hec(s) => s.check_token().await,
            AnySink::File(_) | AnySink::Syslog(_) => Ok(()),
        }
    }
}

/// The `max_eps` an output type gets when the config sets none: QRadar's
/// licence is per EPS and QRadar drops what overflows its burst queue, so the
/// agent paces to IBM's own collector default of 5,000.
/// (Each type says it: [`crate::config::output::OutputSpec::default_max_eps`].)
pub fn default_max_eps(kind: &OutputKind) -> Option<u32> {
    kind.spec().default_max_eps()
}

/// Build a sink from its configuration. `at` is its key path (`output[1]`).
/// `channel` is the output's persisted HEC channel GUID.
pub fn build(
    cfg: &OutputConfig,
    at: &str,
    env: &dyn Env,
    hostname: &str,
    channel: String,
) -> Result<AnySink, Vec<Problem>> {
    match &cfg.kind {
        OutputKind::SplunkHec(_) => splunk_hec::Hec::build(cfg, at, env, hostname, channel).map(AnySink::Hec),
        OutputKind::File(file) => Ok(AnySink::File(file::FileSink::new(file))),
        OutputKind::Syslog(_) | OutputKind::Qradar(_) => {
            syslog::SyslogSink::build(cfg, at, hostname).map(|s| AnySink::Syslog(Box::new(s)))
        }
    }
}

/// Resolve an output's secrets and TLS files (for `check`), without
/// connecting anywhere.
pub fn check_secrets(cfg: &OutputConfig, at: &str, env: &dyn Env) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    if let OutputKind::SplunkHec(hec) = &cfg.kind {
        crate::config::secret::need_secret(
            &mut problems,
            at,
            "token",
            hec.token.as_ref(),
            hec.token_file.as_deref(),
            env,
        );
    }
    if let Some(tls) = &cfg.common.tls {
        if let Err(e) = crate::transport::tls::client_config(Some(tls)) {
            problems.push(Problem { path: format!("{at}.tls"), message: e.to_string() });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
