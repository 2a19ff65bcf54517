//! Configuration: the TOML model ([`model`]), value types ([`units`]),
//! secret resolution ([`secret`]) and the pure validation pass
//! ([`validate`]). Loading is two-phase: [`parse`] turns text into a
//! [`Config`] and lists every problem with its key path; secrets and TLS
//! files are read later, when sources and outputs are built.

pub mod model;
pub mod secret;
pub mod units;
pub mod validate;

pub use model::*;
pub use validate::Problem;

use std::path::{Path, PathBuf};

/// Default location of the config file.
pub const DEFAULT_PATH: &str = "/etc/auditrelay/auditrelay.toml";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file was read but has problems.
    #[error("{path}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// Parse and validate TOML text.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let de = toml::Deserializer::new(text);
    let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let line = inner
            .span()
            .map(|s| text.as_bytes()[..s.start.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1);
        let mut message = inner.message().trim().to_owned();
        if let Some(cut) = message.find(", expected one of") {
            message.truncate(cut);
            message.push_str(" (config.example.toml lists every key)");
        }
        if let Some(line) = line {
            message = format!("{message} (line {line})");
        }
        vec![Problem { path: if path == "." { "(file)".into() } else { path }, message }]
    })?;
    let problems = validate::validate(&cfg);
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems)
    }
}

/// Read, parse and validate a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(&text).map_err(|problems| ConfigError::Invalid { path: path.to_path_buf(), problems })
}

/// The demo configuration embedded in the binary (`examples/demo.toml`).
pub const DEMO: &str = include_str!("../../examples/demo.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        parse(text).err().unwrap_or_default().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn demo_config_is_valid() {
        parse(DEMO).unwrap();
    }

    #[test]
    fn unknown_key_has_its_path() {
        let p = problems(
            "[[source]]\nname = \"d\"\ntype = \"demo\"\nratte = \"5/s\"\n[[output]]\nname = \"o\"\ntype = \"file\"\npath = \"-\"\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("source[0].ratte: unknown field `ratte`"), "{p:?}");
        assert!(p[0].contains("line 4"), "{p:?}");
    }

    #[test]
    fn bad_duration_has_its_path() {
        let p = problems("[[source]]\nname = \"d\"\ntype = \"demo\"\ninterval = \"5 parsecs\"\n");
        assert!(p[0].starts_with("source[0].interval: invalid duration"), "{p:?}");
    }

    #[test]
    fn every_problem_is_listed() {
        let p = problems(
            r#"
[[source]]
name = "a"
type = "opencti"
url = "ftp://x"
rate = "5/s"
outputs = ["nope"]

[[source]]
name = "a"
type = "http_json"
url = "https://api.example.com/audit"

[[output]]
name = "hec"
type = "splunk_hec"
path = "/tmp/x"
"#,
        );
        let want = [
            "source[0].rate: is not a key of a opencti source",
            "source[0].url: \"ftp://x\" must be an http",
            "source[0].token: is required",
            "source[0].outputs[0]: no output is named \"nope\"",
            "source[1].name: another source is already named \"a\"",
            "source[1].events: is required",
            "source[1].timestamp: is required",
            "output[0].path: is not a key of a splunk_hec output",
            "output[0].url: is required",
            "output[0].token: is required",
        ];
        for w in want {
            assert!(p.iter().any(|x| x.starts_with(w)), "missing {w:?} in {p:#?}");
        }
        assert_eq!(p.len(), want.len(), "{p:#?}");
    }

    #[test]
    fn headers_a_source_would_not_send_as_configured_are_errors() {
        let p = problems(
            r#"
[[source]]
name = "d"
type = "demo"
headers = { "X-Tenant" = "a" }
timeout = "5s"

[[source]]
name = "o"
type = "opencti"
url = "https://opencti.example.com"
token = "t"
headers = { Authorization = "Bearer sk-should-not-be-quoted", "X-Ok" = "1" }

[[source]]
name = "g"
type = "guance"
url = "https://openapi.guance.com"
token = "t"
headers = { "df-api-key" = "k", "Content-Type" = "text/plain", "bad name" = "x" }

[[source]]
name = "k"
type = "keepnet"
url = "https://api.keepnetlabs.com"
client_id = "c"
client_secret = "s"
headers = { "X-KEEPNET-Company-Id" = "f3a1c2d4" }

[[source]]
name = "h"
type = "http_json"
url = "https://api.example.com/audit"
events = ""
timestamp = "/t"
auth = { type = "header", name = "X-API-Key", value = "v" }
headers = { "x-api-key" = "w" }

[[output]]
name = "f"
type = "file"
path = "-"
"#,
        );
        let want = [
            "source[0].headers: is not a key of a demo source",
            "source[0].timeout: is not a key of a demo source",
            "source[1].headers.Authorization: carries a opencti source's credentials",
            "source[2].headers.Content-Type: is set by the agent",
            "source[2].headers.bad name: \"bad name\" is not a valid header name",
            "source[2].headers.df-api-key: carries a guance source's credentials",
            "source[4].headers.x-api-key: carries a http_json source's credentials",
        ];
        for w in want {
            assert!(p.iter().any(|x| x.starts_with(w)), "missing {w:?} in {p:#?}");
        }
        assert_eq!(p.len(), want.len(), "{p:#?}");
        assert!(!p.iter().any(|x| x.contains("sk-should-not")), "a header value is never quoted: {p:#?}");
    }
}
