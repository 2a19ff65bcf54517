//! `splunk_hec`: Splunk HTTP Event Collector.
//!
//! A batch is JSON envelopes concatenated in one gzip body, posted to
//! `/services/collector/event` with `Authorization: Splunk <token>` and the
//! output's persisted channel GUID. With `ack = true` the batch counts as
//! delivered only when `/services/collector/ack` answers `true` for its
//! ackId (one poller per output asks about every waiting batch in one
//! request per channel, at half the recent ack latency, 10 ms to 1 s apart);
//! no answer within `ack_timeout` means the batch is sent again
//! (at-least-once: HEC has no idempotency key, so `fields.event_id` carries
//! the stable id for dedupe in searches).
//!
//! A 400 "invalid data format" (and the other per-event codes 12, 13, 15) or
//! a 413 is narrowed down to the offending event(s): with
//! `invalid-event-number` the event is dead-lettered and the rest resent;
//! without it the batch is split in halves until single events remain. Events
//! before an `invalid-event-number` count as accepted only without acks (with
//! acks they got no ackId, so they are resent).

pub mod config;

pub use config::{Required, SplunkHecConfig};

use super::{BuildCtx, Delivery, Endpoint, OutputCommon, SendError, Sink};
use crate::event::{Event, Payload};
use crate::settings::secret::{Env, Secret};
use crate::settings::{Problem, Problems, Validate};
use crate::transport::http::{error_chain, excerpt, read_body};
use crate::transport::origin::Redirects;
use flate2::write::GzEncoder;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;
use tokio::time::Instant;

/// Timeout of one HEC request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Whether a batch waits for the indexer acknowledgement.
pub const DEFAULT_ACK: bool = false;
/// How long an unacknowledged batch waits before it is sent again: Splunk
/// documents acks arriving "after e.g. 5 minutes", Vector waits 300 s, and
/// kafka-connect-splunk raised its timeout to 300 s after small batches
/// sat ~2 minutes in the indexer (splunk/kafka-connect-splunk#122). A
/// shorter wait resends, and duplicates, a low-volume audit stream's
/// batches that were on their way.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(300);

/// The HEC endpoint paths a configured `url` may already end with; the
/// base is what comes before them (`https://splunk:8088/services/collector`
/// is `https://splunk:8088`).
const HEC_PATHS: [&str; 4] =
    ["/services/collector/event/1.0", "/services/collector/event", "/services/collector/raw", "/services/collector"];

/// The HEC base of a configured URL: without a trailing endpoint path.
fn hec_base(mut url: url::Url) -> url::Url {
    let path = url.path().trim_end_matches('/').to_owned();
    if let Some(base) = HEC_PATHS.iter().find_map(|p| path.strip_suffix(p)) {
        url.set_path(if base.is_empty() { "/" } else { base });
    }
    url.set_query(None);
    url
}
/// Batches sent before the first is confirmed unless `max_in_flight` says more.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1;
/// Whether bodies are gzipped.
pub const DEFAULT_COMPRESSION: bool = true;
/// The `sourcetype` events get.
pub const DEFAULT_SOURCETYPE: &str = "auditrelay:audit";

/// The HEC output. A clone shares the client and the channel: it is how the
/// driver sends several batches at once (`max_in_flight`).
#[derive(Clone)]
pub struct Hec {
    client: reqwest::Client,
    base: url::Url,
    token: Secret,
    /// The channel GUID; replaced when a batch's ack never comes, so a
    /// channel whose indexer lost its state cannot block the output forever.
    channel: std::sync::Arc<std::sync::Mutex<String>>,
    /// Batches waiting for their ack (shared by clones, polled together).
    acks: std::sync::Arc<Acks>,
    ack: bool,
    ack_timeout: Duration,
    /// Batches the driver may have in flight (`max_in_flight`).
    max_in_flight: usize,
    gzip: bool,
    index: Option<String>,
    sourcetype: String,
    source: Option<String>,
    host: String,
    payload: Payload,
}

