//! The subcommands behind `main.rs`: `run`, `check`, `status`, `replay` and
//! `dead-letters`. Each returns an exit code: 0 ok, 1 runtime failure, 2 bad
//! configuration or usage.

use crate::config::{self, Config};
use crate::pipeline::{self, snapshot, AgentError, Runtime};
use crate::settings::secret::ProcessEnv;
use crate::state::run_lock::{LockError, RunLock};
use crate::state::{Cursor, State, StateError};
use crate::telemetry::metrics::Metrics;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Exit code for success.
pub const OK: u8 = 0;
/// Exit code for a runtime failure.
pub const FAILURE: u8 = 1;
/// Exit code for a bad configuration or usage.
pub const BAD_CONFIG: u8 = 2;

// Where the configuration comes from: named here, where the subcommands
// take it, and in `config`, where `signals` reads it too.
pub use crate::config::ConfigSource;

fn load_or_exit(src: &ConfigSource) -> Result<Config, ExitCode> {
    src.load().map_err(|e| {
        eprintln!("auditrelay: {e}");
        ExitCode::from(BAD_CONFIG)
    })
}

/// Take the state directory's run lock and open the state for `run`. A
/// short-lived command (`status`, `replay`, `dead-letters list`) holds the
/// lock for a moment while it reads; a start that coincides with one waits
/// for it instead of failing, and once the agent holds the lock no command
/// opens the database (`status` reads the snapshot). A second agent on the
/// same directory still fails.
fn open_state(cfg: &Config, shutdown: &CancellationToken) -> Result<Option<(RunLock, State)>, ExitCode> {
    let dir = &cfg.agent.state_dir;
    let lock = match RunLock::take(dir, START_WAIT, || shutdown.is_cancelled()) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Ok(None),
        Err(e) => {
            eprintln!("auditrelay: {e}");
            return Err(ExitCode::from(FAILURE));
        }
    };
    match State::open(dir) {
        Ok(state) => Ok(Some((lock, state))),
        Err(e) => {
            eprintln!("auditrelay: {e}");
            Err(ExitCode::from(FAILURE))
        }
    }
}

