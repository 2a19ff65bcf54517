//! Configuration: the file model above the components. The TOML model
//! ([`model`]: the whole file and `[agent]`), a `[[source]]` and an
//! `[[output]]` as the file holds them ([`source`], [`output`]: a name, the
//! keys every component of the kind has, and its type's own keys), reading
//! the file so that every problem comes out ([`collect`]), the pure
//! validation pass ([`validate`]), `[cluster]` ([`cluster`]), where the
//! configuration comes from ([`origin`]) and the weak settings `check`
//! warns about ([`warnings`]). Each component type's keys are its own
//! (`sources/<vendor>/config.rs`, `outputs/<name>/config.rs`, registered
//! in `sources/kinds.rs` and `outputs/kinds.rs`); the primitives they are
//! made of (units, secrets, problems, TLS settings) are `settings`'.
//! Loading is two-phase: [`parse`] turns text into a [`Config`] and lists
//! every problem with its key path and line; secrets and TLS files are
//! read later, when sources and outputs are built from the typed values:
//! the same `Validate` impl of each type that listed its problems hands its
//! build the required keys, present and parsed, so no build checks a key
//! itself.

pub mod cluster;
pub mod collect;
pub mod model;
pub mod origin;
pub mod output;
pub mod source;
pub mod validate;
pub mod warnings;

pub use crate::settings::Problem;
pub use model::*;
pub use origin::ConfigSource;
pub use output::{OutputCommon, OutputConfig, OutputKind};
pub use source::{SourceCommon, SourceConfig, SourceKind};

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

/// Parse and validate TOML text: the config, or every problem.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let (cfg, problems) = parse_all(text);
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems)
    }
}

