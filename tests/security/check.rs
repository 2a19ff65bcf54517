//! Loud about weak settings: `check` warns, with the key path, about what
//! would send credentials or events unprotected or leave a secret readable
//! by every local user, never quotes a secret it refuses, and `check
//! --connect` never calls a certificate it did not verify valid.

use crate::common::agent::{command, TestDir};
use crate::common::{certs, rsyslog};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `check` on the test dir's config: exit code, stdout, stderr.
fn check(dir: &TestDir, args: &[&str]) -> (Option<i32>, String, String) {
    let out = dir.cli(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_warns_about_weak_settings_by_key_path_and_keeps_the_exit_code() {
    let dir = TestDir::new();
    let token_file = dir.file("hec.token");
    std::fs::write(&token_file, "hec-secret-in-file\n").unwrap();
    chmod(&token_file, 0o644);
    let cfg = format!(
        r#"{}
[[source]]
name = "cti"
type = "opencti"
url = "http://opencti.example.com"
token = "inline-secret-0xC0FFEE"
tls = {{ insecure_skip_verify = true }}

[[output]]
name = "hec"
type = "splunk_hec"
url = "http://splunk.example.com:8088"
token_file = "{}"

[[output]]
name = "siem"
type = "syslog"
address = "siem.example.com:514"

[[output]]
name = "qr"
type = "qradar"
address = "qradar.example.com:6514"
transport = "tls"
tls = {{ insecure_skip_verify = true }}
"#,
        dir.agent_section(),
        token_file.display()
    );
    dir.write_config(&cfg);
    chmod(&dir.config_path(), 0o644);
    let (code, stdout, stderr) = check(&dir, &["check"]);
    assert_eq!(code, Some(0), "warnings do not change the exit code:\n{stdout}{stderr}");
    assert!(stdout.contains("configuration OK"), "{stdout}");
    for path in [
        "source[0].tls.insecure_skip_verify: ",
        "source[0].url: is http://",
        "source[0].token: holds the secret itself",
        "output[0].url: is http://",
        "output[0].token_file: ",
        "output[1].transport: is tcp",
        "output[2].tls.insecure_skip_verify: ",
    ] {
        assert!(stderr.contains(&format!("auditrelay: warning: {path}")), "no warning at {path}:\n{stderr}");
    }
    assert!(stderr.contains("transport = \"tls\""), "{stderr}");
    assert!(stderr.contains("mode 0644"), "{stderr}");
    let all = stdout + &stderr;
    assert!(!all.contains("0xC0FFEE") && !all.contains("hec-secret-in-file"), "a secret was printed:\n{all}");

    // Made private, and sent over TLS: the warnings about them go.
    chmod(&dir.config_path(), 0o640);
    chmod(&token_file, 0o600);
    let (code, _, stderr) = check(&dir, &["check"]);
    assert_eq!(code, Some(0));
    assert!(!stderr.contains("source[0].token:") && !stderr.contains("output[0].token_file"), "{stderr}");
    assert!(stderr.contains("source[0].url: is http://"), "{stderr}");
}

#[test]
fn check_warns_about_etcd_credentials_over_http() {
    let dir = TestDir::new();
    let cfg = format!(
        "{}[[source]]\nname = \"d\"\ntype = \"demo\"\n[[output]]\nname = \"f\"\ntype = \"file\"\npath = \"-\"\n\
         [cluster]\netcd = [\"http://127.0.0.1:2379\"]\nuser = \"relay\"\npassword = \"${{ETCD_PASSWORD}}\"\n",
        dir.agent_section()
    );
    dir.write_config(&cfg);
    let out = command(&["check"]).arg("--config").arg(dir.config_path()).env("ETCD_PASSWORD", "p").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("auditrelay: warning: cluster.etcd[0]: is http://"), "{stderr}");
}

#[test]
fn check_never_echoes_a_mistyped_secret() {
    let dir = TestDir::new();
    let cfg = format!(
        r#"{}
[[source]]
name = "cti"
type = "opencti"
url = "https://opencti.example.com"
token = 31415926535

[[source]]
name = "api"
type = "http_json"
url = "https://api.example.com/audit"
events = ""
timestamp = "/t"
auth = {{ type = "header", name = "X-Api-Key", value = 27182818284 }}
headers = {{ "X-Tenant" = 16180339887 }}

[[output]]
name = "hec"
type = "splunk_hec"
url = "https://splunk.example.com:8088"
token = [14142135623]
"#,
        dir.agent_section()
    );
    dir.write_config(&cfg);
    chmod(&dir.config_path(), 0o600);
    let (code, stdout, stderr) = check(&dir, &["check"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    for path in ["source[0].token: invalid type", "source[1].headers.X-Tenant: invalid type", "output[0].token: "] {
        assert!(stderr.contains(path), "no problem at {path}:\n{stderr}");
    }
    assert!(stderr.contains("source[1].auth"), "{stderr}");
    for value in ["31415926535", "27182818284", "16180339887", "14142135623"] {
        assert!(!stderr.contains(value) && !stdout.contains(value), "{value} was echoed:\n{stderr}");
    }
}

/// A TLS listener on 127.0.0.1 with `cert`/`key` that completes handshakes
/// and reads whatever comes; its port.
fn tls_listener(cert: &Path, key: &Path) -> u16 {
    let certs =
        rustls_pemfile::certs(&mut std::fs::read(cert).unwrap().as_slice()).collect::<Result<Vec<_>, _>>().unwrap();
    let key = rustls_pemfile::private_key(&mut std::fs::read(key).unwrap().as_slice()).unwrap().unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    crate::common::runtime().spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let mut sink = tokio::io::sink();
                    let _ = tokio::io::copy(&mut tls, &mut sink).await;
                }
            });
        }
    });
    port
}