/// How long a starting agent waits for a command that holds the run lock.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Refuse to write a state directory another user owns (the service's
/// user, when this runs as root): its files would then belong to this
/// user and the service could not open them. The message gives the exact
/// `sudo -u OWNER …` to run instead.
fn owner_or_exit(cfg: &Config) -> Result<(), ExitCode> {
    crate::state::owner::check(&cfg.agent.state_dir).map_err(|n| {
        eprintln!("auditrelay: {}", n.advice(&std::env::args().collect::<Vec<_>>()));
        ExitCode::from(FAILURE)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| {
        eprintln!("auditrelay: cannot start the async runtime: {e}");
        ExitCode::from(FAILURE)
    })
}

/// `auditrelay run`.
pub fn run(src: ConfigSource) -> ExitCode {
    let cfg = match load_or_exit(&src) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::telemetry::init_logging(cfg.agent.log_format, &cfg.agent.log_level);
    if let ConfigSource::Demo = src {
        tracing::info!("no --config and no {}: running the embedded demo configuration", config::DEFAULT_PATH);
    }
    // Signals first: a SIGTERM while the state is still being opened must
    // end the start cleanly, not kill the process with the default action.
    let shutdown = CancellationToken::new();
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
    if let Err(e) = crate::signals::install(shutdown.clone(), reload_tx, src.clone()) {
        eprintln!("auditrelay: cannot install signal handlers: {e}");
        return ExitCode::from(FAILURE);
    }
    if let Err(code) = owner_or_exit(&cfg) {
        return code;
    }
    // Held until the agent stops: while it runs no command opens the database.
    let (_run_lock, state) = match open_state(&cfg, &shutdown) {
        Ok(Some((lock, s))) => (lock, Arc::new(s)),
        Ok(None) => {
            tracing::info!("stopped before start");
            return ExitCode::from(OK);
        }
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let runtime_parts = Runtime {
        state,
        metrics: Arc::new(Metrics::default()),
        clock: crate::sources::poller::system_clock(),
        env: Arc::new(ProcessEnv),
        shutdown,
        reload: reload_rx,
        ready: None,
    };
    let cfg_dir = cfg.agent.state_dir.clone();
    match rt.block_on(pipeline::run(cfg, runtime_parts)) {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::from(OK)
        }
        Err(AgentError::Config(problems)) => {
            eprintln!("auditrelay: invalid configuration:");
            for p in problems {
                eprintln!("  {p}");
            }
            ExitCode::from(BAD_CONFIG)
        }
        Err(e) => {
            eprintln!("auditrelay: {e} (state directory {})", cfg_dir.display());
            if matches!(e, AgentError::State(_)) {
                // The database failed (a full disk): closing it would wait
                // on a log write sled cannot finish. Everything confirmed
                // was flushed before; exit now.
                std::process::exit(i32::from(FAILURE));
            }
            ExitCode::from(FAILURE)
        }
    }
}

/// `auditrelay check [--connect]`.
pub fn check(src: ConfigSource, connect: bool) -> ExitCode {
    let text = match src.text() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("auditrelay: {e}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    // Every problem in one run: the file's (read past each failing key),
    // then every secret and TLS file of what was read, without touching
    // the state or network.
    let (cfg, mut problems) = config::parse_all(&text);
    let mut secrets = Vec::new();
    for (i, s) in cfg.sources.iter().enumerate() {
        let at = format!("source[{i}]");
        // A source whose own keys are valid is built (its credentials
        // resolved and checked); one whose keys are not (reported above)
        // cannot be, and only its secrets are resolved.
        let built = if s.kind.validate(&at, &mut crate::settings::Problems::default()) {
            crate::sources::build_api(&s.kind, &at, &ProcessEnv).map(drop)
        } else {
            crate::sources::check_secrets(&s.kind, &at, &ProcessEnv)
        };
        if let Err(p) = built {
            secrets.extend(p);
        }
    }
    for (i, o) in cfg.outputs.iter().enumerate() {
        let at = format!("output[{i}]");
        if let Err(p) = crate::outputs::check_secrets(&o.kind, &o.common, &at, &ProcessEnv) {
            secrets.extend(p);
        }
    }
    if let Some(c) = cfg.cluster.as_ref().filter(|c| c.user.is_some()) {
        if let Err(message) =
            crate::settings::secret::resolve(c.password.as_ref(), c.password_file.as_deref(), &ProcessEnv)
        {
            secrets.push(config::Problem::new("cluster.password", message));
        }
    }
    // What the file's reading already reported is not repeated.
    secrets.retain(|s| !problems.iter().any(|p| p.path == s.path));
    config::collect::annotate_lines(&text, &mut secrets);
    problems.extend(secrets);
    // Weak settings are warnings: printed with their key path, the exit
    // code is the configuration's.
    let file = match &src {
        ConfigSource::File(p) => Some(p.as_path()),
        ConfigSource::Demo => None,
    };
    let mut warnings = config::warnings::weak_settings(&cfg);
    warnings.extend(config::warnings::exposed_secrets(&cfg, file));
    config::collect::annotate_lines(&text, &mut warnings);
    for w in &warnings {
        eprintln!("auditrelay: warning: {w}");
    }
    if !problems.is_empty() {
        let name = match &src {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Demo => "(embedded demo)".into(),
        };
        eprintln!("auditrelay: {name}: {} problem(s):", problems.len());
        for p in problems {
            eprintln!("  {p}");
        }
        return ExitCode::from(BAD_CONFIG);
    }
    println!("configuration OK: {} source(s), {} output(s)", cfg.sources.len(), cfg.outputs.len());
    if !connect {
        return ExitCode::from(OK);
    }
    let rt = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut failures = rt.block_on(crate::probe::probe_all(&cfg));
    if let Some(cluster) = &cfg.cluster {
        match rt.block_on(crate::cluster::probe(cluster, &ProcessEnv)) {
            Ok(line) => println!("cluster: ok, {line}"),
            Err(e) => {
                println!("cluster: FAILED: {e}");
                failures += 1;
            }
        }
    }
    if failures == 0 {
        ExitCode::from(OK)
    } else {
        ExitCode::from(FAILURE)
    }
}

/// The status from the database, or from the running agent's snapshot
/// when the database is locked; read-only (the snapshot) when another user
/// owns the state directory, which opening the database would write to.
fn state_or_snapshot(cfg: &Config) -> Result<(snapshot::Report, bool), String> {
    if let Err(n) = crate::state::owner::check(&cfg.agent.state_dir) {
        let advice = n.advice(&std::env::args().collect::<Vec<_>>());
        return match snapshot::read(&cfg.agent.state_dir) {
            Ok(r) => {
                eprintln!("auditrelay: read-only: the last status snapshot, not the database ({advice})");
                Ok((r, true))
            }
            Err(e) => Err(format!("{advice}\n(and its status snapshot is unreadable: {e})")),
        };
    }
    let dir = &cfg.agent.state_dir;
    let running = |e: &dyn std::fmt::Display| {
        snapshot::read(dir).map(|r| (r, true)).map_err(|se| format!("{e}; and its status snapshot is unreadable: {se}"))
    };
    let _lock = match RunLock::try_take(dir) {
        Ok(lock) => lock,
        Err(e @ LockError::Held(_)) => return running(&e),
        Err(e) => return Err(e.to_string()),
    };
    match State::open(dir) {
        Ok(state) => snapshot::report(cfg, &state).map(|r| (r, false)).map_err(|e| e.to_string()),
        // An agent of a version without the run lock.
        Err(e) if e.is_locked() => running(&e),
        Err(e) => Err(e.to_string()),
    }
}

/// `auditrelay status [--json]`.
pub fn status(src: ConfigSource, json: bool) -> ExitCode {
    let cfg = match load_or_exit(&src) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (report, live) = match state_or_snapshot(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("auditrelay: {e}");
            return ExitCode::from(FAILURE);
        }
    };
    // A fleet member: who owns which source, and the delivered cursors.
    let fleet = cfg.cluster.as_ref().map(|c| {
        runtime()
            .map_err(|_| "cannot start the async runtime".to_owned())
            .and_then(|rt| rt.block_on(crate::cluster::fleet_status(c, &ProcessEnv)).map_err(|e| e.to_string()))
    });
    if json {
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        if let (Some(fleet), Some(obj)) = (&fleet, value.as_object_mut()) {
            let v = match fleet {
                Ok(f) => serde_json::to_value(f).unwrap_or_default(),
                Err(e) => serde_json::json!({ "error": e }),
            };
            obj.insert("fleet".into(), v);
        }
        match serde_json::to_string_pretty(&value) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("auditrelay: {e}");
                return ExitCode::from(FAILURE);
            }
        }
        return ExitCode::from(OK);
    }
    print!("{}", render_status(&report, live));
    match &fleet {
        Some(Ok(f)) => {
            let names: Vec<String> = cfg.sources.iter().map(|s| s.name.clone()).collect();
            print!("{}", crate::cluster::render(f, &names));
        }
        Some(Err(e)) => println!("\nfleet: etcd unreachable: {e}"),
        None => {}
    }
    ExitCode::from(OK)
}

