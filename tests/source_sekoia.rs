//! The `sekoia` source against a fake SEKOIA.IO event search built from
//! the research brief (automation-library's `base_get_event.py` and
//! `get_events.py`): under `{base}/v1/sic/conf/events/search/jobs`,
//! `POST` a job (`term`, `earliest_time`, `latest_time`, `visible`,
//! `max_last_events`) → `{"uuid"}`; `GET …/{uuid}` → `status` 1 (running)
//! the first time, then 2 (done); `GET …/{uuid}/events?limit&offset` →
//! `{"items", "total"}`, newest first (the order is not documented, so the
//! fake picks the unfriendly one). All with `Authorization: Bearer`. The
//! community also holds events of another intake, which the dialect term
//! must keep out. Items are ECS: most flat with dotted keys, the time in
//! `timestamp` and an `__event_id`, as the search API returns them (the
//! SekoiaXDR integration's test data in demisto/content,
//! `Packs/SekoiaXDR/Integrations/SekoiaXDR/test_data/SekoiaXDR_retrieve_events.json`),
//! every third nested with `@timestamp` as the integration catalogue shows
//! them; all carry the intake key (`sekoiaio.intake.key`,
//! `customer.intake_key`), which must never reach the output.

use crate::common;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use common::agent::{file_output, read_jsonl, tail, wait_until_or, TestDir, DEADLINE};
use common::compliance::{with_test_defaults, Fault};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const KEY: &str = "sk-7f3a9b2c4d5e6f708192a3b4c5d6e7f8";
const ACTIVITY: &str = "41e3ca4e-a714-41aa-ad69-684a0b3835fc";
const FIREWALL: &str = "0f3c5b8a-1111-4222-8333-123456789abc";
/// The intake key every item carries: a credential.
const INTAKE_KEY: &str = "WJ4KkMbT8wkiFVkWpvXq";

struct Job {
    polls: u32,
    items: Vec<Value>,
}

#[derive(Default)]
struct Fake {
    events: Vec<(DateTime<Utc>, String, Value)>,
    jobs: HashMap<String, Job>,
    faults: VecDeque<Fault>,
    next: u64,
    created: usize,
    /// The dialect term matches nothing (the key could be named otherwise
    /// in a tenant: the search language's field names are not documented).
    dialect_term_matches_nothing: bool,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeSekoia {
    state: Shared,
    server: common::Server,
}

fn fault_response(f: Fault) -> Response {
    let too_many = |secs: Option<u64>| {
        let mut r = (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "message": "Too Many Requests" }))).into_response();
        if let Some(s) = secs {
            r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
        }
        r
    };
    match f {
        Fault::TooManyRequests { retry_after } => too_many(retry_after),
        Fault::Throttle401 => too_many(None),
        Fault::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
        Fault::Garbage => Json(json!({ "detail": "maintenance", "items": "later" })).into_response(),
    }
}

/// Fault or refused key, before any route's own work.
fn gate(s: &mut Fake, headers: &HeaderMap) -> Option<Response> {
    if let Some(f) = s.faults.pop_front() {
        return Some(fault_response(f));
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    (auth != Some(&format!("Bearer {KEY}"))).then(|| {
        (StatusCode::UNAUTHORIZED, Json(json!({ "message": "The server could not verify that you are authorized" })))
            .into_response()
    })
}

fn bad(m: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "message": m }))).into_response()
}

async fn create(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = st.lock().unwrap();
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else { return bad("invalid JSON") };
    let time =
        |k: &str| req[k].as_str().and_then(|v| DateTime::parse_from_rfc3339(v).ok()).map(|t| t.with_timezone(&Utc));
    let (Some(from), Some(to)) = (time("earliest_time"), time("latest_time")) else {
        return bad("earliest_time and latest_time are required (this fake reads ISO 8601 only)");
    };
    let term = req["term"].as_str().unwrap_or_default();
    let quoted =
        |key: &str| term.strip_prefix(key).and_then(|t| t.strip_prefix(":\"")).and_then(|t| t.strip_suffix('"'));
    // (field, value): the dialect uuid or the agent name.
    let dork = match (quoted("sekoiaio.intake.dialect_uuid"), quoted("agent.name")) {
        (Some(_), _) if s.dialect_term_matches_nothing => None,
        (Some(dialect), _) => Some((true, dialect)),
        (_, Some(agent)) => Some((false, agent)),
        _ => {
            return bad(
                "this fake understands two dorks: sekoiaio.intake.dialect_uuid:\"<uuid>\", agent.name:\"<name>\"",
            )
        }
    };
    let matches = |d: &str, v: &Value| match dork {
        None => false,
        Some((true, dialect)) => d == dialect,
        Some((false, agent)) => {
            v.get("agent.name").or_else(|| v.pointer("/agent/name")).and_then(Value::as_str) == Some(agent)
        }
    };
    let cap = req["max_last_events"].as_u64().unwrap_or(10_000) as usize;
    let mut items: Vec<Value> = s
        .events
        .iter()
        .filter(|(t, d, v)| matches(d, v) && from <= *t && *t <= to)
        .map(|(_, _, v)| v.clone())
        .collect();
    items.reverse();
    items.truncate(cap);
    s.next += 1;
    s.created += 1;
    let uuid = format!("5d1c0000-0000-4000-8000-{:012}", s.next);
    s.jobs.insert(uuid.clone(), Job { polls: 0, items });
    Json(json!({ "uuid": uuid, "status": 0 })).into_response()
}

