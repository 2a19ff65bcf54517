//! Credentials stay with their origin: an API that points the agent at
//! another origin (a `Link`, a 302, a 307 on GET and on POST, a 307 on the
//! OAuth2 token request), a HEC that redirects and an etcd that redirects
//! get nothing sent there, with or without auth. The collector on the
//! other port must see no request at all, and none of the configured
//! secrets anywhere.

use super::wire::{response, Seen, Wire};
use crate::common::agent::{file_ids, file_output, tail, wait_until_or, TestDir, DEADLINE};
use base64::Engine;

/// Every secret the agent is configured with or is handed (the OAuth2
/// access token), each distinct so a leak names itself.
const SECRETS: [&str; 9] = [
    "tok-BEARER-1",
    "pw-BASIC-2",
    "key-HEADER-3",
    "cs-OAUTH-4",
    "hdr-CUSTOM-5",
    "at-ACCESS-6",
    "hec-TOKEN-7",
    "etcd-PW-8",
    "cid-OAUTH-9",
];

/// The ways an API can point the agent elsewhere.
const ATTACKS: [&str; 4] = ["link", "r302", "r307", "post307"];
/// The ways a source authenticates.
const AUTHS: [&str; 4] = ["bearer", "basic", "header", "oauth2"];

/// Secrets as they travel: as configured, and Basic's base64 of `user:pw`.
fn encodings() -> Vec<String> {
    let mut all: Vec<String> = SECRETS.iter().map(|s| s.to_string()).collect();
    all.push(base64::engine::general_purpose::STANDARD.encode("usr-BASIC:pw-BASIC-2"));
    all
}

/// No request reached the collector, and none carried a secret.
fn assert_nothing_reached(collector: &Wire, what: &str) {
    let seen = collector.seen();
    for s in &seen {
        for secret in encodings() {
            assert!(!s.text().contains(&secret), "{what}: secret {secret:?} reached the other origin:\n{}", s.text());
        }
    }
    assert!(
        seen.is_empty(),
        "{what}: the other origin received requests: {:?}",
        seen.iter().map(|s| &s.head).collect::<Vec<_>>()
    );
}

