//! `type = "http_json"`: any JSON API, described by its keys.

use super::time_format::TimeFormat;
use crate::settings::problem::check_header_name;
use crate::settings::secret::{SecretKey, SecretRef, SetSecret};
use crate::settings::{HttpUrl, Problems, Validate};
use crate::sources::api::Order;
use crate::sources::common::SourceSpec;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `type = "http_json"`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpJsonConfig {
    /// The full endpoint URL (`{{cursor}}`, … expand in it).
    #[serde(default)]
    pub url: Option<UrlTemplate>,
    /// `GET` (default) or `POST`.
    #[serde(default)]
    pub method: Method,
    /// Request body for POST, templated.
    #[serde(default)]
    pub body: Option<String>,
    /// Authentication.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// JSON pointer to the array of events (`""`: the body is the array).
    #[serde(default)]
    pub events: Option<String>,
    /// JSON pointer to an event's id; a hash of the event by default.
    #[serde(default)]
    pub id: Option<String>,
    /// JSON pointer to an event's time.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// `rfc3339` (default), `unix`, `unix_ms` or a strftime pattern.
    #[serde(default, deserialize_with = "time_format")]
    pub timestamp_format: Option<TimeFormat>,
    /// Query parameters, templated.
    #[serde(default)]
    pub params: Option<BTreeMap<String, String>>,
    /// How to get the next page.
    #[serde(default)]
    pub pagination: Option<PaginationConfig>,
    /// `asc` (default) or `desc` when the API lists newest first.
    #[serde(default)]
    pub order: Option<Order>,
    /// ECS field → JSON pointer into the event.
    #[serde(default)]
    pub fields: Option<BTreeMap<String, String>>,
}

/// The request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// `GET`.
    #[default]
    Get,
    /// `POST` with `body`.
    Post,
}

fn time_format<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimeFormat>, D::Error> {
    let text = String::deserialize(d)?;
    TimeFormat::parse(&text).map(Some).map_err(|f| {
        serde::de::Error::custom(format!("{f:?} must be rfc3339, unix, unix_ms or a strftime pattern with %"))
    })
}

/// `http_json` authentication.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        #[serde(default)]
        token: Option<SecretRef>,
        /// File holding the token.
        #[serde(default)]
        token_file: Option<PathBuf>,
    },
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        #[serde(default)]
        password: Option<SecretRef>,
        /// File holding the password.
        #[serde(default)]
        password_file: Option<PathBuf>,
    },
    /// A custom header holding the secret, e.g. `X-API-Key`.
    Header {
        /// Header name.
        name: String,
        /// Header value.
        #[serde(default)]
        value: Option<SecretRef>,
        /// File holding the header value.
        #[serde(default)]
        value_file: Option<PathBuf>,
    },
    /// OAuth2 client credentials; the token is renewed before it expires.
    Oauth2 {
        /// Token endpoint URL.
        token_url: String,
        /// Client id.
        client_id: SecretRef,
        /// Client secret.
        #[serde(default)]
        client_secret: Option<SecretRef>,
        /// File holding the client secret.
        #[serde(default)]
        client_secret_file: Option<PathBuf>,
        /// Requested scope.
        #[serde(default)]
        scope: Option<String>,
    },
}

/// `http_json` pagination.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaginationConfig {
    /// One request per poll.
    None,
    /// `{{page}}` counts up from `start` until a short page.
    Page {
        /// First page number.
        #[serde(default = "default_first_page")]
        start: u64,
    },
    /// `{{offset}}` grows by the events received until a short page.
    Offset,
    /// A token from the response, sent back as `param`.
    Next {
        /// JSON pointer to the next token in the response.
        next: String,
        /// Query parameter that carries it.
        param: String,
    },
    /// The `Link: <…>; rel="next"` response header.
    Link,
}

/// Page numbers start at 1 unless `start` says otherwise.
pub const DEFAULT_FIRST_PAGE: u64 = 1;

