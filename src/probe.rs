//! `check --connect`: one real request to every source and a health check
//! of every output, each reported on its own line with what to do about a
//! failure. Uses a throwaway state directory, so it works while the agent
//! runs.

use crate::config::Config;
use crate::outputs::{BuildCtx, Endpoint};
use crate::settings::secret::ProcessEnv;
use crate::sources::poller::SourceContext;
use crate::state::State;
use crate::telemetry::metrics::Metrics;
use crate::transport::framing::Transport;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a TCP connect, then a TLS handshake, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a source's probe request may take (its walk's first page,
/// with the token request and redirects before it).
const SOURCE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an output's credentials check may take.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(30);

/// Check DNS, TCP and (for `https` or `tls`) the TLS handshake to one
/// endpoint, printing a line per stage. Returns false at the first failure.
pub async fn stages(
    what: &str,
    host: &str,
    port: u16,
    tls: Option<&crate::settings::TlsConfig>,
    use_tls: bool,
) -> bool {
    let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(a) => a.collect(),
        Err(e) => {
            println!("FAIL  {what}: DNS: cannot resolve {host:?}: {e} (check the host name and the resolver)");
            return false;
        }
    };
    println!("ok    {what}: DNS {host} -> {}", addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "));
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addrs[..])).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            println!(
                "FAIL  {what}: TCP connect to {host}:{port}: {e} (is the service listening? a firewall in the way?)"
            );
            return false;
        }
        Err(_) => {
            println!(
                "FAIL  {what}: TCP connect to {host}:{port}: no answer within {}s (a firewall dropping packets?)",
                CONNECT_TIMEOUT.as_secs()
            );
            return false;
        }
    };
    println!("ok    {what}: TCP {host}:{port}");
    if !use_tls {
        return true;
    }
    let config = match crate::transport::tls::client_config(tls) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            println!("FAIL  {what}: TLS settings: {e}");
            return false;
        }
    };
    let name = tls.and_then(|t| t.server_name.clone()).unwrap_or_else(|| host.to_owned());
    let Ok(server_name) = rustls::pki_types::ServerName::try_from(name.clone()) else {
        println!("FAIL  {what}: TLS: {name:?} is not a valid server name");
        return false;
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(server_name, stream)).await {
        Ok(Ok(_)) => {
            println!("ok    {what}: TLS handshake, {}", certificate_verdict(tls, &name));
            true
        }
        Ok(Err(e)) => {
            println!("FAIL  {what}: TLS handshake with {host}:{port}: {e} (wrong CA? set tls.ca_file; wrong name? set tls.server_name)");
            false
        }
        Err(_) => {
            println!("FAIL  {what}: TLS handshake with {host}:{port}: no answer within {}s", CONNECT_TIMEOUT.as_secs());
            false
        }
    }
}

/// What a completed handshake says about the certificate: nothing was
/// verified under `insecure_skip_verify`, and `check` must not suggest it.
fn certificate_verdict(tls: Option<&crate::settings::TlsConfig>, name: &str) -> String {
    match tls {
        Some(t) if t.insecure_skip_verify => {
            "certificate NOT verified (insecure_skip_verify): any server, or anyone in between, is accepted".into()
        }
        Some(t) if t.ca_only => format!("certificate valid for {name} (signed by tls.ca_file, system roots not used)"),
        _ => format!("certificate valid for {name}"),
    }
}

/// A fresh scratch directory for `check --connect`'s throwaway state:
/// `auditrelay-check-<random>` in the temp directory, created 0700 and
/// failing if the name exists (another user's directory, or a symlink,
/// is never used), with a new name on each collision. What mkdtemp(3) does.
fn scratch_dir() -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    let mut last = None;
    for _ in 0..SCRATCH_ATTEMPTS {
        let dir = base.join(format!("auditrelay-check-{}", uuid::Uuid::new_v4().simple()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AlreadyExists)))
}

/// Names tried for the scratch directory before giving up.
const SCRATCH_ATTEMPTS: usize = 16;

/// The stages of an http(s) URL.
async fn url_stages(what: &str, url: Option<&url::Url>, tls: Option<&crate::settings::TlsConfig>) -> bool {
    let Some(u) = url else { return true };
    let (Some(host), Some(port)) = (u.host_str(), u.port_or_known_default()) else { return true };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    stages(what, &host, port, tls, u.scheme() == "https").await
}