fn dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn health(h: Option<bool>) -> &'static str {
    match h {
        Some(true) => "ok",
        Some(false) => "FAILING",
        None => "-",
    }
}

/// The human-readable status table.
pub fn render_status(r: &snapshot::Report, live: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let from = if live { "running agent's snapshot" } else { "state database (agent not running)" };
    let _ = writeln!(out, "status from the {from}, made {}", r.generated_at);
    let _ = writeln!(out, "journal: {} entries, {} bytes\n", r.journal.entries, r.journal.bytes);
    let _ = writeln!(
        out,
        "{:<20} {:<10} {:<8} {:<32} {:<26} LAST ERROR",
        "SOURCE", "TYPE", "HEALTH", "CURSOR", "LAST POLL"
    );
    for s in &r.sources {
        let _ = writeln!(
            out,
            "{:<20} {:<10} {:<8} {:<32} {:<26} {}",
            s.name,
            s.kind,
            health(s.healthy),
            dash(&s.cursor),
            dash(&s.last_poll),
            dash(&s.last_error)
        );
        if let Some(w) = &s.waiting {
            let _ = writeln!(out, "{:<20} waiting: {w}", "");
        }
    }
    let _ = writeln!(
        out,
        "\n{:<20} {:<10} {:<8} {:>10} {:>8} {:>6} {:<26} LAST ERROR",
        "OUTPUT", "TYPE", "HEALTH", "OFFSET", "BACKLOG", "DEAD", "LAST SEND"
    );
    for o in &r.outputs {
        let _ = writeln!(
            out,
            "{:<20} {:<10} {:<8} {:>10} {:>8} {:>6} {:<26} {}",
            o.name,
            o.kind,
            health(o.healthy),
            o.offset.map_or("-".into(), |x| x.to_string()),
            o.backlog,
            o.dead_letters,
            dash(&o.last_send),
            dash(&o.last_error)
        );
    }
    out
}

