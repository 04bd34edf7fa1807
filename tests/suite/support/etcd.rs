//! A real etcd server on loopback, plain or TLS.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use warship_host::store::{EtcdAccess, EtcdStore};

use super::{client_certificate, free_port};

/// A real etcd server (Debian's etcd-server) on loopback, in its own temp dir.
pub struct Etcd {
    child: Child,
    pub endpoint: String,
    /// What a client needs to reach it (TLS material when it serves TLS).
    pub access: EtcdAccess,
    _dir: tempfile::TempDir,
}

impl Etcd {
    pub async fn start() -> Etcd {
        Self::start_with(None).await
    }

    /// With `tls` (the CA, etcd's certificate and key): serves `https://` only and
    /// asks every client for a certificate that CA signed.
    pub async fn start_with(tls: Option<(&Path, &Path, &Path)>) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{client}");
        let mut command = Command::new("etcd");
        command
            .args(["--data-dir", dir.path().join("etcd").to_str().unwrap()])
            .args(["--name", "warship-test"])
            .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-cluster", &format!("warship-test=http://127.0.0.1:{peer}")]);
        let mut access = EtcdAccess::default();
        if let Some((ca, cert, key)) = tls {
            let path = |p: &Path| p.to_str().unwrap().to_owned();
            command.args(["--cert-file", &path(cert), "--key-file", &path(key)]).args([
                "--client-cert-auth",
                "--trusted-ca-file",
                &path(ca),
            ]);
            // The test's own client: the same CA, and a certificate it signed.
            let (client_cert, client_key) = client_certificate(ca.parent().unwrap(), "etcd-test-client");
            access.ca = Some(std::fs::read(ca).unwrap());
            access.identity = Some((std::fs::read(client_cert).unwrap(), std::fs::read(client_key).unwrap()));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd is not installed: run scripts/test, which installs Debian's etcd-server");
        let etcd = Etcd { child, endpoint, access, _dir: dir };
        let started = Instant::now();
        loop {
            if let Ok(store) = etcd.connect("/probe/").await {
                use warship_host::store::Store;
                if store.ping().await.is_ok() {
                    return etcd;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(20), "etcd did not become ready in 20s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn connect(&self, prefix: &str) -> Result<EtcdStore, warship_host::store::StoreError> {
        EtcdStore::connect_with(&[self.endpoint.clone()], prefix, Duration::from_secs(5), &self.access).await
    }

    /// Stops etcd now, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