/// Probe everything; returns the number of failures.
pub async fn probe_all(cfg: &Config) -> usize {
    let dir = match scratch_dir() {
        Ok(d) => d,
        Err(e) => {
            println!("FAIL  cannot create a scratch directory in {}: {e}", std::env::temp_dir().display());
            return 1;
        }
    };
    let state = match State::open(&dir) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            println!("FAIL  cannot create a scratch state in {}: {e}", dir.display());
            let _ = std::fs::remove_dir_all(&dir);
            return 1;
        }
    };
    let mut failures = 0;
    let metrics = Arc::new(Metrics::default());
    let ctx = SourceContext {
        state: state.clone(),
        metrics: metrics.clone(),
        output_health: Default::default(),
        clock: crate::sources::poller::system_clock(),
        max_journal_bytes: u64::MAX,
        run_ahead_bytes: u64::MAX,
        pages: crate::sources::poller::pages_in_hand(),
        fetches: crate::sources::poller::fetch_slots(),
        http: Arc::default(),
        first_poll_spread: std::time::Duration::ZERO,
    };
    for (i, s) in cfg.sources.iter().enumerate() {
        let at = format!("source[{i}]");
        let poller = match crate::sources::build(&s.name, &s.common, &s.kind, &at, &ProcessEnv, ctx.clone()) {
            Ok(p) => p,
            Err(problems) => {
                failures += 1;
                for p in problems {
                    println!("FAIL  source {}: {p}", s.name);
                }
                continue;
            }
        };
        let spec = s.kind.spec();
        if spec.makes_requests() && !url_stages(&format!("source {}", s.name), spec.url(), s.common.tls.as_ref()).await
        {
            failures += 1;
            continue;
        }
        let cancel = CancellationToken::new();
        let guard = cancel.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(SOURCE_TIMEOUT).await;
            guard.cancel();
        });
        match poller.probe(&cancel).await {
            Ok(n) => println!(
                "ok    source {} ({}): request answered (credentials accepted), {n} event(s) in the last hour's first page",
                s.name,
                s.type_name()
            ),
            Err(crate::sources::SourceError::Cancelled) => {
                failures += 1;
                println!(
                    "FAIL  source {}: no answer within {}s (check the URL, DNS, firewall and proxy)",
                    s.name,
                    SOURCE_TIMEOUT.as_secs()
                );
            }
            Err(e) => {
                failures += 1;
                println!("FAIL  {e}");
            }
        }
        timer.abort();
    }
    let hostname = cfg.hostname();
    for (i, o) in cfg.outputs.iter().enumerate() {
        let at = format!("output[{i}]");
        let what = format!("output {}", o.name);
        let tls = o.common.tls.as_ref();
        let channel = uuid::Uuid::new_v4().to_string();
        let built = crate::outputs::build(
            &o.kind,
            BuildCtx {
                name: &o.name,
                common: &o.common,
                at: &at,
                env: &ProcessEnv,
                hostname: &hostname,
                channel,
                metrics: metrics.clone(),
            },
        );
        let mut sink = match built {
            Ok(s) => s,
            Err(problems) => {
                failures += 1;
                for p in problems {
                    println!("FAIL  output {}: {p}", o.name);
                }
                continue;
            }
        };
        let reachable = match sink.endpoint() {
            Endpoint::Url(url) => url_stages(&what, Some(url), tls).await,
            Endpoint::Address(addr, transport) => {
                match addr.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?))) {
                    Some((h, p)) => {
                        let h = h.trim_start_matches('[').trim_end_matches(']');
                        transport == Transport::Udp || stages(&what, h, p, tls, transport == Transport::Tls).await
                    }
                    None => true,
                }
            }
            Endpoint::Local => true,
        };
        if !reachable {
            failures += 1;
            continue;
        }
        match tokio::time::timeout(OUTPUT_TIMEOUT, sink.check_credentials()).await {
            Ok(Ok(what)) => println!("ok    output {} ({}): {what}", o.name, o.type_name()),
            Ok(Err(e)) => {
                failures += 1;
                println!("FAIL  output {}: {e}", o.name);
            }
            Err(_) => {
                failures += 1;
                println!(
                    "FAIL  output {}: no answer within {}s (check the address, firewall and TLS settings)",
                    o.name,
                    OUTPUT_TIMEOUT.as_secs()
                );
            }
        }
    }
    drop(ctx);
    drop(state);
    let _ = std::fs::remove_dir_all(&dir);
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::TlsConfig;

    #[test]
    fn an_unverified_certificate_is_never_called_valid() {
        let insecure = TlsConfig { insecure_skip_verify: true, ..Default::default() };
        let line = certificate_verdict(Some(&insecure), "siem.example.com");
        assert!(line.contains("NOT verified (insecure_skip_verify)"), "{line}");
        assert!(!line.contains("valid"), "{line}");
        assert_eq!(certificate_verdict(None, "siem.example.com"), "certificate valid for siem.example.com");
    }

    #[test]
    fn scratch_directories_are_fresh_private_and_unpredictable() {
        use std::os::unix::fs::PermissionsExt;
        let a = scratch_dir().unwrap();
        let b = scratch_dir().unwrap();
        assert_ne!(a, b);
        assert!(!a.to_string_lossy().contains(&std::process::id().to_string()), "{a:?}");
        let mode = std::fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{a:?}");
        std::fs::remove_dir(&a).unwrap();
        std::fs::remove_dir(&b).unwrap();
    }
}
