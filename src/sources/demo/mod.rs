//! `demo`: a built-in audit API that needs no account. It behaves like a
//! real oldest-first API with a time filter and page tokens: event number
//! `k` happened at `EPOCH + k / rate` (millisecond precision, so at high
//! rates several events share a timestamp), and its content (logins, failed
//! logins, role changes, API keys, exports…) is derived from `k`, so every
//! poll of the same window returns the same events. It goes through the
//! whole poller: cursor, journal, dedupe, outputs.

pub mod config;

use super::api::{json_body, ApiPage, ApiRequest, ApiResponse, Defaults, Next, Query, ShapeError, SourceApi, Wanted};
use super::auth::Auth;
use crate::event::{Normalised, Observer};
use crate::settings::secret::Env;
use crate::settings::units::Rate;
use crate::settings::Problem;
use chrono::{DateTime, TimeZone, Utc};
pub use config::DemoConfig;
use serde_json::{json, Value};
use std::time::Duration;

/// 2020-01-01T00:00:00Z in epoch milliseconds: event 0 of the demo API.
const EPOCH_MS: i64 = 1_577_836_800_000;

/// The demo API.
#[derive(Debug)]
pub struct Demo {
    count: i64,
    per_ms: i64,
    wanted: Wanted,
}

/// Where an event's id and time are.
const ID: &str = "/id";
const TIME: &str = "/time";

/// The ECS fields of an event: path, pointer to a string, and whether the
/// ECS field is a list of it.
const FIELDS: [(&str, &str, bool); 10] = [
    ("event.action", "/action", false),
    ("event.outcome", "/outcome", false),
    ("event.category", "/category", true),
    ("event.type", "/type", true),
    ("event.reason", "/reason", false),
    ("user.id", "/actor/id", false),
    ("user.name", "/actor/name", false),
    ("user.email", "/actor/email", false),
    ("source.ip", "/client/ip", false),
    ("user_agent.original", "/client/user_agent", false),
];

/// Build from config; the demo has no secrets and nothing to report.
pub fn build(cfg: &DemoConfig, _: (), _at: &str, _env: &dyn Env, _problems: &mut Vec<Problem>) -> super::Built {
    Some((Box::new(Demo::new(cfg)), Auth::None))
}

super::connector!(DemoConfig => build);

impl Demo {
    /// From config: `rate` (default `"10/s"`).
    pub fn new(cfg: &DemoConfig) -> Self {
        let rate = cfg
            .rate
            .unwrap_or(Rate { count: std::num::NonZeroU32::MIN.saturating_add(9), per: Duration::from_secs(1) });
        let mut wanted = Wanted::default();
        for pointer in [ID, TIME].into_iter().chain(FIELDS.iter().map(|f| f.1)) {
            wanted.pointer(pointer);
        }
        Demo { count: i64::from(rate.count.get()), per_ms: (rate.per.as_millis() as i64).max(1), wanted }
    }

    /// The time of event `k`.
    fn time_ms(&self, k: i64) -> i64 {
        EPOCH_MS + (i128::from(k) * i128::from(self.per_ms) / i128::from(self.count)) as i64
    }

    /// First event at or after `t`, and last event at or before `t`.
    fn k_range(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> (i64, i64) {
        let ceil_ms = |t: DateTime<Utc>| {
            let ms = t.timestamp_millis();
            if t.timestamp_subsec_nanos() % 1_000_000 != 0 {
                ms + 1
            } else {
                ms
            }
        };
        let f = i128::from(ceil_ms(from) - EPOCH_MS).max(0);
        let t = i128::from(to.timestamp_millis() - EPOCH_MS);
        let (c, p) = (i128::from(self.count), i128::from(self.per_ms));
        let k_min = (f * c + p - 1).div_euclid(p);
        let k_max = ((t + 1) * c + p - 1).div_euclid(p) - 1;
        (k_min as i64, k_max as i64)
    }
}

const USERS: &[(&str, &str, &str)] = &[
    ("u-1001", "alice", "alice@example.com"),
    ("u-1002", "bob", "bob@example.com"),
    ("u-1003", "carol", "carol@example.com"),
    ("u-1004", "dave", "dave@example.com"),
    ("u-1005", "svc-backup", "svc-backup@example.com"),
];
const IPS: &[&str] = &["198.51.100.23", "203.0.113.7", "192.0.2.44", "2001:db8::17", "198.51.100.200"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "curl/8.5.0",
    "python-requests/2.32.3",
];
/// (action, category, type, outcome)
const ACTIONS: &[(&str, &str, &str, &str)] = &[
    ("login", "authentication", "start", "success"),
    ("login", "authentication", "start", "success"),
    ("login", "authentication", "start", "failure"),
    ("logout", "authentication", "end", "success"),
    ("user-role-change", "iam", "change", "success"),
    ("api-key-create", "iam", "creation", "success"),
    ("password-reset", "iam", "change", "success"),
    ("mfa-enroll", "authentication", "change", "success"),
    ("settings-update", "configuration", "change", "success"),
    ("report-export", "file", "access", "success"),
    ("user-delete", "iam", "deletion", "failure"),
];

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn pick<T>(items: &[T], h: u64) -> &T {
    &items[(h % items.len() as u64) as usize]
}

impl Demo {
    pub(crate) fn event(&self, k: i64) -> Value {
        let h = mix(k as u64);
        let (uid, name, email) = pick(USERS, h);
        let (action, category, kind, outcome) = pick(ACTIONS, h >> 8);
        let time = Utc.timestamp_millis_opt(self.time_ms(k)).single().unwrap_or_default();
        let mut e = json!({
            "id": format!("evt-{k:012}"),
            "time": crate::event::rfc3339(time),
            "actor": { "id": uid, "name": name, "email": email },
            "action": action,
            "category": category,
            "type": kind,
            "outcome": outcome,
            "client": { "ip": pick(IPS, h >> 16), "user_agent": pick(AGENTS, h >> 24) },
        });
        let target = match *action {
            "user-role-change" => {
                json!({ "user": pick(USERS, h >> 32).1, "role": pick(&["admin", "auditor", "viewer"], h >> 40) })
            }
            "api-key-create" => json!({ "api_key": format!("key-{:08x}", h as u32), "expires_in_days": 90 }),
            "settings-update" => {
                json!({ "setting": pick(&["sso.enforced", "session.timeout", "ip.allowlist"], h >> 40) })
            }
            "report-export" => json!({ "report": "audit-trail", "rows": (h >> 44) % 5000 }),
            "user-delete" => json!({ "user": pick(USERS, h >> 32).1 }),
            _ => Value::Null,
        };
        if !target.is_null() {
            e["target"] = target;
        }
        if *outcome == "failure" {
            e["reason"] = json!(pick(&["invalid_password", "mfa_failed", "insufficient_privileges"], h >> 48));
        }
        e
    }
}

impl SourceApi for Demo {
    fn observer(&self) -> Observer {
        Observer { vendor: "auditrelay", product: "demo" }
    }

