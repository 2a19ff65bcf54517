//! rustls client configuration from `tls = { ca_file, cert_file, key_file,
//! server_name, insecure_skip_verify, ca_only }`: the system's roots plus a
//! private CA (or, with `ca_only`, that CA alone), an optional client certificate (mTLS), an optional name to verify
//! instead of the host, and verification off only when asked for by name.

use crate::settings::TlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("{what} {path}: {detail}")]
    File {
        /// Which file (`ca_file`, `cert_file`, `key_file`).
        what: &'static str,
        /// Its path.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// rustls rejected the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// `server_name` is not a DNS name or IP address.
    #[error("tls.server_name {0:?} is not a valid DNS name or IP address")]
    ServerName(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |detail: String| TlsError::File { what, path: path.display().to_string(), detail };
    let data = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs =
        rustls_pemfile::certs(&mut data.as_slice()).collect::<Result<Vec<_>, _>>().map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let err = |detail: String| TlsError::File { what: "key_file", path: path.display().to_string(), detail };
    let data = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("no PEM private key found".into()))
}

/// The root store: the system's certificates plus `ca_file`, or
/// `ca_file` alone with `ca_only`.
fn roots(tls: &TlsConfig) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    if !tls.ca_only {
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = store.add(cert);
        }
    }
    match &tls.ca_file {
        Some(ca) => {
            for cert in read_certs("ca_file", ca)? {
                store.add(cert)?;
            }
        }
        // Validation rejects this; an empty store would trust nothing.
        None if tls.ca_only => {
            return Err(TlsError::File {
                what: "ca_file",
                path: "(unset)".into(),
                detail: "ca_only needs a ca_file".into(),
            })
        }
        None => {}
    }
    Ok(store)
}

/// Build a rustls client configuration.
pub fn client_config(tls: Option<&TlsConfig>) -> Result<ClientConfig, TlsError> {
    let default = TlsConfig::default();
    let tls = tls.unwrap_or(&default);
    let roots = Arc::new(roots(tls)?);
    let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure_skip_verify {
        Arc::new(NoVerify(provider()))
    } else {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        match &tls.server_name {
            Some(name) => {
                let name = ServerName::try_from(name.clone()).map_err(|_| TlsError::ServerName(name.clone()))?;
                Arc::new(FixedName { inner, name })
            }
            None => inner,
        }
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => builder.with_client_auth_cert(read_certs("cert_file", cert)?, read_key(key)?)?,
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// Verifies the certificate against a configured name instead of the one
/// connected to (`tls.server_name`).
#[derive(Debug)]
struct FixedName {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify = true`: accepts any certificate (signatures are
/// still checked so the handshake is sound).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed CA certificate made with the `openssl` CLI, or `None`
    /// (skip) where there is none.
    fn test_ca(dir: &Path) -> Option<std::path::PathBuf> {
        let pem = dir.join("ca.pem");
        let ok = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=auditrelay unit CA"])
            .arg("-keyout")
            .arg(dir.join("ca.key"))
            .arg("-out")
            .arg(&pem)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(pem)
    }

    #[test]
    fn ca_only_trusts_the_given_ca_alone() {
        let dir = tempfile::tempdir().unwrap();
        let Some(ca) = test_ca(dir.path()) else {
            eprintln!("skipped: no openssl");
            return;
        };
        let only = TlsConfig { ca_file: Some(ca.clone()), ca_only: true, ..Default::default() };
        assert_eq!(roots(&only).unwrap().len(), 1, "ca_only: the CA alone");
        let added = TlsConfig { ca_file: Some(ca), ..Default::default() };
        let system = rustls_native_certs::load_native_certs().certs.len();
        if system > 0 {
            assert!(roots(&added).unwrap().len() > 1, "without ca_only the system roots stay");
        }
        assert!(client_config(Some(&only)).is_ok());
        let nothing = TlsConfig { ca_only: true, ..Default::default() };
        assert!(client_config(Some(&nothing)).is_err(), "ca_only without ca_file trusts nothing: refused");
    }
}
