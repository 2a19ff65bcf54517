//! `replay --force` while the agent runs: the command cannot open the
//! locked database, so it leaves a request file in
//! `<state_dir>/replay/<source>.json`; the agent's housekeeping stops that
//! source, moves its cursor, starts it again and deletes the request.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A pending replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The source.
    pub source: String,
    /// The new cursor time.
    pub from: DateTime<Utc>,
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("replay")
}

/// Leave a request for the running agent (mode 0644: the agent runs as
/// another user than the administrator who asks; nothing in it is secret).
pub fn request(state_dir: &Path, source: &str, from: DateTime<Utc>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let d = dir(state_dir);
    std::fs::create_dir_all(&d)?;
    let body = serde_json::to_vec(&Request { source: source.to_owned(), from }).map_err(std::io::Error::other)?;
    let tmp = d.join(format!(".{source}.tmp"));
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o644).open(&tmp)?;
    f.write_all(&body)?;
    drop(f);
    std::fs::rename(tmp, d.join(format!("{source}.json")))
}

/// Take the pending requests (each file is removed as it is read; a file
/// that cannot be parsed is removed and reported).
pub fn take(state_dir: &Path) -> Vec<Result<Request, String>> {
    let Ok(entries) = std::fs::read_dir(dir(state_dir)) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Request>(&b).map_err(|e| e.to_string()))
            .map_err(|e| format!("replay request {}: {e}", path.display()));
        let _ = std::fs::remove_file(&path);
        out.push(parsed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let t = Utc::now();
        request(dir.path(), "demo", t).unwrap();
        std::fs::write(dir.path().join("replay/bad.json"), "nope").unwrap();
        let mut got = take(dir.path());
        got.sort_by_key(|r| r.is_ok());
        assert!(got[0].as_ref().unwrap_err().contains("bad.json"));
        assert_eq!(got[1].as_ref().unwrap(), &Request { source: "demo".into(), from: t });
        assert!(take(dir.path()).is_empty(), "requests are consumed");
    }
}