impl std::fmt::Debug for Hec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hec").field("url", &self.base.as_str()).field("token", &self.token).finish_non_exhaustive()
    }
}

/// What one POST came to.
enum Posted {
    /// Accepted (and acknowledged when acks are on).
    Ok,
    /// A per-event rejection: the index of the bad event when HEC said.
    Invalid { index: Option<usize>, reason: String },
    /// 413: the body is too large.
    TooLarge(String),
}

// The registry line of `type = "splunk_hec"`.
super::output!(SplunkHecConfig => build);

fn build(cfg: &SplunkHecConfig, required: Required, ctx: BuildCtx<'_>) -> Result<Hec, Vec<Problem>> {
    Hec::from_required(cfg, required, ctx.common, ctx.at, ctx.env, ctx.hostname, ctx.channel)
}

impl Hec {
    /// Build from a `splunk_hec` output's keys (checked here, by its
    /// [`Validate`] impl) and the keys every output has: resolves the token
    /// and loads the TLS files.
    pub fn build(
        cfg: &SplunkHecConfig,
        common: &OutputCommon,
        at: &str,
        env: &dyn Env,
        hostname: &str,
        channel: String,
    ) -> Result<Self, Vec<Problem>> {
        let mut p = Problems::default();
        let Some(required) = cfg.validate(at, &mut p) else { return Err(p.into_parts().0) };
        Self::from_required(cfg, required, common, at, env, hostname, channel)
    }