#[test]
fn check_connect_never_calls_an_unverified_certificate_valid() {
    let Some(openssl) = rsyslog::openssl() else { return };
    let dir = TestDir::new();
    certs::make_ca(&openssl, dir.path());
    certs::issue(&openssl, dir.path(), "server", "localhost", "serverAuth");
    let port = tls_listener(&dir.file("server.pem"), &dir.file("server.key"));
    let config = |tls: &str| {
        format!(
            "{}[[source]]\nname = \"d\"\ntype = \"demo\"\n[[output]]\nname = \"siem\"\ntype = \"syslog\"\n\
             address = \"127.0.0.1:{port}\"\ntransport = \"tls\"\ntls = {tls}\n",
            dir.agent_section()
        )
    };

    // Verification off: the handshake completes, and says nothing was verified.
    dir.write_config(&config("{ insecure_skip_verify = true }"));
    let (code, out) = dir.check_connect();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("certificate NOT verified (insecure_skip_verify)"), "{out}");
    assert!(!out.contains("certificate valid"), "{out}");
    assert!(out.contains("warning: output[0].tls.insecure_skip_verify"), "{out}");

    // The private CA alone (ca_only): verified, and said so.
    let ca = dir.file("ca.pem");
    dir.write_config(&config(&format!("{{ ca_file = \"{}\", ca_only = true }}", ca.display())));
    let (code, out) = dir.check_connect();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("certificate valid for 127.0.0.1"), "{out}");

    // Without the CA the handshake fails: the system roots do not know it.
    dir.write_config(&config("{ server_name = \"localhost\" }"));
    let (code, out) = dir.check_connect();
    assert_eq!(code, Some(1), "{out}");
    assert!(!out.contains("certificate valid"), "{out}");
}

#[test]
fn check_connect_scratch_space_is_fresh_private_and_removed() {
    let dir = TestDir::new();
    let tmp = dir.file("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // What the predictable name used to be, planted by another user: a
    // symlink into a directory of theirs; it must be neither used nor touched.
    let theirs = dir.file("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::symlink(&theirs, tmp.join("auditrelay-check-planted")).unwrap();
    let cfg = format!(
        "{}[[source]]\nname = \"d\"\ntype = \"demo\"\n[[output]]\nname = \"f\"\ntype = \"file\"\npath = \"{}\"\n",
        dir.agent_section(),
        dir.file("out.jsonl").display()
    );
    dir.write_config(&cfg);
    let out = command(&["check", "--connect"]).arg("--config").arg(dir.config_path()).env("TMPDIR", &tmp).output();
    let out = out.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["auditrelay-check-planted"], "the scratch state is removed, the planted link kept");
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0, "nothing was written through the planted link");
}
