//! LazyFS (vendored in `third_party/lazyfs/`, MIT): a FUSE file system that
//! keeps every write in its own cache until the file is fsynced, and drops
//! every unsynced write on command — a power cut, for the files under its
//! mount only. Built once by `third_party/lazyfs/build.sh` (into
//! `$LAZYFS_BUILD_DIR`, default `/tmp/lazyfs-build`; a C++ build of about a
//! minute, which also installs its Debian build dependencies when missing),
//! mounted by `third_party/lazyfs/mount.sh`.
//!
//! What it keeps after [`LazyFs::power_cut`] (tried by hand on LazyFS 0.2):
//! data survives only once fsynced or fdatasynced (through any descriptor
//! of the file: it syncs per inode); `close`, FUSE `flush`/`release` and
//! `sync_file_range` are not syncs, so a SIGKILLed writer loses what it had
//! not synced; an unsynced `truncate` is undone. Names are not cached:
//! create, rename, unlink and mkdir reach the disk at once, so a created
//! but never synced file survives (empty), a rename survives without a
//! directory fsync, and a missing directory fsync goes unnoticed here
//! (real file systems do need it).
//!
//! Each mount has its own temporary directory (mount point, backing
//! directory, fault FIFO), so tests can mount in parallel; its cache,
//! allocated and touched at mount, is `LAZYFS_CACHE_SIZE` (default
//! [`CACHE_SIZE`]) of memory, and must hold everything written to the mount.

use super::agent::POLL;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The default cache of a mount.
pub const CACHE_SIZE: &str = "256MB";

/// Between two `fusermount3 -u` attempts while the mount is still busy (a
/// process that just exited may hold it a moment): the loop ends once the
/// unmount succeeds, or at its deadline with a lazy unmount.
const UNMOUNT_RETRY: Duration = Duration::from_millis(100);

/// A mounted LazyFS; unmounted (and its process ended) when dropped, also
/// on panic.
pub struct LazyFs {
    mount: PathBuf,
    fifo: PathBuf,
    pid: u32,
    // Last: removed after the unmount.
    dir: tempfile::TempDir,
}

impl LazyFs {
    /// Build LazyFS if needed and mount a fresh one, or say why not.
    pub fn mount() -> Result<LazyFs, String> {
        if !Path::new("/dev/fuse").exists() {
            return Err("/dev/fuse does not exist".into());
        }
        // No "-o" anywhere in the path: LazyFS ignores a `--config-path`
        // whose value contains "-o" (case-insensitively), taking it for a
        // FUSE option; "lazyfs-" followed by a random "o…" did that.
        let dir = tempfile::Builder::new().prefix("lazyfs_").tempdir().map_err(|e| e.to_string())?;
        if dir.path().to_string_lossy().to_lowercase().contains("-o") {
            return Err(format!("{}: LazyFS cannot take a config path containing \"-o\"", dir.path().display()));
        }
        let (mount, root, fifo) = (dir.path().join("mnt"), dir.path().join("root"), dir.path().join("faults.fifo"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("third_party/lazyfs/mount.sh");
        let cache = std::env::var("LAZYFS_CACHE_SIZE").unwrap_or_else(|_| CACHE_SIZE.into());
        let out = Command::new("bash")
            .arg(&script)
            .args([&mount, &root, &fifo])
            .env("LAZYFS_CACHE_SIZE", cache)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let pid = stdout.lines().last().and_then(|l| l.trim().parse::<u32>().ok());
        match (out.status.success(), pid) {
            (true, Some(pid)) => Ok(LazyFs { mount, fifo, pid, dir }),
            _ => Err(format!(
                "{} failed ({}): {}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// [`LazyFs::mount`], or `None` after ONE line saying why (no root, no
    /// `/dev/fuse`, no compiler…). Under `CI` it must work: the test fails.
    pub fn mount_or_skip(test: &str) -> Option<LazyFs> {
        match LazyFs::mount() {
            Ok(fs) => Some(fs),
            Err(why) => {
                let why = why.replace('\n', " | ");
                assert!(!super::rsyslog::in_ci(), "CI: {test} needs LazyFS, which cannot be mounted here: {why}");
                eprintln!(
                    "SKIPPED {test}: LazyFS cannot be mounted here (needs root, /dev/fuse, a C++ toolchain): {why}"
                );
                None
            }
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// A path under the mount point.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.mount.join(rel)
    }

    /// Drop every write not synced yet, and wait until LazyFS did it. The
    /// writers must be dead already (as on a host losing power).
    pub fn power_cut(&self) {
        let (fifo, done) = (self.fifo.clone(), PathBuf::from(format!("{}.done", self.fifo.display())));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let answer = (|| -> std::io::Result<String> {
                // Open the answer FIFO first (read-write: it does not wait
                // for a writer): LazyFS drops its answer ("failed to write to
                // notifier fifo") when nobody has it open at that moment.
                let answers = std::fs::OpenOptions::new().read(true).write(true).open(&done)?;
                std::fs::OpenOptions::new().write(true).open(&fifo)?.write_all(b"lazyfs::clear-cache\n")?;
                let mut line = String::new();
                std::io::BufReader::new(answers).read_line(&mut line)?;
                Ok(line)
            })();
            let _ = tx.send(answer);
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(line)) => assert!(line.contains("clear-cache"), "LazyFS answered {line:?} to clear-cache"),
            Ok(Err(e)) => panic!("LazyFS clear-cache: {e}\n{}", self.log()),
            Err(_) => panic!("LazyFS did not clear its cache within 60 s\n{}", self.log()),
        }
    }

    /// What LazyFS printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(format!("{}.out", self.fifo.display())).unwrap_or_default()
    }

    /// Whether LazyFS's process still runs.
    pub fn is_alive(&self) -> bool {
        self.alive()
    }

    fn alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).is_ok_and(|s| s.contains(") Z "))
    }
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        if std::thread::panicking() || !self.alive() {
            // LazyFS's own output, for a failed run or a LazyFS that died.
            let out = std::fs::read_to_string(format!("{}.out", self.fifo.display())).unwrap_or_default();
            eprintln!("LazyFS output ({}):\n{}", if self.alive() { "running" } else { "died" }, tail_lines(&out, 30));
        }
        let unmount = |lazy: bool| {
            let mut c = Command::new("fusermount3");
            c.arg(if lazy { "-uz" } else { "-u" }).arg(&self.mount).stderr(Stdio::null());
            c.status().is_ok_and(|s| s.success())
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !unmount(false) && Instant::now() < deadline {
            std::thread::sleep(UNMOUNT_RETRY);
        }
        let _ = unmount(true);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if self.alive() {
            let _ = Command::new("kill").arg("-KILL").arg(self.pid.to_string()).status();
        }
        let _ = self.dir.path();
    }
}