    /// [`Hec::build`] from the checked required keys.
    fn from_required(
        cfg: &SplunkHecConfig,
        required: Required,
        common: &OutputCommon,
        at: &str,
        env: &dyn Env,
        hostname: &str,
        channel: String,
    ) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let token = required.token.resolve(at, env, &mut problems);
        let base = hec_base(required.url.url().clone());
        let timeout = cfg.timeout.map_or(DEFAULT_TIMEOUT, |d| d.get());
        let client = crate::transport::http::client(common.tls.as_ref(), timeout, Redirects::Refuse)
            .map_err(|e| problems.push(Problem::new(format!("{at}.tls"), e.to_string())))
            .ok();
        let (Some(token), Some(client), true) = (token, client, problems.is_empty()) else {
            return Err(problems);
        };
        Ok(Hec {
            client,
            base,
            token,
            channel: std::sync::Arc::new(std::sync::Mutex::new(channel)),
            acks: Default::default(),
            ack: cfg.ack.unwrap_or(DEFAULT_ACK),
            ack_timeout: cfg.ack_timeout.map_or(DEFAULT_ACK_TIMEOUT, |d| d.get()),
            max_in_flight: cfg.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT) as usize,
            gzip: cfg.compression.unwrap_or(DEFAULT_COMPRESSION),
            index: cfg.index.clone(),
            sourcetype: cfg.sourcetype.clone().unwrap_or_else(|| DEFAULT_SOURCETYPE.into()),
            source: cfg.source.clone(),
            host: hostname.to_owned(),
            payload: cfg.payload.payload(),
        })
    }

    fn url_of(&self, path: &str) -> url::Url {
        let mut u = self.base.clone();
        let joined = format!("{}/{}", u.path().trim_end_matches('/'), path.trim_start_matches('/'));
        u.set_path(&joined);
        u
    }

    /// Encode events as concatenated HEC envelopes, one per line:
    /// `{"time":…,"host":…,"source":…,"sourcetype":…,"index":…,"fields":{"event_id":…},"event":…}`.
    /// Written directly into the buffer (no intermediate `Value`).
    pub fn encode(&self, events: &[&Event]) -> Vec<u8> {
        fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
            // Serialising strings and numbers into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, v);
        }
        let mut body = Vec::with_capacity(events.iter().map(|e| e.approx_size()).sum::<usize>() + 64);
        for e in events {
            body.extend_from_slice(b"{\"time\":");
            write_hec_time(e, &mut body);
            body.extend_from_slice(b",\"host\":");
            json(&mut body, &self.host);
            body.extend_from_slice(b",\"source\":");
            json(&mut body, self.source.as_deref().unwrap_or(&e.source));
            body.extend_from_slice(b",\"sourcetype\":");
            json(&mut body, &self.sourcetype);
            if let Some(index) = &self.index {
                body.extend_from_slice(b",\"index\":");
                json(&mut body, index);
            }
            body.extend_from_slice(b",\"fields\":{\"event_id\":");
            json(&mut body, &e.id);
            body.extend_from_slice(b"},\"event\":");
            crate::encode::json::encode_into(e, self.payload, &mut body);
            body.extend_from_slice(b"}\n");
        }
        body
    }

    /// The channel in use.
    pub fn channel(&self) -> String {
        self.channel.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn request(
        &self,
        url: url::Url,
        channel: &str,
        body: Vec<u8>,
        gzip: bool,
    ) -> Result<reqwest::RequestBuilder, SendError> {
        let mut rb = self
            .client
            .post(url)
            .header(reqwest::header::AUTHORIZATION, format!("Splunk {}", self.token.expose()))
            .header("X-Splunk-Request-Channel", channel)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let body = if gzip {
            rb = rb.header(reqwest::header::CONTENT_ENCODING, "gzip");
            gzip_body(&body).map_err(|e| SendError::transient(format!("gzip: {e}")))?
        } else {
            body
        };
        Ok(rb.body(body))
    }

    async fn post(&self, events: &[&Event]) -> Result<Posted, SendError> {
        let url = self.url_of("services/collector/event");
        let channel = self.channel();
        let resp = self
            .request(url, &channel, self.encode(events), self.gzip)?
            .send()
            .await
            .map_err(|e| SendError::transient(format!("HEC {}: {}", self.base, error_chain(&e.without_url()))))?;
        let status = resp.status().as_u16();
        let body = read_body(resp, 1 << 20).await.map_err(|e| SendError::transient(format!("HEC reply: {e}")))?;
        let reply: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let code = reply.get("code").and_then(Value::as_i64);
        let text = reply.get("text").and_then(Value::as_str).map_or_else(|| excerpt(&body), |t| excerpt(t.as_bytes()));
        let what =
            format!("HEC answered HTTP {status}{}: {text}", code.map(|c| format!(" code {c}")).unwrap_or_default());
        match (status, code) {
            (200..=299, _) => match (self.ack, reply.get("ackId").and_then(Value::as_u64)) {
                (true, Some(id)) => self.wait_for_ack(&channel, id).await.map(|()| Posted::Ok),
                (true, None) => Err(SendError::config(format!(
                    "{what}, without an ackId although ack = true: turn on indexer acknowledgement for the token or set ack = false"
                ))),
                (false, _) => Ok(Posted::Ok),
            },
            (400, Some(6 | 12 | 13 | 15)) => {
                let index = reply.get("invalid-event-number").and_then(Value::as_u64).map(|n| n as usize);
                Ok(Posted::Invalid { index, reason: what })
            }
            (413, _) => Ok(Posted::TooLarge(what)),
            (404, _) => Err(SendError::config(format!(
                "{what}: there is no HEC endpoint at {}; set url to the collector's base (https://HOST:8088)",
                crate::transport::http::redact_url(&self.url_of("services/collector/event"))
            ))),
            (401 | 403, _) | (_, Some(1..=4 | 21 | 22)) => Err(SendError::auth(format!("{what} (check the HEC token)"))),
            (400, Some(7)) => Err(SendError::config(format!("{what}: the token may not write to index {:?}", self.index))),
            (400, Some(14)) => Err(SendError::config(format!("{what}: indexer acknowledgement is off for this token; set ack = false"))),
            (400, Some(5 | 10 | 11 | 16)) => Err(SendError::config(what)),
            _ => Err(SendError::transient(what)),
        }
    }

    /// Wait until HEC acknowledges `id` on `channel`, or `ack_timeout`. The
    /// output's [`Acks`] poller asks about every batch waiting at once.
    async fn wait_for_ack(&self, channel: &str, id: u64) -> Result<(), SendError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.acks.wait(channel, id, tx) {
            tokio::spawn(self.clone().poll_acks());
        }
        match tokio::time::timeout(self.ack_timeout, rx).await {
            Ok(Ok(answer)) => answer,
            // The poller only drops a waiter it answered, or on a panic.
            Ok(Err(_)) => Err(SendError::transient(format!("the ack poller stopped before ackId {id} was answered"))),
            Err(_) => {
                self.acks.forget(channel, id);
                // A fresh channel: if this one lost its state (indexer
                // restart, a load balancer without stickiness), its acks
                // would stay false forever.
                let fresh = uuid::Uuid::new_v4().to_string();
                *self.channel.lock().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
                Err(SendError::transient(format!(
                    "no indexer acknowledgement for ackId {id} on channel {channel} within {:?}; sending the batch again on channel {fresh}",
                    self.ack_timeout
                )))
            }
        }
    }

    /// The ack poller: while any batch waits, ask HEC about all of a
    /// channel's waiting ackIds in one request, every [`Acks::interval`].
    /// Ends when nothing waits; the next waiter starts another.
    async fn poll_acks(self) {
        // A poller that ends any other way than finding nothing to ask (the
        // runtime shutting down, a panic) marks itself stopped, so the next
        // waiter starts another instead of waiting for one that is gone.
        let mut mark = Polling(&self.acks, true);
        loop {
            tokio::time::sleep(self.acks.interval()).await;
            let Some(asks) = self.acks.asks() else {
                mark.1 = false; // `asks` marked it stopped, under the lock
                return;
            };
            for (channel, ids) in asks {
                match self.query_acks(&channel, &ids).await {
                    Ok(acked) => self.acks.answer(&channel, &acked),
                    // Ask again next time; each waiter's ack_timeout bounds it.
                    Err(e) if e.kind == super::ErrorKind::Transient => {}
                    Err(e) => self.acks.fail(&channel, &e),
                }
            }
        }
    }

    /// One `/services/collector/ack` request: the ackIds HEC says are
    /// indexed. Acks off for the token is a config error, a refused token an
    /// auth error, anything else transient.
    async fn query_acks(&self, channel: &str, ids: &[u64]) -> Result<Vec<u64>, SendError> {
        let mut url = self.url_of("services/collector/ack");
        url.query_pairs_mut().append_pair("channel", channel);
        let resp = self
            .request(url, channel, json!({ "acks": ids }).to_string().into_bytes(), false)?
            .send()
            .await
            .map_err(|e| SendError::transient(format!("HEC ack query: {}", error_chain(&e.without_url()))))?;
        let status = resp.status().as_u16();
        let body = read_body(resp, 1 << 20).await.map_err(|e| SendError::transient(format!("HEC ack reply: {e}")))?;
        let reply: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match status {
            200..=299 => {
                let acks = reply.get("acks").and_then(Value::as_object);
                let acked =
                    |id: &&u64| acks.and_then(|a| a.get(&id.to_string())).and_then(Value::as_bool) == Some(true);
                Ok(ids.iter().filter(acked).copied().collect())
            }
            400 if reply.get("code").and_then(Value::as_i64) == Some(14) => {
                Err(SendError::config("HEC says indexer acknowledgement is off for this token; set ack = false"))
            }
            401 | 403 => Err(SendError::auth(format!("HEC ack query answered HTTP {status} (check the HEC token)"))),
            _ => Err(SendError::transient(format!("HEC ack query answered HTTP {status}: {}", excerpt(&body)))),
        }
    }
}

