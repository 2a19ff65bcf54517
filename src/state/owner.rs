//! Who may write the state directory: only the user who owns it (the
//! service's user). A maintenance command run as root (`sudo auditrelay
//! replay …`) that opened the database would leave root-owned files there
//! and the service, under its own user, could no longer start; such a
//! command works read-only or refuses, naming the exact command to run
//! instead (docs/security.md).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The state directory belongs to another user than the one running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOwner {
    /// The state directory.
    pub dir: PathBuf,
    /// Its owner's name (`#uid` when it has none).
    pub owner: String,
    /// Who runs this command.
    pub me: String,
}

impl NotOwner {
    /// The refusal, with the command line to run instead: `sudo -u OWNER`
    /// and this process's own arguments.
    pub fn advice(&self, args: &[String]) -> String {
        let line: Vec<String> = args.iter().map(|a| shell_word(a)).collect();
        format!(
            "{} belongs to user {}; run as {} this command would leave files there the service cannot open. Run it as the owner:\n  sudo -u {} {}",
            self.dir.display(),
            self.owner,
            self.me,
            shell_word(&self.owner),
            line.join(" ")
        )
    }
}

/// Whether this process may write `state_dir`: it does not exist yet (it
/// will be created by this user) or this user owns it.
pub fn check(state_dir: &Path) -> Result<(), NotOwner> {
    let Ok(meta) = std::fs::metadata(state_dir) else { return Ok(()) };
    let Some(me) = effective_uid() else { return Ok(()) };
    if meta.uid() == me {
        return Ok(());
    }
    Err(NotOwner { dir: state_dir.to_owned(), owner: user_name(meta.uid()), me: user_name(me) })
}

/// This process's effective user id, from `/proc/self/status` (the crate
/// uses no `unsafe`, so not `geteuid`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The name `/etc/passwd` gives `uid`, else `#uid` (which `sudo -u` takes).
fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

/// `s` quoted for a POSIX shell when it needs to be.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@#%+,".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_directory_and_missing_directory_pass() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(dir.path()), Ok(()));
        assert_eq!(check(&dir.path().join("not-yet")), Ok(()));
    }

    #[test]
    fn advice_names_the_owner_and_quotes_the_arguments() {
        let n = NotOwner { dir: "/var/lib/auditrelay".into(), owner: "auditrelay".into(), me: "root".into() };
        let args: Vec<String> =
            ["auditrelay", "replay", "--source", "my src", "--from", "2026-01-01T00:00:00Z"].map(String::from).into();
        let text = n.advice(&args);
        assert!(text.contains("/var/lib/auditrelay belongs to user auditrelay"), "{text}");
        assert!(
            text.ends_with("sudo -u auditrelay auditrelay replay --source 'my src' --from 2026-01-01T00:00:00Z"),
            "{text}"
        );
    }

    #[test]
    fn names_come_from_passwd() {
        assert_eq!(user_name(0), "root");
        assert_eq!(user_name(4_000_000_000), "#4000000000");
        assert!(effective_uid().is_some(), "the effective uid is read from /proc");
    }
}
