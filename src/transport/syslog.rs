//! Syslog senders: one message per UDP datagram (RFC 5426), or a stream of
//! framed messages over TCP (RFC 6587) or TLS (RFC 5425).
//!
//! A [`SyslogSender`] takes already encoded messages (see `crate::encode`)
//! and delivers a batch of them:
//!
//! - **Framing** (TCP and TLS): octet counting, `LEN SP MSG` with LEN the
//!   message's length in bytes, safe for any content; or newline, `MSG LF`.
//!   A message given to newline framing never contains a raw LF (the
//!   encoders replace it), but if one does it becomes a space here rather
//!   than splitting the message in two at the receiver.
//! - **Size**: with `max_message_size` set (over UDP it is at most 65,507,
//!   the largest IPv4 datagram payload), a longer message is cut at a UTF-8
//!   character boundary and counted in [`Report::truncated`], or, with
//!   `truncate = false`, not sent and listed in [`Report::rejected`] so the
//!   driver dead-letters it.
//! - **Connections** are made lazily, on the first send, with a 10 s
//!   timeout covering DNS, TCP and the TLS handshake, and made again after
//!   any failure. TLS uses the output's `tls` settings through
//!   [`client_config`]; the server name (SNI and certificate check) is
//!   `tls.server_name`, else the host part of the address.
//! - **Delivery**: a batch counts as sent only when every byte was written
//!   and flushed, each write within the write timeout (30 s by default). Any
//!   error drops the connection and fails the whole batch; the driver sends
//!   it again (at-least-once, so a receiver may see duplicates).
//! - **A receiver that went away**: a peer that closed its end is noticed
//!   only when we read. So before each batch on a kept-alive connection the
//!   socket is read without waiting: a close (or reset) found then means
//!   reconnect first, so a receiver restarted between batches does not
//!   swallow the next one. After a batch is flushed, the sender waits up to
//!   `settle` (25 ms by default) for a close or reset: a receiver that was
//!   shutting down when the batch arrived closes with it unread, and the
//!   reset it sends back fails the batch, which is then resent. Plain
//!   syslog has no acknowledgements, so a receiver that stores nothing yet
//!   closes later than that can still lose a batch; the window is small, not
//!   zero (RELP would close it, and no SIEM here speaks it). `settle` also
//!   bounds throughput per connection to one batch per 25 ms, 20,000
//!   events/s with 500-event batches.
//!
//! UDP has no delivery guarantee at all: a datagram "sent" is only one the
//! local kernel accepted. An ICMP port-unreachable from an earlier datagram
//! shows up as a failed send, which at least makes the driver retry and
//! report the output unhealthy.

pub use super::framing::{cut_at_char_boundary, frame_into, host_of, Framing, Transport};
use crate::settings::TlsConfig;
use crate::transport::tls::{client_config, TlsError};
use futures_util::FutureExt as _;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How long resolving, connecting and the TLS handshake may take together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default longest wait for one write to make progress.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The default wait, after a batch is flushed, for the receiver to close or
/// reset the connection before the batch counts as delivered. A local
/// rsyslog stopped with SIGTERM resets within about 10 ms of its last read.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(25);

/// The largest UDP payload over IPv4 (65,535 − 8 − 20), the ceiling of
/// `max_message_size` over UDP.
pub const UDP_MAX_PAYLOAD: usize = 65_507;

/// Bytes handed to one write call, each with its own timeout, so a large
/// batch on a slow link is not cut off while it still makes progress.
const WRITE_CHUNK: usize = 64 * 1024;

/// Where and how to send.
#[derive(Debug, Clone, PartialEq)]
pub struct SenderConfig {
    /// `host:port` (`[v6]:port` for an IPv6 literal).
    pub address: String,
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// Stream framing; ignored over UDP.
    pub framing: Framing,
    /// Longest message in bytes; `None` = no limit (UDP: 65,507).
    pub max_message_size: Option<usize>,
    /// Cut longer messages (true) or reject them (false).
    pub truncate: bool,
    /// TLS settings (CA, client certificate, server name).
    pub tls: Option<TlsConfig>,
    /// Limit on resolving, connecting and the TLS handshake together.
    pub connect_timeout: Duration,
    /// Limit on each write (and the final flush) making progress.
    pub write_timeout: Duration,
    /// Wait after each flushed batch for a close or reset (TCP/TLS only).
    pub settle: Duration,
}