/// A running ack poller; marks the output's [`Acks`] without one when
/// dropped while still armed.
struct Polling<'a>(&'a Acks, bool);

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.book().polling = false;
        }
    }
}

/// What a batch waiting for its ack is told.
type AckWaiter = tokio::sync::oneshot::Sender<Result<(), SendError>>;

/// The batches of one output waiting for their indexer acknowledgement,
/// shared by its clones. One poller asks about all of them, one request per
/// channel, so ack queries do not multiply with `max_in_flight`, and a batch
/// is known acknowledged within one interval of HEC saying so.
struct Acks(std::sync::Mutex<AckBook>);

/// The ack latency assumed until acks have been seen: the first query
/// after 100 ms, as a fresh output has no better guess.
const FIRST_ACK_LATENCY: Duration = Duration::from_millis(200);

impl Default for Acks {
    fn default() -> Self {
        Acks(std::sync::Mutex::new(AckBook { waiting: Default::default(), polling: false, latency: FIRST_ACK_LATENCY }))
    }
}

struct AckBook {
    /// channel → ackId → the waiting batch and since when it waits.
    waiting: std::collections::BTreeMap<String, std::collections::BTreeMap<u64, (AckWaiter, Instant)>>,
    /// A poller is running.
    polling: bool,
    /// How long acks took lately (moving average), which sets the interval.
    latency: Duration,
}

