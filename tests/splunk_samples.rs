//! The sample events the Splunk add-on is tested on
//! (`packaging/splunk/tests/samples.jsonl`, read by
//! `packaging/splunk/tests/test_cim.py`) are what this build's connectors
//! make of typical vendor records: logins, failed logins, user and role
//! changes, configuration changes. Each record goes through the connector's
//! own `normalise` and `event::normalise`, as the poller does, and the
//! document is what the HEC and file outputs send.
//!
//! When a connector's mapping changes on purpose, regenerate the file with
//! `UPDATE_SPLUNK_SAMPLES=1 cargo test --test integration splunk_samples::` and review
//! the diff (and the add-on, if the CIM fields change).

use auditrelay::settings::secret::ProcessEnv;
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/splunk/tests/samples.jsonl");

/// `(connector, source block keys, raw records as the API's page holds them)`.
fn records() -> Vec<(&'static str, &'static str, Vec<Value>)> {
    let octi_node = |id: &str, ty: &str, scope: &str, status: &str, user: &str, ctx: Value| {
        json!({
            "id": id, "entity_type": "Activity", "event_type": ty, "event_scope": scope, "event_status": status,
            "timestamp": "2024-05-01T10:00:00.123Z", "user_id": "88ec0c6a-13ce-5e39-b486-354fe4a7084f",
            "user": { "id": "88ec0c6a-13ce-5e39-b486-354fe4a7084f", "name": user },
            "context_data": ctx, "raw_data": null
        })
    };
    let invicti = |id: &str, kind: &str, msg: &str| {
        json!({
            "Id": id, "CreatedAt": "2024-05-01T10:00:05", "Type": kind, "EndpointType": "Web",
            "UserId": "5b1e5c7a-0000-4000-8000-00000000aaaa", "UserName": "Alice Admin",
            "UserEmail": "alice@example.com", "AccountId": "acc-1", "Message": msg
        })
    };
    let keepnet = |id: &str, op: &str, entity: &str, desc: &str| {
        json!({
            "resourceId": id, "logDate": "2024-05-01T10:00:07.250Z", "operation": op, "userName": "alice@example.com",
            "ip": "203.0.113.9", "userAgent": "Mozilla/5.0", "entityName": entity,
            "entityResourceId": "ent-42", "companyId": "comp-1", "auditDescription": desc
        })
    };
    let guance = |id: &str, title: &str, op: &str, menu: &str| {
        json!({
            "time": 1_714_557_608_000i64, "df_event_id": id, "df_title": title, "df_operation_name": op,
            "df_menu": menu, "df_origin": "front", "df_user_id": "acnt_1", "df_user_name": "alice",
            "df_user_email": "alice@example.com", "df_role_scope": "owner", "df_workspace": "wksp_1",
            "df_message": format!("alice {title}")
        })
    };
    let demo = |k: u32, action: &str, category: &str, ty: &str, outcome: &str| {
        let mut e = json!({
            "id": format!("evt-{k:012}"), "time": format!("2024-05-01T10:00:{:02}.{:03}Z", k % 60, k * 37 % 1000),
            "actor": { "id": "u-1002", "name": "bob", "email": "bob@example.com" },
            "action": action, "category": category, "type": ty, "outcome": outcome,
            "client": { "ip": "198.51.100.23", "user_agent": "curl/8.5.0" }
        });
        if outcome == "failure" {
            e["reason"] = json!("invalid_password");
        }
        e
    };
    let sekoia: Vec<Value> =
        serde_json::from_str(include_str!("../src/sources/sekoia/samples.json")).expect("sekoia samples");
    // Okta: the connector's recorded-shape sample (Elastic's Filebeat Okta
    // module test input: a logout, a login, the sign-on policy's verdict, a
    // report of suspicious activity), then the login record with what a
    // failed login, a user created, a user added to a group and a policy
    // updated change in it (eventType, outcome, target), as Okta's System
    // Log event types reference names them.
    let okta_sample: Vec<Value> = include_str!("../src/sources/okta/beats_okta_system_test.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("okta sample"))
        .collect();
    let okta_login = okta_sample
        .iter()
        .find(|e| e["eventType"] == "user.session.start")
        .expect("the okta sample has a login")
        .clone();
    let okta_target = |ty: &str, id: &str, alternate: &str, display: &str| json!({ "alternateId": alternate, "detailEntry": null, "displayName": display, "id": id, "type": ty });
    let okta_like = |uuid: &str, published: &str, event_type: &str, message: &str, outcome: Value, target: Value| {
        let mut e = okta_login.clone();
        e["uuid"] = json!(uuid);
        e["published"] = json!(published);
        e["eventType"] = json!(event_type);
        e["legacyEventType"] = Value::Null;
        e["displayMessage"] = json!(message);
        e["outcome"] = outcome;
        e["target"] = target;
        if event_type != "user.session.start" {
            e["debugContext"] = json!({ "debugData": {} });
        }
        e
    };
    let ok = json!({ "reason": null, "result": "SUCCESS" });
    let bob = okta_target("User", "00u1newuser0001x6", "bob@example.com", "Bob Example");
    let mut okta = okta_sample.clone();
    okta.extend([
        okta_like(
            "5f9a1c3e-4f67-11ea-abd3-1f5d113f2546",
            "2020-02-14T20:19:02.101Z",
            "user.session.start",
            "User login to Okta",
            json!({ "reason": "INVALID_CREDENTIALS", "result": "FAILURE" }),
            Value::Null,
        ),
        okta_like(
            "6b2d7e10-4f67-11ea-abd3-1f5d113f2546",
            "2020-02-14T20:21:13.412Z",
            "user.lifecycle.create",
            "Create Okta user",
            ok.clone(),
            json!([bob]),
        ),
        okta_like(
            "6b2d7e11-4f67-11ea-abd3-1f5d113f2546",
            "2020-02-14T20:21:14.007Z",
            "group.user_membership.add",
            "Add user to group membership",
            ok.clone(),
            json!([bob, okta_target("UserGroup", "00g1engineers01x6", "unknown", "Engineering")]),
        ),
        okta_like(
            "6b2d7e12-4f67-11ea-abd3-1f5d113f2546",
            "2020-02-14T20:25:40.950Z",
            "policy.lifecycle.update",
            "Update policy",
            ok,
            json!([okta_target("PolicyEntity", "00p1abvweGGDW10Ur4x6", "unknown", "Default Policy")]),
        ),
    ]);
    // GitHub: the connector's recorded-shape sample (the example answer of
    // GitHub's REST reference, "Get the audit log for an enterprise"): a
    // member added to a team, an organisation created, a repository deleted.
    let github: Vec<Value> =
        serde_json::from_str(include_str!("../src/sources/github/audit_log_sample.json")).expect("github sample");
    // Slack: the connector's recorded-shape sample (Elastic's Slack
    // integration pipeline test input: a login, a user created, a file
    // downloaded, two anomalies, a malicious file), which has no
    // configuration change; so a made-up one follows, on the login's shape:
    // an app installed on the organisation (`app_installed`, an action of
    // Slack's list; the entity's `app` as python-slack-sdk's `App` has it).
    let mut slack: Vec<Value> = include_str!("../src/sources/slack/elastic_slack_audit_test.log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("slack sample"))
        .collect();
    let mut slack_app =
        slack.iter().find(|e| e["action"] == "user_login").expect("the slack sample has a login").clone();
    slack_app["id"] = json!("5e3c1a2b-7d4f-4e6a-9b8c-0d1e2f3a4b5c");
    slack_app["date_create"] = json!(1_521_214_400);
    slack_app["action"] = json!("app_installed");
    slack_app["entity"] = json!({
        "type": "app",
        "app": { "id": "A0123ABCDEF", "name": "Birdland Bot", "is_distributed": false, "is_directory_approved": true, "scopes": ["chat:write"] }
    });
    slack.push(slack_app);
    vec![
        (
            "opencti",
            "type = \"opencti\"\nurl = \"https://opencti.example.com\"\ntoken = \"t\"\n",
            vec![
                octi_node("1714557600123-0", "authentication", "login", "success", "admin",
                    json!({ "provider": "local", "message": "login from provider `local`" })),
                octi_node("1714557600124-0", "authentication", "login", "error", "",
                    json!({ "username": "mallory", "message": "detects `login failure` for `mallory`" })),
                octi_node("1714557600125-0", "mutation", "update", "success", "admin",
                    json!({ "entity_id": "u2", "entity_name": "bob", "entity_type": "User", "message": "updates `bob` (User)" })),
                octi_node("1714557600126-0", "mutation", "create", "success", "admin",
                    json!({ "entity_id": "r9", "entity_name": "Analysts", "entity_type": "Role", "message": "creates `Analysts` (Role)" })),
                octi_node("1714557600127-0", "mutation", "update", "success", "admin",
                    json!({ "entity_id": "s1", "entity_name": "Platform settings", "entity_type": "Settings", "message": "updates `Platform settings` (Settings)" })),
            ],
        ),
        ("sekoia", "type = \"sekoia\"\nurl = \"https://api.sekoia.io\"\ntoken = \"t\"\n", sekoia),
        (
            "invicti",
            "type = \"invicti\"\nurl = \"https://www.netsparkercloud.com\"\nuser_id = \"u\"\ntoken = \"t\"\n",
            vec![
                invicti("a1", "Signin", "Alice Admin signed in"),
                invicti("a2", "LoginAttemptFailed", "Login attempt failed for alice@example.com"),
                invicti("a3", "UserCreated", "User bob@example.com created"),
                invicti("a4", "RoleUpdated", "Role Scanner updated"),
                invicti("a5", "ScanPolicyUpdated", "Scan policy Default updated"),
            ],
        ),
        (
            "keepnet",
            "type = \"keepnet\"\nurl = \"https://api.keepnetlabs.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
            vec![
                keepnet("k1", "Create", "PhishingCampaign", "Phishing campaign Q2 created"),
                keepnet("k2", "Update", "CompanySettings", "Company settings updated"),
                keepnet("k3", "Delete", "TargetUser", "Target user bob deleted"),
            ],
        ),
        (
            "guance",
            "type = \"guance\"\nurl = \"https://openapi.guance.com\"\ntoken = \"t\"\n",
            vec![
                guance("g1", "login", "Login", "account"),
                guance("g2", "modified the monitor", "Modify monitor", "monitor"),
            ],
        ),
        (
            "demo",
            "type = \"demo\"\n",
            vec![
                demo(1, "login", "authentication", "start", "success"),
                demo(2, "login", "authentication", "start", "failure"),
                demo(3, "logout", "authentication", "end", "success"),
                demo(4, "user-role-change", "iam", "change", "success"),
                demo(5, "api-key-create", "iam", "creation", "success"),
                demo(6, "user-delete", "iam", "deletion", "failure"),
                demo(7, "mfa-enroll", "authentication", "change", "success"),
                demo(8, "settings-update", "configuration", "change", "success"),
                demo(9, "report-export", "file", "access", "success"),
            ],
        ),
        ("okta", "type = \"okta\"\nurl = \"https://acme.okta.com\"\ntoken = \"t\"\n", okta),
        ("github", "type = \"github\"\norg = \"octo-corp\"\ntoken = \"t\"\n", github),
        ("slack", "type = \"slack\"\ntoken = \"xoxp-t\"\n", slack),
        (
            "http_json",
            "type = \"http_json\"\nurl = \"https://audit.example.com/v1/audit\"\nevents = \"/items\"\nid = \"/id\"\ntimestamp = \"/created_at\"\n",
            vec![json!({
                "id": "h1", "created_at": "2024-05-01T10:00:09Z", "action": "login", "user": "carol",
                "ip": "192.0.2.10", "user_agent": "Mozilla/5.0", "status": "success"
            })],
        ),
    ]
}

fn documents() -> String {
    let mut out = String::new();
    let fallback = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
    for (connector, keys, raws) in records() {
        let text = format!(
            "[[source]]\nname = \"{connector}\"\n{keys}\n[[output]]\nname = \"o\"\ntype = \"file\"\npath = \"-\"\n"
        );
        let cfg = auditrelay::config::parse(&text).unwrap_or_else(|p| panic!("{connector}: {p:?}")).sources.remove(0);
        let (api, _) = auditrelay::sources::build_api(&cfg.kind, "source[0]", &ProcessEnv)
            .unwrap_or_else(|p| panic!("{connector}: {p:?}"));
        for raw in raws {
            let n = api.normalise(&raw);
            let e = auditrelay::event::normalise(connector, api.observer(), &raw, n, fallback);
            out.push_str(&serde_json::to_string(&e.document()).unwrap());
            out.push('\n');
        }
    }
    out
}

#[test]
fn splunk_add_on_samples_are_what_the_connectors_make_now() {
    let now = documents();
    if std::env::var_os("UPDATE_SPLUNK_SAMPLES").is_some() {
        std::fs::write(SAMPLES, &now).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(SAMPLES).unwrap_or_default();
    if committed != now {
        let first = committed.lines().zip(now.lines()).position(|(a, b)| a != b);
        panic!(
            "{SAMPLES} is out of date (first differing line: {first:?}); regenerate with \
             UPDATE_SPLUNK_SAMPLES=1 cargo test --test integration splunk_samples::, review the diff and the add-on's \
             CIM mapping (packaging/splunk/tests/test_cim.py)"
        );
    }
    for line in now.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v["@timestamp"].is_string() && v["event"]["id"].is_string(), "{line}");
    }
}
