//! JWT-bearer assertions (RFC 7523, RS256): a service account proves who it
//! is to a token endpoint with a JWT it signs with its private key, instead
//! of a client secret. Google's service accounts with domain-wide
//! delegation use it (the `sub` claim names the user acted for); any source
//! may (`auth = { type = "jwt_bearer" }`).
//!
//! The key is read from a service-account key file in Google's JSON format
//! (`private_key` PKCS#8 PEM, `client_email`, `private_key_id`,
//! `token_uri`), the de-facto format other vendors' tools also read.

use crate::settings::secret::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;
use serde_json::json;

/// How long an assertion is valid: Google refuses more than an hour.
pub const ASSERTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);

/// The `grant_type` of a JWT-bearer token request (RFC 7523 section 2.1).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The fields of a service-account key file the assertion needs.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

/// A service account's signing key and who it is.
pub struct Signer {
    /// `iss`: the service account (`client_email`).
    pub issuer: String,
    /// `kid`: which of the account's keys signs.
    key_id: Option<String>,
    /// Where tokens are asked for (`token_uri`), also the `aud` claim.
    pub token_uri: url::Url,
    key: RsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("issuer", &self.issuer)
            .field("key_id", &self.key_id)
            .field("token_uri", &self.token_uri.as_str())
            .finish_non_exhaustive()
    }
}

/// What is wrong with a key file. Never carries the key's text.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct KeyError(pub String);

impl Signer {
    /// Read a service-account key file's text (`key_file`'s content, a
    /// secret). `token_uri` overrides the file's (a proxy, or a test).
    pub fn from_key_file(text: &Secret, token_uri: Option<&url::Url>) -> Result<Signer, KeyError> {
        let file: KeyFile = serde_json::from_str(text.expose()).map_err(|e| {
            // serde_json's message names a line and column, never the text.
            KeyError(format!("is not a service-account key file (JSON with client_email and private_key): {e}"))
        })?;
        if let Some(kind) = file.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(KeyError(format!(
                "is a {kind:?} credential, not a service-account key (\"type\": \"service_account\")"
            )));
        }
        let issuer =
            file.client_email.filter(|e| !e.is_empty()).ok_or_else(|| KeyError("has no client_email".into()))?;
        let pem = file.private_key.ok_or_else(|| KeyError("has no private_key".into()))?;
        let key = rsa_key(&pem)?;
        let token_uri = match token_uri {
            Some(configured) => configured.clone(),
            None => {
                let uri = file
                    .token_uri
                    .ok_or_else(|| KeyError("has no token_uri (and no token_url is configured)".into()))?;
                url::Url::parse(&uri).map_err(|e| KeyError(format!("token_uri {uri:?}: {e}")))?
            }
        };
        Ok(Signer { issuer, key_id: file.private_key_id, token_uri, key, rng: ring::rand::SystemRandom::new() })
    }

    /// A signed assertion asking for `scope`, acting for `subject` when
    /// given, issued at `now` (Unix seconds).
    pub fn assertion(&self, scope: &str, subject: Option<&str>, now: u64) -> Result<Secret, KeyError> {
        let mut header = json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let mut claims = json!({
            "iss": self.issuer,
            "scope": scope,
            "aud": self.token_uri.as_str(),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        if let Some(sub) = subject {
            claims["sub"] = json!(sub);
        }
        let signed = format!("{}.{}", B64URL.encode(header.to_string()), B64URL.encode(claims.to_string()));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, signed.as_bytes(), &mut signature)
            .map_err(|_| KeyError("could not sign the assertion".into()))?;
        Ok(Secret::new(format!("{signed}.{}", B64URL.encode(signature))))
    }
}

