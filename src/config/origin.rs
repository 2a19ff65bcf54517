//! Where the configuration comes from: a file, or the embedded demo.

use super::{Config, ConfigError, DEFAULT_PATH, DEMO};
use std::path::{Path, PathBuf};

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file.
    File(PathBuf),
    /// The embedded demo (no `--config` and no file at the default path).
    Demo,
}

impl ConfigSource {
    /// `--config FILE`, else the default path if it exists, else the demo.
    pub fn resolve(arg: Option<PathBuf>) -> Self {
        match arg {
            Some(p) => ConfigSource::File(p),
            None if Path::new(DEFAULT_PATH).exists() => ConfigSource::File(DEFAULT_PATH.into()),
            None => ConfigSource::Demo,
        }
    }

    /// The configuration's text.
    pub fn text(&self) -> Result<String, ConfigError> {
        match self {
            ConfigSource::File(p) => {
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.clone(), source })
            }
            ConfigSource::Demo => Ok(DEMO.to_owned()),
        }
    }

    /// Read, parse and validate.
    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(p) => super::load(p),
            ConfigSource::Demo => {
                super::parse(DEMO).map_err(|problems| ConfigError::Invalid { path: "(embedded demo)".into(), problems })
            }
        }
    }
}
