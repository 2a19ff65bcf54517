//! Events a source received but could not read (not UTF-8, not JSON, no
//! readable time): set aside durably as dead letters of that source, so
//! that one hostile or broken event neither blocks its page forever nor is
//! lost. They sit in the dead-letter tree under `source/<name>` (a name
//! no output can have: output names take no `/`), each keyed by a hash of
//! its bytes, so the page read again after a crash stores it once.
//! [`SetAsideEvents`] holds the same tree as `dead_letters.rs` and keeps
//! to its own keys.

use super::db::{tx_err, Db};
use super::dead_letters::{self, DEAD_TAG};
use super::{values, Result, StateError};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use sled::transaction::{ConflictableTransactionError, Transactional};
use std::sync::Arc;

/// One event set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAside {
    /// Why it could not be read.
    pub reason: String,
    /// When it was set aside (RFC 3339).
    pub at: String,
    /// Its bytes as text (bytes that are not UTF-8 shown as U+FFFD).
    pub text: String,
    /// Its bytes in base64, when they are not UTF-8: exactly what the API
    /// sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_base64: Option<String>,
}

impl SetAside {
    /// An event's `bytes`, set aside for `reason`.
    pub fn new(bytes: &[u8], reason: String, at: chrono::DateTime<chrono::Utc>) -> SetAside {
        use base64::Engine;
        let utf8 = std::str::from_utf8(bytes).is_ok();
        SetAside {
            reason,
            at: crate::event::rfc3339(at),
            text: String::from_utf8_lossy(bytes).into_owned(),
            bytes_base64: (!utf8).then(|| base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }

    fn key(&self, source: &str) -> Vec<u8> {
        let mut k = prefix(source);
        let digest = sha2::Sha256::digest(self.bytes_base64.as_deref().unwrap_or(&self.text).as_bytes());
        k.extend_from_slice(&digest[..16]);
        k
    }
}

fn prefix(source: &str) -> Vec<u8> {
    let mut k = format!("source/{source}").into_bytes();
    k.push(0);
    k
}

/// The events sources set aside.
pub struct SetAsideEvents {
    /// The dead-letter tree (keys under `source/`).
    tree: sled::Tree,
    parts: sled::Tree,
    db: Arc<Db>,
}

impl SetAsideEvents {
    pub(super) fn new(tree: sled::Tree, parts: sled::Tree, db: Arc<Db>) -> SetAsideEvents {
        SetAsideEvents { tree, parts, db }
    }

    /// Keep `events` of `source` durably (flushed before this returns: the
    /// cursor may then move past them).
    pub async fn put(&self, source: &str, events: &[SetAside]) -> Result<()> {
        let items: Vec<(Vec<u8>, Vec<u8>)> = events
            .iter()
            .map(|e| {
                serde_json::to_vec(e)
                    .map(|v| (e.key(source), v))
                    .map_err(|e| StateError::Corrupt { what: "set-aside event".into(), detail: e.to_string() })
            })
            .collect::<Result<_>>()?;
        (&self.tree, &self.parts)
            .transaction(|(dead, parts)| {
                for (k, v) in &items {
                    values::put(dead, parts, DEAD_TAG, k, v)?;
                }
                Ok::<_, ConflictableTransactionError<StateError>>(())
            })
            .map_err(tx_err)?;
        self.db.flush().await
    }

    /// The events `source` set aside.
    pub fn list(&self, source: &str) -> Result<Vec<SetAside>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(prefix(source)) {
            let (k, v) = item.map_err(StateError::storage)?;
            let v = values::read(&self.parts, DEAD_TAG, &k, v)?;
            out.push(serde_json::from_slice(&v).map_err(|e| StateError::Corrupt {
                what: format!("set-aside event of {source:?}"),
                detail: e.to_string(),
            })?);
        }
        Ok(out)
    }

    /// How many events `source` set aside.
    pub fn count(&self, source: &str) -> usize {
        self.tree.scan_prefix(prefix(source)).count()
    }

    /// Delete the events `source` set aside. Returns how many.
    pub async fn purge(&self, source: &str) -> Result<usize> {
        dead_letters::purge(&self.db, &self.tree, &self.parts, &prefix(source)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    #[tokio::test]
    async fn set_aside_events_survive_a_reopen_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now();
        let bad = SetAside::new(b"{\"id\":\"x\xff\"}", "is not valid UTF-8".into(), now);
        let untimed = SetAside::new(br#"{"id":"y"}"#, "has no readable time".into(), now);
        {
            let st = State::open(dir.path()).unwrap();
            st.set_aside().put("api", &[bad.clone(), untimed.clone()]).await.unwrap();
            // The same page again (after a crash): stored once.
            st.set_aside().put("api", std::slice::from_ref(&bad)).await.unwrap();
        }
        let st = State::open(dir.path()).unwrap();
        let mut got = st.set_aside().list("api").unwrap();
        got.sort_by(|a, b| a.reason.cmp(&b.reason));
        assert_eq!(got, vec![untimed, bad.clone()]);
        assert_eq!(bad.text, "{\"id\":\"x\u{fffd}\"}");
        assert_eq!(bad.bytes_base64.as_deref(), Some("eyJpZCI6Inj/In0="));
        assert_eq!(st.set_aside().count("other"), 0);
        assert_eq!(st.dead_letters().list("api").unwrap().len(), 0, "not an output's dead letters");
        assert_eq!(st.set_aside().purge("api").await.unwrap(), 2);
        assert_eq!(st.set_aside().count("api"), 0);
    }
}
