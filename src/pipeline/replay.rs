//! `replay --force` while the agent runs: the command cannot open the
//! locked database, so it leaves a request file in
//! `<state_dir>/replay/<id>.json`; the agent's housekeeping removes the
//! file, then stops that source, moves its cursor and starts it again.
//!
//! The command runs as the state directory's owner (`commands` refuses
//! another user), so the directory and its files are the service's. A
//! request is written to a fresh temporary file (`O_CREAT|O_EXCL`: an
//! existing file or symlink there is never followed or overwritten) and
//! renamed into place; the agent applies only what it could remove first,
//! so a request it cannot delete is reported once and never applied, let
//! alone applied at every tick.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A pending replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The request's own id: a request is applied at most once.
    #[serde(default)]
    pub id: String,
    /// The source.
    pub source: String,
    /// The new cursor time.
    pub from: DateTime<Utc>,
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("replay")
}

/// Leave a request for the running agent.
pub fn request(state_dir: &Path, source: &str, from: DateTime<Utc>) -> std::io::Result<()> {
    use std::io::Write;
    let d = dir(state_dir);
    match std::fs::DirBuilder::new().mode(0o700).create(&d) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let meta = std::fs::symlink_metadata(&d)?;
    let owner = std::fs::metadata(state_dir)?.uid();
    if !meta.is_dir() || meta.uid() != owner {
        return Err(std::io::Error::other(format!(
            "{} is not a directory of the state directory's owner; remove it",
            d.display()
        )));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let req = Request { id: id.clone(), source: source.to_owned(), from };
    let body = serde_json::to_vec(&req).map_err(std::io::Error::other)?;
    let tmp = d.join(format!(".{id}.tmp"));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(&body)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, d.join(format!("{id}.json")))
}

/// Take the pending requests: each file is removed before it is handed
/// out. A file that cannot be parsed is removed and reported; one that
/// cannot be removed is reported once (its path goes into `reported`) and
/// never handed out.
pub fn take(state_dir: &Path, reported: &mut HashSet<PathBuf>) -> Vec<Result<Request, String>> {
    let Ok(entries) = std::fs::read_dir(dir(state_dir)) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") || reported.contains(&path) {
            continue;
        }
        let regular = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
        let parsed = if regular {
            std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Request>(&b).map_err(|e| e.to_string()))
        } else {
            Err("not a regular file".to_owned())
        };
        if let Err(e) = std::fs::remove_file(&path) {
            reported.insert(path.clone());
            out.push(Err(format!(
                "replay request {} cannot be removed ({e}); it is NOT applied (a request that stays would be applied again and again): remove it as its owner",
                path.display()
            )));
            continue;
        }
        out.push(parsed.map_err(|e| format!("replay request {}: {e}", path.display())));
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
        let mut reported = HashSet::new();
        let mut got = take(dir.path(), &mut reported);
        got.sort_by_key(|r| r.is_ok());
        assert!(got[0].as_ref().unwrap_err().contains("bad.json"));
        let req = got[1].as_ref().unwrap();
        assert_eq!((req.source.as_str(), req.from), ("demo", t));
        assert_eq!(req.id.len(), 36, "a uuid");
        assert!(take(dir.path(), &mut reported).is_empty(), "requests are consumed");
    }

    /// A symlink where the temporary file or the request would go is never
    /// followed: the file it points at is left as it was.
    #[test]
    fn symlinks_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::create_dir(dir.path().join("replay")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("replay/planted.json")).unwrap();
        request(dir.path(), "demo", Utc::now()).unwrap();
        let got = take(dir.path(), &mut HashSet::new());
        assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 1, "{got:?}");
        assert!(got.iter().any(|r| r.as_ref().is_err_and(|e| e.contains("not a regular file"))), "{got:?}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    /// A request that cannot be removed is reported once and never applied.
    #[test]
    fn a_request_that_cannot_be_removed_is_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        request(dir.path(), "demo", Utc::now()).unwrap();
        let replay = dir.path().join("replay");
        let name = std::fs::read_dir(&replay).unwrap().flatten().next().unwrap().path();
        // A directory where the file is cannot be removed with remove_file.
        std::fs::remove_file(&name).unwrap();
        std::fs::create_dir(&name).unwrap();
        let mut reported = HashSet::new();
        let first = take(dir.path(), &mut reported);
        assert!(first.iter().all(|r| r.is_err()), "{first:?}");
        assert!(first[0].as_ref().unwrap_err().contains("NOT applied"));
        assert!(take(dir.path(), &mut reported).is_empty(), "reported once, never handed out");
    }
}
