//! The `google_workspace` source against a fake Google: a token endpoint
//! that checks the JWT-bearer grant as Google's does (RFC 7523 form, an
//! RS256 assertion verified with the service account's public key, `aud`
//! its own address, the Reports scope, `sub` an administrator it knows,
//! else `{"error": "unauthorized_client"}`), and the Reports API's
//! `activities.list` (`GET /admin/reports/v1/activity/users/all/applications/login`,
//! `startTime`/`endTime` RFC 3339, `maxResults` ≤ 1000, `pageToken` /
//! `nextPageToken`, newest first, `items` absent when empty). Activities
//! are shaped like the Elastic login sample the unit tests read.
//!
//! Throttling as Google does it: a 429, or a 403 whose reason is
//! `rateLimitExceeded`.

use crate::common;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use common::agent::{file_ids, tail, TestDir};
use common::compliance::Fault;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const PEM: &str = include_str!("fixtures/test-only-rsa-2048.pem");
const SUBJECT: &str = "admin@example.com";
const SCOPE: &str = "https://www.googleapis.com/auth/admin.reports.audit.readonly";

struct Fake {
    /// `(time, activity)`, oldest first as published.
    activities: Vec<(DateTime<Utc>, Value)>,
    faults: VecDeque<Fault>,
    /// Access tokens handed out.
    tokens: Vec<String>,
    /// Token requests, and those refused.
    token_requests: usize,
    page_requests: usize,
    public_key: Vec<u8>,
    token_uri: String,
    next: u64,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeGoogle {
    state: Shared,
    server: common::Server,
}

fn google_error(status: StatusCode, message: &str, reason: &str) -> Response {
    let body = json!({ "error": { "code": status.as_u16(), "message": message, "errors": [{ "reason": reason, "message": message }] } });
    (status, Json(body)).into_response()
}

async fn token(State(st): State<Shared>, body: String) -> Response {
    let mut s = st.lock().unwrap();
    s.token_requests += 1;
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let refuse = |e: &str, d: &str| {
        (StatusCode::UNAUTHORIZED, Json(json!({ "error": e, "error_description": d }))).into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return refuse("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(jwt) = form.get("assertion") else { return refuse("invalid_request", "Missing assertion") };
    let parts: Vec<&str> = jwt.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (Some(claims), Some(sig)) = (
        parts.get(1).and_then(|c| b64.decode(c).ok()).and_then(|c| serde_json::from_slice::<Value>(&c).ok()),
        parts.get(2).and_then(|p| b64.decode(p).ok()),
    ) else {
        return refuse("invalid_grant", "Invalid JWT");
    };
    let signed = format!("{}.{}", parts[0], parts[1]);
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &s.public_key);
    if key.verify(signed.as_bytes(), &sig).is_err() {
        return refuse("invalid_grant", "Invalid JWT Signature.");
    }
    if claims["aud"] != json!(s.token_uri) || claims["scope"] != SCOPE {
        return refuse("invalid_grant", "Invalid JWT: aud or scope");
    }
    if claims["sub"] != SUBJECT {
        return refuse(
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        );
    }
    let tok = format!("ya29.fake-{}", s.tokens.len());
    s.tokens.push(tok.clone());
    Json(json!({ "access_token": tok, "expires_in": 3599, "token_type": "Bearer" })).into_response()
}

async fn activities(
    State(st): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    s.page_requests += 1;
    if let Some(f) = s.faults.pop_front() {
        return match f {
            Fault::TooManyRequests { retry_after } => {
                let mut r = google_error(StatusCode::TOO_MANY_REQUESTS, "Quota exceeded", "rateLimitExceeded");
                if let Some(n) = retry_after {
                    r.headers_mut().insert("retry-after", n.to_string().parse().unwrap());
                }
                r
            }
            Fault::Throttle401 => google_error(StatusCode::FORBIDDEN, "Quota exceeded", "rateLimitExceeded"),
            Fault::ServerError => google_error(StatusCode::INTERNAL_SERVER_ERROR, "Backend Error", "backendError"),
            Fault::Garbage => {
                ([("content-type", "text/html")], "<html><title>Error 502</title></html>").into_response()
            }
        };
    }
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|b| s.tokens.iter().any(|t| t == b)) {
        return google_error(StatusCode::UNAUTHORIZED, "Invalid Credentials", "authError");
    }
    let time = |k: &str| q.get(k).and_then(|v| DateTime::parse_from_rfc3339(v).ok()).map(|t| t.with_timezone(&Utc));
    let (from, to) = (time("startTime"), time("endTime"));
    let max = q.get("maxResults").and_then(|m| m.parse::<usize>().ok()).unwrap_or(1000);
    if !(1..=1000).contains(&max) {
        return google_error(StatusCode::BAD_REQUEST, "Invalid value", "invalid");
    }
    let start = q.get("pageToken").and_then(|t| t.strip_prefix("page-")?.parse::<usize>().ok()).unwrap_or(0);
    let matching: Vec<Value> = s
        .activities
        .iter()
        .rev()
        .filter(|(t, _)| from.is_none_or(|f| *t >= f) && to.is_none_or(|l| *t <= l))
        .map(|(_, a)| a.clone())
        .collect();
    let items: Vec<Value> = matching.iter().skip(start).take(max).cloned().collect();
    let mut body = json!({ "kind": "admin#reports#activities", "etag": "\"fake\"" });
    if start + items.len() < matching.len() {
        body["nextPageToken"] = json!(format!("page-{}", start + items.len()));
    }
    if !items.is_empty() {
        body["items"] = json!(items);
    }
    Json(body).into_response()
}

impl FakeGoogle {
    fn start() -> FakeGoogle {
        let der = rustls_pemfile::private_key(&mut PEM.as_bytes()).unwrap().unwrap();
        let pair = ring::signature::RsaKeyPair::from_pkcs8(der.secret_der()).unwrap();
        let public_key = ring::signature::KeyPair::public_key(&pair).as_ref().to_vec();
        let state = Arc::new(Mutex::new(Fake {
            activities: Vec::new(),
            faults: VecDeque::new(),
            tokens: Vec::new(),
            token_requests: 0,
            page_requests: 0,
            public_key,
            token_uri: String::new(),
            next: 0,
        }));
        let router = Router::new()
            .route("/token", post(token))
            .route("/admin/reports/v1/activity/users/all/applications/login", get(activities))
            .with_state(state.clone());
        let server = common::Server::start(router);
        state.lock().unwrap().token_uri = format!("{}/token", server.url());
        FakeGoogle { state, server }
    }

