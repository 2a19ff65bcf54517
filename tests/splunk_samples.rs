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
fn records() -> Vec<(&'static str, String, Vec<Value>)> {
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
    // 1Password: the connector's recorded-shape sample (Elastic's 1Password
    // pipeline test input: a user suspended), then on its shape a vault
    // created and a group membership joined (`object_type` and `action`
    // values of the Events API's audit event reference).
    let onepassword_sample: Value = serde_json::from_str(
        include_str!("../src/sources/onepassword/elastic_1password_auditevents_test.jsonl")
            .lines()
            .next()
            .expect("a line"),
    )
    .expect("onepassword sample");
    let op_like = |uuid: &str, action: &str, object_type: &str, object_uuid: &str| {
        let mut e = onepassword_sample.clone();
        e["uuid"] = json!(uuid);
        e["timestamp"] = json!("2022-10-24T21:20:11.117451Z");
        e["action"] = json!(action);
        e["object_type"] = json!(object_type);
        e["object_uuid"] = json!(object_uuid);
        e
    };
    let onepassword = vec![
        onepassword_sample.clone(),
        op_like("4TXGX3ZGFNGCNKTPXSBHYGCVGU", "create", "vault", "7VKWKVPXFZD4TOULH2RZPSCE3E"),
        op_like("5UYHY4AHGOHDOLUQYTCIZHDWHV", "join", "gm", "AB2RL6CQSVA5JM6XH6SBH7PBAQ"),
    ];
    // Google Workspace: the connector's recorded-shape sample (Elastic's
    // login pipeline test input: a failed login, a login verification),
    // each with `events` as the API's array, then two admin activities on
    // the Reports API reference's `Activity` shape: a user created and an
    // application setting changed (event names of the Admin audit
    // activity events reference).
    let gw_lines: Vec<Value> = include_str!("../src/sources/google_workspace/elastic_google_workspace_login_test.log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("google_workspace sample"))
        .collect();
    let as_api = |mut a: Value| {
        let e = a["events"].take();
        a["events"] = json!([e]);
        a
    };
    let gw_admin = |q: &str, time: &str, kind: &str, name: &str, params: Value| {
        json!({
            "kind": "admin#reports#activity",
            "id": { "time": time, "uniqueQualifier": q, "applicationName": "admin", "customerId": "C03az79cb" },
            "actor": { "callerType": "USER", "email": "admin@example.com", "profileId": "100230688039070881323" },
            "ipAddress": "81.2.69.144",
            "events": [{ "type": kind, "name": name, "parameters": params }]
        })
    };
    let google_workspace = vec![
        as_api(gw_lines[1].clone()),
        as_api(gw_lines[3].clone()),
        gw_admin(
            "-4983240553426457871",
            "2025-02-27T06:10:11.012Z",
            "USER_SETTINGS",
            "CREATE_USER",
            json!([{ "name": "USER_EMAIL", "value": "bob@example.com" }]),
        ),
        gw_admin(
            "-4983240553426457872",
            "2025-02-27T06:12:40.503Z",
            "APPLICATION_SETTINGS",
            "CHANGE_APPLICATION_SETTING",
            json!([{ "name": "APPLICATION_NAME", "value": "Gmail" }, { "name": "SETTING_NAME", "value": "ENABLE_IMAP" },
                   { "name": "OLD_VALUE", "value": "true" }, { "name": "NEW_VALUE", "value": "false" }]),
        ),
    ];
    let gw_key = json!({
        "type": "service_account", "private_key_id": "k1",
        "private_key": include_str!("fixtures/test-only-rsa-2048.pem"),
        "client_email": "reports@example.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token",
    });
    let gw_block = format!(
        "type = \"google_workspace\"\napplication = \"login\"\nsubject = \"admin@example.com\"\nkey = {}\n",
        serde_json::to_string(&gw_key.to_string()).expect("a TOML basic string")
    );
    // Cloudflare: the connector's recorded-shape sample (Elastic's
    // Cloudflare audit pipeline test input: a token created, an API key
    // viewed, a login, TLS settings deployed, a DNS record deleted and one
    // added), then the login as it fails (`action.result` false).
    let cloudflare_sample: Vec<Value> = include_str!("../src/sources/cloudflare/elastic_cloudflare_audit_test.log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("cloudflare sample"))
        .collect();
    let mut cloudflare = cloudflare_sample.clone();
    let mut cf_failed =
        cloudflare_sample.iter().find(|e| e["action"]["type"] == "login").expect("a cloudflare login").clone();
    cf_failed["id"] = json!("1034b2fe-abcc-523e-ab47-3d3ea14516fb");
    cf_failed["when"] = json!("2021-11-30T13:33:41Z");
    cf_failed["action"]["result"] = json!(false);
    cloudflare.push(cf_failed);
    // Atlassian: the connector's recorded-shape sample (the go-atlassian
    // SDK's events fixture: a policy deleted, an API key created, an
    // authentication policy changed, a group deleted, a user removed from a
    // site), then the sample event of Sumo Logic's Atlassian source docs
    // (SumoLogic/sumologic-documentation
    // `docs/integrations/saas-cloud/atlassian.md`: a Jira issue viewed).
    let atlassian_page: Value =
        serde_json::from_str(include_str!("../src/sources/atlassian/go_atlassian_audit_events_sample.json"))
            .expect("atlassian sample");
    let mut atlassian = atlassian_page["data"].as_array().expect("data").clone();
    atlassian.push(json!({
        "type": "events", "id": "606a97f7-f2d9-4007-91a7-8adyc1s328bf",
        "attributes": {
            "time": "2024-10-03T10:44:26.457Z", "action": "jira_issue_viewed",
            "actor": { "id": "557058:bd955be1-e2d3-41e4-a3be-70bf24d0444e", "name": "xyzabc", "email": "xyzabc@gmail.com",
                       "links": { "alt": "https://admin.atlassian.com/s/cee46caf-81e6-41b6-b8a0-a767d9/users/557058:bd955be1-e2d3-41e4-a3be-70bf24d0444e",
                                  "self": "https://api.atlassian.com/users/557058:bd955be1-e2d3-41e470bf24d0444e/manage/profile" } },
            "context": [],
            "container": [{ "id": "cee46caf-81e6-41b6-b8723f8067d9", "type": "sites",
                            "attributes": { "siteName": "gmail", "product": "software", "issueId": "284408", "issueKeyOrId": "WEB-21003",
                                            "siteHostName": "https://gmail.atlassian.net" },
                            "links": { "alt": "https://gmail.atlassian.net/browse/WEB-21003" } }],
            "location": { "ip": "91.225.122.155", "countryName": "Ukraine", "regionName": "Kyiv City", "city": "Kyiv" }
        },
        "links": { "self": "https://api.atlassian.com/admin/v1/orgs/eced9542-6842-bcb1-3662afe713d7/events/606a97f7-f2d907-91a7-8ad4c1f328bf" },
        "message": { "content": "Viewed Jira issue WEB-21003", "format": "simple" }
    }));
    // Microsoft 365: the connector's recorded-shape samples (Elastic's STS
    // sign-in test input, the reference's failed logon, Elastic's mock
    // OneDrive page view), then a user added (Entra ID's "Add user.") and a mailbox set
    // (an Exchange admin cmdlet).
    let mut microsoft_365: Vec<Value> = include_str!("../src/sources/microsoft_365/samples.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("microsoft_365 sample"))
        .collect();
    microsoft_365.push(json!({
        "CreationTime": "2024-05-01T10:00:11", "Id": "7d4b0a52-6f1e-4c35-9d0a-2b8c4e1f0a11", "Operation": "Add user.",
        "OrganizationId": "b86ab9d4-fcf1-4b11-8a06-7a8f91b47fbd", "RecordType": 8, "ResultStatus": "Success",
        "UserKey": "10032000A1B2C3D4@testsiem.onmicrosoft.com", "UserType": 0, "Version": 1,
        "Workload": "AzureActiveDirectory", "ClientIP": "203.0.113.7", "ObjectId": "new.hire@testsiem.onmicrosoft.com",
        "UserId": "admin@testsiem.onmicrosoft.com"
    }));
    microsoft_365.push(json!({
        "CreationTime": "2024-05-01T10:00:12", "Id": "3f1c9e2a-8b7d-4e6f-a5c4-1d2e3f4a5b6c", "Operation": "Set-Mailbox",
        "OrganizationId": "b86ab9d4-fcf1-4b11-8a06-7a8f91b47fbd", "RecordType": 1, "ResultStatus": "True",
        "UserKey": "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)", "UserType": 3, "Version": 1,
        "Workload": "Exchange", "ClientIP": "203.0.113.8", "ObjectId": "EURPR05A001.prod.outlook.com/Microsoft Exchange Hosted Organizations/testsiem.onmicrosoft.com/asr",
        "UserId": "admin@testsiem.onmicrosoft.com", "ExternalAccess": false, "OrganizationName": "testsiem.onmicrosoft.com"
    }));
    vec![
        (
            "opencti",
            "type = \"opencti\"\nurl = \"https://opencti.example.com\"\ntoken = \"t\"\n".into(),
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
        ("sekoia", "type = \"sekoia\"\nurl = \"https://api.sekoia.io\"\ntoken = \"t\"\n".into(), sekoia),
        (
            "invicti",
            "type = \"invicti\"\nurl = \"https://www.netsparkercloud.com\"\nuser_id = \"u\"\ntoken = \"t\"\n".into(),
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
            "type = \"keepnet\"\nurl = \"https://api.keepnetlabs.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n".into(),
            vec![
                keepnet("k1", "Create", "PhishingCampaign", "Phishing campaign Q2 created"),
                keepnet("k2", "Update", "CompanySettings", "Company settings updated"),
                keepnet("k3", "Delete", "TargetUser", "Target user bob deleted"),
            ],
        ),
        (
            "guance",
            "type = \"guance\"\nurl = \"https://openapi.guance.com\"\ntoken = \"t\"\n".into(),
            vec![
                guance("g1", "login", "Login", "account"),
                guance("g2", "modified the monitor", "Modify monitor", "monitor"),
            ],
        ),
        (
            "demo",
            "type = \"demo\"\n".into(),
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
        ("okta", "type = \"okta\"\nurl = \"https://acme.okta.com\"\ntoken = \"t\"\n".into(), okta),
        ("github", "type = \"github\"\norg = \"octo-corp\"\ntoken = \"t\"\n".into(), github),
        ("slack", "type = \"slack\"\ntoken = \"xoxp-t\"\n".into(), slack),
        ("onepassword", "type = \"onepassword\"\ntoken = \"t\"\n".into(), onepassword),
        ("google_workspace", gw_block, google_workspace),
        ("cloudflare", "type = \"cloudflare\"\naccount_id = \"4bb334f7c94c4a29a045f03944f072e5\"\ntoken = \"t\"\n".into(), cloudflare),
        ("atlassian", "type = \"atlassian\"\norg_id = \"9a1jj823-jac8-123d-jj01-63315k059cb2\"\ntoken = \"t\"\n".into(), atlassian),
        (
            "microsoft_365",
            "type = \"microsoft_365\"\ntenant_id = \"b86ab9d4-fcf1-4b11-8a06-7a8f91b47fbd\"\nclient_id = \"c\"\nclient_secret = \"s\"\n".into(),
            microsoft_365,
        ),
        (
            "http_json",
            "type = \"http_json\"\nurl = \"https://audit.example.com/v1/audit\"\nevents = \"/items\"\nid = \"/id\"\ntimestamp = \"/created_at\"\n".into(),
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
