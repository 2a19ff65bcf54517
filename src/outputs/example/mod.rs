//! `example`: the smallest complete output, kept as documentation of what
//! a new receiver takes (`docs/adding-a-connector.md`, "Adding an output")
//! and as a test that the registry reaches it. It is registered for the
//! tests only (`#[cfg(test)]` on its line in `outputs/kinds.rs`), so no
//! user can configure it.
//!
//! The collector it sends to is made up but typical: `POST {url}/v1/ingest`
//! with a bearer token and the batch as JSON lines (each event's document,
//! so completeness manifests work through it). It answers 200 with the
//! lines it refused for good, by their 0-based line number:
//!
//! ```json
//! {"accepted": 2, "rejected": [{"line": 1, "reason": "field too long"}]}
//! ```
//!
//! 401/403 mean the token is refused, 429 and 5xx are worth a retry, any
//! other status is a configuration the collector refuses.

pub mod config;

pub use config::{ExampleConfig, Required};

use super::{BuildCtx, Delivery, Endpoint, SendError, Sink};
use crate::event::{Event, Payload};
use crate::settings::secret::Secret;
use crate::settings::Problem;
use crate::transport::http::{error_chain, excerpt, read_body, redact_url};
use crate::transport::origin::Redirects;
use std::time::Duration;

/// Longest one request takes when `timeout` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes of the collector's answer read (it is a small JSON object).
const MAX_ANSWER: u64 = 1 << 20;

/// The example collector.
#[derive(Debug)]
pub struct ExampleSink {
    client: reqwest::Client,
    base: url::Url,
    ingest: url::Url,
    token: Secret,
    buf: Vec<u8>,
}

// The registry line of `type = "example"`.
super::output!(ExampleConfig => build);

fn build(cfg: &ExampleConfig, required: Required, ctx: BuildCtx<'_>) -> Result<ExampleSink, Vec<Problem>> {
    let mut problems = Vec::new();
    let token = required.token.resolve(ctx.at, ctx.env, &mut problems);
    let timeout = cfg.timeout.map_or(DEFAULT_TIMEOUT, |d| d.get());
    let client = crate::transport::http::client(ctx.common.tls.as_ref(), timeout, Redirects::Refuse)
        .map_err(|e| problems.push(Problem::new(format!("{}.tls", ctx.at), e.to_string())))
        .ok();
    let (Some(token), Some(client)) = (token, client) else { return Err(problems) };
    let base = required.url.url().clone();
    let ingest = crate::transport::http::endpoint(&base, "v1/ingest");
    Ok(ExampleSink { client, base, ingest, token, buf: Vec::new() })
}

/// The collector's answer to a batch.
#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default)]
    rejected: Vec<Rejected>,
}

#[derive(serde::Deserialize)]
struct Rejected {
    line: usize,
    #[serde(default)]
    reason: String,
}

impl ExampleSink {
    fn failed(&self, e: reqwest::Error) -> SendError {
        SendError::transient(format!("collector {}: {}", redact_url(&self.base), error_chain(&e.without_url())))
    }
}

impl Sink for ExampleSink {
    async fn send(&mut self, batch: &[Event]) -> Result<Delivery, SendError> {
        let mut body = std::mem::take(&mut self.buf);
        body.clear();
        for e in batch {
            crate::encode::json::encode_into(e, Payload::Normalised, &mut body);
            body.push(b'\n');
        }
        let sent = self
            .client
            .post(self.ingest.clone())
            .bearer_auth(self.token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body.clone())
            .send()
            .await;
        self.buf = body;
        let resp = sent.map_err(|e| self.failed(e))?;
        let status = resp.status().as_u16();
        let answer = read_body(resp, MAX_ANSWER).await.map_err(|e| SendError::transient(e.to_string()))?;
        let said = || format!("collector answered HTTP {status}: {}", excerpt(&answer));
        match status {
            200..=299 => {}
            401 | 403 => return Err(SendError::auth(said())),
            429 | 500..=599 => return Err(SendError::transient(said())),
            _ => return Err(SendError::config(said())),
        }
        // A 2xx whose body is not the answer confirmed nothing it can be
        // held to: the batch is sent again rather than assumed landed.
        let answer: Answer = serde_json::from_slice(&answer).map_err(|e| {
            SendError::transient(format!("collector answered 2xx with an unreadable body ({e}): {}", excerpt(&answer)))
        })?;
        let mut rejected = Vec::new();
        for r in answer.rejected {
            if r.line >= batch.len() {
                return Err(SendError::transient(format!(
                    "collector rejected line {} of a batch of {}: the answer is not about this batch",
                    r.line,
                    batch.len()
                )));
            }
            rejected.push((r.line, excerpt(r.reason.as_bytes())));
        }
        rejected.sort_by_key(|(i, _)| *i);
        rejected.dedup_by_key(|(i, _)| *i);
        Ok(Delivery { rejected })
    }

