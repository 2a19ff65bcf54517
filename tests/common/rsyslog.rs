//! A real rsyslog on 127.0.0.1 for the syslog tests: `rsyslogd -n` as a
//! child process, with a config written into a temporary directory (work
//! directory, pid file and output all inside it) and inputs on free 127.0.0.1
//! ports: `imudp`, `imptcp` (plain TCP; it accepts octet-counted and
//! LF-framed messages on one port) and `imtcp` with the GnuTLS driver for
//! RFC 5425 TLS. rsyslog writes what it parsed, property by property, as one
//! JSON object per message (`option.jsonf`), so a test checks each header
//! field as a receiver saw it.
//!
//! Without `rsyslogd` a test is skipped with a loud message, unless the `CI`
//! environment variable is set: then it fails ([`tool`]).

use super::agent::{EXIT_POLL, POLL};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `CI` is set (then a missing tool fails instead of skipping).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The path of a tool, or `None` (and a loud skip message) when it is
/// missing outside CI. In CI a missing tool fails the test.
pub fn tool(name: &str, candidates: &[&str], package: &str) -> Option<PathBuf> {
    let found = candidates.iter().map(PathBuf::from).find(|p| p.is_file()).or_else(|| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
    });
    if found.is_none() {
        assert!(!in_ci(), "{name} is not installed but CI is set: install {package} (see .ci/packages.txt)");
        eprintln!(
            "\n!!!!!!!! SKIPPED: {name} not found; install it (apt-get install {package}) to run the tests that need it !!!!!!!!\n"
        );
    }
    found
}

/// `rsyslogd`, or `None` (skip) outside CI.
pub fn rsyslogd() -> Option<PathBuf> {
    tool("rsyslogd", &["/usr/sbin/rsyslogd", "/sbin/rsyslogd"], "rsyslog rsyslog-gnutls")
}

/// `openssl`, or `None` (skip) outside CI.
pub fn openssl() -> Option<PathBuf> {
    tool("openssl", &["/usr/bin/openssl"], "openssl")
}

/// A TCP port free on 127.0.0.1 just now.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A UDP port free on 127.0.0.1 just now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running rsyslogd and its directory.
pub struct Rsyslog {
    bin: PathBuf,
    /// Its config, work directory and output.
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// The `imudp` port.
    pub udp: u16,
    /// The `imptcp` port (plain TCP, octet-counted or LF-framed).
    pub tcp: u16,
    /// The `imtcp` TLS port, when started with certificates.
    pub tls: Option<u16>,
}

impl Rsyslog {
    /// Start rsyslog with UDP and plain TCP inputs, plus TLS when `tls`
    /// (needs `ca.pem`, `server.pem` and `server.key` made by
    /// `make_certs` of `tests/syslog_rsyslog.rs` in `certs`).
    pub fn start(bin: PathBuf, certs: Option<&Path>) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Rsyslog { bin, child: None, udp: free_udp_port(), tcp: free_tcp_port(), tls: None, dir };
        let d = r.dir.path().display().to_string();
        std::fs::create_dir_all(r.dir.path().join("work")).unwrap();
        let mut global = format!(
            "global(workDirectory=\"{d}/work\" maxMessageSize=\"64k\" parser.escapeControlCharactersOnReceive=\"off\""
        );
        let mut inputs = format!(
            "module(load=\"imudp\")\nmodule(load=\"imptcp\")\n\
             input(type=\"imudp\" address=\"127.0.0.1\" port=\"{}\" ruleset=\"capture\")\n\
             input(type=\"imptcp\" address=\"127.0.0.1\" port=\"{}\" ruleset=\"capture\")\n",
            r.udp, r.tcp
        );
        if let Some(c) = certs {
            let c = c.display();
            global.push_str(&format!(
                " defaultNetstreamDriverCAFile=\"{c}/ca.pem\" defaultNetstreamDriverCertFile=\"{c}/server.pem\" \
                 defaultNetstreamDriverKeyFile=\"{c}/server.key\""
            ));
            let port = free_tcp_port();
            r.tls = Some(port);
            inputs.push_str(&format!(
                "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"capture\")\n"
            ));
        }
        global.push_str(")\n");
        let template = r#"template(name="fields" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="tag" name="syslogtag" format="jsonf")
  property(outname="program" name="programname" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="input" name="inputname" format="jsonf")
}
"#;
        let conf = format!(
            "{global}{template}ruleset(name=\"capture\") {{ action(type=\"omfile\" file=\"{d}/parsed.json\" template=\"fields\") }}\n{inputs}"
        );
        std::fs::write(r.dir.path().join("rsyslog.conf"), conf).unwrap();
        r.spawn();
        r
    }

    /// Run rsyslogd on the config and wait until its TCP input accepts.
    pub fn spawn(&mut self) {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(d.join("rsyslogd.out")).unwrap();
        let child = Command::new(&self.bin)
            .arg("-n")
            .arg("-f")
            .arg(d.join("rsyslog.conf"))
            .arg("-i")
            .arg(d.join("work/rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.tcp)).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("rsyslogd exited ({status}): {}", self.diagnostics());
            }
            assert!(Instant::now() < deadline, "rsyslogd did not listen within 15 s: {}", self.diagnostics());
            std::thread::sleep(POLL);
        }
    }

    /// Stop rsyslogd gracefully (SIGTERM, as `systemctl restart` would), so
    /// it writes out what it received, and wait for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(EXIT_POLL);
        }
        let _ = child.wait();
    }

    pub fn diagnostics(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.out")).unwrap_or_default()
    }

    /// Every message rsyslog wrote, as parsed properties.
    pub fn records(&self) -> Vec<BTreeMap<String, String>> {
        let all = std::fs::read_to_string(self.dir.path().join("parsed.json")).unwrap_or_default();
        // rsyslog may be mid-way through writing the last record: only
        // whole lines count.
        let text = &all[..all.rfind('\n').map_or(0, |i| i + 1)];
        serde_json::Deserializer::from_str(text)
            .into_iter::<BTreeMap<String, String>>()
            .map(|r| r.unwrap_or_else(|e| panic!("rsyslog wrote bad JSON ({e}): {text}")))
            .collect()
    }

    /// Wait until at least `n` records are written (10 s at most).
    pub async fn wait_records(&self, n: usize) -> Vec<BTreeMap<String, String>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let records = self.records();
            if records.len() >= n || Instant::now() > deadline {
                return records;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
