//! The `auditrelay` binary: command-line parsing and exit codes only.

use auditrelay::cli::{Action, Cli, Command};
use auditrelay::commands::{self, ConfigSource, DeadLetterAction};
use clap::Parser;
use std::process::ExitCode;

/// jemalloc, with the settings `.cargo/config.toml` builds into it
/// (`JEMALLOC_SYS_WITH_MALLOC_CONF`): two arenas, a background thread that
/// returns freed pages to the system after 100 ms. `_RJEM_MALLOC_CONF` in the
/// environment overrides them at start.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
        Command::DeadLetters { action, config, output, source } => {
            let action = match action {
                Action::List => DeadLetterAction::List,
                Action::Retry => DeadLetterAction::Retry,
                Action::Purge => DeadLetterAction::Purge,
            };
            let of = match (output, source) {
                (Some(o), _) => commands::DeadLettersOf::Output(o),
                (None, s) => commands::DeadLettersOf::Source(s.unwrap_or_default()),
            };
            commands::dead_letters(ConfigSource::resolve(config), action, &of)
        }
        Command::Verify { files, config, json } => {
            commands::verify(&files, config.map(|c| ConfigSource::resolve(Some(c))), json)
        }
    }
}
