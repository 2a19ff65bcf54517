//! Outputs: the [`Sink`] trait each receiver implements, the generic
//! [`driver`] that owns batching, pacing, retries and offset commits, the
//! keys every output has ([`common`]), the registry of output types
//! ([`kinds`], one line per type) and one folder per receiver, owning its
//! config. Each receiver's module wires its config type to its sink with
//! one [`output!`] line; [`build`] reaches it through the registry, and the
//! pipeline and `check --connect` hold the result as an [`Output`], never
//! matching on the type.

pub mod common;
pub mod driver;
/// The output kept as documentation (docs/adding-a-connector.md): built
/// for the tests only, not in a release.
#[cfg(test)]
pub mod example;
pub mod file;
pub mod kinds;
pub mod splunk_hec;
pub mod syslog;
#[cfg(test)]
pub(crate) mod testkit;

pub use common::{BatchConfig, JsonPayload, OutputCommon, OutputSpec};
pub use kinds::OutputKind;

use crate::event::Event;
use crate::settings::secret::Env;
use crate::settings::Problem;
use crate::state::{State, StateError};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::OutputHealth;
use crate::transport::framing::Transport;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use std::future::Future;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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
/// Besides sending, each receiver says here what the pipeline and
/// `check --connect` need to know about it, so neither matches on the
/// output's type.
pub trait Sink: Send + 'static {
    /// Encode and deliver a batch.
    fn send(&mut self, batch: &[Event]) -> impl Future<Output = Result<Delivery, SendError>> + Send;
    /// Check that the receiver is reachable and accepts our credentials.
    fn healthcheck(&mut self) -> impl Future<Output = Result<(), SendError>> + Send;
    /// [`Sink::healthcheck`], then, where the receiver takes credentials a
    /// health check does not prove, a request that proves them and writes
    /// nothing (HEC: an empty POST, see [`splunk_hec::Hec::check_token`]).
    /// Says what was proved, for `check --connect`'s line. The default
    /// suits receivers that take no credentials beyond a TLS client
    /// certificate, which the handshake already proved.
    fn check_credentials(&mut self) -> impl Future<Output = Result<&'static str, SendError>> + Send {
        async move { self.healthcheck().await.map(|()| "reachable and accepting") }
    }
    /// Where `check --connect` tests DNS, TCP and TLS before the health check.
    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint::Local
    }
    /// Batches sent before the first is confirmed (1, the default: one at
    /// a time); more take [`Sink::fork`].
    fn max_in_flight(&self) -> usize {
        1
    }
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

