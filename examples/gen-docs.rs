//! Renders the man pages and the shell completions from the command-line
//! definition (`auditrelay::cli`), so they never drift from `--help`:
//!
//! ```sh
//! cargo run --example gen-docs -- target/assets
//! ```
//!
//! writes `DIR/man/auditrelay.1.gz` (and one page per subcommand,
//! `auditrelay-run.1.gz`, …) and `DIR/completions/{auditrelay.bash,
//! _auditrelay, auditrelay.fish}`. The .deb and the .rpm install them
//! (`[package.metadata.deb]` and `[package.metadata.generate-rpm]` in
//! Cargo.toml). An example rather than a subcommand keeps clap_mangen and
//! clap_complete out of the agent's binary.

use auditrelay::cli::Cli;
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;
use std::path::{Path, PathBuf};

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/assets".into()));
    let (man, completions) = (dir.join("man"), dir.join("completions"));
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;

    let cmd = Cli::command();
    let version = cmd.get_version().unwrap_or_default().to_owned();
    write_man(&cmd, "auditrelay", &version, MAIN_EXTRA, &man)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        // clap's names are `&'static str` (its "string" feature would put
        // owned names in the agent's binary too); this process is short.
        let name: &'static str = Box::leak(format!("auditrelay-{}", sub.get_name()).into_boxed_str());
        let version: &'static str = Box::leak(version.clone().into_boxed_str());
        let sub = sub.clone().name(name).bin_name(name).version(version);
        write_man(&sub, name, version, "", &man)?;
    }

    for (shell, file) in
        [(Shell::Bash, "auditrelay.bash"), (Shell::Zsh, "_auditrelay"), (Shell::Fish, "auditrelay.fish")]
    {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "auditrelay", &mut out);
        std::fs::write(completions.join(file), out)?;
    }
    println!("wrote {} and {}", man.display(), completions.display());
    Ok(())
}

/// Sections of `auditrelay(1)` that `--help` does not hold (roff).
const MAIN_EXTRA: &str = r#".SH "EXIT STATUS"
0 ok, 1 runtime failure (the service is restarted by systemd), 2 bad configuration or usage (it is not).
.SH SIGNALS
SIGTERM, SIGINT: stop polling, finish or abandon in-flight sends, commit, exit 0 within agent.shutdown_timeout; a second signal exits at once. SIGHUP: re-read the configuration; an invalid file is logged and the running one stays.
.SH FILES
.TP
/etc/auditrelay/auditrelay.toml
The configuration (every key: /usr/share/doc/auditrelay/config.example.toml).
.TP
/var/lib/auditrelay
agent.state_dir: journal, cursors, offsets, dead letters.
.TP
/usr/lib/systemd/system/auditrelay.service
The hardened unit (Type=notify, watchdog).
.SH "SEE ALSO"
/usr/share/doc/auditrelay/README.md, systemctl(1), journalctl(1)
"#;

/// `NAME.1.gz`: gzip without a time stamp, so the packages are reproducible;
/// `extra` (roff) is added after clap's sections.
fn write_man(cmd: &clap::Command, name: &str, version: &str, extra: &str, dir: &Path) -> std::io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section("1")
        .source(format!("auditrelay {version}"))
        .manual("auditrelay manual")
        .render(&mut page)?;
    page.extend_from_slice(extra.as_bytes());
    let file = std::fs::File::create(dir.join(format!("{name}.1.gz")))?;
    let mut gz = flate2::GzBuilder::new().mtime(0).write(file, flate2::Compression::best());
    gz.write_all(&page)?;
    gz.finish()?.sync_all()
}
