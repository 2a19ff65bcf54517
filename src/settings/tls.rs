//! `tls = { ... }`: the TLS settings of a connection, the same table for a
//! source's API, an output's receiver and etcd; `transport::tls` turns
//! them into a client configuration.

use serde::Deserialize;
use std::path::PathBuf;

/// `tls = { ca_file, ca_only, cert_file, key_file, server_name, insecure_skip_verify }`
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra CA bundle (PEM) trusted besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Trust `ca_file` alone, not the system's roots (a private CA).
    #[serde(default)]
    pub ca_only: bool,
    /// Client certificate (PEM) for mTLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM) for mTLS.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Name to verify instead of the host in the URL or address.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Turn certificate verification off (logged as a warning at every start).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}