/// Where a receiver is, for `check --connect`'s network stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// Nothing to reach over the network (a file, stdout).
    Local,
    /// An `http` or `https` URL.
    Url(&'a url::Url),
    /// A `host:port` address and the transport it is reached by.
    Address(&'a str, Transport),
}

/// What outputs share with the rest of the agent.
#[derive(Clone)]
pub struct OutputContext {
    /// The state database.
    pub state: Arc<State>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Where the output says whether its last delivery failed (the
    /// sources' back-pressure reads it).
    pub output_health: OutputHealth,
    /// Host name to report (HEC `host`, syslog HOSTNAME).
    pub hostname: String,
    /// The wall clock (dead letters' time, health, the last-send gauge);
    /// the same clock the sources get. Waits use tokio's clock, so tests
    /// pause and advance both.
    pub clock: Clock,
}

/// The current time; injectable so tests can fix it. The same type as the
/// poller's `sources::poller::Clock` (an alias of one type: either is the
/// other), declared here too because outputs do not import sources.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// A built output, its sink's type erased: what the pipeline starts and
/// `check --connect` checks. Every [`Sink`] is one (through the output's
/// registry line, [`output!`]); the driver it runs is generic over the
/// sink, so sending is not dynamically dispatched.
pub trait Output: Send {
    /// [`Sink::healthcheck`].
    fn healthcheck(&mut self) -> BoxFuture<'_, Result<(), SendError>>;
    /// [`Sink::check_credentials`].
    fn check_credentials(&mut self) -> BoxFuture<'_, Result<&'static str, SendError>>;
    /// [`Sink::endpoint`].
    fn endpoint(&self) -> Endpoint<'_>;
    /// [`Sink::max_in_flight`].
    fn max_in_flight(&self) -> usize;
    /// Run the [`driver`] on this sink until cancelled.
    fn run(
        self: Box<Self>,
        settings: driver::DriverSettings,
        routes: driver::Routes,
        ctx: OutputContext,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<(), StateError>>;
}

/// A sink behind [`Output`].
struct Erased<S>(S);

impl<S: Sink> Output for Erased<S> {
    fn healthcheck(&mut self) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(self.0.healthcheck())
    }
    fn check_credentials(&mut self) -> BoxFuture<'_, Result<&'static str, SendError>> {
        Box::pin(self.0.check_credentials())
    }
    fn endpoint(&self) -> Endpoint<'_> {
        self.0.endpoint()
    }
    fn max_in_flight(&self) -> usize {
        self.0.max_in_flight()
    }
    fn run(
        self: Box<Self>,
        settings: driver::DriverSettings,
        routes: driver::Routes,
        ctx: OutputContext,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<(), StateError>> {
        Box::pin(driver::run(settings, self.0, routes, ctx, cancel))
    }
}

/// A sink as an [`Output`].
pub fn erase<S: Sink>(sink: S) -> Box<dyn Output> {
    Box::new(Erased(sink))
}

/// An output built from its config, or the problems that stopped it.
pub type Built = Result<Box<dyn Output>, Vec<Problem>>;

/// What an output type's `build` is given besides its own keys.
pub struct BuildCtx<'a> {
    /// The output's name.
    pub name: &'a str,
    /// The keys every output has.
    pub common: &'a OutputCommon,
    /// Its key path (`output[1]`), for problems.
    pub at: &'a str,
    /// Where `${ENV}` and `*_file` secrets are read.
    pub env: &'a dyn Env,
    /// Host name to report (HEC `host`, syslog HOSTNAME).
    pub hostname: &'a str,
    /// The output's persisted HEC channel GUID.
    pub channel: String,
    /// Where the sink counts what it alone sees (truncated syslog messages).
    pub metrics: Arc<Metrics>,
}

/// Wires an output type's `build(cfg, required, ctx) -> Result<impl Sink,
/// Vec<Problem>>` function to its config type, so that [`build`] reaches it
/// through the registry of output types ([`kinds`]): one line in the
/// output's module, `super::output!(AcmeConfig => build);`. The build is
/// given what the type's [`crate::settings::Validate`] impl made of its
/// required keys (the file was validated when it was loaded; a config that
/// was not is refused with its problems). What the pipeline and
/// `check --connect` need beyond that, the sink says in its [`Sink`] impl.
macro_rules! output {
    ($cfg:ty => $build:path) => {
        impl<'a> $crate::settings::Build<$crate::outputs::BuildCtx<'a>> for $cfg {
            type Output = $crate::outputs::Built;
            fn build(&self, ctx: $crate::outputs::BuildCtx<'a>) -> $crate::outputs::Built {
                let mut p = $crate::settings::Problems::default();
                match $crate::settings::Validate::validate(self, ctx.at, &mut p) {
                    Some(required) => $build(self, required, ctx).map($crate::outputs::erase),
                    None => Err(p.into_parts().0),
                }
            }
        }
    };
}
pub(crate) use output;

/// The `max_eps` an output type gets when the config sets none: QRadar's
/// licence is per EPS and QRadar drops what overflows its burst queue, so the
/// agent paces to IBM's own collector default of 5,000.
/// (Each type says it: [`OutputSpec::default_max_eps`].)
pub fn default_max_eps(kind: &OutputKind) -> Option<u32> {
    kind.spec().default_max_eps()
}

/// Build an output of type `kind` through its type's registry line; `ctx`
/// carries its name, common keys and key path (`output[1]`), and the
/// output's persisted HEC channel GUID.
pub fn build(kind: &OutputKind, ctx: BuildCtx<'_>) -> Result<Box<dyn Output>, Vec<Problem>> {
    kind.build(ctx)
}

/// Resolve the secrets and TLS files of an output of type `kind` (for
/// `check`), without connecting anywhere.
pub fn check_secrets(kind: &OutputKind, common: &OutputCommon, at: &str, env: &dyn Env) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    crate::settings::secret::check_secrets(&kind.spec().secrets(), at, env, &mut problems);
    if let Some(tls) = &common.tls {
        if let Err(e) = crate::transport::tls::client_config(Some(tls)) {
            problems.push(Problem::new(format!("{at}.tls"), e.to_string()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::secret::ProcessEnv;

    /// What the pipeline and `check --connect` used to read from each
    /// output type's config by matching on it, each sink now says itself:
    /// built through the registry, every type answers for its endpoint and
    /// in-flight limit.
    #[test]
    fn every_output_type_builds_through_the_registry_and_says_what_the_pipeline_needs() {
        let tables = [
            "name = \"hec\"\ntype = \"splunk_hec\"\nurl = \"https://splunk.example.com:8088/services/collector\"\ntoken = \"t\"\nmax_in_flight = 4\n",
            "name = \"hec1\"\ntype = \"splunk_hec\"\nurl = \"https://splunk.example.com:8088\"\ntoken = \"t\"\n",
            "name = \"sys\"\ntype = \"syslog\"\naddress = \"127.0.0.1:6514\"\ntransport = \"tls\"\n",
            "name = \"qr\"\ntype = \"qradar\"\naddress = \"127.0.0.1:514\"\ntransport = \"udp\"\n",
            "name = \"f\"\ntype = \"file\"\npath = \"-\"\n",
        ];
        let outputs = tables.map(|t| testkit::output(&format!("[[output]]\n{t}")));
        let built: Vec<Box<dyn Output>> = outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let at = format!("output[{i}]");
                let ctx = BuildCtx {
                    name: &o.name,
                    common: &o.common,
                    at: &at,
                    env: &ProcessEnv,
                    hostname: "relay01",
                    channel: "c".into(),
                    metrics: Arc::default(),
                };
                build(&o.kind, ctx).unwrap_or_else(|p| panic!("{p:?}"))
            })
            .collect();
        let hec_base = url::Url::parse("https://splunk.example.com:8088/").unwrap();
        assert_eq!(built[0].endpoint(), Endpoint::Url(&hec_base));
        assert_eq!(built[0].max_in_flight(), 4);
        assert_eq!(built[1].max_in_flight(), splunk_hec::DEFAULT_MAX_IN_FLIGHT as usize);
        assert_eq!(built[2].endpoint(), Endpoint::Address("127.0.0.1:6514", Transport::Tls));
        assert_eq!(built[3].endpoint(), Endpoint::Address("127.0.0.1:514", Transport::Udp));
        assert_eq!(built[4].endpoint(), Endpoint::Local);
        assert!(built[2..].iter().all(|o| o.max_in_flight() == 1), "syslog and files send one batch at a time");
    }

    /// `check` resolves each type's secrets through its own list of them.
    #[test]
    fn check_secrets_reports_an_unreadable_token_with_its_key_path() {
        let o = testkit::output(
            "[[output]]\nname = \"hec\"\ntype = \"splunk_hec\"\nurl = \"https://splunk.example.com:8088\"\ntoken_file = \"/nonexistent/hec.token\"\n",
        );
        let problems = check_secrets(&o.kind, &o.common, "output[0]", &ProcessEnv).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].path.starts_with("output[0].token"), "{problems:?}");
    }
}
