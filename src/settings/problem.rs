//! A problem in the configuration, with its key path (`source[2].url:
//! ...`), and [`Problems`], the list validation fills with the checks the
//! types of every component share (a URL, a secret, a JSON pointer).

use std::fmt;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `source[2].url`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The problems found so far, with the checks types share.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>, Vec<Problem>);

impl Problems {
    /// Report a problem of the file as a whole at `path`: no source or
    /// output at all, a source naming an output that is not there. A table
    /// that could not be read makes these up, so they wait until every
    /// table reads.
    pub fn add_whole(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.1.push(Problem { path: path.into(), message: message.into() });
    }

    /// Report a problem at `path`.
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { path: path.into(), message: message.into() });
    }

    /// The problems of a key or table by itself, and those of the file as a
    /// whole ([`Problems::add_whole`]).
    pub fn into_parts(self) -> (Vec<Problem>, Vec<Problem>) {
        (self.0, self.1)
    }

    /// `{at}.url` is set and an http(s) URL with a host.
    pub fn url(&mut self, at: &str, url: Option<&str>) {
        match url {
            Some(u) => self.check_url(format!("{at}.url"), u),
            None => self.add(format!("{at}.url"), "is required"),
        }
    }

    /// `url` is an http(s) URL with a host.
    pub fn check_url(&mut self, path: String, url: &str) {
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(u) => {
                self.add(path, format!("{url:?} must be an http:// or https:// URL with a host, not {}", u.scheme()))
            }
            Err(e) => self.add(path, format!("{url:?} is not a URL ({e})")),
        }
    }

    /// A secret (`{key}` or `{key}_file`) is set.
    pub fn secret(&mut self, at: &str, key: &str, set: bool) {
        if !set {
            self.add(format!("{at}.{key}"), format!("is required (or {key}_file)"));
        }
    }

    /// `pointer` is a JSON pointer.
    pub fn pointer(&mut self, path: String, pointer: &str) {
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            self.add(path, format!("{pointer:?} is not a JSON pointer; it starts with '/' (e.g. \"/data/items\")"));
        }
    }
}

/// Whether `name` can be an HTTP header name.
pub fn check_header_name(name: &str) -> bool {
    reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
}
