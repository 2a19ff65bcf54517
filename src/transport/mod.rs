//! Network plumbing shared by sources and outputs: TLS configuration and the
//! HTTP client.

pub mod http;
pub mod tls;