impl SenderConfig {
    /// A configuration with the defaults: octet counting, no size limit,
    /// truncation on, no TLS settings, 10 s connect and 30 s write timeouts,
    /// 25 ms settle.
    pub fn new(address: impl Into<String>, transport: Transport) -> Self {
        SenderConfig {
            address: address.into(),
            transport,
            framing: Framing::default(),
            max_message_size: None,
            truncate: true,
            tls: None,
            connect_timeout: CONNECT_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            settle: DEFAULT_SETTLE,
        }
    }

    /// The size limit in force: the configured one, capped over UDP.
    pub fn limit(&self) -> Option<usize> {
        match self.transport {
            Transport::Udp => Some(self.max_message_size.unwrap_or(UDP_MAX_PAYLOAD).min(UDP_MAX_PAYLOAD)),
            Transport::Tcp | Transport::Tls => self.max_message_size,
        }
    }
}

/// Why a sender could not be built or a batch not sent.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    /// The TLS settings could not be loaded (a configuration problem).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The TLS server name is neither a DNS name nor an IP address (a
    /// configuration problem).
    #[error("{0:?} is not a valid TLS server name; set tls.server_name")]
    ServerName(String),
    /// The address did not resolve.
    #[error("cannot resolve {address}: {detail}")]
    Resolve {
        /// The configured address.
        address: String,
        /// What went wrong.
        detail: String,
    },
    /// No connection could be made (refused, unreachable, timed out).
    #[error("cannot connect to {address}: {detail}")]
    Connect {
        /// The configured address.
        address: String,
        /// What went wrong.
        detail: String,
    },
    /// A certificate was refused: the receiver's by us (CA, name, expiry)
    /// or ours by the receiver (a configuration problem).
    #[error("TLS handshake with {address} failed on a certificate: {detail}")]
    Certificate {
        /// The configured address.
        address: String,
        /// What rustls or the receiver said.
        detail: String,
    },
    /// The TLS handshake failed otherwise (protocol, connection lost).
    #[error("TLS handshake with {address} failed: {detail}")]
    Handshake {
        /// The configured address.
        address: String,
        /// What went wrong.
        detail: String,
    },
    /// A write failed or timed out; the connection was dropped.
    #[error("sending to {address} failed: {detail}")]
    Send {
        /// The configured address.
        address: String,
        /// What went wrong.
        detail: String,
    },
    /// The receiver closed or reset the connection while a batch was sent.
    #[error("{address} closed the connection: {detail}")]
    Closed {
        /// The configured address.
        address: String,
        /// How it was noticed.
        detail: String,
    },
}

impl SyslogError {
    /// True for problems only an operator can fix (bad TLS files, server
    /// name or certificate); everything else is worth retrying soon.
    pub fn is_config(&self) -> bool {
        matches!(self, SyslogError::Tls(_) | SyslogError::ServerName(_) | SyslogError::Certificate { .. })
    }
}

/// What happened to a batch that was sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Messages not sent because they exceed `max_message_size` and
    /// `truncate` is off: their index in the batch and why.
    pub rejected: Vec<(usize, String)>,
    /// Messages sent cut to `max_message_size`.
    pub truncated: usize,
}

