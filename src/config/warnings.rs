//! Settings that work but weaken what the agent protects: `check` prints
//! each as a warning with its key path (stderr, exit code unchanged).
//!
//! [`weak_settings`] is pure, like validation: certificate verification
//! off, credentials or audit events sent unencrypted. [`exposed_secrets`]
//! looks at the files: a secret written where every local user can read it
//! (a world-readable config holding a literal secret, a world-readable
//! `*_file` or TLS key).

use super::model::Config;
use crate::settings::secret::SecretKey;
use crate::settings::{Problem, TlsConfig};
use crate::sources::http_json::AuthConfig;
use crate::sources::SourceKind;
use std::path::Path;

/// The permission bit that lets every local user read a file.
const WORLD_READABLE: u32 = 0o004;

fn warn(out: &mut Vec<Problem>, path: String, message: impl Into<String>) {
    out.push(Problem::new(path, message));
}

/// The keys named in a warning (`token`, `auth.password`).
fn names(secrets: &[SecretKey<'_>]) -> String {
    secrets.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
}

/// Whether `url` is plain `http://` (scheme compared as URLs do).
fn is_http(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.scheme() == "http")
}

fn insecure_tls(out: &mut Vec<Problem>, at: &str, tls: Option<&TlsConfig>) {
    if tls.is_some_and(|t| t.insecure_skip_verify) {
        warn(
            out,
            format!("{at}.tls.insecure_skip_verify"),
            "certificate verification is off: anyone between the agent and the server can read and change \
             the traffic, credentials included; give the server's CA to tls.ca_file instead",
        );
    }
}

/// Warnings about settings that send credentials or events unprotected.
pub fn weak_settings(cfg: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, s) in cfg.sources.iter().enumerate() {
        let at = format!("source[{i}]");
        let spec = s.kind.spec();
        insecure_tls(&mut out, &at, s.common.tls.as_ref());
        let secrets = spec.secrets();
        if !secrets.is_empty() && spec.url().is_some_and(|u| u.scheme() == "http") {
            warn(
                &mut out,
                format!("{at}.url"),
                format!(
                    "is http://: the source's credentials ({}) and the audit log travel unencrypted; use https://",
                    names(&secrets)
                ),
            );
        }
        if let SourceKind::HttpJson(h) = &s.kind {
            if let Some(AuthConfig::Oauth2 { token_url, .. }) = &h.auth {
                if is_http(token_url) {
                    warn(
                        &mut out,
                        format!("{at}.auth.token_url"),
                        "is http://: the OAuth2 client secret and the tokens travel unencrypted; use https://",
                    );
                }
            }
        }
    }
    for (i, o) in cfg.outputs.iter().enumerate() {
        let at = format!("output[{i}]");
        insecure_tls(&mut out, &at, o.common.tls.as_ref());
        out.extend(o.kind.spec().warnings(&at));
    }
    if let Some(c) = cfg.cluster.as_ref().filter(|c| c.user.is_some()) {
        for (i, _) in c.etcd.iter().enumerate().filter(|(_, e)| is_http(e)) {
            warn(
                &mut out,
                format!("cluster.etcd[{i}]"),
                "is http://: the etcd user's password and the cursors travel unencrypted; use https://",
            );
        }
    }
    out
}

/// A TLS client key, as a secret of `{at}.tls` (file key `key_file`).
fn tls_key<'a>(at: &str, tls: Option<&'a TlsConfig>) -> Option<(String, SecretKey<'a>)> {
    let file = tls?.key_file.as_deref()?;
    Some((format!("{at}.tls"), SecretKey { key: "key", inline: None, file: Some(file) }))
}

