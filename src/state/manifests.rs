//! Where each output's manifest windows (`crate::manifest`) are kept: the
//! open window per source in `manifest_windows` (written with the output's
//! offset, [`super::State::commit_with_windows`]), and each closed window's
//! manifest in `manifests_pending` from the moment it closes until its
//! output confirmed it, so a crash resends the same manifest. Keys start
//! with the output's name and `0x00`, then the source (and for a pending
//! manifest `0x00` and its window number, u64 big-endian); values are JSON,
//! long ones in `parts` (tag `w` for windows, `m` for manifests).

use super::db::{tx_err, Db};
use super::{values, Result, StateError};
use crate::manifest::{Closing, Manifest, Window};
use sled::transaction::{ConflictableTransactionError, Transactional, TransactionalTree};
use std::sync::Arc;

/// Tag of a manifest window's parts in the `parts` tree.
const WINDOW_TAG: u8 = b'w';
/// Tag of a pending manifest's parts in the `parts` tree.
const MANIFEST_TAG: u8 = b'm';

fn prefix(output: &str) -> Vec<u8> {
    let mut k = output.as_bytes().to_vec();
    k.push(0);
    k
}

fn window_key(output: &str, source: &str) -> Vec<u8> {
    let mut k = prefix(output);
    k.extend_from_slice(source.as_bytes());
    k
}

fn pending_key(output: &str, m: &Manifest) -> Vec<u8> {
    let mut k = window_key(output, &m.source);
    k.push(0);
    k.extend_from_slice(&m.window.to_be_bytes());
    k
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Corrupt { what: what.into(), detail: e.to_string() }
}

/// The keys and JSON of `windows` of `output`.
pub(super) fn encode_windows(output: &str, windows: &[(String, Window)]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    windows
        .iter()
        .map(|(source, w)| {
            let v = serde_json::to_vec(w).map_err(|e| corrupt("manifest window", e))?;
            Ok((window_key(output, source), v))
        })
        .collect()
}

/// Store windows ([`encode_windows`]) inside a transaction on
/// [`Manifests::windows_tree`] and the `parts` tree.
pub(super) fn put_windows_in(
    tree: &TransactionalTree,
    parts: &TransactionalTree,
    items: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), ConflictableTransactionError<StateError>> {
    for (k, v) in items {
        values::put(tree, parts, WINDOW_TAG, k, v)?;
    }
    Ok(())
}

/// The outputs' manifest windows and the manifests waiting for their output.
pub struct Manifests {
    windows: sled::Tree,
    pending: sled::Tree,
    parts: sled::Tree,
    db: Arc<Db>,
}

impl Manifests {
    pub(super) fn new(windows: sled::Tree, pending: sled::Tree, parts: sled::Tree, db: Arc<Db>) -> Manifests {
        Manifests { windows, pending, parts, db }
    }

    /// The open manifest windows of `output`, by source.
    pub fn windows(&self, output: &str) -> Result<Vec<(String, Window)>> {
        let p = prefix(output);
        let mut out = Vec::new();
        for item in self.windows.scan_prefix(&p) {
            let (k, v) = item.map_err(StateError::storage)?;
            let v = values::read(&self.parts, WINDOW_TAG, &k, v)?;
            let source = String::from_utf8_lossy(&k[p.len()..]).into_owned();
            let w: Window =
                serde_json::from_slice(&v).map_err(|e| corrupt(&format!("manifest window of {source}"), e))?;
            out.push((source, w));
        }
        Ok(out)
    }

    /// The manifests `output` closed and has not had confirmed, in source
    /// and window order.
    pub fn pending(&self, output: &str) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for item in self.pending.scan_prefix(prefix(output)) {
            let (k, v) = item.map_err(StateError::storage)?;
            let v = values::read(&self.parts, MANIFEST_TAG, &k, v)?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt("pending manifest", e))?);
        }
        Ok(out)
    }

    /// Store a close of `output`'s windows (the new windows, the manifests
    /// to send, the windows retired) in one transaction, durably.
    pub async fn close(&self, output: &str, closing: &Closing) -> Result<()> {
        let windows = encode_windows(output, &closing.windows)?;
        let manifests: Vec<(Vec<u8>, Vec<u8>)> = closing
            .manifests
            .iter()
            .map(|m| Ok((pending_key(output, m), serde_json::to_vec(m).map_err(|e| corrupt("manifest", e))?)))
            .collect::<Result<_>>()?;
        let retired: Vec<Vec<u8>> = closing.retired.iter().map(|s| window_key(output, s)).collect();
        (&self.windows, &self.pending, &self.parts)
            .transaction(|(window_tree, pending, parts)| {
                put_windows_in(window_tree, parts, &windows)?;
                for (k, v) in &manifests {
                    values::put(pending, parts, MANIFEST_TAG, k, v)?;
                }
                for k in &retired {
                    values::remove(window_tree, parts, WINDOW_TAG, k)?;
                }
                Ok::<_, ConflictableTransactionError<StateError>>(())
            })
            .map_err(tx_err)?;
        self.db.flush().await
    }

    /// `output` confirmed these manifests: forget them. Not synced by
    /// itself (a crash before the next sync sends them again, the same).
    pub fn sent(&self, output: &str, sent: &[Manifest]) -> Result<()> {
        let keys: Vec<Vec<u8>> = sent.iter().map(|m| pending_key(output, m)).collect();
        (&self.pending, &self.parts)
            .transaction(|(pending, parts)| {
                for k in &keys {
                    values::remove(pending, parts, MANIFEST_TAG, k)?;
                }
                Ok::<_, ConflictableTransactionError<StateError>>(())
            })
            .map_err(tx_err)
    }

    /// The windows tree, for a transaction that spans stores.
    pub(super) fn windows_tree(&self) -> &sled::Tree {
        &self.windows
    }
}
