//! The ECS reading of a Management Activity API audit record (the common
//! schema: `Id`, `CreationTime`, `Operation`, `RecordType`, `Workload`,
//! `ResultStatus`, `UserId`, `ClientIP`, `ObjectId`), after Elastic's o365
//! pipeline (elastic/integrations
//! `packages/o365/data_stream/audit/elasticsearch/ingest_pipeline/default.yml`)
//! reduced to its rules.

use crate::event::Normalised;
use crate::sources::utc_time;
use serde_json::{json, Value};

/// `RecordType`s of sign-ins: 9 AzureActiveDirectoryAccountLogon, 15
/// AzureActiveDirectoryStsLogon.
const LOGON_RECORDS: [i64; 2] = [9, 15];
/// `RecordType`s of SharePoint/OneDrive files and sharing: 6 and 14.
const FILE_RECORDS: [i64; 2] = [6, 14];
/// `RecordType` 1: ExchangeAdmin (cmdlets run by an administrator).
const EXCHANGE_ADMIN: i64 = 1;

/// A number that may come as a string (`"RecordType": "15"`, Elastic's
/// test input).
fn number(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The client's address without port, brackets or IPv4-mapped prefix
/// (`[2001:db8::1]:443`, `203.0.113.5:51234`, `::ffff:203.0.113.5`).
pub(super) fn client_ip(raw: &str) -> Option<String> {
    let t = raw.trim();
    let t = match t.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None if t.matches(':').count() == 1 => t.split(':').next().unwrap_or_default(),
        None => t,
    };
    let ip: std::net::IpAddr = t.parse().ok()?;
    let ip = match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    };
    Some(ip.to_string())
}

/// ECS `event.outcome` of `ResultStatus` (Succeeded, PartiallySucceeded,
/// Failed; True/False for Exchange admin; lower case in places), a sign-in
/// with a `LogonError` being a failure whatever it says.
fn outcome(raw: &Value) -> &'static str {
    if raw.get("LogonError").and_then(Value::as_str).is_some_and(|e| !e.is_empty()) {
        return "failure";
    }
    let status = raw.get("ResultStatus").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    match status.as_str() {
        "succeeded" | "success" | "partiallysucceeded" | "true" => "success",
        "failed" | "failure" | "false" => "failure",
        _ => "unknown",
    }
}

/// The verb of an operation as ECS `event.type`.
fn verb(op: &str) -> &'static str {
    let low = op.to_ascii_lowercase();
    let has = |w: &str| low.starts_with(w) || low.contains(&format!(" {w}"));
    if has("add") || has("new") || has("create") || low.ends_with("uploaded") || low.ends_with("created") {
        "creation"
    } else if has("delete") || has("remove") || low.ends_with("deleted") || low.ends_with("recycled") {
        "deletion"
    } else if low.ends_with("accessed") || low.ends_with("viewed") || low.ends_with("downloaded") {
        "access"
    } else {
        "change"
    }
}

/// ECS `event.category` and `event.type`.
fn classify(record: Option<i64>, workload: &str, op: &str) -> (Option<&'static str>, Vec<&'static str>) {
    let low = op.to_ascii_lowercase();
    if record.is_some_and(|r| LOGON_RECORDS.contains(&r)) || low == "userloggedin" || low == "userloginfailed" {
        return (Some("authentication"), vec!["start"]);
    }
    if workload == "AzureActiveDirectory" && low.contains("user") {
        return (Some("iam"), vec!["user", verb(op)]);
    }
    if workload == "AzureActiveDirectory" && low.contains("group") {
        return (Some("iam"), vec!["group", verb(op)]);
    }
    if workload == "AzureActiveDirectory" && (low.contains("role") || low.contains("member")) {
        return (Some("iam"), vec![verb(op)]);
    }
    if record.is_some_and(|r| FILE_RECORDS.contains(&r)) || low.starts_with("file") {
        return (Some("file"), vec![verb(op)]);
    }
    if record == Some(EXCHANGE_ADMIN) || workload == "AzureActiveDirectory" {
        return (Some("configuration"), vec![verb(op)]);
    }
    (None, vec!["info"])
}

/// Map one audit record.
pub(super) fn normalise(raw: &Value) -> Normalised {
    let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
    let mut n = Normalised {
        id: s("Id").map(str::to_owned),
        // `CreationTime` has no zone: it is UTC (the schema reference).
        timestamp: utc_time(raw.get("CreationTime")),
        ..Default::default()
    };
    let record = number(raw.get("RecordType"));
    let workload = s("Workload").unwrap_or_default();
    let op = s("Operation").unwrap_or_default();
    let (category, types) = classify(record, workload, op);
    if let Some(c) = category {
        n.put("event.category", json!([c]));
    }
    let user = s("UserId");
    let email = user.filter(|u| u.contains('@'));
    let ip = ["ClientIP", "ClientIPAddress", "ActorIpAddress"].iter().find_map(|k| s(k).and_then(client_ip));
    let target_user = (workload == "AzureActiveDirectory" && types.first() == Some(&"user")).then(|| s("ObjectId"));
    n.put_str("event.action", Some(op).filter(|o| !o.is_empty()))
        .put("event.type", json!(types))
        .put_str("event.outcome", Some(outcome(raw)))
        .put_str("event.provider", Some(workload).filter(|w| !w.is_empty()))
        .put_str("event.code", record.map(|r| r.to_string()).as_deref())
        .put_str("user.id", user)
        .put_str("user.name", user)
        .put_str("user.email", email)
        .put_str("user.domain", email.and_then(|e| e.rsplit('@').next()))
        .put_str("user.target.id", target_user.flatten())
        .put_str("source.ip", ip.as_deref())
        .put_str("user_agent.original", s("UserAgent"))
        .put_str("organization.id", s("OrganizationId"))
        .put_str("microsoft_365.object_id", s("ObjectId"))
        .put_str("microsoft_365.user_key", s("UserKey"))
        .put_str("microsoft_365.user_type", number(raw.get("UserType")).map(|t| t.to_string()).as_deref())
        .put_str("microsoft_365.result_status", s("ResultStatus"))
        .put_str("microsoft_365.site_url", s("SiteUrl"))
        .put_str("microsoft_365.source_file_name", s("SourceFileName"));
    n
}