fn default_first_page() -> u64 {
    DEFAULT_FIRST_PAGE
}

/// The `url` of an `http_json` source: the template as written, which
/// each request expands (`{{cursor}}`, …), read only when it is an http(s)
/// URL with a host as written.
#[derive(Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    /// The text, placeholders and all.
    pub text: String,
    /// The text parsed (its origin is the source's).
    pub parsed: HttpUrl,
}

impl<'de> Deserialize<'de> for UrlTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = HttpUrl::parse(&text).map_err(serde::de::Error::custom)?;
        Ok(UrlTemplate { text, parsed })
    }
}

impl std::fmt::Debug for UrlTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.text, f)
    }
}

/// The required keys of an `http_json` source, checked, and its
/// authentication with its secrets set.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    /// The endpoint URL's template.
    pub url: String,
    /// JSON pointer to the array of events.
    pub events: String,
    /// JSON pointer to each event's time.
    pub timestamp: String,
    /// How requests authenticate (`None`: they do not).
    pub auth: Option<HttpAuth>,
}

/// An `http_json` source's `auth`, checked: each secret set.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpAuth {
    /// `Authorization: Bearer`.
    Bearer(SetSecret),
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: SetSecret,
    },
    /// One header carrying a key.
    Header {
        /// Header name, a valid one.
        name: String,
        /// Its value.
        value: SetSecret,
    },
    /// OAuth2 client credentials.
    Oauth2 {
        /// Token endpoint.
        token_url: HttpUrl,
        /// Client id.
        client_id: SetSecret,
        /// Client secret.
        client_secret: SetSecret,
        /// Scope asked for.
        scope: Option<String>,
    },
}

impl HttpJsonConfig {
    /// Whether `{{placeholder}}` appears where requests are built.
    fn uses(&self, placeholder: &str) -> bool {
        self.params.as_ref().is_some_and(|m| m.values().any(|v| v.contains(placeholder)))
            || self.body.as_deref().is_some_and(|b| b.contains(placeholder))
            || self.url.as_ref().is_some_and(|u| u.text.contains(placeholder))
    }
}

impl Validate for HttpJsonConfig {
    type Valid = Required;
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Required> {
        let before = p.0.len();
        let url = p.required(at, "url", self.url.as_ref(), "is required");
        if self.body.is_some() && self.method != Method::Post {
            p.add(format!("{at}.body"), "a body needs method = \"POST\"");
        }
        let events = p.required(
            at,
            "events",
            self.events.as_ref(),
            "is required: the JSON pointer to the array of events (\"\" when the body is the array)",
        );
        if let Some(ptr) = events {
            p.pointer(format!("{at}.events"), ptr);
        }
        if let Some(ptr) = &self.id {
            p.pointer(format!("{at}.id"), ptr);
        }
        let timestamp =
            p.required(at, "timestamp", self.timestamp.as_ref(), "is required: the JSON pointer to each event's time");
        if let Some(ptr) = timestamp {
            p.pointer(format!("{at}.timestamp"), ptr);
        }
        for (k, ptr) in self.fields.iter().flatten() {
            p.pointer(format!("{at}.fields.{k}"), ptr);
        }
        match &self.pagination {
            Some(PaginationConfig::Next { next, param }) => {
                p.pointer(format!("{at}.pagination.next"), next);
                if param.is_empty() {
                    p.add(format!("{at}.pagination.param"), "must name the query parameter");
                }
            }
            Some(PaginationConfig::Page { .. }) if !self.uses("{{page}}") => {
                p.add(format!("{at}.pagination"), "type = \"page\" needs {{page}} in params or body")
            }
            Some(PaginationConfig::Offset) if !self.uses("{{offset}}") => {
                p.add(format!("{at}.pagination"), "type = \"offset\" needs {{offset}} in params or body")
            }
            _ => {}
        }
        let auth = validate_auth(at, self.auth.as_ref(), p);
        let required = Required {
            url: url?.text.clone(),
            events: events?.clone(),
            timestamp: timestamp?.clone(),
            auth: auth.ok()?,
        };
        (p.0.len() == before).then_some(required)
    }
}