    /// `n` login activities shaped like the Elastic sample, dated now.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let mut ids = Vec::new();
        for _ in 0..n {
            s.next += 1;
            let now = Utc::now();
            let time = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let q = format!("{}", 358_068_855_354 + s.next);
            let name = ["login_success", "login_failure", "logout"][s.next as usize % 3];
            ids.push(format!("login:{time}:{q}"));
            s.activities.push((
                now,
                json!({
                    "kind": "admin#reports#activity",
                    "id": { "time": time, "uniqueQualifier": q, "applicationName": "login", "customerId": "C03az79cb" },
                    "etag": "\"Q2W123123123123\"",
                    "actor": { "callerType": "USER", "email": "foo@bar.com", "profileId": "111111111" },
                    "ownerDomain": "elastic.com", "ipAddress": "67.43.156.13",
                    "events": [{ "type": "login", "name": name,
                                 "parameters": [{ "name": "login_type", "value": "google_password" }] }]
                }),
            ));
        }
        ids
    }

    fn block(&self, name: &str, subject: &str) -> String {
        let key = json!({
            "type": "service_account", "project_id": "auditrelay-test", "private_key_id": "k1",
            "private_key": PEM, "client_email": "reports@auditrelay-test.iam.gserviceaccount.com",
            "client_id": "100000000000000000001", "token_uri": format!("{}/token", self.server.url()),
        });
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"google_workspace\"\nurl = \"{}\"\napplication = \"login\"\n\
             subject = \"{subject}\"\nkey = '{key}'\n",
            self.server.url()
        )
    }
}

common::compliance::fake_vendor!(FakeGoogle, SUBJECT, "someone-else@example.com");

/// Activities arrive mapped through the real binary, with one token for
/// the whole run (cached, not one per request) that the fake verified.
#[test]
fn google_workspace_signs_one_assertion_and_delivers_mapped_activities() {
    let api = FakeGoogle::start();
    let ids = api.add(12);
    let dir = TestDir::new();
    let (out, log) =
        common::compliance::deliver_to_file_logged(&dir, &api.block("gw", SUBJECT), 5, &ids, "twelve activities");
    common::assert_exactly_once(&file_ids(&out), &ids, "twelve activities");
    let s = api.state.lock().unwrap();
    assert_eq!(s.token_requests, 1, "the token is cached: {}", tail(&log, 20));
    assert!(s.page_requests >= 2, "pages of 7");
    let docs: Vec<Value> =
        std::fs::read_to_string(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let failed = docs.iter().find(|d| d["event"]["action"] == "login_failure").expect("a failed login");
    assert_eq!(failed["event"]["outcome"], "failure");
    assert_eq!(failed["user"]["email"], "foo@bar.com");
    assert_eq!(failed["source"]["ip"], "67.43.156.13");
    assert_eq!(failed["observer"]["product"], "Google Workspace");
}

common::compliance::compliance_tests!(FakeGoogle::start());
