//! A small etcd v3 client over etcd's JSON gRPC gateway (`POST /v3/...` on
//! the client URL, served by etcd 3.4 and later), on the agent's reqwest
//! client: no gRPC stack, no protoc. Keys and values travel in base64,
//! 64-bit integers as JSON strings, and fields equal to their default
//! (`0`, `false`) are left out of answers.
//!
//! Requests go to the endpoint that answered last; a connection error, a
//! timeout or a 5xx moves on to the next one, once round the list. With a
//! user and password the client authenticates (`/v3/auth/authenticate`)
//! and sends the token in `Authorization`; an expired token is renewed
//! once per request. Errors never carry the password or the token.

use crate::config::cluster::ClusterConfig;
use crate::settings::secret::{Env, Secret};
use crate::transport::origin::Redirects;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Larger etcd answers are refused (a fleet's keys are small).
const MAX_BODY: u64 = 16 << 20;

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered (connection refused, timeout, 5xx).
    #[error("etcd unreachable ({endpoints}): {detail}")]
    Unreachable {
        /// The endpoints tried.
        endpoints: String,
        /// The last endpoint's failure.
        detail: String,
    },
    /// etcd answered with an error.
    #[error("etcd at {endpoint} refused {call}: {message}")]
    Refused {
        /// The endpoint.
        endpoint: String,
        /// The call (`kv/txn`, …).
        call: &'static str,
        /// etcd's error text.
        message: String,
    },
    /// The client could not be built (TLS files, password).
    #[error("etcd client: {0}")]
    Setup(String),
}

/// A key and its value with its revisions.
#[derive(Debug, Clone, PartialEq)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// Revision of the key's creation (unique per creation: a fencing token).
    pub create_revision: i64,
    /// Revision of its last change.
    pub mod_revision: i64,
    /// The lease it is bound to, 0 for none.
    pub lease: i64,
}

/// The etcd client.
pub struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<String>,
    current: AtomicUsize,
    auth: Option<(String, Secret)>,
    token: Mutex<Option<Secret>>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd").field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

/// The end of the key range holding every key starting with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A transaction's condition: the key's create revision is `revision`
/// (0: the key is absent). The one comparison the fleet needs: it is the
/// fencing on an owner key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedAt {
    /// The key.
    pub key: String,
    /// Its create revision, 0 for absent.
    pub revision: i64,
}

/// What a transaction does when its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Put `value` at `key`, bound to `lease` (0: none).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The lease, 0 for none.
        lease: i64,
    },
    /// Delete `key`.
    Delete(String),
}

/// Compare: the key's create revision is `rev` (0: the key is absent).
pub fn created_at(key: &str, rev: i64) -> CreatedAt {
    CreatedAt { key: key.to_owned(), revision: rev }
}

/// Request: put `value` at `key`, bound to `lease` (0: none).
pub fn put(key: &str, value: &[u8], lease: i64) -> Op {
    Op::Put { key: key.to_owned(), value: value.to_vec(), lease }
}

/// Request: delete `key`.
pub fn delete(key: &str) -> Op {
    Op::Delete(key.to_owned())
}

impl CreatedAt {
    /// The JSON gateway's form.
    fn json(&self) -> Value {
        json!({"target": "CREATE", "result": "EQUAL", "key": b64(self.key.as_bytes()), "create_revision": self.revision.to_string()})
    }
}

impl Op {
    /// The JSON gateway's form.
    fn json(&self) -> Value {
        match self {
            Op::Put { key, value, lease } => {
                let mut p = json!({"key": b64(key.as_bytes()), "value": b64(value)});
                if *lease != 0 {
                    p["lease"] = json!(lease.to_string());
                }
                json!({ "requestPut": p })
            }
            Op::Delete(key) => json!({"requestDeleteRange": {"key": b64(key.as_bytes())}}),
        }
    }
}