/// The hostile API: `/ATTACK/AUTH` answers one event and points at the
/// collector the way ATTACK says; `/token` issues the access token and
/// `/token307` redirects the token request to the collector.
fn hostile_api(elsewhere: String) -> Wire {
    Wire::start(move |req: &Seen| {
        let path = req.target.split('?').next().unwrap_or_default().to_owned();
        let steal = format!("{elsewhere}/steal{path}");
        match path.split('/').nth(1).unwrap_or_default() {
            "token" => response(200, &[], r#"{"access_token":"at-ACCESS-6","token_type":"bearer","expires_in":3600}"#),
            "token307" => response(307, &[("location", &format!("{elsewhere}/token"))], ""),
            "link" => {
                let time = (chrono::Utc::now() - chrono::Duration::minutes(30)).to_rfc3339();
                let body = format!(r#"{{"items":[{{"id":"{}","time":"{time}"}}]}}"#, path.trim_start_matches('/'));
                response(200, &[("link", &format!("<{steal}>; rel=\"next\""))], &body)
            }
            "r302" => response(302, &[("location", &steal)], ""),
            "r307" | "post307" => response(307, &[("location", &steal)], ""),
            _ => response(404, &[], "{}"),
        }
    })
}

fn auth_toml(auth: &str, api: &str, token_path: &str) -> String {
    match auth {
        "bearer" => r#"{ type = "bearer", token = "tok-BEARER-1" }"#.into(),
        "basic" => r#"{ type = "basic", username = "usr-BASIC", password = "pw-BASIC-2" }"#.into(),
        "header" => r#"{ type = "header", name = "X-Api-Key", value = "key-HEADER-3" }"#.into(),
        _ => format!(
            r#"{{ type = "oauth2", token_url = "{api}/{token_path}", client_id = "cid-OAUTH-9", client_secret = "cs-OAUTH-4" }}"#
        ),
    }
}

fn source(name: &str, url: &str, method: &str, auth: &str) -> String {
    let body = if method == "POST" { "body = \"{}\"\n" } else { "" };
    format!(
        r#"[[source]]
name = "{name}"
type = "http_json"
url = "{url}"
method = "{method}"
{body}auth = {auth}
headers = {{ "X-Custom" = "hdr-CUSTOM-5" }}
events = "/items"
id = "/id"
timestamp = "/time"
pagination = {{ type = "link" }}
interval = "1s"
start_at = "1h"
outputs = ["file"]
"#
    )
}

/// One agent with a source for every attack and auth kind, one whose token
/// endpoint redirects, and a HEC output that redirects: the collector sees
/// nothing, each source reports the refused origin by name, and the
/// events the API did send arrive once.
#[test]
fn no_secret_reaches_another_origin_by_link_redirect_or_token_redirect() {
    let collector = Wire::collector();
    let api = hostile_api(collector.url());
    let hec = Wire::start({
        let elsewhere = collector.url();
        move |_| response(307, &[("location", &format!("{elsewhere}/services/collector/event"))], "")
    });
    let dir = TestDir::new();
    let mut cfg = dir.agent_section();
    let mut names = Vec::new();
    for attack in ATTACKS {
        for auth in AUTHS {
            let name = format!("{attack}-{auth}");
            let method = if attack == "post307" { "POST" } else { "GET" };
            let url = format!("{}/{attack}/{auth}", api.url());
            cfg.push_str(&source(&name, &url, method, &auth_toml(auth, &api.url(), "token")));
            names.push(name);
        }
    }
    cfg.push_str(&source(
        "tok307",
        &format!("{}/link/tok307", api.url()),
        "GET",
        &auth_toml("oauth2", &api.url(), "token307"),
    ));
    names.push("tok307".into());
    cfg.push_str(&file_output("file", &dir.file("out.jsonl"), 5));
    cfg.push_str(&format!(
        "[[output]]\nname = \"hec\"\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"hec-TOKEN-7\"\nack = false\nretry_max_interval = \"1s\"\n",
        hec.url()
    ));
    // The HEC output gets the demo's events (the file output the sources').
    cfg.push_str("[[source]]\nname = \"demo\"\ntype = \"demo\"\ninterval = \"1s\"\noutputs = [\"hec\"]\n");
    let agent = dir.start_with(&cfg);
    let refused = |name: &str, log: &str| {
        log.lines().any(|l| l.contains(&format!("source {name}: refused to send a request to {}", collector.url())))
    };
    wait_until_or(
        "every source to report the refused origin, and HEC the refused redirect",
        DEADLINE,
        || {
            let log = agent.stderr();
            names.iter().filter(|n| n.as_str() != "tok307").all(|n| refused(n, &log))
                && log.contains(&format!("redirect to {} refused", collector.url()))
                && AUTHS.iter().all(|a| file_ids(&dir.file("out.jsonl")).contains(&format!("link/{a}")))
        },
        || tail(&agent.stderr(), 40),
    );
    let log = agent.stop();
    assert_nothing_reached(&collector, "Link, 302, 307 (GET and POST), token 307 and HEC 307");
    // The token request that was redirected failed loudly, naming the source.
    assert!(
        log.lines().any(|l| l.contains("tok307") && l.contains("redirect to") && l.contains("refused")),
        "{}",
        tail(&log, 40)
    );
    assert!(api.seen().iter().any(|s| s.method == "POST" && s.target.starts_with("/post307")), "the POSTs were made");
    // What the API sent before pointing elsewhere arrived, once each.
    let ids = file_ids(&dir.file("out.jsonl"));
    for auth in AUTHS {
        let id = format!("link/{auth}");
        assert_eq!(ids.iter().filter(|i| **i == id).count(), 1, "{id} once in {ids:?}\n{}", tail(&log, 60));
    }
    // No line of the log holds a secret either.
    for secret in encodings() {
        assert!(!log.contains(&secret), "the log shows {secret:?}");
    }
}

/// An origin listed in `allowed_origins` may be paged to, and gets the
/// credentials: the operator said so.
#[test]
fn allowed_origins_widen_the_rule_explicitly() {
    let other = Wire::start(|_| response(200, &[], r#"{"items":[]}"#));
    let api = hostile_api(other.url());
    let dir = TestDir::new();
    let mut cfg = dir.agent_section();
    cfg.push_str(&source("paged", &format!("{}/link/bearer", api.url()), "GET", &auth_toml("bearer", "", "")));
    cfg.push_str(&format!("allowed_origins = [\"{}\"]\n", other.url()));
    cfg.push_str(&file_output("file", &dir.file("out.jsonl"), 5));
    let agent = dir.start_with(&cfg);
    wait_until_or(
        "the allowed origin to be asked",
        DEADLINE,
        || !other.seen().is_empty(),
        || tail(&agent.stderr(), 30),
    );
    let log = agent.stop();
    assert!(other.seen()[0].head.contains("tok-BEARER-1"), "the allowed origin gets the token");
    assert!(!log.contains("refused to send"), "{}", tail(&log, 30));
}

/// etcd's `auth/authenticate` (user and password) never follows a redirect.
#[test]
fn etcd_redirect_is_not_followed() {
    let collector = Wire::collector();
    let etcd = Wire::start({
        let elsewhere = collector.url();
        move |req: &Seen| response(307, &[("location", &format!("{elsewhere}{}", req.target))], "")
    });
    let dir = TestDir::new();
    let mut cfg = dir.agent_section();
    cfg.push_str(&format!("[cluster]\netcd = [\"{}\"]\nuser = \"root\"\npassword = \"etcd-PW-8\"\n", etcd.url()));
    cfg.push_str("[[source]]\nname = \"demo\"\ntype = \"demo\"\n");
    cfg.push_str(&file_output("file", &dir.file("out.jsonl"), 5));
    let agent = dir.start_with(&cfg);
    wait_until_or(
        "etcd to have been asked",
        DEADLINE,
        || !etcd.seen().is_empty() && agent.stderr().contains("refused"),
        || tail(&agent.stderr(), 30),
    );
    let log = agent.stop();
    assert_nothing_reached(&collector, "etcd 307");
    assert!(!log.contains("etcd-PW-8"), "{}", tail(&log, 30));
}

/// An `https` API that points to `http` (a `Link`, a 302) gets nothing
/// sent there, and `allowed_origins` cannot list an `http` origin for an
/// `https` source: credentials never go from https to http.
#[test]
fn an_https_source_never_sends_over_http() {
    let Some(openssl) = crate::common::rsyslog::openssl() else { return };
    let dir = TestDir::new();
    crate::common::certs::make_ca(&openssl, dir.path());
    crate::common::certs::issue(&openssl, dir.path(), "server", "localhost", "serverAuth");
    let collector = Wire::collector();
    let elsewhere = collector.url();
    let api = Wire::start_tls(&dir.file("server.pem"), &dir.file("server.key"), move |req: &Seen| {
        let steal = format!("{elsewhere}/steal");
        if req.target.starts_with("/link") {
            let time = (chrono::Utc::now() - chrono::Duration::minutes(30)).to_rfc3339();
            let body = format!(r#"{{"items":[{{"id":"tls-1","time":"{time}"}}]}}"#);
            response(200, &[("link", &format!("<{steal}>; rel=\"next\""))], &body)
        } else {
            response(302, &[("location", &steal)], "")
        }
    });
    assert!(api.url().starts_with("https://"));
    let tls = format!("tls = {{ ca_file = \"{}\", ca_only = true }}\n", dir.file("ca.pem").display());
    let mut cfg = dir.agent_section();
    for (name, path) in [("tls-link", "link"), ("tls-302", "r302")] {
        cfg.push_str(&source(name, &format!("{}/{path}", api.url()), "GET", &auth_toml("basic", "", "")));
        cfg.push_str(&tls);
    }
    cfg.push_str(&file_output("file", &dir.file("out.jsonl"), 5));
    let agent = dir.start_with(&cfg);
    wait_until_or(
        "both sources to refuse the http origin",
        DEADLINE,
        || {
            let log = agent.stderr();
            ["tls-link", "tls-302"]
                .iter()
                .all(|n| log.contains(&format!("source {n}: refused to send a request to {}", collector.url())))
        },
        || tail(&agent.stderr(), 30),
    );
    agent.stop();
    assert_nothing_reached(&collector, "https to http");
    assert!(
        api.seen().iter().any(|s| s.head.to_ascii_lowercase().contains("authorization: basic")),
        "the https API got the credentials"
    );

    // Listing the http origin is refused by check.
    let mut cfg = dir.agent_section();
    cfg.push_str(&source("tls-link", &format!("{}/link", api.url()), "GET", &auth_toml("basic", "", "")));
    cfg.push_str(&format!("allowed_origins = [\"{}\"]\n", collector.url()));
    cfg.push_str(&file_output("file", &dir.file("out.jsonl"), 5));
    dir.write_config(&cfg);
    let out = dir.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("source[0].allowed_origins[0]") && text.contains("never go from https to http"), "{text}");
}
