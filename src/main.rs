//! The `auditrelay` binary: command-line parsing and exit codes only.

use auditrelay::commands::{self, ConfigSource, DeadLetterAction};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc, with the settings `.cargo/config.toml` builds into it
/// (`JEMALLOC_SYS_WITH_MALLOC_CONF`): two arenas, a background thread that
/// returns freed pages to the system after 100 ms. `_RJEM_MALLOC_CONF` in the
/// environment overrides them at start.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Pulls audit logs out of SaaS and on-prem APIs and delivers them to Splunk
/// HEC, QRadar or syslog without losing an event.
///
/// Configuration: /etc/auditrelay/auditrelay.toml unless --config is given;
/// with neither, `run` starts the embedded demo (sample events on stdout,
/// state in ./data). Exit codes: 0 ok, 1 runtime failure, 2 bad
/// configuration or usage.
#[derive(Parser, Debug)]
#[command(name = "auditrelay", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    /// List, retry or purge the events an output's receiver rejected (agent stopped for retry/purge).
    DeadLetters {
        /// What to do.
        #[arg(value_enum)]
        action: Action,
        /// Config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The output's name.
        #[arg(long)]
        output: String,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Action {
    List,
    Retry,
    Purge,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(commands::BAD_CONFIG),
            };
        }
    };
    match cli.command {
        Command::Run { config } => commands::run(ConfigSource::resolve(config)),
        Command::Check { config, connect } => commands::check(ConfigSource::resolve(config), connect),
        Command::Status { config, json } => commands::status(ConfigSource::resolve(config), json),
        Command::Replay { config, source, from, force } => {
            commands::replay(ConfigSource::resolve(config), &source, &from, force)
        }
        Command::DeadLetters { action, config, output } => {
            let action = match action {
                Action::List => DeadLetterAction::List,
                Action::Retry => DeadLetterAction::Retry,
                Action::Purge => DeadLetterAction::Purge,
            };
            commands::dead_letters(ConfigSource::resolve(config), action, &output)
        }
    }
}