/// An open connection.
enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// Whether the peer closed or reset a stream, found without waiting:
    /// reads whatever is ready (a syslog receiver sends nothing, so any data
    /// is discarded) and stops at the first "nothing yet".
    fn gone(&mut self) -> Option<String> {
        let mut scratch = [0u8; 2048];
        for _ in 0..64 {
            let polled = match self {
                Conn::Udp(_) => return None,
                Conn::Tcp(s) => s.read(&mut scratch).now_or_never(),
                Conn::Tls(s) => s.read(&mut scratch).now_or_never(),
            };
            match polled {
                None => return None,
                Some(Ok(0)) => return Some("end of stream".to_owned()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Some(e.to_string()),
            }
        }
        None
    }

    /// Wait up to `wait` for the peer to close or reset a stream (reading
    /// and discarding anything it sends); `None` if it stayed open.
    async fn closed_within(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut scratch = [0u8; 2048];
        loop {
            // Reading is cancel-safe for both streams: nothing is lost when
            // the deadline drops the read.
            let read = match self {
                Conn::Udp(_) => return None,
                Conn::Tcp(s) => tokio::time::timeout_at(deadline, s.read(&mut scratch)).await,
                Conn::Tls(s) => tokio::time::timeout_at(deadline, s.read(&mut scratch)).await,
            };
            match read {
                Err(_) => return None,
                Ok(Ok(0)) => return Some("end of stream".to_owned()),
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Some(e.to_string()),
            }
        }
    }

    /// Write `buf` and flush, each chunk within `limit`.
    async fn write_all(&mut self, buf: &[u8], limit: Duration) -> Result<(), String> {
        for chunk in buf.chunks(WRITE_CHUNK) {
            let written = match self {
                Conn::Udp(_) => return Err("a datagram socket has no stream".to_owned()),
                Conn::Tcp(s) => tokio::time::timeout(limit, s.write_all(chunk)).await,
                Conn::Tls(s) => tokio::time::timeout(limit, s.write_all(chunk)).await,
            };
            written.map_err(|_| format!("write timed out after {limit:?}"))?.map_err(|e| e.to_string())?;
        }
        let flushed = match self {
            Conn::Udp(_) => return Ok(()),
            Conn::Tcp(s) => tokio::time::timeout(limit, s.flush()).await,
            Conn::Tls(s) => tokio::time::timeout(limit, s.flush()).await,
        };
        flushed.map_err(|_| format!("flush timed out after {limit:?}"))?.map_err(|e| e.to_string())
    }
}

