//! The `microsoft_365` source against a fake Office 365 Management
//! Activity API built from Microsoft's reference
//! (MicrosoftDocs/office-365-management-api
//! `office-365-management-api/office-365-management-activity-api-reference.md`)
//! and Elastic's mock of it (elastic/integrations
//! `packages/o365/_dev/deploy/docker/files/config.yml`):
//!
//! - a v2.0 token endpoint, `POST /{tenant}/oauth2/v2.0/token`, granting
//!   `client_credentials` for scope `{API origin}/.default` (Microsoft's
//!   `https://manage.office.com/.default`)
//!   (else 401 `invalid_client`, AADSTS7000215, as Entra ID answers a
//!   wrong secret);
//! - `POST …/subscriptions/start?contentType=…`: 200 `{"status":
//!   "enabled"}` the first time, then 400 `AF20024` ("The subscription is
//!   already enabled. No property change.");
//! - `GET …/subscriptions/content?contentType=…&startTime=…&endTime=…`:
//!   the blobs with `startTime <= contentCreated < endTime`, three a page,
//!   a `NextPageUri` header naming the next (AF20022 before a start);
//! - `GET …/activity/feed/audit/{contentId}`: the blob, a JSON array of
//!   records shaped like the unit tests' recorded samples, their
//!   `CreationTime` two hours before the blob's `contentCreated` (records
//!   reach the API late: the cursor is one of availability).
//!
//! Throttling as Microsoft's troubleshooting guide shows it: HTTP 403 with
//! code `AF429`, or a 429 with `Retry-After`.

use crate::common;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use common::agent::TestDir;
use common::compliance::Fault;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

const TENANT: &str = "b86ab9d4-fcf1-4b11-8a06-7a8f91b47fbd";
const CLIENT_ID: &str = "4345a7b9-9a63-4910-a426-35363201d503";
const SECRET: &str = "Qx8Q~fake.client.secret-value_1234567890";
const BLOBS_PER_PAGE: usize = 3;
const RECORDS_PER_BLOB: usize = 4;

struct Blob {
    content_type: &'static str,
    id: String,
    created: DateTime<Utc>,
    records: Vec<Value>,
}

struct Fake {
    blobs: Vec<Blob>,
    faults: VecDeque<Fault>,
    started: HashSet<String>,
    tokens: Vec<String>,
    /// Requests to the API (not the token endpoint).
    requests: usize,
    /// Read `startTime` two hours late: the guess the guard checks, gone wrong.
    start_misread: bool,
    /// Name the blobs' `contentUri` on another origin.
    foreign_uri: bool,
    base: String,
    next: u64,
}

type Shared = Arc<Mutex<Fake>>;

struct FakeM365 {
    state: Shared,
    server: common::Server,
}

fn af(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

async fn token(Path(tenant): Path<String>, State(st): State<Shared>, body: String) -> Response {
    let mut s = st.lock().unwrap();
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let ok = tenant == TENANT
        && form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(SECRET)
        && form.get("scope") == Some(&format!("{}/.default", s.base));
    if !ok {
        let body = json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            "error_codes": [7000215]
        });
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let tok = format!("eyJ0eXAiOiJKV1Qi.fake-{}", s.tokens.len());
    s.tokens.push(tok.clone());
    Json(json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok }))
        .into_response()
}

/// The fault queued, the bearer and the tenant checked: `Some` answers.
fn gate(s: &mut Fake, headers: &HeaderMap, tenant: &str) -> Option<Response> {
    s.requests += 1;
    if let Some(f) = s.faults.pop_front() {
        return Some(match f {
            Fault::TooManyRequests { retry_after } => {
                let mut r = af(
                    StatusCode::TOO_MANY_REQUESTS,
                    "AF429",
                    "Too many requests. Method=ListContent, PublisherId=00000000-0000-0000-0000-000000000000",
                );
                if let Some(n) = retry_after {
                    r.headers_mut().insert("retry-after", n.to_string().parse().unwrap());
                }
                r
            }
            Fault::Throttle401 => af(
                StatusCode::FORBIDDEN,
                "AF429",
                "Too many requests. Method=GetBlob, PublisherId=00000000-0000-0000-0000-000000000000",
            ),
            Fault::ServerError => af(
                StatusCode::INTERNAL_SERVER_ERROR,
                "AF50000",
                "An internal server error occurred. Retry the request.",
            ),
            Fault::Garbage => {
                ([("content-type", "text/html")], "<html><body>Service Unavailable</body></html>").into_response()
            }
        });
    }
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|b| s.tokens.iter().any(|t| t == b)) {
        return Some(
            (StatusCode::UNAUTHORIZED, Json(json!({ "Message": "Authorization has been denied for this request." })))
                .into_response(),
        );
    }
    (tenant != TENANT)
        .then(|| af(StatusCode::BAD_REQUEST, "AF20010", "The tenant ID passed in the URL does not match the token"))
}