/// The RSA key of a PKCS#8 PEM block (`-----BEGIN PRIVATE KEY-----`).
fn rsa_key(pem: &str) -> Result<RsaKeyPair, KeyError> {
    let bad = |why: &str| KeyError(format!("private_key {why}"));
    let key = rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|_| bad("is not PEM"))?
        .ok_or_else(|| bad("holds no PEM private key block"))?;
    match key {
        rustls::pki_types::PrivateKeyDer::Pkcs8(der) => {
            RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| bad(&format!("is not a usable RSA key ({e})")))
        }
        rustls::pki_types::PrivateKeyDer::Pkcs1(der) => {
            RsaKeyPair::from_der(der.secret_pkcs1_der()).map_err(|e| bad(&format!("is not a usable RSA key ({e})")))
        }
        _ => Err(bad("is not an RSA key (RS256 needs one)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    const PEM: &str = include_str!("../../../tests/fixtures/test-only-rsa-2048.pem");

    fn key_file(token_uri: &str) -> Secret {
        Secret::new(
            json!({
                "type": "service_account",
                "project_id": "auditrelay-test",
                "private_key_id": "0123456789abcdef",
                "private_key": PEM,
                "client_email": "reports@auditrelay-test.iam.gserviceaccount.com",
                "client_id": "100000000000000000001",
                "token_uri": token_uri,
            })
            .to_string(),
        )
    }

    fn part(token: &str, i: usize) -> serde_json::Value {
        serde_json::from_slice(&B64URL.decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn the_assertion_carries_the_claims_google_asks_for_and_verifies_with_the_public_key() {
        let signer = Signer::from_key_file(&key_file("https://oauth2.googleapis.com/token"), None).unwrap();
        let scope = "https://www.googleapis.com/auth/admin.reports.audit.readonly";
        let jwt = signer.assertion(scope, Some("admin@example.com"), 1_700_000_000).unwrap();
        let jwt = jwt.expose();
        assert_eq!(part(jwt, 0), json!({ "alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef" }));
        assert_eq!(
            part(jwt, 1),
            json!({
                "iss": "reports@auditrelay-test.iam.gserviceaccount.com",
                "sub": "admin@example.com",
                "scope": scope,
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_700_000_000u64,
                "exp": 1_700_003_600u64,
            })
        );
        let (signed, sig) = jwt.rsplit_once('.').unwrap();
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, signer.key.public().as_ref().to_vec());
        public.verify(signed.as_bytes(), &B64URL.decode(sig).unwrap()).expect("RS256 signature verifies");
        // Another message does not.
        assert!(public.verify(b"x", &B64URL.decode(sig).unwrap()).is_err());
    }

    #[test]
    fn without_a_subject_there_is_no_sub_claim_and_token_url_overrides_the_file() {
        let signer = Signer::from_key_file(
            &key_file("https://oauth2.googleapis.com/token"),
            Some(&url::Url::parse("http://127.0.0.1:9/token").unwrap()),
        )
        .unwrap();
        let jwt = signer.assertion("s", None, 1).unwrap();
        let claims = part(jwt.expose(), 1);
        assert!(claims.get("sub").is_none());
        assert_eq!(claims["aud"], "http://127.0.0.1:9/token");
    }

    #[test]
    fn a_bad_key_file_is_named_and_its_text_never_shown() {
        let cases = [
            (
                "not json at all, -----BEGIN PRIVATE KEY----- secretstuff".to_owned(),
                "is not a service-account key file",
            ),
            (json!({ "type": "authorized_user", "client_email": "a" }).to_string(), "\"authorized_user\" credential"),
            (json!({ "type": "service_account", "private_key": PEM }).to_string(), "has no client_email"),
            (json!({ "client_email": "a@b", "private_key": "secretstuff" }).to_string(), "holds no PEM private key"),
            (json!({ "client_email": "a@b", "private_key": PEM.replace("MII", "XXX") }).to_string(), "private_key is"),
            (json!({ "client_email": "a@b", "private_key": PEM }).to_string(), "has no token_uri"),
        ];
        for (text, says) in cases {
            let err = Signer::from_key_file(&Secret::new(text), None).unwrap_err();
            assert!(err.0.contains(says), "{err} (expected {says:?})");
            assert!(!err.0.contains("secretstuff") && !err.0.contains("BEGIN"), "{err}");
        }
    }

    /// The whole grant against a token endpoint on 127.0.0.1 that checks
    /// the form as Google's does (grant type, a verifiable RS256 assertion
    /// for its own address) and answers as Google does (`access_token`,
    /// `expires_in`, `token_type`); a second `token()` reuses the token.
    #[tokio::test]
    async fn the_token_request_carries_a_verifiable_assertion_and_the_token_is_cached() {
        use axum::{extract::State, routing::post, Json, Router};
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex};
        type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;
        async fn token(State(seen): State<Seen>, body: String) -> Json<serde_json::Value> {
            seen.lock().unwrap().push(url::form_urlencoded::parse(body.as_bytes()).into_owned().collect());
            Json(json!({ "access_token": "ya29.test-token", "expires_in": 3599, "token_type": "Bearer" }))
        }
        let seen: Seen = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/token", listener.local_addr().unwrap());
        let app = Router::new().route("/token", post(token)).with_state(seen.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let signer = Signer::from_key_file(&key_file(&uri), None).unwrap();
        let public = signer.key.public().as_ref().to_vec();
        let oauth =
            crate::sources::auth::OAuth2::jwt_bearer(signer, Some("admin@example.com".into()), "scope-a".into());
        // The sources' shared client (it follows no redirect itself), as a
        // Google Workspace source asks with.
        let client = crate::transport::http::Clients::default().get(None).unwrap();
        let timeout = std::time::Duration::from_secs(10);
        assert_eq!(oauth.token(&client, timeout).await.unwrap().expose(), "ya29.test-token");
        assert_eq!(oauth.token(&client, timeout).await.unwrap().expose(), "ya29.test-token");

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "the second call reused the cached token");
        assert_eq!(seen[0]["grant_type"], GRANT_TYPE);
        assert_eq!(seen[0].len(), 2, "only grant_type and assertion: {:?}", seen[0].keys());
        let jwt = &seen[0]["assertion"];
        let claims = part(jwt, 1);
        assert_eq!((claims["aud"].as_str(), claims["sub"].as_str()), (Some(uri.as_str()), Some("admin@example.com")));
        let (signed, sig) = jwt.rsplit_once('.').unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
            .verify(signed.as_bytes(), &B64URL.decode(sig).unwrap())
            .expect("the endpoint can verify the assertion");
    }

    /// The JWT-bearer token request goes over the sources' shared client,
    /// which follows no redirect itself, and is sent with
    /// `Redirects::Refuse`: a token endpoint answering 307 gets the
    /// assertion once, and where it points gets nothing.
    #[tokio::test]
    async fn a_redirected_token_request_is_refused_and_the_assertion_goes_nowhere_else() {
        use axum::{http::StatusCode, response::IntoResponse, routing::post, Router};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let asked: Arc<[AtomicUsize; 2]> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/token", listener.local_addr().unwrap());
        let (a, b) = (asked.clone(), asked.clone());
        let app = Router::new()
            .route(
                "/token",
                post(move || async move {
                    a[0].fetch_add(1, Ordering::SeqCst);
                    (StatusCode::TEMPORARY_REDIRECT, [("location", "/elsewhere")]).into_response()
                }),
            )
            .route(
                "/elsewhere",
                post(move || async move {
                    b[1].fetch_add(1, Ordering::SeqCst);
                    "{\"access_token\": \"stolen\"}"
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });

        let signer = Signer::from_key_file(&key_file(&uri), None).unwrap();
        let oauth = crate::sources::auth::OAuth2::jwt_bearer(signer, None, "scope-a".into());
        let client = crate::transport::http::Clients::default().get(None).unwrap();
        let err = oauth.token(&client, std::time::Duration::from_secs(10)).await.unwrap_err();
        assert!(err.to_string().contains("never redirected"), "{err}");
        assert_eq!((asked[0].load(Ordering::SeqCst), asked[1].load(Ordering::SeqCst)), (1, 0));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let signer = Signer::from_key_file(&key_file("https://oauth2.googleapis.com/token"), None).unwrap();
        let text = format!("{signer:?}");
        assert!(text.contains("reports@auditrelay-test") && !text.contains("MII"), "{text}");
    }
}