fn with_state<T>(
    cfg: &Config,
    what: &str,
    f: impl FnOnce(&State, &tokio::runtime::Runtime) -> Result<T, StateError>,
) -> Result<T, ExitCode> {
    owner_or_exit(cfg)?;
    let needs_stop = |e: &dyn std::fmt::Display| {
        eprintln!("auditrelay: {what} needs the agent stopped (systemctl stop auditrelay): {e}");
        ExitCode::from(FAILURE)
    };
    let _lock = match RunLock::try_take(&cfg.agent.state_dir) {
        Ok(lock) => lock,
        Err(e @ LockError::Held(_)) => return Err(needs_stop(&e)),
        Err(e) => {
            eprintln!("auditrelay: {e}");
            return Err(ExitCode::from(FAILURE));
        }
    };
    let state = match State::open(&cfg.agent.state_dir) {
        Ok(s) => s,
        Err(e) if e.is_locked() => return Err(needs_stop(&e)),
        Err(e) => {
            eprintln!("auditrelay: {e}");
            return Err(ExitCode::from(FAILURE));
        }
    };
    let rt = runtime()?;
    f(&state, &rt).map_err(|e| {
        eprintln!("auditrelay: {e}");
        ExitCode::from(FAILURE)
    })
}

/// `auditrelay replay --source NAME --from TIME`.
pub fn replay(src: ConfigSource, source: &str, from: &str, force: bool) -> ExitCode {
    let cfg = match load_or_exit(&src) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !cfg.sources.iter().any(|s| s.name == source) {
        eprintln!("auditrelay: no source is named {source:?} in the configuration");
        return ExitCode::from(BAD_CONFIG);
    }
    let at = match crate::settings::units::StartAt::parse(from) {
        Ok(s) => s.resolve(chrono::Utc::now()),
        Err(e) => {
            eprintln!("auditrelay: --from: {e}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    if let Err(code) = owner_or_exit(&cfg) {
        return code;
    }
    if force && matches!(RunLock::try_take(&cfg.agent.state_dir), Err(LockError::Held(_))) {
        return match crate::pipeline::replay::request(&cfg.agent.state_dir, source, at) {
            Ok(()) => {
                println!(
                    "source {source}: asked the running agent to replay from {}; it restarts the source within a few seconds (see its log)",
                    crate::event::rfc3339(at)
                );
                ExitCode::from(OK)
            }
            Err(e) => {
                eprintln!("auditrelay: cannot write the replay request: {e}");
                ExitCode::from(FAILURE)
            }
        };
    }
    let result = with_state(&cfg, "replay (or --force while it runs)", |state, rt| {
        let old = state.cursors().get(source)?;
        let cursor = Cursor { time: Some(at), ..Default::default() };
        rt.block_on(state.set_cursor(source, &cursor))?;
        Ok(old.and_then(|c| c.time))
    });
    match result {
        Ok(old) => {
            println!(
                "source {source}: cursor moved from {} to {}; events from then on are polled and delivered again at the next start",
                old.map_or("(none)".into(), crate::event::rfc3339),
                crate::event::rfc3339(at)
            );
            ExitCode::from(OK)
        }
        Err(code) => code,
    }
}

/// What `dead-letters` does.
#[derive(Debug, Clone, Copy)]
pub enum DeadLetterAction {
    /// Print them.
    List,
    /// Put them back into the journal for their output.
    Retry,
    /// Delete them.
    Purge,
}

/// Whose dead letters.
#[derive(Debug, Clone)]
pub enum DeadLettersOf {
    /// Events an output's receiver rejected.
    Output(String),
    /// Events a source received but could not read, set aside.
    Source(String),
}

/// `auditrelay dead-letters list|retry|purge --output NAME | --source NAME`.
pub fn dead_letters(src: ConfigSource, action: DeadLetterAction, of: &DeadLettersOf) -> ExitCode {
    let cfg = match load_or_exit(&src) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = with_state(&cfg, "dead-letters", |state, rt| match (of, action) {
        (DeadLettersOf::Output(output), DeadLetterAction::List) => {
            for d in state.dead_letters().list(output)? {
                let line =
                    serde_json::json!({ "seq": d.seq, "at": d.at, "reason": d.reason, "event": d.event.document() });
                println!("{line}");
            }
            Ok(String::new())
        }
        (DeadLettersOf::Output(output), DeadLetterAction::Retry) => {
            let n = rt.block_on(state.retry_dead_letters(output))?;
            Ok(format!("{n} dead letter(s) of {output} queued again"))
        }
        (DeadLettersOf::Output(output), DeadLetterAction::Purge) => {
            let n = rt.block_on(state.dead_letters().purge(output))?;
            Ok(format!("{n} dead letter(s) of {output} deleted"))
        }
        (DeadLettersOf::Source(source), DeadLetterAction::List) => {
            for d in state.set_aside().list(source)? {
                println!("{}", serde_json::to_string(&d).unwrap_or_default());
            }
            Ok(String::new())
        }
        (DeadLettersOf::Source(source), DeadLetterAction::Purge) => {
            let n = rt.block_on(state.set_aside().purge(source))?;
            Ok(format!("{n} set-aside event(s) of {source} deleted"))
        }
        (DeadLettersOf::Source(_), DeadLetterAction::Retry) => Ok(String::new()),
    });
    match result {
        Ok(msg) => {
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            ExitCode::from(OK)
        }
        Err(code) => code,
    }
}

/// `auditrelay verify [FILE…] [--json]`: 0 when every checked window is
/// complete and unaltered, 1 when something is missing or altered, 2 when
/// an input cannot be read.
pub fn verify(files: &[std::path::PathBuf], config: Option<ConfigSource>, json: bool) -> ExitCode {
    use std::io::BufRead;
    let mut records = Vec::new();
    let stdin = [std::path::PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    for f in files {
        let reader: Box<dyn BufRead> = if f.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            match std::fs::File::open(f) {
                Ok(file) => Box::new(std::io::BufReader::new(file)),
                Err(e) => {
                    eprintln!("auditrelay: cannot read {}: {e}", f.display());
                    return ExitCode::from(BAD_CONFIG);
                }
            }
        };
        for line in reader.split(b'\n') {
            match line {
                Ok(bytes) => records.push(crate::manifest::verify::read(&String::from_utf8_lossy(&bytes))),
                Err(e) => {
                    eprintln!("auditrelay: cannot read {}: {e}", f.display());
                    return ExitCode::from(BAD_CONFIG);
                }
            }
        }
    }
    let mut report = crate::manifest::verify::verify(records);
    if let Some(src) = config.filter(|_| report.streams.iter().any(|s| !s.lookups.is_empty())) {
        match load_or_exit(&src) {
            Ok(cfg) => {
                if let Err(e) = name_missing(&cfg, &mut report) {
                    eprintln!("auditrelay: missing events not named from the journal: {e}");
                }
            }
            Err(code) => return code,
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", report.text());
    }
    ExitCode::from(if report.ok { OK } else { FAILURE })
}

/// Name `report`'s missing events from the journal of `cfg`'s state, when
/// this user may open it and no agent holds it.
fn name_missing(cfg: &Config, report: &mut crate::manifest::verify::Report) -> Result<(), String> {
    let dir = &cfg.agent.state_dir;
    if let Err(n) = crate::state::owner::check(dir) {
        return Err(n.advice(&std::env::args().collect::<Vec<_>>()));
    }
    let _lock = match RunLock::try_take(dir) {
        Ok(lock) => lock,
        Err(e @ LockError::Held(_)) => return Err(format!("{e}; stop the agent to look them up")),
        Err(e) => return Err(e.to_string()),
    };
    let state = State::open(dir).map_err(|e| e.to_string())?;
    let mut failed = None;
    report.name_missing(|source, first, last| {
        let mut ids = Vec::new();
        let mut from = first;
        while from <= last {
            match state.journal().read(from, 1000, 16 << 20) {
                Ok(entries) if !entries.is_empty() => {
                    from = entries.last().map_or(last + 1, |(seq, _)| seq + 1);
                    let of_source = entries.into_iter().filter(|(seq, e)| *seq <= last && e.event.source == source);
                    ids.extend(of_source.map(|(seq, e)| (seq, e.event.id)));
                }
                Ok(_) => break, // the journal let them go
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        // The window's first event opens the range: if it is gone, so
        // may be others, and positions could not be counted.
        match ids.first() {
            Some((seq, _)) if *seq == first => ids.into_iter().map(|(_, id)| id).collect(),
            _ => Vec::new(),
        }
    });
    failed.map_or(Ok(()), Err)
}
