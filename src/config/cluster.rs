//! `[cluster]`: several agents sharing one configuration coordinate through
//! etcd (see `crate::cluster`). Absent, the agent runs alone exactly as it
//! always did and never talks to etcd.

use crate::settings::secret::SecretRef;
use crate::settings::units::Dur;
use crate::settings::{Problem, TlsConfig};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Default `lease_ttl`.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// Shortest `lease_ttl` accepted: the agent renews every fifth of it and
/// stops polling a third of it before it could expire.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(2);
/// Default `prefix`.
pub const DEFAULT_PREFIX: &str = "/auditrelay/";

/// `[cluster]`
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd client URLs (`http://` or `https://`); the agent fails over
    /// between them.
    pub etcd: Vec<String>,
    /// This agent's name in the fleet, unique per host; default: the host name.
    #[serde(default)]
    pub name: Option<String>,
    /// The agent's etcd lease: a dead agent's sources move after this long.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: Dur,
    /// Every key the fleet writes starts with this (one fleet per prefix).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// CA bundle (PEM) that signed etcd's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's `--client-cert-auth`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// etcd user (etcd's `auth enable`).
    #[serde(default)]
    pub user: Option<String>,
    /// The user's password: `"${VAR}"` or a literal.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// A file holding the password (also looked up in `$CREDENTIALS_DIRECTORY`).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("etcd", &self.etcd)
            .field("name", &self.name)
            .field("lease_ttl", &self.lease_ttl)
            .field("prefix", &self.prefix)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("password_file", &self.password_file)
            .finish()
    }
}

fn default_lease_ttl() -> Dur {
    Dur(DEFAULT_LEASE_TTL)
}

fn default_prefix() -> String {
    DEFAULT_PREFIX.to_owned()
}

impl ClusterConfig {
    /// The prefix with exactly one `/` at its end.
    pub fn prefix(&self) -> String {
        format!("{}/", self.prefix.trim_end_matches('/'))
    }

    /// The TLS settings for etcd, when any is set.
    pub fn tls(&self) -> Option<TlsConfig> {
        (self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()).then(|| TlsConfig {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            ..Default::default()
        })
    }
}

/// Check `[cluster]` (pure; secrets are read when the agent starts).
pub fn validate(c: &ClusterConfig) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut add = |path: &str, message: String| p.push(Problem::new(format!("cluster.{path}"), message));
    if c.etcd.is_empty() {
        add("etcd", "lists no endpoint; give etcd's client URLs, e.g. [\"http://10.0.0.1:2379\"]".into());
    }
    for (i, e) in c.etcd.iter().enumerate() {
        match url::Url::parse(e) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => add(&format!("etcd[{i}]"), format!("{e:?} must be an http:// or https:// URL with a host")),
        }
    }
    if let Some(n) = &c.name {
        let ok = !n.is_empty()
            && n.len() <= 64
            && n.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'));
        if !ok {
            add("name", format!("{n:?} must be 1-64 characters of A-Z a-z 0-9 _ - ."));
        }
    }
    if c.lease_ttl.get() < MIN_LEASE_TTL {
        add("lease_ttl", format!("must be at least {}s", MIN_LEASE_TTL.as_secs()));
    }
    if !c.prefix.starts_with('/') || c.prefix.trim_end_matches('/').is_empty() {
        add("prefix", format!("{:?} must start with '/' and name something (e.g. \"/auditrelay/\")", c.prefix));
    }
    if c.cert_file.is_some() != c.key_file.is_some() {
        add("cert_file", "cert_file and key_file go together".into());
    }
    if c.password.is_some() && c.password_file.is_some() {
        add("password", "set either password or password_file, not both".into());
    }
    if c.user.is_some() != (c.password.is_some() || c.password_file.is_some()) {
        add("user", "user and password (or password_file) go together".into());
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClusterConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_redacted_debug() {
        let c = parse("etcd = [\"http://127.0.0.1:2379\"]\nuser = \"u\"\npassword = \"hunter2\"\n").unwrap();
        assert_eq!(c.lease_ttl.get(), DEFAULT_LEASE_TTL);
        assert_eq!(c.prefix(), "/auditrelay/");
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn problems_have_paths() {
        let c = parse("etcd = [\"ftp://x\"]\nlease_ttl = \"1s\"\nprefix = \"x\"\nuser = \"u\"\n").unwrap();
        let paths: Vec<String> = validate(&c).into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["cluster.etcd[0]", "cluster.lease_ttl", "cluster.prefix", "cluster.user"]);
        assert!(parse("etcd = []\nbogus = 1\n").is_err());
    }
}