impl AckBook {
    /// Remove one waiter; a channel nobody waits on any more goes with it.
    fn take(&mut self, channel: &str, id: u64) -> Option<(AckWaiter, Instant)> {
        let ids = self.waiting.get_mut(channel)?;
        let waiter = ids.remove(&id);
        if ids.is_empty() {
            self.waiting.remove(channel);
        }
        waiter
    }
}

/// Ack polling never runs more often than this (a collector that indexes at
/// once is asked again within 10 ms) nor less often than once a second.
const ACK_POLL_MIN: Duration = Duration::from_millis(10);
const ACK_POLL_MAX: Duration = Duration::from_secs(1);

impl Acks {
    fn book(&self) -> std::sync::MutexGuard<'_, AckBook> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a waiter; `true` when no poller runs and the caller must
    /// start one.
    fn wait(&self, channel: &str, id: u64, tx: AckWaiter) -> bool {
        let mut book = self.book();
        book.waiting.entry(channel.to_owned()).or_default().insert(id, (tx, Instant::now()));
        !std::mem::replace(&mut book.polling, true)
    }

    /// Drop a waiter that gave up.
    fn forget(&self, channel: &str, id: u64) {
        self.book().take(channel, id);
    }

    /// Half the recent ack latency: a batch is asked about about twice
    /// before its ack is due, between [`ACK_POLL_MIN`] and [`ACK_POLL_MAX`].
    fn interval(&self) -> Duration {
        (self.book().latency / 2).clamp(ACK_POLL_MIN, ACK_POLL_MAX)
    }

    /// What to ask, per channel; `None` (and the poller marked stopped)
    /// when nothing waits. Waiters that went away are dropped.
    fn asks(&self) -> Option<Vec<(String, Vec<u64>)>> {
        let mut book = self.book();
        book.waiting.retain(|_, ids| {
            ids.retain(|_, (tx, _)| !tx.is_closed());
            !ids.is_empty()
        });
        if book.waiting.is_empty() {
            book.polling = false;
            return None;
        }
        Some(book.waiting.iter().map(|(c, ids)| (c.clone(), ids.keys().copied().collect())).collect())
    }

    /// Tell the waiters of `acked` their batch is indexed.
    fn answer(&self, channel: &str, acked: &[u64]) {
        let mut book = self.book();
        for id in acked {
            if let Some((tx, since)) = book.take(channel, *id) {
                book.latency = (book.latency * 3 + since.elapsed()) / 4;
                let _ = tx.send(Ok(()));
            }
        }
    }

    /// Tell every waiter on `channel` why its ack cannot come.
    fn fail(&self, channel: &str, e: &SendError) {
        let mut book = self.book();
        for (_, (tx, _)) in book.waiting.remove(channel).unwrap_or_default() {
            let _ = tx.send(Err(SendError { kind: e.kind, detail: e.detail.clone() }));
        }
    }
}

/// A request body gzip-compressed at level 1: HEC bodies are JSON, which
/// still shrinks several times at the fastest level.
pub fn gzip_body(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    gz.write_all(body)?;
    gz.finish()
}

