//! The status report: per source its cursor and health, per output its
//! offset, backlog and dead letters. `auditrelay status` builds it from the
//! database; while the agent runs (the database is locked) it reads
//! `status.json`, which the agent rewrites every few seconds.

use crate::config::Config;
use crate::state::{State, StateError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// When it was made (RFC 3339).
    pub generated_at: String,
    /// Journal totals.
    pub journal: JournalReport,
    /// One per configured source.
    pub sources: Vec<SourceReport>,
    /// One per configured output.
    pub outputs: Vec<OutputReport>,
}

/// Journal totals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalReport {
    /// Entries stored.
    pub entries: usize,
    /// Bytes stored.
    pub bytes: u64,
    /// Sequence number of the next entry.
    pub next_seq: u64,
}

/// A source's position and health.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceReport {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Cursor time (RFC 3339), `null` before the first poll.
    pub cursor: Option<String>,
    /// Ids remembered near the cursor.
    pub cursor_ids: usize,
    /// Whether a newest-first window is being walked.
    pub window_open: bool,
    /// Health at the last poll (`null` before the first).
    pub healthy: Option<bool>,
    /// Last successful poll.
    pub last_poll: Option<String>,
    /// Last error.
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<String>,
    /// What the poll in progress waits for (an API's asynchronous job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// An output's progress and health.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputReport {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Committed offset (`null` before the first start).
    pub offset: Option<u64>,
    /// Journal entries not delivered yet.
    pub backlog: u64,
    /// Events in the dead-letter queue.
    pub dead_letters: usize,
    /// Health at the last send (`null` before the first).
    pub healthy: Option<bool>,
    /// Last confirmed batch.
    pub last_send: Option<String>,
    /// Last error.
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<String>,
}

/// Build the report from the database.
pub fn report(cfg: &Config, state: &State) -> Result<Report, StateError> {
    let tail = state.journal().next_seq();
    let mut sources = Vec::new();
    for s in &cfg.sources {
        let cursor = state.cursors().get(&s.name)?;
        let st = state.status().get("source", &s.name)?;
        sources.push(SourceReport {
            name: s.name.clone(),
            kind: s.type_name().into(),
            cursor: cursor.as_ref().and_then(|c| c.time).map(crate::event::rfc3339),
            cursor_ids: cursor.as_ref().map_or(0, |c| c.taken.len()),
            window_open: cursor.as_ref().is_some_and(|c| c.window.is_some()),
            healthy: st.as_ref().map(|s| s.healthy),
            last_poll: st.as_ref().and_then(|s| s.last_ok.clone()),
            last_error: st.as_ref().and_then(|s| s.last_error.clone()),
            last_error_at: st.as_ref().and_then(|s| s.last_error_at.clone()),
            waiting: st.as_ref().and_then(|s| s.waiting.clone()),
        });
    }
    let mut outputs = Vec::new();
    for o in &cfg.outputs {
        let offset = state.offsets().get(&o.name)?;
        let st = state.status().get("output", &o.name)?;
        outputs.push(OutputReport {
            name: o.name.clone(),
            kind: o.type_name().into(),
            offset,
            backlog: offset.map_or(0, |off| tail.saturating_sub(off)),
            dead_letters: state.dead_letters().count(&o.name),
            healthy: st.as_ref().map(|s| s.healthy),
            last_send: st.as_ref().and_then(|s| s.last_ok.clone()),
            last_error: st.as_ref().and_then(|s| s.last_error.clone()),
            last_error_at: st.as_ref().and_then(|s| s.last_error_at.clone()),
        });
    }
    Ok(Report {
        generated_at: crate::event::rfc3339(chrono::Utc::now()),
        journal: JournalReport { entries: state.journal().len(), bytes: state.journal().bytes(), next_seq: tail },
        sources,
        outputs,
    })
}

/// Where the running agent writes its snapshot.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("status.json")
}

/// Write the snapshot atomically, mode 0600: a temporary file, synced,
/// renamed over the old one, and the directory synced, so that a power cut
/// leaves the old snapshot or the new one, never an empty file.
pub fn write(cfg: &Config, state: &State) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let report = report(cfg, state).map_err(std::io::Error::other)?;
    let dir = &cfg.agent.state_dir;
    let tmp = dir.join("status.json.tmp");
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(&report).map_err(std::io::Error::other)?)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(tmp, path(dir))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Read the running agent's snapshot.
pub fn read(state_dir: &Path) -> std::io::Result<Report> {
    let text = std::fs::read(path(state_dir))?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}
