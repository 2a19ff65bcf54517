//! `file`: JSON lines appended to a file (for SIEMs that collect files), or
//! written to stdout when the path is `-`. A batch is confirmed only after
//! `fsync` (or a flush of stdout).

use super::{Delivery, SendError, Sink};
use crate::config::OutputConfig;
use crate::event::{Event, Payload};
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

/// The file output.
#[derive(Debug)]
pub struct FileSink {
    path: Option<PathBuf>,
    payload: Payload,
    file: Option<tokio::fs::File>,
    buf: Vec<u8>,
}

impl FileSink {
    /// From config (`path` is required by validation; `-` is stdout).
    pub fn new(cfg: &OutputConfig) -> Self {
        let path = cfg.path.clone().filter(|p| p.as_os_str() != "-");
        FileSink { path, payload: cfg.payload_kind(), file: None, buf: Vec::new() }
    }

    async fn open(&mut self) -> Result<&mut tokio::fs::File, SendError> {
        let Some(path) = &self.path else {
            return Err(SendError::config("stdout has no file"));
        };
        if self.file.is_none() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| SendError::transient(format!("cannot create {}: {e}", dir.display())))?;
            }
            let f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await
                .map_err(|e| SendError::transient(format!("cannot open {}: {e}", path.display())))?;
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
