//! Settings: the leaf primitives every layer may use to declare and read
//! its configuration, owning no component's keys. Value types
//! ([`units`]: durations, sizes, rates; [`http_url`]: http(s) URLs), secrets and their resolution
//! ([`secret`]), the problems a configuration can have ([`problem`]), TLS
//! settings ([`tls`]), reading one TOML table so that every problem is
//! reported ([`table`]), and the registry machinery with which `sources`
//! and `outputs` declare their types ([`registry`]). It imports nothing
//! from the rest of the crate: `config` (the file model) sits above the
//! components, and the components and `transport` below it build on this.

pub mod http_url;
pub mod problem;
pub mod registry;
pub mod secret;
pub mod table;
pub mod tls;
pub mod units;

pub use http_url::{HttpUrl, Origin};
pub use problem::{Problem, Problems};
pub use registry::{Build, Validate};
pub use tls::TlsConfig;