/// What the coordinator needs of etcd: keys with revisions and leases,
/// and one kind of transaction. [`Etcd`] is the real one; the
/// coordinator's tests run a fleet on an in-memory one, on paused time.
pub trait Store: Send + Sync + 'static {
    /// Where the store is, for messages.
    fn endpoints(&self) -> String;
    /// Every key starting with `prefix`, in key order.
    fn range_prefix(&self, prefix: &str) -> impl Future<Output = Result<Vec<Kv>, EtcdError>> + Send;
    /// One key.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Kv>, EtcdError>> + Send;
    /// A transaction: `success` when every compare holds, else nothing.
    /// Whether the compares held, and the store's revision after it (the
    /// create revision of a key the transaction created).
    fn txn_rev(
        &self,
        compare: Vec<CreatedAt>,
        success: Vec<Op>,
    ) -> impl Future<Output = Result<(bool, i64), EtcdError>> + Send;
    /// A new lease of `ttl`; returns its id.
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<i64, EtcdError>> + Send;
    /// Renew a lease; returns its remaining TTL in seconds (0: it expired).
    fn keepalive(&self, lease: i64) -> impl Future<Output = Result<i64, EtcdError>> + Send;
    /// Revoke a lease: every key bound to it goes.
    fn revoke(&self, lease: i64) -> impl Future<Output = Result<(), EtcdError>> + Send;

    /// [`Store::txn_rev`] without the revision.
    fn txn(&self, compare: Vec<CreatedAt>, success: Vec<Op>) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        async move { self.txn_rev(compare, success).await.map(|(ok, _)| ok) }
    }

    /// Put a key (no condition).
    fn put(&self, key: &str, value: &[u8], lease: i64) -> impl Future<Output = Result<(), EtcdError>> + Send {
        let op = put(key, value, lease);
        async move { self.txn(Vec::new(), vec![op]).await.map(|_| ()) }
    }
}

impl Etcd {
    /// A client for `[cluster]`; reads the TLS files and the password.
    pub fn new(cfg: &ClusterConfig, env: &dyn Env, timeout: Duration) -> Result<Etcd, EtcdError> {
        let tls = cfg.tls();
        let http = crate::transport::http::client(tls.as_ref(), timeout, Redirects::Refuse)
            .map_err(|e| EtcdError::Setup(e.to_string()))?;
        let auth = match &cfg.user {
            Some(user) => {
                let pw = crate::settings::secret::resolve(cfg.password.as_ref(), cfg.password_file.as_deref(), env)
                    .map_err(|e| EtcdError::Setup(format!("cluster.password: {e}")))?
                    .ok_or_else(|| EtcdError::Setup("cluster.password: is required with cluster.user".into()))?;
                Some((user.clone(), pw))
            }
            None => None,
        };
        let endpoints = cfg.etcd.iter().map(|e| e.trim_end_matches('/').to_owned()).collect();
        Ok(Etcd { http, endpoints, current: AtomicUsize::new(0), auth, token: Mutex::new(None) })
    }

