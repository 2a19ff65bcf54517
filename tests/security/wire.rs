//! A scripted HTTP/1.1 server on 127.0.0.1 that records every request as
//! the bytes it received (head and body): a collector on "another origin"
//! shows exactly what reached it, and an API fake answers what a hostile
//! API would (a `Link` elsewhere, a 302, a 307).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target (`/path?query`).
    pub target: String,
    /// The request line and headers, as sent.
    pub head: String,
    /// The body, as sent (lossy UTF-8).
    pub body: String,
}

impl Seen {
    /// Everything received, for secret searches.
    pub fn text(&self) -> String {
        format!("{}\r\n{}", self.head, self.body)
    }
}

/// Answers a request with a whole HTTP response.
pub type Handler = Arc<dyn Fn(&Seen) -> Vec<u8> + Send + Sync>;

/// The server.
pub struct Wire {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    https: bool,
}

impl Wire {
    /// Listen on `127.0.0.1:0` and answer each request with `handler`.
    pub fn start(handler: impl Fn(&Seen) -> Vec<u8> + Send + Sync + 'static) -> Wire {
        Wire::listen(None, handler)
    }

    /// [`Wire::start`] over TLS with the certificate `cert` and key `key`
    /// (PEM files, e.g. from `common::certs`).
    pub fn start_tls(cert: &Path, key: &Path, handler: impl Fn(&Seen) -> Vec<u8> + Send + Sync + 'static) -> Wire {
        let certs =
            rustls_pemfile::certs(&mut std::fs::read(cert).unwrap().as_slice()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = rustls_pemfile::private_key(&mut std::fs::read(key).unwrap().as_slice()).unwrap().unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Wire::listen(Some(Arc::new(config)), handler)
    }

    fn listen(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Seen) -> Vec<u8> + Send + Sync + 'static,
    ) -> Wire {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let (log, https) = (seen.clone(), tls.is_some());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (log, handler, tls) = (log.clone(), handler.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                    match tls {
                        None => serve(conn, &log, &handler),
                        Some(config) => {
                            let Ok(session) = rustls::ServerConnection::new(config) else { return };
                            serve(rustls::StreamOwned::new(session, conn), &log, &handler)
                        }
                    }
                });
            }
        });
        Wire { port, seen, https }
    }

    /// A server that answers every request `200 {}`: the collector.
    pub fn collector() -> Wire {
        Wire::start(|_| response(200, &[], "{}"))
    }

    /// `http://127.0.0.1:PORT` (`https://` over TLS).
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", if self.https { "https" } else { "http" }, self.port)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn serve(conn: impl Read + Write, log: &Mutex<Vec<Seen>>, handler: &Handler) {
    let mut reader = BufReader::new(conn);
    loop {
        let mut head = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            head.push_str(&line);
        }
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut words = head.split_whitespace();
        let seen = Seen {
            method: words.next().unwrap_or_default().to_owned(),
            target: words.next().unwrap_or_default().to_owned(),
            head: head.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        log.lock().unwrap_or_else(|p| p.into_inner()).push(seen.clone());
        let answer = handler(&seen);
        if reader.get_mut().write_all(&answer).and_then(|()| reader.get_mut().flush()).is_err() {
            return;
        }
    }
}

/// A whole response with `Content-Length`.
pub fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    response_bytes(status, headers, body.as_bytes())
}

/// [`response`] with a body of any bytes (not UTF-8, say).
pub fn response_bytes(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        r.push_str("content-type: application/json\r\n");
    }
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}
