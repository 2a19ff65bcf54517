//! [`HttpUrl`]: an `http://` or `https://` URL with a host, parsed when the
//! file is read, so that a bad URL is reported once, by its key path, and
//! what is built from it is given a parsed [`url::Url`].

use serde::Deserialize;
use std::fmt;

/// An `http://` or `https://` URL with a host. Read from a string; the
/// error is what `check` reports at the key.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl(url::Url);

impl HttpUrl {
    /// Parse `text`, or say why it is not an http(s) URL with a host.
    pub fn parse(text: &str) -> Result<Self, String> {
        match url::Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(HttpUrl(u)),
            Ok(u) => Err(format!("{text:?} must be an http:// or https:// URL with a host, not {}", u.scheme())),
            Err(e) => Err(format!("{text:?} is not a URL ({e})")),
        }
    }

    /// A URL the agent knows (a vendor's API), written as a constant.
    pub fn known(text: &'static str) -> Self {
        // Every built-in URL is read by the tests of its component.
        #[allow(clippy::expect_used)]
        Self::parse(text).expect("a built-in URL is an http(s) URL with a host")
    }

    /// The parsed URL.
    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

impl std::ops::Deref for HttpUrl {
    type Target = url::Url;
    fn deref(&self) -> &url::Url {
        &self.0
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        HttpUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An origin (`scheme://host[:port]`) a source may be sent to besides its
/// `url`'s, as `allowed_origins` lists it: an [`HttpUrl`] without a path,
/// query or user, read with the file.
#[derive(Clone, PartialEq, Eq)]
pub struct Origin(HttpUrl);

impl Origin {
    /// Parse `text`, or say why it is not an origin.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = HttpUrl::parse(text)?;
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
            return Err(format!("{text:?} must be an origin only (scheme://host[:port]), without a path"));
        }
        Ok(Origin(url))
    }

    /// The origin as a URL.
    pub fn url(&self) -> &url::Url {
        self.0.url()
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Origin::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::{HttpUrl, Origin};

    #[test]
    fn an_origin_has_no_path_query_or_user() {
        assert_eq!(Origin::parse("https://b.example:8443").unwrap().url().as_str(), "https://b.example:8443/");
        for bad in ["https://b.example/api", "https://b.example/?x=1", "https://u@b.example", "ftp://b.example"] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
        assert!(Origin::parse("https://b.example/x").unwrap_err().contains("must be an origin only"));
    }

    #[test]
    fn only_http_urls_with_a_host_are_read() {
        assert_eq!(HttpUrl::parse("https://a.example/x").unwrap().path(), "/x");
        let ftp = HttpUrl::parse("ftp://x").unwrap_err();
        assert_eq!(ftp, "\"ftp://x\" must be an http:// or https:// URL with a host, not ftp");
        let bad = HttpUrl::parse("a.example").unwrap_err();
        assert!(bad.starts_with("\"a.example\" is not a URL ("), "{bad}");
    }
}