async fn job(State(st): State<Shared>, headers: HeaderMap, Path(uuid): Path<String>) -> Response {
    let mut s = st.lock().unwrap();
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    let Some(job) = s.jobs.get_mut(&uuid) else { return (StatusCode::NOT_FOUND, "no such job").into_response() };
    job.polls += 1;
    let status = if job.polls == 1 { 1 } else { 2 };
    Json(json!({ "uuid": uuid, "status": status, "total": job.items.len(), "results_ttl": 600,
                 "started_at": "2024-05-01T10:00:00Z", "ended_at": null, "expired": false }))
    .into_response()
}

async fn results(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Some(r) = gate(&mut s, &headers) {
        return r;
    }
    let Some(job) = s.jobs.get(&uuid) else { return (StatusCode::NOT_FOUND, "no such job").into_response() };
    if job.polls < 2 {
        return bad("the job is not done");
    }
    let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(100).min(100);
    let offset: usize = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let items: Vec<&Value> = job.items.iter().skip(offset).take(limit).collect();
    Json(json!({ "items": items, "total": job.items.len() })).into_response()
}

fn item(id: &str, t: DateTime<Utc>, dialect: &str, k: u64) -> Value {
    let path = ["/v1/me", "/v1/sic/alerts", "/v2/inthreat/bundles"][k as usize % 3];
    let method = if k % 3 == 2 { "POST" } else { "GET" };
    let ts = t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let record = json!({
        "timestamp": ts.trim_end_matches('Z'), "observer": { "name": "sekoia.webapi", "version": null },
        "visit": { "id": null, "ip": "141.229.130.228", "user_agent": "python-requests/2.31.0", "referrer": null },
        "action": { "name": null, "path": path, "url": format!("http://api.sekoia.io{path}"), "method": method },
        "identity": { "user_uuid": "5beacab7-4fc9-4c07-8ec0-e6ad73ed77fe", "community_uuid": "22806a91-459c-40b1-98db-5af6ccf291fd",
                      "profile_type": "avatar", "profile_identity": "95267578-e797-4263-90c3-09fb230536e2" }
    });
    let mut nested = json!({
        "message": record.to_string(), "@timestamp": ts,
        "agent": { "name": if dialect == ACTIVITY { "sekoia.webapi" } else { "fortigate-collector" } },
        "client": { "user": { "id": "5beacab7-4fc9-4c07-8ec0-e6ad73ed77fe" }, "ip": "141.229.130.228", "address": "141.229.130.228" },
        "user_agent": { "original": "python-requests/2.31.0" }, "http": { "request": { "method": method } },
        "url": { "original": format!("http://api.sekoia.io{path}"), "path": path },
        "sekoiaio": { "intake": { "dialect": "sekoiaio-activity-logs", "dialect_uuid": dialect },
                      "activity": { "client": { "id": "95267578-e797-4263-90c3-09fb230536e2", "type": "avatar" } } },
        "event": { "id": id, "outcome": if k % 4 == 0 { "failure" } else { "success" } },
        "customer": { "intake_key": INTAKE_KEY, "id": "Sandbox" }
    });
    nested["sekoiaio"]["intake"]["key"] = json!(INTAKE_KEY);
    if k % 3 == 0 {
        return nested;
    }
    let mut flat = serde_json::Map::new();
    flatten("", &nested, &mut flat);
    let ts = flat.remove("@timestamp").unwrap();
    flat.insert("timestamp".into(), ts);
    flat.insert("__event_id".into(), json!(format!("ZXZlbnRz{k}")));
    Value::Object(flat)
}