async fn start(
    State(st): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Some(r) = gate(&mut s, &headers, &tenant) {
        return r;
    }
    let ct = q.get("contentType").cloned().unwrap_or_default();
    if !s.started.insert(ct.clone()) {
        return af(StatusCode::BAD_REQUEST, "AF20024", "The subscription is already enabled. No property change.");
    }
    Json(json!({ "contentType": ct, "status": "enabled", "webhook": null })).into_response()
}

fn listing_time(q: &HashMap<String, String>, k: &str) -> Option<DateTime<Utc>> {
    let v = q.get(k)?;
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S").ok().map(|t| t.and_utc())
}

async fn content(
    State(st): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Some(r) = gate(&mut s, &headers, &tenant) {
        return r;
    }
    // The next page's URL spells the names in lower case (below): the
    // service reads them either way.
    let canonical = ["contentType", "startTime", "endTime", "nextPage"];
    let q: HashMap<String, String> = q
        .into_iter()
        .map(|(k, v)| (canonical.iter().find(|c| c.eq_ignore_ascii_case(&k)).map_or(k, |c| c.to_string()), v))
        .collect();
    let ct = q.get("contentType").cloned().unwrap_or_default();
    if !s.started.contains(&ct) {
        return af(StatusCode::BAD_REQUEST, "AF20022", "No subscription found for the specified content type");
    }
    let now = Utc::now();
    let (from, to) = match (q.contains_key("startTime"), q.contains_key("endTime")) {
        (false, false) => (now - chrono::Duration::hours(24), now),
        _ => match (listing_time(&q, "startTime"), listing_time(&q, "endTime")) {
            (Some(f), Some(t)) if f <= t && t - f <= chrono::Duration::hours(24) => (f, t),
            _ => return af(StatusCode::BAD_REQUEST, "AF20030", "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart"),
        },
    };
    let from = if s.start_misread && q.contains_key("startTime") { from + chrono::Duration::hours(2) } else { from };
    let skip: usize = q.get("nextPage").and_then(|p| p.parse().ok()).unwrap_or(0);
    let matching: Vec<&Blob> =
        s.blobs.iter().filter(|b| b.content_type == ct && from <= b.created && b.created < to).collect();
    let host = if s.foreign_uri { s.base.replace("127.0.0.1", "localhost") } else { s.base.clone() };
    let items: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(BLOBS_PER_PAGE)
        .map(|b| {
            json!({
                "contentType": b.content_type, "contentId": b.id,
                "contentUri": format!("{host}/api/v1.0/{TENANT}/activity/feed/audit/{}", b.id),
                "contentCreated": b.created.to_rfc3339_opts(SecondsFormat::Millis, true),
                "contentExpiration": (b.created + chrono::Duration::days(7)).to_rfc3339_opts(SecondsFormat::Millis, true)
            })
        })
        .collect();
    let mut r = Json(json!(items)).into_response();
    if skip + BLOBS_PER_PAGE < matching.len() {
        // Elastic's newer mock: the undocumented lower-case spelling.
        let mut next = format!(
            "{}/api/v1.0/{TENANT}/activity/feed/subscriptions/content?contenttype={ct}&nextPage={}",
            s.base,
            skip + BLOBS_PER_PAGE
        );
        for k in ["startTime", "endTime"] {
            if let Some(v) = q.get(k) {
                next.push_str(&format!("&{k}={v}"));
            }
        }
        r.headers_mut().insert("NextPageUri", next.parse().unwrap());
    }
    r
}