/// `@timestamp` as epoch seconds with up to microseconds, trailing zeros
/// trimmed (`1714557600.123`).
fn write_hec_time(e: &Event, out: &mut Vec<u8>) {
    use std::io::Write;
    let secs = e.timestamp.timestamp();
    let micros = e.timestamp.timestamp_subsec_micros();
    // Writing numbers into a Vec cannot fail.
    let _ = write!(out, "{secs}");
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
        while out.last() == Some(&b'0') {
            out.pop();
        }
    }
}

impl Hec {
    /// Prove the token without writing an event (`check --connect`):
    /// `/health` needs no token, so an empty POST to the event endpoint
    /// follows. HEC checks the token first (401/403, codes 2-4) and only
    /// then finds nothing to index (400 code 5, "No data"), or a channel
    /// missing (code 10): either means the token was accepted.
    pub async fn check_token(&self) -> Result<(), SendError> {
        let url = self.url_of("services/collector/event");
        let rb = self.request(url, &self.channel(), Vec::new(), false)?;
        let resp = rb
            .send()
            .await
            .map_err(|e| SendError::transient(format!("HEC {}: {}", self.base, error_chain(&e.without_url()))))?;
        let status = resp.status().as_u16();
        let body = read_body(resp, 1 << 16).await.unwrap_or_default();
        let code = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["code"].as_u64());
        match (status, code) {
            (200..=299, _) | (400, Some(5 | 10)) => Ok(()),
            (401 | 403, _) | (400, Some(2..=4)) => Err(SendError::auth(format!(
                "HEC refused the token (HTTP {status}): {}; check token / token_file and that the token is enabled",
                excerpt(&body)
            ))),
            _ => Err(SendError::transient(format!(
                "HEC answered an empty POST with HTTP {status}: {} (the token could not be proved)",
                excerpt(&body)
            ))),
        }
    }
}

impl Sink for Hec {
    async fn send(&mut self, batch: &[Event]) -> Result<Delivery, SendError> {
        let mut rejected = Vec::new();
        // Ranges of the batch still to deliver, narrowed when HEC rejects one event.
        let mut todo = vec![(0usize, batch.len())];
        while let Some((start, end)) = todo.pop() {
            if start >= end {
                continue;
            }
            let events: Vec<&Event> = batch[start..end].iter().collect();
            match self.post(&events).await? {
                Posted::Ok => {}
                Posted::Invalid { index: Some(i), reason } if start + i < end => {
                    rejected.push((start + i, reason));
                    todo.push((start + i + 1, end));
                    if self.ack {
                        todo.push((start, start + i));
                    }
                }
                Posted::Invalid { reason, .. } | Posted::TooLarge(reason) => {
                    if end - start == 1 {
                        rejected.push((start, reason));
                    } else {
                        let mid = start + (end - start) / 2;
                        todo.push((mid, end));
                        todo.push((start, mid));
                    }
                }
            }
        }
        rejected.sort_by_key(|(i, _)| *i);
        Ok(Delivery { rejected })
    }

    async fn healthcheck(&mut self) -> Result<(), SendError> {
        let url = self.url_of("services/collector/health");
        let resp = self
            .client
            .get(url)
            .header(reqwest::header::AUTHORIZATION, format!("Splunk {}", self.token.expose()))
            .send()
            .await
            .map_err(|e| SendError::transient(format!("HEC {}: {}", self.base, error_chain(&e.without_url()))))?;
        let status = resp.status().as_u16();
        let body = read_body(resp, 1 << 16).await.unwrap_or_default();
        match status {
            200..=299 => Ok(()),
            400 | 401 | 403 => Err(SendError::auth(format!("HEC health answered HTTP {status}: {}", excerpt(&body)))),
            _ => Err(SendError::transient(format!("HEC health answered HTTP {status}: {}", excerpt(&body)))),
        }
    }