/// Parse and validate TOML text, reading past problems: the config as far
/// as it could be read (failing keys left out, failing tables dropped) and
/// every problem, each with its key path and line. `check` resolves the
/// secrets of what was read to report those problems in the same run.
pub fn parse_all(text: &str) -> (Config, Vec<Problem>) {
    let (cfg, mut problems, dropped) = collect::read(text);
    // A key already reported (and set aside) is not reported again as
    // missing by validation.
    let reported: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
    let bad_table = |path: &str| reported.iter().any(|r| path == r || path.starts_with(&format!("{r}.")));
    let found = validate::validate(&cfg);
    problems.extend(found.problems.into_iter().filter(|p| !bad_table(&p.path)));
    // A dropped table would make "no source configured" or "no output
    // named …" up; those wait until the tables read.
    if !dropped {
        problems.extend(found.whole.into_iter().filter(|p| !bad_table(&p.path)));
    }
    if let Some(c) = &cfg.cluster {
        problems.extend(cluster::validate(c).into_iter().filter(|p| !bad_table(&p.path)));
    }
    collect::annotate_lines(text, &mut problems);
    (cfg, problems)
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

    #[test]
    fn header_values_never_reach_debug_output() {
        let cfg = parse(
            r#"
[[source]]
name = "k"
type = "keepnet"
url = "https://api.keepnetlabs.com"
client_id = "c"
client_secret = "s"
headers = { "X-KEEPNET-Company-Id" = "tenant-f3a1c2d4" }

[[output]]
name = "f"
type = "file"
path = "-"
"#,
        )
        .expect("valid");
        let shown = format!("{cfg:?}");
        assert!(shown.contains("X-KEEPNET-Company-Id"), "the name is shown: {shown}");
        assert!(!shown.contains("tenant-f3a1c2d4"), "the value is not: {shown}");
    }

    #[test]
    fn ca_only_needs_a_ca_file() {
        let base = "[[output]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"siem.example.com:6514\"\ntransport = \"tls\"\n[[source]]\nname = \"d\"\ntype = \"demo\"\n";
        let p = problems(&base.replace("transport = \"tls\"\n", "transport = \"tls\"\ntls = { ca_only = true }\n"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("output[0].tls.ca_only: trusts ca_file alone"), "{p:?}");
        let ok = base.replace(
            "transport = \"tls\"\n",
            "transport = \"tls\"\ntls = { ca_file = \"/etc/ca.pem\", ca_only = true }\n",
        );
        assert!(problems(&ok).is_empty(), "{:?}", problems(&ok));
    }

    /// A value of the wrong type at a secret key is reported at its key
    /// path by its type, never quoted.
    #[test]
    fn mistyped_secrets_are_not_echoed() {
        let text = r#"
[[source]]
name = "o"
type = "opencti"
url = "https://opencti.example.com"
token = 98765001

[[source]]
name = "h"
type = "http_json"
url = "https://api.example.com/audit"
events = ""
timestamp = "/t"
auth = { type = "basic", username = "u", password = 98765002 }
headers = { "X-Tenant" = 98765003 }

[[source]]
name = "k"
type = "keepnet"
url = "https://api.keepnetlabs.com"
client_id = "c"
client_secret = [98765004]

[[output]]
name = "hec"
type = "splunk_hec"
url = "https://splunk.example.com:8088"
token = 98765005.5

[cluster]
etcd = ["https://127.0.0.1:2379"]
user = "u"
password = 98765006
"#;
        let p = problems(text);
        for path in [
            "source[0].token: invalid type: integer",
            "source[1].headers.X-Tenant: invalid type: integer",
            "source[2].client_secret: invalid type: array",
            "output[0].token: invalid type: float",
            "cluster.password: invalid type: integer",
        ] {
            assert!(p.iter().any(|x| x.starts_with(path)), "missing {path:?} in {p:#?}");
        }
        assert!(p.iter().any(|x| x.starts_with("source[1].auth")), "{p:#?}");
        assert!(!p.iter().any(|x| x.contains("98765")), "a secret's value is quoted: {p:#?}");
    }

    /// Problems of different kinds, several in one table, all come out in
    /// one run, each with its key path and line.
    #[test]
    fn every_problem_is_listed_across_kinds_with_lines() {
        let text = "[agent]\nlog_format = \"xml\"\n\n[[source]]\nname = \"d\"\ntype = \"demo\"\nratte = \"5/s\"\ninterval = \"5 parsecs\"\n\n[[source]]\nname = \"o\"\ntype = \"opencti\"\nurl = \"https://x.example\"\ntoken = \"t\"\nlag = 5\n[source.tls]\nca_fle = \"/x\"\n\n[[output]]\nname = \"f\"\ntype = \"file\"\npath = \"-\"\nbatch = { max_events = \"many\" }\n\n[[output]]\nname = \"g\"\ntype = \"file\"\n";
        let p = problems(text);
        let want = [
            ("agent.log_format: unknown variant `xml`", 2),
            ("source[0].ratte: unknown field `ratte`", 7),
            ("source[0].interval: invalid duration", 8),
            ("source[1].lag: ", 15),
            ("source[1].tls.ca_fle: unknown field `ca_fle`", 17),
            ("output[0].batch.max_events: ", 23),
            ("output[1].path: is required", 25),
        ];
        for (w, line) in want {
            let hit = p.iter().find(|x| x.starts_with(w));
            let hit = hit.unwrap_or_else(|| panic!("missing {w:?} in {p:#?}"));
            assert!(hit.ends_with(&format!("(line {line})")), "{w:?} should be on line {line}: {hit}");
        }
        assert_eq!(p.len(), want.len(), "{p:#?}");
    }

    /// Closed vocabularies are enums from the moment the file is read: a
    /// value outside one, a key of another type and an unknown type are
    /// all reported with their key path and line, in one run.
    #[test]
    fn vocabularies_and_types_are_checked_when_read() {
        let text = "[[source]]\nname = \"h\"\ntype = \"http_json\"\nurl = \"https://a.example/x\"\nevents = \"\"\ntimestamp = \"/t\"\nmethod = \"PUT\"\ntimestamp_format = \"nope\"\ninclude_history = true\n\n[[source]]\nname = \"x\"\ntype = \"acme\"\n\n[[output]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"h:514\"\ntransport = \"sctp\"\nformat = \"rfc9999\"\nframing = \"lf\"\npayload = \"leef\"\nfacility = \"kernel2\"\n\n[[output]]\nname = \"q\"\ntype = \"qradar\"\naddress = \"h:514\"\npayload = \"json\"\nformat = \"rfc5424\"\n";
        let p = problems(text);
        let want = [
            ("source[0].method: unknown variant `PUT`, expected `GET` or `POST`", 7),
            ("source[0].timestamp_format: \"nope\" must be rfc3339, unix, unix_ms or a strftime pattern", 8),
            ("source[0].include_history: is not a key of a http_json source", 9),
            ("source[1].type: unknown variant `acme`, expected one of `opencti`, `sekoia`", 13),
            ("output[0].transport: unknown variant `sctp`, expected one of `udp`, `tcp`, `tls`", 19),
            ("output[0].format: unknown variant `rfc9999`, expected `rfc5424` or `rfc3164`", 20),
            ("output[0].framing: unknown variant `lf`, expected `octet-counting` or `newline`", 21),
            ("output[0].payload: unknown variant `leef`, expected one of `json`, `cef`, `raw`", 22),
            ("output[0].facility: \"kernel2\" is not a syslog facility", 23),
            ("output[1].payload: unknown variant `json`, expected `leef`", 29),
            ("output[1].format: is not a key of a qradar output", 30),
        ];
        for (w, line) in want {
            let hit = p.iter().find(|x| x.starts_with(w));
            let hit = hit.unwrap_or_else(|| panic!("missing {w:?} in {p:#?}"));
            assert!(hit.ends_with(&format!("(line {line})")), "{w:?} should be on line {line}: {hit}");
        }
        assert_eq!(p.len(), want.len(), "{p:#?}");
    }

    /// The typed values keep the defaults the flat config had.
    #[test]
    fn typed_values_keep_their_defaults() {
        use crate::outputs::syslog::{SyslogFormat, SyslogPayload};
        use crate::outputs::JsonPayload;
        use crate::sources::http_json::Method;
        use crate::transport::framing::{Framing, Transport};
        let cfg = parse(
            "[[source]]\nname = \"h\"\ntype = \"http_json\"\nurl = \"https://a.example/x\"\nevents = \"\"\ntimestamp = \"/t\"\n\
             [[output]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"h:514\"\n\
             [[output]]\nname = \"f\"\ntype = \"file\"\npath = \"-\"\n",
        )
        .unwrap();
        let SourceKind::HttpJson(h) = &cfg.sources[0].kind else { panic!("http_json") };
        assert_eq!((h.method, h.timestamp_format.as_ref(), h.order), (Method::Get, None, None));
        assert_eq!(cfg.sources[0].common, SourceCommon::default());
        let OutputKind::Syslog(s) = &cfg.outputs[0].kind else { panic!("syslog") };
        assert_eq!(
            (s.transport, s.format, s.framing, s.payload),
            (Transport::Tcp, SyslogFormat::Rfc5424, None::<Framing>, SyslogPayload::Json)
        );
        let OutputKind::File(f) = &cfg.outputs[1].kind else { panic!("file") };
        assert_eq!(f.payload, JsonPayload::Normalised);
        assert_eq!(cfg.outputs[1].common, OutputCommon::default());
        assert_eq!(cfg.outputs[1].common.retry_max_interval, crate::settings::units::Dur::secs(60));
    }
}
