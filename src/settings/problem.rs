//! A problem in the configuration, with its key path (`source[2].url:
//! ...`), and [`Problems`], the list validation fills with the checks the
//! types of every component share (a required key, a URL, a JSON pointer).

use super::http_url::HttpUrl;
use std::fmt;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `source[2].url`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The line of the file it is on, once known: set where the TOML
    /// parser gives a span, or from the key path by
    /// `config::collect::annotate_lines`.
    pub line: Option<usize>,
}

impl Problem {
    /// A problem at `path`, its line not known yet.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { path: path.into(), message: message.into(), line: None }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        match self.line {
            Some(line) => write!(f, " (line {line})"),
            None => Ok(()),
        }
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
        self.1.push(Problem::new(path, message));
    }

    /// Report a problem at `path`.
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(path, message));
    }

    /// The problems of a key or table by itself, and those of the file as a
    /// whole ([`Problems::add_whole`]).
    pub fn into_parts(self) -> (Vec<Problem>, Vec<Problem>) {
        (self.0, self.1)
    }

    /// A required key `{at}.{key}`: its value, or `message` (`"is
    /// required …"`) reported at its path. The one place a required key's
    /// presence is checked; what a component is built from takes the value.
    pub fn required<'a, T>(&mut self, at: &str, key: &str, value: Option<&'a T>, message: &str) -> Option<&'a T> {
        if value.is_none() {
            self.add(format!("{at}.{key}"), message);
        }
        value
    }

    /// `url` is an http(s) URL with a host (a URL not read as an
    /// [`HttpUrl`]: one of a list, one inside a tagged table); the parsed
    /// URL, or the problem at `path`.
    pub fn check_url(&mut self, path: String, url: &str) -> Option<HttpUrl> {
        HttpUrl::parse(url).map_err(|message| self.add(path, message)).ok()
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