    async fn check_credentials(&mut self) -> Result<&'static str, SendError> {
        self.healthcheck().await?;
        self.check_token().await?;
        Ok("reachable, token accepted (an empty POST, nothing written)")
    }

    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint::Url(&self.base)
    }

    fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// A clone: it shares the client, the channel and the ack poller.
    fn fork(&self) -> Option<Self> {
        Some(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn waiter() -> (AckWaiter, tokio::sync::oneshot::Receiver<Result<(), SendError>>) {
        tokio::sync::oneshot::channel()
    }

    #[test]
    fn acks_are_asked_per_channel_and_answered_to_their_waiters() {
        let acks = Acks::default();
        let (a, mut ra) = waiter();
        let (b, mut rb) = waiter();
        let (c, mut rc) = waiter();
        assert!(acks.wait("ch1", 0, a), "the first waiter starts the poller");
        assert!(!acks.wait("ch1", 1, b), "one poller at a time");
        assert!(!acks.wait("ch2", 0, c));
        assert_eq!(acks.asks(), Some(vec![("ch1".into(), vec![0, 1]), ("ch2".into(), vec![0])]));

        acks.answer("ch1", &[1, 7]);
        assert!(matches!(rb.try_recv(), Ok(Ok(()))), "ackId 1 on ch1 is indexed");
        assert!(ra.try_recv().is_err(), "ackId 0 on ch1 still waits");
        assert!(rc.try_recv().is_err(), "ch2's ackId 0 is not ch1's");
        assert_eq!(acks.asks(), Some(vec![("ch1".into(), vec![0]), ("ch2".into(), vec![0])]));

        acks.fail("ch2", &SendError::config("acks off"));
        match rc.try_recv() {
            Ok(Err(e)) => assert!(e.kind == super::super::ErrorKind::Config && e.detail == "acks off"),
            other => panic!("ch2's waiter is told why: {other:?}"),
        }
        acks.forget("ch1", 0);
        assert!(ra.try_recv().is_err(), "a waiter that gave up is not answered");
        assert_eq!(acks.asks(), None, "nothing waits: the poller stops");
        let (d, _rd) = waiter();
        assert!(acks.wait("ch1", 2, d), "the next waiter starts a poller again");
    }

    #[test]
    fn a_waiter_that_went_away_is_no_longer_asked_about() {
        let acks = Acks::default();
        let (a, ra) = waiter();
        let (b, _rb) = waiter();
        acks.wait("ch", 0, a);
        acks.wait("ch", 1, b);
        drop(ra);
        assert_eq!(acks.asks(), Some(vec![("ch".into(), vec![1])]));
    }

    #[test]
    fn a_poller_that_goes_away_leaves_the_next_waiter_to_start_one() {
        let acks = Acks::default();
        let (a, _ra) = waiter();
        assert!(acks.wait("ch", 0, a));
        drop(Polling(&acks, true)); // a poller cancelled or panicking
        let (b, _rb) = waiter();
        assert!(acks.wait("ch", 1, b), "the next waiter starts a poller");
        drop(Polling(&acks, false)); // a poller that found nothing to ask
        let (c, _rc) = waiter();
        assert!(!acks.wait("ch", 2, c), "the running poller is not duplicated");
    }

    #[test]
    fn the_poll_interval_follows_the_ack_latency_within_its_bounds() {
        let acks = Acks::default();
        assert_eq!(acks.interval(), Duration::from_millis(100), "no ack seen yet");
        for id in 0..40 {
            let (tx, _rx) = waiter();
            acks.wait("ch", id, tx);
            acks.answer("ch", &[id]);
        }
        assert_eq!(acks.interval(), ACK_POLL_MIN, "a collector that acks at once is asked every 10 ms");
        acks.book().latency = Duration::from_secs(30);
        assert_eq!(acks.interval(), ACK_POLL_MAX, "slow acks are still asked about every second");
        acks.book().latency = Duration::from_millis(600);
        assert_eq!(acks.interval(), Duration::from_millis(300));
    }

    /// Regression (#26): a url that already named the endpoint (the
    /// Invicti seed's `https://splunk:8088/services/collector/event`) got
    /// the path twice and a 404 retried forever.
    #[test]
    fn a_url_ending_in_the_endpoint_path_is_its_base() {
        let base = |u: &str| hec_base(url::Url::parse(u).unwrap()).to_string();
        assert_eq!(base("https://splunk:8088"), "https://splunk:8088/");
        assert_eq!(base("https://splunk:8088/services/collector/event"), "https://splunk:8088/");
        assert_eq!(base("https://splunk:8088/services/collector/event/"), "https://splunk:8088/");
        assert_eq!(base("https://splunk:8088/services/collector"), "https://splunk:8088/");
        assert_eq!(base("https://splunk:8088/services/collector/raw"), "https://splunk:8088/");
        assert_eq!(base("https://lb.example/splunk/services/collector/event/1.0"), "https://lb.example/splunk");
        assert_eq!(base("https://lb.example/splunk/"), "https://lb.example/splunk/", "a prefix stays");
    }

    fn hec_with(extra: &str) -> Hec {
        let toml = format!(
            "[[output]]\nname = \"hec\"\ntype = \"splunk_hec\"\nurl = \"http://127.0.0.1:9/services/collector/event\"\ntoken = \"t\"\nack = true\n{extra}"
        );
        let o = crate::outputs::testkit::output(&toml);
        let env = crate::settings::secret::tests::FakeEnv::default();
        let crate::outputs::OutputKind::SplunkHec(hec) = &o.kind else { panic!("splunk_hec") };
        Hec::build(hec, &o.common, "output[0]", &env, "host", "ch".into()).unwrap()
    }

    /// Regression (#26): the ack timeout was 60 s, so a batch the indexer
    /// acknowledged after two minutes (small batches of a quiet audit
    /// stream do sit that long) was sent again and duplicated. Now an ack
    /// that comes after 120 s is waited for and the batch is not resent.
    #[tokio::test(start_paused = true)]
    async fn an_ack_after_two_minutes_is_waited_for_not_resent() {
        let hec = hec_with("");
        assert_eq!(hec.ack_timeout, Duration::from_secs(300));
        assert_eq!(hec.base.as_str(), "http://127.0.0.1:9/", "the endpoint path is not doubled");
        // Another batch's poller runs already: this test answers the acks.
        let (other, _keep) = waiter();
        assert!(hec.acks.wait("ch", 0, other));
        let waiting = tokio::spawn({
            let hec = hec.clone();
            async move { hec.wait_for_ack("ch", 1).await }
        });
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(!waiting.is_finished(), "still waiting after 120 s, not resent");
        hec.acks.answer("ch", &[1]);
        assert!(waiting.await.unwrap().is_ok(), "acknowledged: delivered, no resend");
        assert_eq!(*hec.channel.lock().unwrap(), "ch", "the channel was not given up");

        // Past the timeout the batch goes again, on a fresh channel.
        let late = tokio::spawn({
            let hec = hec.clone();
            async move { hec.wait_for_ack("ch", 2).await }
        });
        tokio::time::sleep(Duration::from_secs(301)).await;
        let err = late.await.unwrap().unwrap_err();
        assert!(err.detail.contains("within 300s"), "{}", err.detail);
    }

    #[test]
    fn time_keeps_sub_second_precision() {
        let mut e = Event::new(
            "s".into(),
            "1".into(),
            Utc.timestamp_opt(1_714_557_600, 123_000_000).unwrap(),
            Default::default(),
            "{}".into(),
        );
        let time = |e: &Event| {
            let mut out = Vec::new();
            write_hec_time(e, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(time(&e), "1714557600.123");
        e.timestamp = Utc.timestamp_opt(1_714_557_600, 0).unwrap();
        assert_eq!(time(&e), "1714557600");
        e.timestamp = Utc.timestamp_opt(1_714_557_600, 5_000).unwrap();
        assert_eq!(time(&e), "1714557600.000005");
        e.timestamp = Utc.timestamp_opt(1_714_557_600, 100_000_000).unwrap();
        assert_eq!(time(&e), "1714557600.1", "trailing zeros of the fraction only");
        e.timestamp = Utc.timestamp_opt(1_714_557_000, 0).unwrap();
        assert_eq!(time(&e), "1714557000", "never the integer's zeros");
    }
}