/// Sends batches of syslog messages to one receiver. See the module
/// documentation for the guarantees.
pub struct SyslogSender {
    cfg: SenderConfig,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    conn: Option<Conn>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for SyslogSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSender")
            .field("address", &self.cfg.address)
            .field("transport", &self.cfg.transport)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl SyslogSender {
    /// A sender; loads the TLS settings now so a bad file is reported at
    /// start, but connects only when first asked to send or check.
    pub fn new(cfg: SenderConfig) -> Result<Self, SyslogError> {
        let tls = match cfg.transport {
            Transport::Tls => {
                let config = client_config(cfg.tls.as_ref())?;
                let name = cfg
                    .tls
                    .as_ref()
                    .and_then(|t| t.server_name.clone())
                    .unwrap_or_else(|| host_of(&cfg.address).to_owned());
                let server = ServerName::try_from(name.clone()).map_err(|_| SyslogError::ServerName(name))?;
                Some((TlsConnector::from(Arc::new(config)), server))
            }
            Transport::Udp | Transport::Tcp => None,
        };
        Ok(SyslogSender { cfg, tls, conn: None, buf: Vec::new() })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &SenderConfig {
        &self.cfg
    }

    /// Whether a connection (or UDP socket) is open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Drop the connection; the next send makes a new one.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Make sure a healthy connection is open: drop one the receiver closed,
    /// then connect (and complete the TLS handshake) if needed.
    pub async fn check(&mut self) -> Result<(), SyslogError> {
        self.drop_if_gone().await;
        self.ensure_connected().await.map(|_| ())
    }

    /// Send a batch. `Ok` means every message that was not rejected for its
    /// size was written and flushed on a connection that was still open
    /// afterwards; `Err` means the batch must be sent again.
    pub async fn send<M: AsRef<[u8]>>(&mut self, messages: &[M]) -> Result<Report, SyslogError> {
        let limit = self.cfg.limit();
        let mut report = Report::default();
        let mut fitted: Vec<&[u8]> = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            let m = m.as_ref();
            match limit {
                Some(max) if m.len() > max => {
                    if self.cfg.truncate {
                        fitted.push(cut_at_char_boundary(m, max));
                        report.truncated += 1;
                    } else {
                        report
                            .rejected
                            .push((i, format!("message of {} bytes exceeds max_message_size {max}", m.len())));
                    }
                }
                _ => fitted.push(m),
            }
        }
        if fitted.is_empty() {
            return Ok(report);
        }
        match self.cfg.transport {
            Transport::Udp => self.send_datagrams(&fitted).await?,
            Transport::Tcp | Transport::Tls => self.send_stream(&fitted).await?,
        }
        Ok(report)
    }

    async fn send_datagrams(&mut self, messages: &[&[u8]]) -> Result<(), SyslogError> {
        let limit = self.cfg.write_timeout;
        let address = self.cfg.address.clone();
        let conn = self.ensure_connected().await?;
        let Conn::Udp(socket) = conn else {
            return Err(SyslogError::Send { address, detail: "not a datagram socket".into() });
        };
        for m in messages {
            let failed = match tokio::time::timeout(limit, socket.send(m)).await {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("send timed out after {limit:?}"),
            };
            self.conn = None;
            return Err(SyslogError::Send { address, detail: failed });
        }
        Ok(())
    }

    async fn send_stream(&mut self, messages: &[&[u8]]) -> Result<(), SyslogError> {
        self.drop_if_gone().await;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for m in messages {
            frame_into(m, self.cfg.framing, &mut buf);
        }
        let result = self.write_stream(&buf).await;
        // Keep the allocation for the next batch, but not a huge one.
        if buf.capacity() <= 4 * 1024 * 1024 {
            self.buf = buf;
        }
        result
    }

    async fn write_stream(&mut self, buf: &[u8]) -> Result<(), SyslogError> {
        let address = self.cfg.address.clone();
        let (limit, settle) = (self.cfg.write_timeout, self.cfg.settle);
        let conn = self.ensure_connected().await?;
        if let Err(detail) = conn.write_all(buf, limit).await {
            self.conn = None;
            return Err(SyslogError::Send { address, detail });
        }
        // A receiver that closes or resets now may have dropped the batch
        // unread: give it `settle` to say so.
        tokio::task::yield_now().await;
        let mut closed = conn.gone();
        if closed.is_none() && !settle.is_zero() {
            closed = conn.closed_within(settle).await;
        }
        if let Some(detail) = closed {
            self.conn = None;
            return Err(SyslogError::Closed { address, detail });
        }
        Ok(())
    }

    /// Drop a kept-alive stream whose receiver closed or reset it.
    async fn drop_if_gone(&mut self) {
        if self.conn.is_none() {
            return;
        }
        // Yielding lets the runtime poll the socket first, so a close that
        // already arrived is seen.
        tokio::task::yield_now().await;
        if let Some(why) = self.conn.as_mut().and_then(Conn::gone) {
            tracing::debug!(address = %self.cfg.address, "syslog receiver closed the connection ({why}); reconnecting");
            self.conn = None;
        }
    }

    async fn ensure_connected(&mut self) -> Result<&mut Conn, SyslogError> {
        let conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let limit = self.cfg.connect_timeout;
                match tokio::time::timeout(limit, self.connect()).await {
                    Ok(c) => c?,
                    Err(_) => {
                        return Err(SyslogError::Connect {
                            address: self.cfg.address.clone(),
                            detail: format!("timed out after {limit:?}"),
                        })
                    }
                }
            }
        };
        Ok(self.conn.insert(conn))
    }

    async fn connect(&self) -> Result<Conn, SyslogError> {
        let address = &self.cfg.address;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(address.as_str())
            .await
            .map_err(|e| SyslogError::Resolve { address: address.clone(), detail: e.to_string() })?
            .collect();
        let mut last = "it resolved to no address".to_owned();
        for addr in addrs {
            match self.connect_to(addr).await {
                Ok(c) => return Ok(c),
                Err(SyslogError::Connect { detail, .. }) => last = format!("{addr}: {detail}"),
                Err(e) => return Err(e),
            }
        }
        Err(SyslogError::Connect { address: address.clone(), detail: last })
    }

    async fn connect_to(&self, addr: SocketAddr) -> Result<Conn, SyslogError> {
        let address = &self.cfg.address;
        let connect_err = |e: std::io::Error| SyslogError::Connect { address: address.clone(), detail: e.to_string() };
        if self.cfg.transport == Transport::Udp {
            let local: SocketAddr =
                if addr.is_ipv4() { SocketAddr::from(([0, 0, 0, 0], 0)) } else { SocketAddr::from(([0u16; 8], 0)) };
            let socket = UdpSocket::bind(local).await.map_err(connect_err)?;
            socket.connect(addr).await.map_err(connect_err)?;
            return Ok(Conn::Udp(socket));
        }
        let tcp = TcpStream::connect(addr).await.map_err(connect_err)?;
        // Batches are flushed whole; do not hold the last segment back.
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Conn::Tcp(tcp)),
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(|e| {
                    let (address, detail) = (address.clone(), e.to_string());
                    if is_certificate_error(&e) {
                        SyslogError::Certificate { address, detail }
                    } else {
                        SyslogError::Handshake { address, detail }
                    }
                })?;
                Ok(Conn::Tls(Box::new(tls)))
            }
        }
    }
}

