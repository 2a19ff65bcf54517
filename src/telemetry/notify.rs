//! systemd's notification protocol (`Type=notify`): `READY=1` once sources
//! and outputs are started, `STOPPING=1` at shutdown, `WATCHDOG=1` from the
//! housekeeping loop while the runtime is alive, and `STATUS=` one-liners.
//! A datagram to `$NOTIFY_SOCKET`; without that variable nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Send one notification; errors are ignored (systemd may not be there).
pub fn notify(message: &str) {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else { return };
    let Ok(sock) = UnixDatagram::unbound() else { return };
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
            let _ = sock.send_to_addr(message.as_bytes(), &addr);
        }
    } else {
        let _ = sock.send_to(message.as_bytes(), &path);
    }
}

/// The watchdog interval systemd asked for (`WatchdogSec=`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    let pid_ok = std::env::var("WATCHDOG_PID").map_or(true, |p| p.parse::<u32>().ok() == Some(std::process::id()));
    (pid_ok && usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sends_to_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        // The process environment is shared by tests; only this test sets it.
        std::env::set_var("NOTIFY_SOCKET", &path);
        super::notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