    fn defaults(&self) -> Defaults {
        Defaults { page_size: 500, interval: Duration::from_secs(5), ..Defaults::default() }
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        let (k_min, k_max) = self.k_range(q.window.from, q.window.to);
        let start = q.state.and_then(Value::as_i64).unwrap_or(k_min);
        let url = format!("demo://local/events?after={start}&last={k_max}&limit={}", q.page_size);
        url::Url::parse(&url).map(ApiRequest::get).map_err(|e| ShapeError(e.to_string()))
    }

    fn parse(&self, _q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let body = json_body(resp)?;
        let events = body["events"].as_array().cloned().ok_or_else(|| ShapeError("no events array".into()))?;
        let next = match body["next"].as_i64() {
            Some(k) => Next::Page(json!(k)),
            None => Next::Done,
        };
        Ok(ApiPage::parsed(events, next))
    }

    fn wanted(&self) -> Option<&Wanted> {
        Some(&self.wanted)
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |p: &str| raw.pointer(p).and_then(Value::as_str);
        let mut n = Normalised {
            id: s(ID).map(str::to_owned),
            timestamp: s(TIME).and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc)),
            ..Default::default()
        };
        for (path, pointer, list) in FIELDS {
            match list {
                true => n.put(path, s(pointer).map(|c| json!([c]))),
                false => n.put_str(path, s(pointer)),
            };
        }
        n
    }

    fn local(&self, req: &ApiRequest, _now: DateTime<Utc>) -> Option<ApiResponse> {
        let param =
            |name: &str| req.url.query_pairs().find(|(k, _)| k == name).and_then(|(_, v)| v.parse::<i64>().ok());
        let (start, last, limit) = (param("after")?, param("last")?, param("limit")?.max(1));
        let end = last.min(start.saturating_add(limit - 1));
        let events: Vec<Value> = (start..=end).map(|k| self.event(k)).collect();
        let next = if end < last { json!(end + 1) } else { Value::Null };
        let body = serde_json::to_vec(&json!({ "events": events, "next": next })).ok()?;
        Some(ApiResponse { status: 200, headers: Default::default(), body: body.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo(rate: &str) -> Demo {
        Demo::new(&DemoConfig { rate: Some(Rate::parse(rate).unwrap()) })
    }

    #[test]
    fn window_bounds_are_exact() {
        let d = demo("3/s");
        for k in [0i64, 1, 2, 3, 1000, 1001] {
            let t = Utc.timestamp_millis_opt(d.time_ms(k)).unwrap();
            let (lo, hi) = d.k_range(t, t);
            assert!(lo <= k && k <= hi, "k {k} in [{lo}, {hi}]");
            let next = t + chrono::Duration::milliseconds(1);
            assert!(d.k_range(next, next).0 > k);
        }
    }

    #[test]
    fn events_are_deterministic_and_realistic() {
        let d = demo("10/s");
        assert_eq!(d.event(42), d.event(42));
        let raw = d.event(7);
        let n = d.normalise(&raw);
        assert_eq!(n.id.as_deref(), Some("evt-000000000007"));
        assert!(n.timestamp.is_some());
        assert!(n.fields.get("user.name").is_some());
        assert!(n.fields.get("event.action").is_some());
    }
}