/// Where a component's secrets and TLS key are: `(key path, secret)`.
fn secrets_of(cfg: &Config) -> Vec<(String, SecretKey<'_>)> {
    let mut all = Vec::new();
    for (i, s) in cfg.sources.iter().enumerate() {
        let at = format!("source[{i}]");
        all.extend(s.kind.spec().secrets().into_iter().map(|k| (at.clone(), k)));
        all.extend(tls_key(&at, s.common.tls.as_ref()));
    }
    for (i, o) in cfg.outputs.iter().enumerate() {
        let at = format!("output[{i}]");
        all.extend(o.kind.spec().secrets().into_iter().map(|k| (at.clone(), k)));
        all.extend(tls_key(&at, o.common.tls.as_ref()));
    }
    if let Some(c) = &cfg.cluster {
        all.push(("cluster".into(), SecretKey::new("password", c.password.as_ref(), c.password_file.as_ref())));
        if let Some(key) = &c.key_file {
            // `cluster.key_file`: the file key is `key` + `_file`.
            all.push(("cluster".into(), SecretKey { key: "key", inline: None, file: Some(key) }));
        }
    }
    all
}

/// The permission bits of `path` when every local user can read it.
fn world_readable(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & WORLD_READABLE != 0).then_some(mode)
}

/// Warnings about secrets every local user can read: each literal secret
/// of a world-readable `config_file`, and each world-readable `*_file`
/// and TLS key (as written; a relative one from the working directory).
pub fn exposed_secrets(cfg: &Config, config_file: Option<&Path>) -> Vec<Problem> {
    let mut out = Vec::new();
    let config_mode = config_file.and_then(|p| Some((p, world_readable(p)?)));
    for (at, secret) in secrets_of(cfg) {
        if let (Some((file, mode)), Some(_)) = (config_mode, secret.inline.filter(|r| r.is_literal())) {
            warn(
                &mut out,
                format!("{at}.{}", secret.key),
                format!(
                    "holds the secret itself in {}, which every local user can read (mode {mode:04o}); \
                     chmod 0640 it, or use \"${{VAR}}\" or {}_file",
                    file.display(),
                    secret.key.rsplit('.').next().unwrap_or(secret.key)
                ),
            );
        }
        if let Some(file) = secret.file {
            if let Some(mode) = world_readable(file) {
                warn(
                    &mut out,
                    format!("{at}.{}_file", secret.key),
                    format!(
                        "{} is readable by every local user (mode {mode:04o}); chmod 0640 (or 0600) it",
                        file.display()
                    ),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cfg(text: &str) -> Config {
        super::super::parse(text).unwrap_or_else(|p| panic!("{p:#?}"))
    }

    fn paths(p: &[Problem]) -> Vec<&str> {
        p.iter().map(|p| p.path.as_str()).collect()
    }

    const SAFE: &str = r#"
[[source]]
name = "o"
type = "opencti"
url = "https://opencti.example.com"
token = "${OPENCTI_TOKEN}"

[[output]]
name = "hec"
type = "splunk_hec"
url = "https://splunk.example.com:8088"
token_file = "/nonexistent/hec.token"

[[output]]
name = "q"
type = "qradar"
address = "qradar.example.com:6514"
transport = "tls"
"#;

    #[test]
    fn safe_settings_warn_nothing() {
        assert!(weak_settings(&cfg(SAFE)).is_empty(), "{:#?}", weak_settings(&cfg(SAFE)));
        assert!(weak_settings(&cfg(crate::config::DEMO)).is_empty());
    }

    #[test]
    fn weak_settings_are_named_by_key_path() {
        let c = cfg(r#"
[[source]]
name = "o"
type = "opencti"
url = "http://opencti.example.com"
token = "${T}"
tls = { insecure_skip_verify = true }

[[source]]
name = "open"
type = "http_json"
url = "http://api.example.com/public"
events = ""
timestamp = "/t"

[[source]]
name = "oauth"
type = "http_json"
url = "https://api.example.com/audit"
events = ""
timestamp = "/t"
auth = { type = "oauth2", token_url = "http://login.example.com/token", client_id = "c", client_secret = "${S}" }

[[source]]
name = "basic"
type = "http_json"
url = "HTTP://api.example.com/audit"
events = ""
timestamp = "/t"
auth = { type = "basic", username = "u", password = "${P}" }

[[output]]
name = "hec"
type = "splunk_hec"
url = "http://splunk.example.com:8088"
token = "${HEC}"
tls = { insecure_skip_verify = true }

[[output]]
name = "s"
type = "syslog"
address = "siem.example.com:514"

[[output]]
name = "q"
type = "qradar"
address = "qradar.example.com:514"
transport = "udp"

[cluster]
etcd = ["https://10.0.0.1:2379", "http://10.0.0.2:2379"]
user = "relay"
password = "${ETCD}"
"#);
        let w = weak_settings(&c);
        assert_eq!(
            paths(&w),
            [
                "source[0].tls.insecure_skip_verify",
                "source[0].url",
                "source[2].auth.token_url",
                "source[3].url",
                "output[0].tls.insecure_skip_verify",
                "output[0].url",
                "output[1].transport",
                "output[2].transport",
                "cluster.etcd[1]",
            ],
            "{w:#?}"
        );
        assert!(w[1].message.contains("(token)"), "{}", w[1].message);
        assert!(w[3].message.contains("auth.password"), "{}", w[3].message);
        assert!(w[6].message.starts_with("is tcp") && w[6].message.contains("transport = \"tls\""), "{}", w[6]);
        assert!(w[7].message.starts_with("is udp"), "{}", w[7]);
        let no_user = cfg("[[source]]\nname = \"d\"\ntype = \"demo\"\n[[output]]\nname = \"f\"\ntype = \"file\"\npath = \"-\"\n[cluster]\netcd = [\"http://10.0.0.2:2379\"]\n");
        assert!(weak_settings(&no_user).is_empty(), "etcd without credentials: nothing to leak");
    }

    #[test]
    fn secrets_other_users_can_read_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("hec.token");
        let key_file = dir.path().join("client.key");
        let private = dir.path().join("etcd.pass");
        for f in [&secret_file, &key_file, &private] {
            std::fs::write(f, "s3cr3t\n").unwrap();
        }
        let chmod = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        chmod(&secret_file, 0o644);
        chmod(&key_file, 0o604);
        chmod(&private, 0o640);
        let text = format!(
            r#"
[[source]]
name = "o"
type = "opencti"
url = "https://opencti.example.com"
token = "literal-token"

[[source]]
name = "h"
type = "http_json"
url = "https://api.example.com/audit"
events = ""
timestamp = "/t"
auth = {{ type = "header", name = "X-Key", value = "${{KEY}}" }}

[[output]]
name = "hec"
type = "splunk_hec"
url = "https://splunk.example.com:8088"
token_file = "{}"
tls = {{ cert_file = "/c.pem", key_file = "{}" }}

[cluster]
etcd = ["https://10.0.0.1:2379"]
user = "relay"
password_file = "{}"
"#,
            secret_file.display(),
            key_file.display(),
            private.display()
        );
        let config = dir.path().join("auditrelay.toml");
        std::fs::write(&config, &text).unwrap();
        let c = cfg(&text);
        chmod(&config, 0o644);
        let w = exposed_secrets(&c, Some(&config));
        assert_eq!(paths(&w), ["source[0].token", "output[0].token_file", "output[0].tls.key_file"], "{w:#?}");
        assert!(w[0].message.contains("mode 0644") && w[0].message.contains("token_file"), "{}", w[0]);
        assert!(!w.iter().any(|p| p.message.contains("literal-token") || p.message.contains("s3cr3t")), "{w:#?}");
        chmod(&config, 0o640);
        let w = exposed_secrets(&c, Some(&config));
        assert_eq!(paths(&w), ["output[0].token_file", "output[0].tls.key_file"], "{w:#?}");
    }
}