/// The search API's form of an item: one dotted key per leaf.
fn flatten(prefix: &str, v: &Value, out: &mut serde_json::Map<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, inner) in m {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&path, inner, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

impl FakeSekoia {
    fn start() -> FakeSekoia {
        let state: Shared = Arc::default();
        let jobs = "/api/v1/sic/conf/events/search/jobs";
        let router = Router::new()
            .route(jobs, post(create))
            .route(&format!("{jobs}/{{uuid}}"), get(job))
            .route(&format!("{jobs}/{{uuid}}/events"), get(results))
            .with_state(state.clone());
        FakeSekoia { state, server: common::Server::start(router) }
    }

    /// `n` activity events (three per microsecond, never in the past) and
    /// one event of another intake; returns the activity ids.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros() + 1).unwrap();
        let t0 = s.events.last().map_or(now, |(t, _, _)| (*t).max(now));
        let mut ids = Vec::new();
        for i in 0..=n {
            let t = t0 + chrono::Duration::microseconds((i / 3) as i64);
            s.next += 1;
            let k = s.next;
            let id = format!("0088f426-d1b7-462b-ad8a-{k:012}");
            let dialect = if i == n { FIREWALL } else { ACTIVITY };
            if i < n {
                ids.push(id.clone());
            }
            s.events.push((t, dialect.to_owned(), item(&id, t, dialect, k)));
        }
        ids
    }

    fn block(&self, name: &str, key: &str) -> String {
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"sekoia\"\nurl = \"{}/api\"\ntoken = \"{key}\"\n",
            self.server.url()
        )
    }
}

common::compliance::fake_vendor!(FakeSekoia, KEY, "sk-revoked");

/// A backlog read through jobs, pages of 100 at most whatever is asked,
/// newest first: every event once, with the intake's ECS kept and ours
/// added.
#[test]
fn sekoia_reads_a_backlog_through_jobs_and_keeps_the_intake_ecs() {
    let api = FakeSekoia::start();
    let ids = api.add(250);
    let dir = TestDir::new();
    let block = format!("{}page_size = 500\n", api.block("sek", KEY));
    let cfg = format!(
        "{}\n{}{}",
        dir.agent_section(),
        with_test_defaults(&block),
        file_output("out", &dir.file("out.jsonl"), 100)
    );
    let agent = dir.start_with(&cfg);
    let out = dir.file("out.jsonl");
    let delivered =
        || read_jsonl(&out).iter().map(|e| e["event"]["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    wait_until_or(
        "the backlog",
        DEADLINE,
        || common::missing(&delivered(), &ids).is_empty(),
        || tail(&agent.stderr(), 20),
    );
    agent.stop();
    common::assert_exactly_once(&delivered(), &ids, "backlog through jobs");
    let e = &read_jsonl(&out)[0];
    assert_eq!(e["sekoiaio"]["intake"]["dialect_uuid"], ACTIVITY);
    assert_eq!(e["client"]["ip"], "141.229.130.228");
    assert_eq!(e["source"]["ip"], "141.229.130.228");
    assert_eq!(e["user"]["id"], "5beacab7-4fc9-4c07-8ec0-e6ad73ed77fe");
    assert!(e["event"]["action"].as_str().unwrap().contains(" /v"), "{e}");
    assert_eq!(e["observer"]["vendor"], "SEKOIA.IO");
    assert!(api.state.lock().unwrap().created >= 1);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains(INTAKE_KEY), "the intake key, a credential, was forwarded");
    assert!(text.contains("\"customer\":{\"id\":\"Sandbox\"}"), "the rest of customer.* is kept");
}

/// A search term that matches nothing must not pass for a quiet
/// community: `check --connect` and the polls fail naming the term and
/// `query` while the activity log's agent shows events in the window, and
/// the cursor stays, so once the term works every event arrives.
#[test]
fn sekoia_a_term_that_matches_nothing_is_not_a_quiet_community() {
    let api = FakeSekoia::start();
    api.state.lock().unwrap().dialect_term_matches_nothing = true;
    let ids = api.add(5);
    let fix = || api.state.lock().unwrap().dialect_term_matches_nothing = false;
    common::compliance::check_wrong_guess_is_loud(&api.block("sek", KEY), "set query", fix, &ids);
}

common::compliance::compliance_tests!(FakeSekoia::start());
