//! Request authentication shared by every source: bearer, basic, a custom
//! header, or an OAuth2 token (client credentials, or a JWT-bearer
//! assertion signed with a service account's key: [`jwt`]) cached and
//! renewed before it expires (and once more after a 401).

pub mod jwt;

use crate::settings::secret::Secret;
use crate::transport::origin::Redirects;
use crate::transport::redirect::SendError;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How requests are authenticated.
#[derive(Debug)]
pub enum Auth {
    /// Nothing added.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// HTTP Basic.
    Basic {
        /// User name (Invicti: the user id, which is not secret but is kept as one).
        user: Secret,
        /// Password or token.
        password: Secret,
    },
    /// A header carrying the secret (`DF-API-KEY`, `X-API-Key`).
    Header {
        /// Header name.
        name: String,
        /// Header value.
        value: Secret,
    },
    /// OAuth2 client credentials.
    OAuth2(OAuth2),
}

/// An OAuth2 token source: the grant it asks with, and the token cached.
#[derive(Debug)]
pub struct OAuth2 {
    /// Token endpoint.
    pub token_url: url::Url,
    /// How the token is asked for.
    pub grant: Grant,
    /// Requested scope.
    pub scope: Option<String>,
    token: Mutex<Option<(Secret, Instant)>>,
}

/// How a token is asked for.
#[derive(Debug)]
pub enum Grant {
    /// `client_credentials` with the client's id and secret in the form.
    ClientSecret {
        /// Client id.
        client_id: Secret,
        /// Client secret.
        client_secret: Secret,
    },
    /// A JWT-bearer assertion (RFC 7523) signed with a service account's
    /// key, acting for `subject` when given (Google's domain-wide
    /// delegation).
    JwtBearer {
        /// The service account's key.
        signer: Box<jwt::Signer>,
        /// `sub`: the user the account acts for.
        subject: Option<String>,
    },
}

/// The token endpoint refused or answered garbage.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Network failure talking to the token endpoint.
    #[error("token request to {url} failed: {detail}")]
    Network {
        /// Endpoint, without query.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The endpoint refused the client credentials (or answered another error).
    #[error("token endpoint {url} refused the credentials (HTTP {status}): {excerpt}")]
    Refused {
        /// Endpoint, without query.
        url: String,
        /// HTTP status.
        status: u16,
        /// Short excerpt of the body (no secrets are sent back by token endpoints).
        excerpt: String,
    },
    /// The answer had no `access_token`.
    #[error("token endpoint {url} answered without access_token: {excerpt}")]
    Shape {
        /// Endpoint, without query.
        url: String,
        /// Short excerpt of the body.
        excerpt: String,
    },
}

/// A token that expires within this is renewed before it is used: a
/// request must not reach the API with a token about to lapse.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// How long a token lives when the endpoint does not say (`expires_in`).
pub const DEFAULT_TOKEN_LIFETIME: u64 = 3600;
/// Largest token answer read.
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

impl OAuth2 {
    /// Client-credentials settings; no token is fetched until first use.
    pub fn new(token_url: url::Url, client_id: Secret, client_secret: Secret, scope: Option<String>) -> Self {
        OAuth2 { token_url, grant: Grant::ClientSecret { client_id, client_secret }, scope, token: Mutex::new(None) }
    }

    /// A service account's JWT-bearer grant, asking its `token_uri` for
    /// `scope`; no token is fetched until first use.
    pub fn jwt_bearer(signer: jwt::Signer, subject: Option<String>, scope: String) -> Self {
        OAuth2 {
            token_url: signer.token_uri.clone(),
            grant: Grant::JwtBearer { signer: Box::new(signer), subject },
            scope: Some(scope),
            token: Mutex::new(None),
        }
    }

    /// The token request's form.
    fn form(&self) -> Result<Vec<(&'static str, String)>, AuthError> {
        Ok(match &self.grant {
            Grant::ClientSecret { client_id, client_secret } => {
                let mut form = vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", client_id.expose().to_owned()),
                    ("client_secret", client_secret.expose().to_owned()),
                ];
                if let Some(scope) = &self.scope {
                    form.push(("scope", scope.clone()));
                }
                form
            }
            Grant::JwtBearer { signer, subject } => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let scope = self.scope.as_deref().unwrap_or_default();
                let assertion = signer.assertion(scope, subject.as_deref(), now).map_err(|e| AuthError::Shape {
                    url: crate::transport::http::redact_url(&self.token_url),
                    excerpt: e.to_string(),
                })?;
                vec![("grant_type", jwt::GRANT_TYPE.to_owned()), ("assertion", assertion.expose().to_owned())]
            }
        })
    }

    /// Forget the cached token (after a 401).
    pub async fn invalidate(&self) {
        *self.token.lock().await = None;
    }

    /// A valid token, fetched or renewed when it expires within 60 s.
    /// The request follows no redirect (the form holds the client secret
    /// or a signed assertion): one is an error naming where it pointed.
    pub async fn token(&self, client: &reqwest::Client, timeout: Duration) -> Result<Secret, AuthError> {
        let mut guard = self.token.lock().await;
        if let Some((tok, until)) = guard.as_ref() {
            if Instant::now() + REFRESH_MARGIN < *until {
                return Ok(tok.clone());
            }
        }
        let url = crate::transport::http::redact_url(&self.token_url);
        let form = self.form()?;
        let network = |detail: String| AuthError::Network { url: url.clone(), detail };
        let req = client
            .post(self.token_url.clone())
            .timeout(timeout)
            .form(&form)
            .build()
            .map_err(|e| network(crate::transport::http::error_chain(&e.without_url())))?;
        let resp = crate::transport::redirect::send(client, req, &Redirects::Refuse).await.map_err(|e| match e {
            SendError::Refused(r) => network(r.to_string()),
            SendError::Http(e) => network(crate::transport::http::error_chain(&e.without_url())),
        })?;
        let status = resp.status().as_u16();
        let body = crate::transport::http::read_body(resp, MAX_TOKEN_RESPONSE)
            .await
            .map_err(|e| AuthError::Network { url: url.clone(), detail: e.to_string() })?;
        if !(200..300).contains(&status) {
            return Err(AuthError::Refused { url, status, excerpt: crate::transport::http::excerpt(&body) });
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| AuthError::Shape { url: url.clone(), excerpt: crate::transport::http::excerpt(&body) })?;
        let tok = v
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError::Shape { url: url.clone(), excerpt: "(no access_token field)".into() })?;
        let expires = v
            .get("expires_in")
            .and_then(|e| e.as_u64().or_else(|| e.as_str()?.parse().ok()))
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let secret = Secret::new(tok);
        *guard = Some((secret.clone(), Instant::now() + Duration::from_secs(expires)));
        Ok(secret)
    }
}

impl Auth {
    /// Add the credentials to a request (an OAuth2 token is fetched with
    /// `client`, within `timeout`, when due).
    pub async fn apply(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
        rb: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, AuthError> {
        Ok(match self {
            Auth::None => rb,
            Auth::Bearer(t) => rb.bearer_auth(t.expose()),
            Auth::Basic { user, password } => rb.basic_auth(user.expose(), Some(password.expose())),
            Auth::Header { name, value } => rb.header(name.as_str(), value.expose()),
            Auth::OAuth2(o) => rb.bearer_auth(o.token(client, timeout).await?.expose()),
        })
    }
}
