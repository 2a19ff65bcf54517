//! Test certificates made with the `openssl` CLI (see
//! [`super::rsyslog::openssl`]): a CA, and certificates it signs for
//! `localhost` and 127.0.0.1.

use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A self-signed test CA in `dir`: `ca.pem` and `ca.key`.
pub fn make_ca(openssl: &Path, dir: &Path) {
    run(Command::new(openssl)
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=auditrelay test CA"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(dir.join("ca.pem")));
}

/// A certificate signed by the CA of [`make_ca`] in `dir`, for
/// `localhost` and 127.0.0.1 with common name `cn` and extended key usage
/// `usage` (`serverAuth`, `clientAuth` or both, comma-separated):
/// `<name>.pem` and `<name>.key`.
pub fn issue(openssl: &Path, dir: &Path, name: &str, cn: &str, usage: &str) {
    let p = |ext: &str| dir.join(format!("{name}.{ext}"));
    run(Command::new(openssl)
        .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", &format!("/CN={cn}")])
        .arg("-keyout")
        .arg(p("key"))
        .arg("-out")
        .arg(p("csr")));
    std::fs::write(
        p("cnf"),
        format!(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
        ),
    )
    .unwrap();
    run(Command::new(openssl)
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("csr"))
        .arg("-CA")
        .arg(dir.join("ca.pem"))
        .arg("-CAkey")
        .arg(dir.join("ca.key"))
        .arg("-extfile")
        .arg(p("cnf"))
        .arg("-out")
        .arg(p("pem")));
}