    fn token(&self) -> Option<Secret> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn post(
        &self,
        endpoint: &str,
        call: &str,
        body: &Value,
        token: Option<&Secret>,
    ) -> Result<(u16, Value), String> {
        let mut req = self.http.post(format!("{endpoint}/v3/{call}")).json(body);
        if let Some(t) = token {
            req = req.header(reqwest::header::AUTHORIZATION, t.expose());
        }
        let resp = req.send().await.map_err(|e| crate::transport::http::error_chain(&e))?;
        let status = resp.status().as_u16();
        let bytes = crate::transport::http::read_body(resp, MAX_BODY).await.map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("answer is not JSON ({e})"))?;
        Ok((status, v))
    }

    async fn authenticate(&self, endpoint: &str) -> Result<Option<Secret>, EtcdError> {
        let Some((user, pw)) = &self.auth else { return Ok(None) };
        let body = json!({"name": user, "password": pw.expose()});
        match self.post(endpoint, "auth/authenticate", &body, None).await {
            Ok((200, v)) => {
                let t = v.get("token").and_then(Value::as_str).unwrap_or_default();
                let t = Secret::new(t);
                *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
                Ok(Some(t))
            }
            Ok((_, v)) => Err(EtcdError::Refused {
                endpoint: endpoint.to_owned(),
                call: "auth/authenticate",
                message: error_text(&v),
            }),
            Err(detail) => Err(EtcdError::Unreachable { endpoints: endpoint.to_owned(), detail }),
        }
    }

    /// One call, failing over between endpoints.
    async fn call(&self, call: &'static str, body: Value) -> Result<Value, EtcdError> {
        let n = self.endpoints.len().max(1);
        let start = self.current.load(Ordering::Relaxed);
        let mut failures: Vec<String> = Vec::new();
        for i in 0..n {
            let at = (start + i) % n;
            let Some(endpoint) = self.endpoints.get(at) else { break };
            let mut token = self.token();
            if self.auth.is_some() && token.is_none() {
                match self.authenticate(endpoint).await {
                    Ok(t) => token = t,
                    Err(EtcdError::Unreachable { detail, .. }) => {
                        failures.push(format!("{endpoint}: {detail}"));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let mut answer = self.post(endpoint, call, &body, token.as_ref()).await;
            if let Ok((s, v)) = &answer {
                if *s != 200 && self.auth.is_some() && error_text(v).contains("token") {
                    // An expired or revoked token: authenticate again, once.
                    let token = self.authenticate(endpoint).await?;
                    answer = self.post(endpoint, call, &body, token.as_ref()).await;
                }
            }
            match answer {
                Ok((200, v)) => {
                    self.current.store(at, Ordering::Relaxed);
                    return Ok(v);
                }
                Ok((s, v)) if s >= 500 || error_text(&v).contains("no leader") => {
                    failures.push(format!("{endpoint}: HTTP {s}: {}", error_text(&v)));
                }
                Ok((_, v)) => {
                    return Err(EtcdError::Refused { endpoint: endpoint.clone(), call, message: error_text(&v) })
                }
                Err(detail) => failures.push(format!("{endpoint}: {detail}")),
            }
        }
        if failures.is_empty() {
            failures.push("no endpoint configured".into());
        }
        Err(EtcdError::Unreachable { endpoints: self.endpoints(), detail: failures.join("; ") })
    }

    /// The server's version (`check --connect`).
    pub async fn version(&self) -> Result<String, EtcdError> {
        let v = self.call("maintenance/status", json!({})).await?;
        Ok(v.get("version").and_then(Value::as_str).unwrap_or("?").to_owned())
    }
}

impl Store for Etcd {
    fn endpoints(&self) -> String {
        self.endpoints.join(", ")
    }

    async fn range_prefix(&self, prefix: &str) -> Result<Vec<Kv>, EtcdError> {
        let v = self
            .call("kv/range", json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix))}))
            .await?;
        Ok(kvs(&v))
    }

    async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        let v = self.call("kv/range", json!({"key": b64(key.as_bytes())})).await?;
        Ok(kvs(&v).into_iter().next())
    }

    async fn txn_rev(&self, compare: Vec<CreatedAt>, success: Vec<Op>) -> Result<(bool, i64), EtcdError> {
        let compare: Vec<Value> = compare.iter().map(CreatedAt::json).collect();
        let success: Vec<Value> = success.iter().map(Op::json).collect();
        let v = self.call("kv/txn", json!({"compare": compare, "success": success})).await?;
        let revision = int(v.get("header").and_then(|h| h.get("revision")).unwrap_or(&Value::Null));
        Ok((v.get("succeeded").and_then(Value::as_bool).unwrap_or(false), revision))
    }

    async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let v = self.call("lease/grant", json!({"TTL": ttl.as_secs().max(1).to_string()})).await?;
        match int(v.get("ID").unwrap_or(&Value::Null)) {
            0 => Err(EtcdError::Refused { endpoint: self.endpoints(), call: "lease/grant", message: error_text(&v) }),
            id => Ok(id),
        }
    }

    async fn keepalive(&self, lease: i64) -> Result<i64, EtcdError> {
        let v = self.call("lease/keepalive", json!({"ID": lease.to_string()})).await?;
        let result = v.get("result").unwrap_or(&v);
        Ok(int(result.get("TTL").unwrap_or(&Value::Null)))
    }

    async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("lease/revoke", json!({"ID": lease.to_string()})).await.map(|_| ())
    }
}

fn error_text(v: &Value) -> String {
    let text = v.get("error").or_else(|| v.get("message")).and_then(Value::as_str).unwrap_or("");
    if text.is_empty() {
        crate::transport::http::excerpt(v.to_string().as_bytes())
    } else {
        crate::transport::http::excerpt(text.as_bytes())
    }
}

fn kvs(v: &Value) -> Vec<Kv> {
    let Some(items) = v.get("kvs").and_then(Value::as_array) else { return Vec::new() };
    items
        .iter()
        .filter_map(|kv| {
            let key = B64.decode(kv.get("key")?.as_str()?).ok()?;
            let value = kv.get("value").and_then(Value::as_str).map(|s| B64.decode(s).unwrap_or_default());
            Some(Kv {
                key: String::from_utf8_lossy(&key).into_owned(),
                value: value.unwrap_or_default(),
                create_revision: int(kv.get("create_revision").unwrap_or(&Value::Null)),
                mod_revision: int(kv.get("mod_revision").unwrap_or(&Value::Null)),
                lease: int(kv.get("lease").unwrap_or(&Value::Null)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn range_answers_decode_with_omitted_defaults() {
        let v = json!({"kvs": [{"key": "L3gvbw==", "create_revision": "2", "mod_revision": "3", "value": "bWU=", "lease": "7"},
                               {"key": "L3gvcA=="}, {"nokey": 1}]});
        let k = kvs(&v);
        assert_eq!(k.len(), 2);
        assert_eq!(
            k[0],
            Kv { key: "/x/o".into(), value: b"me".to_vec(), create_revision: 2, mod_revision: 3, lease: 7 }
        );
        assert_eq!(k[1].value, b"");
        assert!(kvs(&json!("garbage")).is_empty());
    }
}