impl SourceSpec for HttpJsonConfig {
    fn url(&self) -> Option<&url::Url> {
        self.url.as_ref().map(|u| u.parsed.url())
    }

    fn secrets(&self) -> Vec<SecretKey<'_>> {
        match &self.auth {
            Some(AuthConfig::Bearer { token, token_file }) => {
                vec![SecretKey::new("auth.token", token.as_ref(), token_file.as_ref())]
            }
            Some(AuthConfig::Basic { password, password_file, .. }) => {
                vec![SecretKey::new("auth.password", password.as_ref(), password_file.as_ref())]
            }
            Some(AuthConfig::Header { value, value_file, .. }) => {
                vec![SecretKey::new("auth.value", value.as_ref(), value_file.as_ref())]
            }
            Some(AuthConfig::Oauth2 { client_secret, client_secret_file, .. }) => {
                vec![SecretKey::new("auth.client_secret", client_secret.as_ref(), client_secret_file.as_ref())]
            }
            None => Vec::new(),
        }
    }

    fn credential_header(&self) -> Option<&str> {
        match &self.auth {
            Some(AuthConfig::Header { name, .. }) => Some(name.as_str()),
            Some(_) => Some("authorization"),
            None => None,
        }
    }
}

/// The `auth` table checked: `Ok(None)` when there is none, `Err(())` when
/// it has a problem (reported in `p`).
fn validate_auth(at: &str, auth: Option<&AuthConfig>, p: &mut Problems) -> Result<Option<HttpAuth>, ()> {
    // Exactly one of a secret's value and file, or `message` at `{at}.auth`.
    fn one(
        (at, p): (&str, &mut Problems),
        key: &'static str,
        value: &Option<SecretRef>,
        file: &Option<PathBuf>,
        message: &str,
    ) -> Option<SetSecret> {
        if value.is_none() == file.is_none() {
            p.add(format!("{at}.auth"), message);
            return None;
        }
        SecretKey::new(key, value.as_ref(), file.as_ref()).set()
    }
    let auth = match auth {
        None => return Ok(None),
        Some(AuthConfig::Bearer { token, token_file }) => {
            one((at, p), "auth.token", token, token_file, "bearer needs exactly one of token or token_file")
                .map(HttpAuth::Bearer)
        }
        Some(AuthConfig::Basic { username, password, password_file }) => one(
            (at, p),
            "auth.password",
            password,
            password_file,
            "basic needs exactly one of password or password_file",
        )
        .map(|password| HttpAuth::Basic { username: username.clone(), password }),
        Some(AuthConfig::Header { value, value_file, name }) => {
            let value =
                one((at, p), "auth.value", value, value_file, "header needs exactly one of value or value_file");
            if !check_header_name(name) {
                p.add(format!("{at}.auth.name"), format!("{name:?} is not a valid header name"));
                return Err(());
            }
            value.map(|value| HttpAuth::Header { name: name.clone(), value })
        }
        Some(AuthConfig::Oauth2 { token_url, client_id, client_secret, client_secret_file, scope }) => {
            let token_url = p.check_url(format!("{at}.auth.token_url"), token_url);
            let client_secret = one(
                (at, p),
                "auth.client_secret",
                client_secret,
                client_secret_file,
                "oauth2 needs exactly one of client_secret or client_secret_file",
            );
            match (token_url, client_secret) {
                (Some(token_url), Some(client_secret)) => Some(HttpAuth::Oauth2 {
                    token_url,
                    client_id: SetSecret::value("auth.client_id", client_id),
                    client_secret,
                    scope: scope.clone(),
                }),
                _ => None,
            }
        }
    };
    auth.map(Some).ok_or(())
}
