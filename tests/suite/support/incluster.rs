//! `warship serve` run as a pod of the chart would run it (`kubernetes.in_cluster = true`): its
//! service account's token, the cluster's CA and its namespace as mounted files at the path
//! every in-cluster client reads, and the API server named by `KUBERNETES_SERVICE_HOST`/`_PORT`.
//!
//! The files are bind-mounted in a mount namespace of the host's own (`unshare --mount`), over a
//! fresh tmpfs on /run (which /var/run links to), so nothing changes on the machine and the host
//! sees a /run as empty as a pod's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::Value;

use super::free_port;
use super::host::{deploy_to, Host};

const BIN: &str = env!("CARGO_BIN_EXE_warship");

/// Where kube-rs's `Config::incluster()` (like client-go) reads the account's files.
pub const ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Writes what the kubelet mounts for `account` into `dir`: a fresh token from the TokenRequest
/// API (the projected token a pod gets), `ca.crt` from the namespace's `kube-root-ca.crt`
/// ConfigMap (the same source) and `namespace`.
pub async fn account_files(client: &kube::Client, namespace: &str, account: &str, dir: &Path) -> PathBuf {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() }),
        ..Default::default()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let issued = accounts.create_token_request(account, &PostParams::default(), &request).await.unwrap();
    let token = issued.status.and_then(|s| s.token).expect("the API server issued a token");
    // The controller-manager publishes the CA into every namespace shortly after it is made.
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    let ca = loop {
        if let Some(ca) = maps.get_opt("kube-root-ca.crt").await.unwrap().and_then(|m| m.data?.remove("ca.crt")) {
            break ca;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "kube-root-ca.crt never appeared in {namespace}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let files = dir.join("serviceaccount");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("token"), token).unwrap();
    std::fs::write(files.join("ca.crt"), ca).unwrap();
    std::fs::write(files.join("namespace"), namespace).unwrap();
    files
}

/// A `warship serve` that reaches Kubernetes only through the mounted account files.
pub struct InClusterHost {
    child: Child,
    api: Host,
    log: PathBuf,
}

impl InClusterHost {
    /// Serves `config` (as the chart's ConfigMap holds it) with `overrides` (`WARSHIP__…`) and
    /// the listen address and data dir of this test; `account` (from [`account_files`]) is
    /// mounted at [`ACCOUNT_DIR`]; `api` is the API server's `host:port`.
    pub fn start(
        dir: &Path,
        config: &str,
        account: &Path,
        api: (&str, u16),
        overrides: &[(&str, &str)],
    ) -> InClusterHost {
        let port = free_port();
        let config_path = dir.join("platform.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join("incluster-host.log");
        // unshare execs sh, which execs warship: the child's pid is warship's.
        let script = format!(
            "mount -t tmpfs -o size=1m,mode=755 pod-run /run && mkdir -p {ACCOUNT_DIR} && \
             mount --bind -o ro \"$1\" {ACCOUNT_DIR} && exec \"$2\" serve --config \"$3\""
        );
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script, "sh"])
            .arg(account)
            .arg(BIN)
            .arg(&config_path)
            .env("KUBERNETES_SERVICE_HOST", api.0)
            .env("KUBERNETES_SERVICE_PORT", api.1.to_string())
            .env("WARSHIP__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("WARSHIP__STORE__DATA_DIR", dir.join("data"))
            .envs(overrides.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("unshare (util-linux) runs");
        let mut host = InClusterHost { child, api: Host::at(&format!("http://127.0.0.1:{port}")), log };
        let started = Instant::now();
        let ready = |base: &str| {
            Command::new("curl").args(["-sf", &format!("{base}/readyz")]).output().is_ok_and(|o| o.status.success())
        };
        while !ready(&host.base) {
            if let Ok(Some(status)) = host.child.try_wait() {
                panic!("the in-cluster host exited ({status}):\n{}", host.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the in-cluster host did not become ready:\n{}",
                host.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        host
    }

    /// What the host logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts a deploy on `env` and polls it until it is final: the record.
    pub async fn deploy(&self, token: &str, env: &str, body: Value) -> Value {
        let id = deploy_to(&self.api, token, env, body).await;
        self.api.wait_deploy(token, &id).await
    }
}

/// The host's API, as any other host's.
impl std::ops::Deref for InClusterHost {
    type Target = Host;

    fn deref(&self) -> &Host {
        &self.api
    }
}

impl Drop for InClusterHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
