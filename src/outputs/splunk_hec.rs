//! `splunk_hec`: Splunk HTTP Event Collector.
//!
//! A batch is JSON envelopes concatenated in one gzip body, posted to
//! `/services/collector/event` with `Authorization: Splunk <token>` and the
//! output's persisted channel GUID. With `ack = true` the batch counts as
//! delivered only when `/services/collector/ack` answers `true` for its
//! ackId; no answer within `ack_timeout` means the batch is sent again
//! (at-least-once: HEC has no idempotency key, so `fields.event_id` carries
//! the stable id for dedupe in searches).
//!
//! A 400 "invalid data format" (and the other per-event codes 12, 13, 15) or
//! a 413 is narrowed down to the offending event(s): with
//! `invalid-event-number` the event is dead-lettered and the rest resent;
//! without it the batch is split in halves until single events remain. Events
//! before an `invalid-event-number` count as accepted only without acks (with
//! acks they got no ackId, so they are resent).

use super::{Delivery, SendError, Sink};
use crate::config::secret::{Env, Secret};
use crate::config::{OutputConfig, Problem};
use crate::event::{Event, Payload};
use crate::transport::http::{error_chain, excerpt, read_body};
use flate2::write::GzEncoder;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;
use tokio::time::Instant;

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
    ack: bool,
    ack_timeout: Duration,
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

impl Hec {
    /// Build from config: resolves the token and the channel.
    pub fn build(
        cfg: &OutputConfig,
        at: &str,
        env: &dyn Env,
        hostname: &str,
        channel: String,
    ) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let token =
            crate::sources::need_secret(&mut problems, at, "token", cfg.token.as_ref(), cfg.token_file.as_deref(), env);
        let base = cfg.url.as_deref().and_then(|u| url::Url::parse(u).ok());
        if base.is_none() {
            problems.push(Problem { path: format!("{at}.url"), message: "is not a URL".into() });
        }
        let timeout = cfg.timeout.map_or(Duration::from_secs(30), |d| d.get());
        let client = crate::transport::http::client(cfg.tls.as_ref(), timeout)
            .map_err(|e| problems.push(Problem { path: format!("{at}.tls"), message: e.to_string() }))
            .ok();
        let (Some(token), Some(base), Some(client), true) = (token, base, client, problems.is_empty()) else {
            return Err(problems);
        };
        Ok(Hec {
            client,
            base,
            token,
            channel: std::sync::Arc::new(std::sync::Mutex::new(channel)),
            ack: cfg.ack.unwrap_or(false),
            ack_timeout: cfg.ack_timeout.map_or(Duration::from_secs(60), |d| d.get()),
            gzip: cfg.compression.unwrap_or(true),
            index: cfg.index.clone(),
            sourcetype: cfg.sourcetype.clone().unwrap_or_else(|| "auditrelay:audit".into()),
            source: cfg.source.clone(),
            host: hostname.to_owned(),
            payload: cfg.payload_kind(),
        })
    }

    fn endpoint(&self, path: &str) -> url::Url {
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
            let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
            gz.write_all(&body).map_err(|e| SendError::transient(format!("gzip: {e}")))?;
            rb = rb.header(reqwest::header::CONTENT_ENCODING, "gzip");
            gz.finish().map_err(|e| SendError::transient(format!("gzip: {e}")))?
        } else {
            body
        };
        Ok(rb.body(body))
    }

    async fn post(&self, events: &[&Event]) -> Result<Posted, SendError> {
        let url = self.endpoint("services/collector/event");
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
        let text = reply.get("text").and_then(Value::as_str).map_or_else(|| excerpt(&body), str::to_owned);
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
            (401 | 403, _) | (_, Some(1..=4 | 21 | 22)) => Err(SendError::auth(format!("{what} (check the HEC token)"))),
            (400, Some(7)) => Err(SendError::config(format!("{what}: the token may not write to index {:?}", self.index))),
            (400, Some(14)) => Err(SendError::config(format!("{what}: indexer acknowledgement is off for this token; set ack = false"))),
            (400, Some(5 | 10 | 11 | 16)) => Err(SendError::config(what)),
            _ => Err(SendError::transient(what)),
        }
    }

    /// Poll `/services/collector/ack` until `id` is true or `ack_timeout`.
    async fn wait_for_ack(&self, channel: &str, id: u64) -> Result<(), SendError> {
        let deadline = Instant::now() + self.ack_timeout;
        let mut delay = Duration::from_millis(100);
        let mut url = self.endpoint("services/collector/ack");
        url.query_pairs_mut().append_pair("channel", channel);
        loop {
            tokio::time::sleep(delay.min(deadline.saturating_duration_since(Instant::now()))).await;
            let sent = self
                .request(url.clone(), channel, json!({ "acks": [id] }).to_string().into_bytes(), false)?
                .send()
                .await;
            if let Ok(resp) = sent {
                let status = resp.status().as_u16();
                let body = read_body(resp, 1 << 20).await.unwrap_or_default();
                let reply: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if (200..300).contains(&status) {
                    if reply.pointer(&format!("/acks/{id}")).and_then(Value::as_bool) == Some(true) {
                        return Ok(());
                    }
                } else if status == 400 && reply.get("code").and_then(Value::as_i64) == Some(14) {
                    return Err(SendError::config(
                        "HEC says indexer acknowledgement is off for this token; set ack = false",
                    ));
                } else if status == 401 || status == 403 {
                    return Err(SendError::auth(format!("HEC ack query answered HTTP {status} (check the HEC token)")));
                }
            }
            if Instant::now() >= deadline {
                // A fresh channel: if this one lost its state (indexer
                // restart, a load balancer without stickiness), its acks
                // would stay false forever.
                let fresh = uuid::Uuid::new_v4().to_string();
                *self.channel.lock().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
                return Err(SendError::transient(format!(
                    "no indexer acknowledgement for ackId {id} on channel {channel} within {:?}; sending the batch again on channel {fresh}",
                    self.ack_timeout
                )));
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
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
        let url = self.endpoint("services/collector/health");
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

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
