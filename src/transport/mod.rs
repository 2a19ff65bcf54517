//! Network plumbing shared by sources and outputs: TLS configuration, the
//! HTTP client and the syslog (UDP/TCP/TLS) sender.

pub mod framing;
pub mod http;
pub mod origin;
pub mod redirect;
pub mod syslog;
pub mod tls;
