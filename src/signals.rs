//! Signals, with signal-hook on a small thread: SIGTERM or SIGINT cancel the
//! root token (a second one exits at once with status 1); SIGHUP re-reads
//! the config file and hands the result to the pipeline, which keeps the
//! running config if the new one is invalid.

use crate::config::{Config, ConfigError, ConfigSource, Problem};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Install the handlers and start the signal thread.
pub fn install(
    shutdown: CancellationToken,
    reload: mpsc::Sender<Result<Config, Vec<Problem>>>,
    src: ConfigSource,
) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            match sig {
                SIGHUP => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let new = match src.load() {
                        Ok(c) => Ok(c),
                        Err(ConfigError::Invalid { problems, .. }) => Err(problems),
                        Err(e @ ConfigError::Read { .. }) => Err(vec![Problem::new("(file)", e.to_string())]),
                    };
                    let _ = reload.blocking_send(new);
                }
                _ if shutdown.is_cancelled() => {
                    eprintln!("auditrelay: second signal, exiting now");
                    std::process::exit(1);
                }
                _ => {
                    tracing::info!(signal = sig, "shutdown requested");
                    shutdown.cancel();
                }
            }
        }
    })?;
    Ok(())
}