/// Whether a failed handshake is about a certificate: ours refused by the
/// receiver, or the receiver's refused by us.
fn is_certificate_error(e: &std::io::Error) -> bool {
    use rustls::AlertDescription as A;
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => true,
        Some(rustls::Error::AlertReceived(alert)) => matches!(
            alert,
            A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied
                | A::CertificateRequired
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;

    #[test]
    fn framing_octet_counting_counts_bytes() {
        let mut out = Vec::new();
        frame_into("<13>1 - - - - - Zoë".as_bytes(), Framing::OctetCounting, &mut out);
        frame_into(b"x", Framing::OctetCounting, &mut out);
        assert_eq!(out, "20 <13>1 - - - - - Zoë1 x".as_bytes());
    }

    #[test]
    fn framing_newline_never_splits_a_message() {
        let mut out = Vec::new();
        frame_into(b"a\nb\r\nc", Framing::Newline, &mut out);
        frame_into(b"", Framing::Newline, &mut out);
        assert_eq!(out, b"a b\r c\n\n");
    }

    #[test]
    fn cut_respects_char_boundaries() {
        let s = "aé日😀".as_bytes(); // 1 + 2 + 3 + 4 bytes
        assert_eq!(cut_at_char_boundary(s, 100), s);
        assert_eq!(cut_at_char_boundary(s, 10), s);
        assert_eq!(cut_at_char_boundary(s, 9), "aé日".as_bytes());
        assert_eq!(cut_at_char_boundary(s, 5), "aé".as_bytes());
        assert_eq!(cut_at_char_boundary(s, 2), b"a");
        assert_eq!(cut_at_char_boundary(s, 1), b"a");
        assert_eq!(cut_at_char_boundary(s, 0), b"");
        assert_eq!(cut_at_char_boundary("é".as_bytes(), 1), b"");
    }

    #[test]
    fn names_parse_and_hosts_split() {
        use serde::Deserialize;
        let name = |t: &str| toml::Value::String(t.into());
        assert_eq!(Transport::deserialize(name("tls")).ok(), Some(Transport::Tls));
        assert!(Transport::deserialize(name("TLS1")).is_err());
        assert_eq!(Framing::deserialize(name("newline")).ok(), Some(Framing::Newline));
        assert!(Framing::deserialize(name("lf")).is_err());
        assert_eq!((Transport::Tls.as_str(), Framing::OctetCounting.as_str()), ("tls", "octet-counting"));
        assert_eq!(host_of("qradar.example.com:6514"), "qradar.example.com");
        assert_eq!(host_of("[::1]:514"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("host"), "host");
        assert_eq!(Transport::Tls.default_port(), 6514);
        let mut c = SenderConfig::new("h:1", Transport::Udp);
        assert_eq!(c.limit(), Some(UDP_MAX_PAYLOAD));
        c.max_message_size = Some(100_000);
        assert_eq!(c.limit(), Some(UDP_MAX_PAYLOAD));
        c.transport = Transport::Tcp;
        assert_eq!(c.limit(), Some(100_000));
    }

    #[test]
    fn bad_server_name_is_a_config_error() {
        let err = SyslogSender::new(SenderConfig::new("bad host:6514", Transport::Tls)).unwrap_err();
        assert!(err.is_config(), "{err}");
        assert!(matches!(err, SyslogError::ServerName(_)), "{err}");
    }

    #[tokio::test]
    async fn udp_truncates_or_rejects_oversize_messages() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut cfg = SenderConfig::new(rx.local_addr().unwrap().to_string(), Transport::Udp);
        cfg.max_message_size = Some(5);
        let mut tx = SyslogSender::new(cfg.clone()).unwrap();
        let report = tx.send(&["abc", "abcdé", "abcdef"]).await.unwrap();
        assert_eq!(report, Report { rejected: vec![], truncated: 2 });
        let mut buf = [0u8; 100];
        for want in ["abc", "abcd", "abcde"] {
            let n = rx.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], want.as_bytes());
        }
        cfg.truncate = false;
        let mut tx = SyslogSender::new(cfg).unwrap();
        let report = tx.send(&["abcdef", "ok"]).await.unwrap();
        assert_eq!(report.truncated, 0);
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].0, 0);
        assert!(report.rejected[0].1.contains("exceeds max_message_size 5"), "{:?}", report.rejected);
        let n = rx.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ok");
    }

    /// Accept connections and forward every line received, tagged with the
    /// connection number.
    async fn line_server(listener: TcpListener, tx: tokio::sync::mpsc::UnboundedSender<(usize, String)>) {
        let mut n = 0;
        while let Ok((s, _)) = listener.accept().await {
            n += 1;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(s).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let _ = tx.send((n, l));
                }
            });
        }
    }

    #[tokio::test]
    async fn tcp_newline_reconnects_after_the_receiver_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut cfg = SenderConfig::new(addr.to_string(), Transport::Tcp);
        cfg.framing = Framing::Newline;
        let mut tx = SyslogSender::new(cfg).unwrap();
        assert!(!tx.is_connected());

        // First connection: read one batch, then close it.
        let accept = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            (listener, s)
        });
        tx.send(&["one", "two\nstill two"]).await.unwrap();
        let (listener, s) = accept.await.unwrap();
        let mut lines = tokio::io::BufReader::new(s).lines();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "one");
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "two still two");
        drop(lines);
        // Real time, not paused: the kernel must see the close first.
        tokio::time::sleep(Duration::from_millis(50)).await;

        // The next batch goes on a new connection, none of it lost.
        let (rtx, mut rrx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(line_server(listener, rtx));
        tx.send(&["three"]).await.unwrap();
        assert_eq!(rrx.recv().await.unwrap(), (1, "three".to_owned()));
        assert!(tx.is_connected());
        tx.check().await.unwrap();
    }

    #[tokio::test]
    async fn a_batch_the_receiver_closed_on_unread_is_failed_and_resent() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut cfg = SenderConfig::new(addr.to_string(), Transport::Tcp);
        cfg.framing = Framing::Newline;
        cfg.settle = Duration::from_millis(500);
        let mut tx = SyslogSender::new(cfg).unwrap();
        // A receiver shutting down: it accepts, reads nothing and closes,
        // which resets the connection with our batch unread.
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            // Real time, not paused: our batch must reach the kernel first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(s);
            listener
        });
        let err = tx.send(&["lost unless resent"]).await.unwrap_err();
        assert!(matches!(err, SyslogError::Closed { .. }), "{err}");
        assert!(!tx.is_connected());
        let listener = server.await.unwrap();
        let (rtx, mut rrx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(line_server(listener, rtx));
        tx.send(&["lost unless resent"]).await.unwrap();
        assert_eq!(rrx.recv().await.unwrap(), (1, "lost unless resent".to_owned()));
    }

    #[tokio::test]
    async fn tcp_errors_are_reported_and_the_connection_dropped() {
        // Nobody listens on a port just released.
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let mut tx = SyslogSender::new(SenderConfig::new(addr.to_string(), Transport::Tcp)).unwrap();
        let err = tx.send(&["x"]).await.unwrap_err();
        assert!(matches!(err, SyslogError::Connect { .. }), "{err}");
        assert!(!err.is_config());
        assert!(!tx.is_connected());
        assert!(tx.check().await.is_err());
    }

    #[tokio::test]
    async fn octet_counted_stream_arrives_intact() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tx = SyslogSender::new(SenderConfig::new(addr.to_string(), Transport::Tcp)).unwrap();
        let big = "é".repeat(100_000);
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap();
            all
        });
        tx.send(&["a b", big.as_str()]).await.unwrap();
        tx.disconnect();
        let all = reader.await.unwrap();
        let want = format!("3 a b{} {big}", big.len());
        assert_eq!(all, want.as_bytes());
    }
}