    async fn healthcheck(&mut self) -> Result<(), SendError> {
        let resp = self
            .client
            .get(crate::transport::http::endpoint(&self.base, "v1/health"))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| self.failed(e))?;
        let status = resp.status().as_u16();
        let body = read_body(resp, MAX_ANSWER).await.unwrap_or_default();
        match status {
            200..=299 => Ok(()),
            401 | 403 => Err(SendError::auth(format!("collector health answered HTTP {status}: {}", excerpt(&body)))),
            _ => Err(SendError::transient(format!("collector health answered HTTP {status}: {}", excerpt(&body)))),
        }
    }

    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint::Url(&self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::{testkit, ErrorKind, OutputKind};
    use axum::{extract::State, http::HeaderMap, http::StatusCode, routing::post, Router};
    use std::sync::{Arc, Mutex};

    /// What the fake collector received, and what it answers next.
    #[derive(Default)]
    struct Collector {
        bodies: Vec<(Option<String>, String)>,
        answer: (u16, String),
    }
    type Shared = Arc<Mutex<Collector>>;

    async fn ingest(State(c): State<Shared>, headers: HeaderMap, body: String) -> (StatusCode, String) {
        let mut c = c.lock().unwrap();
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        c.bodies.push((auth, body));
        (StatusCode::from_u16(c.answer.0).unwrap(), c.answer.1.clone())
    }

    /// A collector on 127.0.0.1 and an `example` output built against it
    /// through the registry, from its own `[[output]]` table.
    async fn collector() -> (Shared, Box<dyn crate::outputs::Output>, ExampleSink) {
        let shared: Shared = Arc::default();
        shared.lock().unwrap().answer = (200, r#"{"accepted": 0}"#.into());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().route("/v1/ingest", post(ingest)).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let text =
            format!("[[output]]\nname = \"ex\"\ntype = \"example\"\nurl = \"{url}\"\ntoken = \"${{EX_TOKEN}}\"\n");
        let out = testkit::output(&text);
        let mut env = crate::settings::secret::tests::FakeEnv::default();
        env.vars.insert("EX_TOKEN".into(), "ingest-t0k3n".into());
        let ctx = |metrics| BuildCtx {
            name: &out.name,
            common: &out.common,
            at: "output[0]",
            env: &env,
            hostname: "h",
            channel: String::new(),
            metrics,
        };
        let erased = crate::outputs::build(&out.kind, ctx(Default::default())).unwrap();
        let OutputKind::Example(cfg) = &out.kind else { panic!("{:?}", out.kind) };
        let mut p = crate::settings::Problems::default();
        let required = crate::settings::Validate::validate(cfg, "output[0]", &mut p).unwrap();
        let sink = build(cfg, required, ctx(Default::default())).unwrap();
        (shared, erased, sink)
    }

    fn event(id: &str) -> Event {
        Event::new(
            "src".into(),
            id.into(),
            chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            serde_json::Map::new(),
            format!("{{\"id\":\"{id}\"}}"),
        )
    }

    /// The registry reaches the output, which sends each event's document
    /// as one line with the bearer token, and the lines the collector
    /// refused come back as the batch's rejected events.
    #[tokio::test]
    async fn a_batch_goes_as_json_lines_and_refused_lines_are_rejected_events() {
        let (shared, erased, mut sink) = collector().await;
        assert!(matches!(erased.endpoint(), Endpoint::Url(u) if u.scheme() == "http"));
        shared.lock().unwrap().answer =
            (200, r#"{"accepted": 2, "rejected": [{"line": 1, "reason": "too long"}]}"#.into());
        let delivery = sink.send(&[event("a"), event("b"), event("c")]).await.unwrap();
        assert_eq!(delivery.rejected, [(1, "too long".to_owned())]);
        let c = shared.lock().unwrap();
        let (auth, body) = &c.bodies[0];
        assert_eq!(auth.as_deref(), Some("Bearer ingest-t0k3n"));
        let ids: Vec<String> = body
            .lines()
            .map(|l| {
                let doc: serde_json::Value = serde_json::from_str(l).unwrap();
                let raw: serde_json::Value = serde_json::from_str(doc["event"]["original"].as_str().unwrap()).unwrap();
                raw["id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    /// Each failure is retried the way its status says; an answer that is
    /// not about the batch confirms nothing.
    #[tokio::test]
    async fn statuses_and_unreadable_answers_are_failures_of_their_kind() {
        let (shared, _, mut sink) = collector().await;
        for (status, body, kind) in [
            (401, "no", ErrorKind::Auth),
            (503, "busy", ErrorKind::Transient),
            (400, "unknown tenant", ErrorKind::Config),
            (200, "<html>", ErrorKind::Transient),
            (200, r#"{"rejected": [{"line": 7}]}"#, ErrorKind::Transient),
        ] {
            shared.lock().unwrap().answer = (status, body.into());
            let e = sink.send(&[event("a")]).await.unwrap_err();
            assert_eq!(e.kind, kind, "{status} {body}: {e}");
            assert!(!e.detail.contains("ingest-t0k3n"), "{e}");
        }
    }
}
