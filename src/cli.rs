//! The command line, as clap parses it. It lives in the library so that
//! `examples/gen-docs.rs` renders the man page and the shell completions
//! from this same definition (the binary does not carry clap_mangen or
//! clap_complete).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Pulls audit logs out of SaaS and on-prem APIs and delivers them to Splunk
/// HEC, QRadar or syslog without losing an event.
///
/// Configuration: /etc/auditrelay/auditrelay.toml unless --config is given;
/// with neither, `run` starts the embedded demo (sample events on stdout,
/// state in ./data). Exit codes: 0 ok, 1 runtime failure, 2 bad
/// configuration or usage.
#[derive(Parser, Debug)]
#[command(name = "auditrelay", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    /// What to do.
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the agent (the service). SIGTERM/SIGINT drain and exit; SIGHUP reloads the config.
    Run {
        /// Config file (default /etc/auditrelay/auditrelay.toml, else the embedded demo).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate the config and list every problem with its key path.
    Check {
        /// Config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Also make one request to every source and a health check of every output.
        #[arg(long)]
        connect: bool,
    },
    /// Show each source's cursor and health and each output's backlog and dead letters.
    Status {
        /// Config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move a source's cursor back so its events are polled and delivered again (agent stopped, or --force).
    Replay {
        /// Config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The source's name.
        #[arg(long)]
        source: String,
        /// RFC 3339 time, or a duration back from now such as "2h".
        #[arg(long)]
        from: String,
        /// The agent is running: ask it to replay (it restarts that source from the new cursor).
        #[arg(long)]
        force: bool,
    },
    /// List, retry or purge the events an output's receiver rejected, or those a source could not read (`--source`) (agent stopped).
    DeadLetters {
        /// What to do.
        #[arg(value_enum)]
        action: Action,
        /// Config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The output's name.
        #[arg(long, required_unless_present = "source", conflicts_with = "source")]
        output: Option<String>,
        /// The source's name: the events it received but could not read (not UTF-8, no readable time), set aside.
        #[arg(long)]
        source: Option<String>,
    },
    /// Check what a SIEM holds against the completeness manifests it holds: JSON lines (the file output, a Splunk export, HEC bodies, syslog lines with a JSON message) from files or stdin. Exits 1 on any gap or alteration.
    Verify {
        /// Files to read (`-` or none: stdin).
        files: Vec<PathBuf>,
        /// The agent's config: name missing events by `event.id` from its journal while it still holds them (agent stopped).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Action {
    /// Print each dead letter with its reason.
    List,
    /// Queue them again for that output.
    Retry,
    /// Delete them.
    Purge,
}
