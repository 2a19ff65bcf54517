//! `file`: JSON lines appended to a file (for SIEMs that collect files), or
//! written to stdout when the path is `-`. A batch is confirmed only after
//! `fsync` (or a flush of stdout); when the file is created (first start, or
//! after logrotate moved it away: the path no longer names the open file)
//! its directory is synced too, so a power cut cannot take the file's name
//! away with the batches confirmed in it. A file it creates is 0640 (the
//! events are audit data: the service's group may read them, others not).

pub mod config;

pub use config::{FileConfig, Required};

use super::{BuildCtx, Delivery, SendError, Sink};
use crate::event::{Event, Payload};
use crate::settings::Problem;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

/// The file output.
#[derive(Debug)]
pub struct FileSink {
    path: Option<PathBuf>,
    payload: Payload,
    file: Option<tokio::fs::File>,
    /// Device and inode of the open file, to notice a rotation.
    opened: Option<(u64, u64)>,
    buf: Vec<u8>,
}

/// Mode of a file the output creates (before the umask): owner and group.
const FILE_MODE: u32 = 0o640;

/// Device and inode of a file's metadata.
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// fsync a directory (its entries: a file created or renamed in it).
async fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

// The registry line of `type = "file"`.
super::output!(FileConfig => build);

fn build(cfg: &FileConfig, required: Required, _: BuildCtx<'_>) -> Result<FileSink, Vec<Problem>> {
    Ok(FileSink::new(cfg, required))
}

impl FileSink {
    /// From config and its checked `path` (`-` is stdout).
    pub fn new(cfg: &FileConfig, required: Required) -> Self {
        let path = Some(required.path).filter(|p| p.as_os_str() != "-");
        FileSink { path, payload: cfg.payload.payload(), file: None, opened: None, buf: Vec::new() }
    }

    async fn open(&mut self) -> Result<&mut tokio::fs::File, SendError> {
        let Some(path) = &self.path else {
            return Err(SendError::config("stdout has no file"));
        };
        // Moved away (logrotate) or deleted: the next batch goes to a new
        // file at the configured path.
        let now = tokio::fs::metadata(path).await.ok().map(|m| identity(&m));
        if self.file.is_some() && now != self.opened {
            tracing::info!(path = %path.display(), "the output file was moved or removed; writing a new one");
            self.file = None;
        }
        if self.file.is_none() {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let cannot =
                |what: &str, e: std::io::Error| SendError::transient(format!("cannot {what} {}: {e}", path.display()));
            if !dir.exists() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| SendError::transient(format!("cannot create {}: {e}", dir.display())))?;
                if let Some(up) = dir.parent().filter(|d| !d.as_os_str().is_empty()) {
                    sync_dir(up).await.map_err(|e| cannot("sync the directory above", e))?;
                }
            }
            let f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(FILE_MODE)
                .open(path)
                .await
                .map_err(|e| cannot("open", e))?;
            if now.is_none() {
                sync_dir(dir).await.map_err(|e| cannot("sync the directory of", e))?;
            }
            self.opened = Some(identity(&f.metadata().await.map_err(|e| cannot("read", e))?));
            self.file = Some(f);
        }
        self.file.as_mut().ok_or_else(|| SendError::transient("file not open"))
    }
}

impl Sink for FileSink {
    async fn send(&mut self, batch: &[Event]) -> Result<Delivery, SendError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for e in batch {
            crate::encode::json::encode_into(e, self.payload, &mut buf);
            buf.push(b'\n');
        }
        let result = match self.path.clone() {
            None => {
                let mut out = tokio::io::stdout();
                match out.write_all(&buf).await {
                    Ok(()) => out.flush().await.map_err(|e| SendError::transient(format!("stdout: {e}"))),
                    Err(e) => Err(SendError::transient(format!("stdout: {e}"))),
                }
            }
            Some(path) => {
                let f = self.open().await?;
                let start = f.metadata().await.map(|m| m.len()).ok();
                let r = async {
                    f.write_all(&buf).await?;
                    f.flush().await?;
                    f.sync_data().await
                }
                .await;
                if r.is_err() {
                    // Cut a half-written batch off so the retry does not
                    // leave a broken line, then reopen next time (the file
                    // may have been rotated or the disk replaced).
                    if let Some(len) = start {
                        let _ = f.set_len(len).await;
                    }
                    self.file = None;
                }
                r.map_err(|e| SendError::transient(format!("writing {}: {e}", path.display())))
            }
        };
        self.buf = buf;
        result.map(|()| Delivery::default())
    }

    async fn healthcheck(&mut self) -> Result<(), SendError> {
        if self.path.is_some() {
            self.open().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(path: &std::path::Path) -> FileSink {
        let cfg = FileConfig { path: Some(path.to_path_buf()), payload: Default::default() };
        FileSink::new(&cfg, Required { path: path.to_path_buf() })
    }

    fn event(id: &str) -> Event {
        Event::new(
            "demo".into(),
            id.into(),
            chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            serde_json::Map::new(),
            format!("{{\"id\":\"{id}\"}}"),
        )
    }

    fn ids(path: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let doc: serde_json::Value = serde_json::from_str(l).unwrap();
                let raw: serde_json::Value = serde_json::from_str(doc["event"]["original"].as_str().unwrap()).unwrap();
                raw["id"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    /// A file moved away by logrotate (or deleted) is not written to any
    /// more: the next batch creates a new file at the configured path, in a
    /// directory created on the way.
    #[tokio::test]
    async fn a_rotated_file_is_replaced_by_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/events.jsonl");
        let mut s = sink(&path);
        s.send(&[event("a")]).await.unwrap();
        std::fs::rename(&path, dir.path().join("sub/events.jsonl.1")).unwrap();
        s.send(&[event("b")]).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        s.send(&[event("c")]).await.unwrap();
        s.send(&[event("d")]).await.unwrap();
        assert_eq!(ids(&dir.path().join("sub/events.jsonl.1")), ["a"]);
        assert_eq!(ids(&path), ["c", "d"]);
    }

    /// Audit events are not for every local user: a file the output
    /// creates is 0640, whatever the process's umask lets through beyond.
    #[tokio::test]
    async fn a_created_file_is_not_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut s = sink(&path);
        s.send(&[event("a")]).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "others can read {mode:o}");
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
    }
}