async fn blob(State(st): State<Shared>, Path((tenant, id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let mut s = st.lock().unwrap();
    if let Some(r) = gate(&mut s, &headers, &tenant) {
        return r;
    }
    match s.blobs.iter().find(|b| b.id == id) {
        Some(b) => Json(json!(b.records)).into_response(),
        None => af(StatusCode::BAD_REQUEST, "AF20050", "The specified content doesn't exist."),
    }
}

/// A record shaped like the unit tests' recorded samples: an STS sign-in
/// (Elastic's test input), a failed logon (Microsoft's reference), a
/// OneDrive page viewed (Elastic's mock) and a user added.
fn record(k: u64, at: DateTime<Utc>) -> Value {
    let id = format!("ca0efc24-1b89-4962-8fef-{k:012x}");
    let t = at.format("%Y-%m-%dT%H:%M:%S").to_string();
    match k % 4 {
        0 => {
            json!({"ActorIpAddress":"67.43.156.15","ClientIP":"67.43.156.15","CreationTime":t,"Id":id,"ObjectId":"00000002-0000-0000-c000-000000000000","Operation":"UserLoggedIn","OrganizationId":TENANT,"RecordType":15,"ResultStatus":"Succeeded","UserId":"asr@testsiem.onmicrosoft.com","UserKey":"1003200096971F55@testsiem.onmicrosoft.com","UserType":0,"Version":1,"Workload":"AzureActiveDirectory"})
        }
        1 => {
            json!({"CreationTime":t,"Id":id,"Operation":"PasswordLogonInitialAuthUsingPassword","OrganizationId":TENANT,"RecordType":9,"ResultStatus":"failed","UserKey":"1153977025279851686@contoso.onmicrosoft.com","UserType":0,"Workload":"AzureActiveDirectory","ClientIP":"134.170.188.221","ObjectId":"admin@contoso.onmicrosoft.com","UserId":"admin@contoso.onmicrosoft.com","AzureActiveDirectoryEventType":0})
        }
        2 => {
            json!({"ItemType":"Page","Workload":"OneDrive","OrganizationId":TENANT,"UserId":"asr@testsiem.onmicrosoft.com","CreationTime":t,"ClientIP":"213.97.47.133","UserType":0,"Version":1,"EventSource":"SharePoint","UserAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.14; rv:72.0) Gecko/20100101 Firefox/72.0","Operation":"PageViewed","ObjectId":"https://testsiem-my.sharepoint.com/personal/asr_testsiem_onmicrosoft_com/_layouts/15/onedrive.aspx","Id":id,"RecordType":4})
        }
        _ => {
            json!({"CreationTime":t,"Id":id,"Operation":"Add user.","OrganizationId":TENANT,"RecordType":8,"ResultStatus":"Success","UserKey":"10032000A1B2C3D4@testsiem.onmicrosoft.com","UserType":0,"Version":1,"Workload":"AzureActiveDirectory","ClientIP":"[2001:db8::7]:51234","ObjectId":"new.hire@testsiem.onmicrosoft.com","UserId":"admin@testsiem.onmicrosoft.com"})
        }
    }
}

impl FakeM365 {
    fn start() -> FakeM365 {
        let state = Arc::new(Mutex::new(Fake {
            blobs: Vec::new(),
            faults: VecDeque::new(),
            started: HashSet::new(),
            tokens: Vec::new(),
            requests: 0,
            start_misread: false,
            foreign_uri: false,
            base: String::new(),
            next: 0,
        }));
        let feed = "/api/v1.0/{tenant}/activity/feed";
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route(&format!("{feed}/subscriptions/start"), post(start))
            .route(&format!("{feed}/subscriptions/content"), get(content))
            .route(&format!("{feed}/audit/{{id}}"), get(blob))
            .with_state(state.clone());
        let server = common::Server::start(router);
        state.lock().unwrap().base = server.url();
        FakeM365 { state, server }
    }

    /// `n` records in blobs of up to four, spread over two content types,
    /// each blob available now, its records two hours old.
    fn add(&self, n: usize) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let mut ids = Vec::new();
        let mut left = n;
        while left > 0 {
            let take = left.min(RECORDS_PER_BLOB);
            left -= take;
            let now = Utc::now();
            let mut records = Vec::new();
            for _ in 0..take {
                s.next += 1;
                let r = record(s.next, now - chrono::Duration::hours(2));
                ids.push(r["Id"].as_str().unwrap().to_owned());
                records.push(r);
            }
            let k = s.blobs.len();
            let content_type = if k % 2 == 0 { "Audit.AzureActiveDirectory" } else { "Audit.SharePoint" };
            let id = format!("20200210151313{k:06}$f28ab78ad40140608012736e373933eb$audit_azureactivedirectory$Audit_AzureActiveDirectory$emea0026");
            s.blobs.push(Blob { content_type, id, created: now, records });
        }
        ids
    }

    fn block(&self, name: &str, secret: &str) -> String {
        let url = self.server.url();
        format!(
            "[[source]]\nname = \"{name}\"\ntype = \"microsoft_365\"\nurl = \"{url}\"\n\
             token_url = \"{url}/{TENANT}/oauth2/v2.0/token\"\ntenant_id = \"{TENANT}\"\n\
             client_id = \"{CLIENT_ID}\"\nclient_secret = \"{secret}\"\n"
        )
    }
}

common::compliance::fake_vendor!(FakeM365, SECRET, "not-the-client-secret");

/// Records arrive mapped as the unit tests' recorded shapes say, through
/// the real binary, though each is two hours older than its blob and the
/// window (`start_at = "1h"`): the cursor is one of availability.
#[test]
fn microsoft_365_records_older_than_the_window_arrive_mapped_to_ecs() {
    let api = FakeM365::start();
    let ids = api.add(12);
    let dir = TestDir::new();
    let out = common::compliance::deliver_to_file(&dir, &api.block("m365", SECRET), 5, &ids, "twelve records");
    let docs: Vec<Value> =
        std::fs::read_to_string(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let failed = docs.iter().find(|d| d["event"]["outcome"] == "failure").expect("a failed logon");
    assert_eq!(failed["event"]["action"], "PasswordLogonInitialAuthUsingPassword");
    assert_eq!(failed["event"]["category"], json!(["authentication"]));
    assert_eq!(failed["user"]["email"], "admin@contoso.onmicrosoft.com");
    assert_eq!(failed["source"]["ip"], "134.170.188.221");
    assert_eq!(failed["observer"]["product"], "Microsoft 365");
    let added = docs.iter().find(|d| d["event"]["action"] == "Add user.").expect("a user added");
    assert_eq!(added["event"]["category"], json!(["iam"]));
    assert_eq!(added["event"]["type"], json!(["user", "creation"]));
    assert_eq!(added["user"]["target"]["id"], "new.hire@testsiem.onmicrosoft.com");
    assert_eq!(added["source"]["ip"], "2001:db8::7");
    let s = api.state.lock().unwrap();
    assert!(s.started.contains("Audit.AzureActiveDirectory") && s.started.contains("DLP.All"), "every type started");
}

/// Ten blobs in one window: the listing pages by `NextPageUri` (in the
/// lower-case spelling Elastic's newer mock records) and every blob of
/// every page is fetched once.
#[test]
fn microsoft_365_pages_a_listing_by_next_page_uri() {
    let api = FakeM365::start();
    let ids = api.add(40);
    let dir = TestDir::new();
    common::compliance::deliver_to_file(&dir, &api.block("m365", SECRET), 5, &ids, "forty records in ten blobs");
}

/// A `startTime` read two hours late makes every window look empty: `check
/// --connect` and every poll fail naming the filter until it is read as
/// sent, and then every record arrives.
#[test]
fn microsoft_365_guards_an_empty_walk_against_a_window_read_otherwise() {
    let api = FakeM365::start();
    api.state.lock().unwrap().start_misread = true;
    let ids = api.add(3);
    let fix = || api.state.lock().unwrap().start_misread = false;
    let says = "Microsoft did not filter by contentCreated as sent";
    common::compliance::check_wrong_guess_is_loud(&api.block("m365", SECRET), says, fix, &ids);
}

/// A `contentUri` on another origin is refused before the token goes
/// there: `check --connect` names it, and the fake sees no request for it.
#[test]
fn microsoft_365_refuses_a_content_uri_on_another_origin() {
    let api = FakeM365::start();
    api.state.lock().unwrap().foreign_uri = true;
    api.add(2);
    let dir = TestDir::new();
    dir.write_config(&format!(
        "{}\n{}{}",
        dir.agent_section(),
        common::compliance::with_test_defaults(&api.block("m365", SECRET)),
        common::agent::file_output("out", &dir.file("out.jsonl"), 5)
    ));
    let (code, text) = dir.check_connect();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("refused to send a request to http://localhost"), "{text}");
}

common::compliance::compliance_tests!(FakeM365::start());
