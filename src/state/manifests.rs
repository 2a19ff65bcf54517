//! Where each output's manifest windows (`crate::manifest`) are kept: the
//! open window per source in `manifest_windows` (written with the output's
//! offset, [`State::commit_with_windows`]), and each closed window's
//! manifest in `manifests_pending` from the moment it closes until its
//! output confirmed it, so a crash resends the same manifest.

use super::journal::tx_err;
use super::{values, Result, State, StateError, MANIFEST_TAG, WINDOW_TAG};
use crate::manifest::{Closing, Manifest, Window};
use sled::transaction::{ConflictableTransactionError, Transactional};

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
fn encode_windows(output: &str, windows: &[(String, Window)]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    windows
        .iter()
        .map(|(source, w)| {
            let v = serde_json::to_vec(w).map_err(|e| corrupt("manifest window", e))?;
            Ok((window_key(output, source), v))
        })
        .collect()
}

impl State {
    /// [`State::commit`] with the output's manifest windows that changed,
    /// in the same transaction: a window never counts an event the offset
    /// has not passed, nor misses one it has.
    pub async fn commit_with_windows(
        &self,
        output: &str,
        offset: u64,
        dead: &[super::DeadLetter],
        windows: &[(String, Window)],
    ) -> Result<()> {
        let windows = encode_windows(output, windows)?;
        self.commit_with(output, offset, dead, &windows).await
    }

    /// The open manifest windows of `output`, by source.
    pub fn manifest_windows(&self, output: &str) -> Result<Vec<(String, Window)>> {
        let p = prefix(output);
        let mut out = Vec::new();
        for item in self.windows.scan_prefix(&p) {
            let (k, v) = item?;
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
    pub fn pending_manifests(&self, output: &str) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for item in self.pending.scan_prefix(prefix(output)) {
            let (k, v) = item?;
            let v = values::read(&self.parts, MANIFEST_TAG, &k, v)?;
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt("pending manifest", e))?);
        }
        Ok(out)
    }

    /// Store a close of `output`'s windows (the new windows, the manifests
    /// to send, the windows retired) in one transaction, durably.
    pub async fn close_windows(&self, output: &str, closing: &Closing) -> Result<()> {
        let windows = encode_windows(output, &closing.windows)?;
        let manifests: Vec<(Vec<u8>, Vec<u8>)> = closing
            .manifests
            .iter()
            .map(|m| Ok((pending_key(output, m), serde_json::to_vec(m).map_err(|e| corrupt("manifest", e))?)))
            .collect::<Result<_>>()?;
        let retired: Vec<Vec<u8>> = closing.retired.iter().map(|s| window_key(output, s)).collect();
        (&self.windows, &self.pending, &self.parts)
            .transaction(|(window_tree, pending, parts)| {
                for (k, v) in &windows {
                    values::put(window_tree, parts, WINDOW_TAG, k, v)?;
                }
                for (k, v) in &manifests {
                    values::put(pending, parts, MANIFEST_TAG, k, v)?;
                }
                for k in &retired {
                    values::remove(window_tree, parts, WINDOW_TAG, k)?;
                }
                Ok::<_, ConflictableTransactionError<StateError>>(())
            })
            .map_err(tx_err)?;
        self.flush().await
    }

    /// `output` confirmed these manifests: forget them. Not synced by
    /// itself (a crash before the next sync sends them again, the same).
    pub fn manifests_sent(&self, output: &str, sent: &[Manifest]) -> Result<()> {
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
}
