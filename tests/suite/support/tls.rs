//! Certificates made with openssl for the TLS tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and a server certificate it signed for 127.0.0.1, made with openssl:
/// (ca.pem, server.pem, server.key).
pub fn tls_chain(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca_key, ca, key, csr, cert) = (
        dir.join("ca.key"),
        dir.join("ca.pem"),
        dir.join("server.key"),
        dir.join("server.csr"),
        dir.join("server.pem"),
    );
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    let p = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let steps: [Vec<String>; 3] = [
        [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=warship test CA",
            "-keyout",
            &p(&ca_key),
            "-out",
            &p(&ca),
        ]
        .map(String::from)
        .to_vec(),
        [
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p(&key),
            "-out",
            &p(&csr),
        ]
        .map(String::from)
        .to_vec(),
        [
            "x509",
            "-req",
            "-in",
            &p(&csr),
            "-CA",
            &p(&ca),
            "-CAkey",
            &p(&ca_key),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p(&ext),
            "-out",
            &p(&cert),
        ]
        .map(String::from)
        .to_vec(),
    ];
    for args in steps {
        let made = Command::new("openssl").args(&args).output().unwrap();
        assert!(made.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&made.stderr));
    }
    (ca, cert, key)
}

/// A client certificate for `name`, signed by the CA `tls_chain` made in `dir`:
/// (name.pem, name.key).
pub fn client_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (key, csr, cert, ext) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.csr")),
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.cnf")),
    );
    std::fs::write(&ext, "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n").unwrap();
    let p = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let steps: [Vec<String>; 2] = [
        [
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &p(&key),
            "-out",
            &p(&csr),
        ]
        .map(String::from)
        .to_vec(),
        [
            "x509",
            "-req",
            "-in",
            &p(&csr),
            "-CA",
            &p(&ca),
            "-CAkey",
            &p(&ca_key),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p(&ext),
            "-out",
            &p(&cert),
        ]
        .map(String::from)
        .to_vec(),
    ];
    for args in steps {
        let made = Command::new("openssl").args(&args).output().unwrap();
        assert!(made.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&made.stderr));
    }
    (cert, key)
}
