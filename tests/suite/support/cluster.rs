//! The local Kubernetes control plane (scripts/dev-cluster), with or without its real node.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A real Kubernetes control plane on loopback (scripts/dev-cluster in a temp dir):
/// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with three
/// fake nodes, and with [`KubeCluster::start_with_real_node`] a real node where pods run.
/// Stopped, every process of it, when dropped.
pub struct KubeCluster {
    pub kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    /// A real node changes host-wide state: one at a time in this process (the script
    /// also waits for one in another process).
    _real_node: Option<std::sync::MutexGuard<'static, ()>>,
}

static REAL_NODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// For a test that loads the machine as much as a real node does (several hosts and
/// their servers): it runs alone among those, so real pods' timing is not starved by it.
pub fn one_heavy_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    REAL_NODE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl KubeCluster {
    /// kwok's fake nodes only: fast, and touches nothing host-wide.
    pub fn start() -> KubeCluster {
        Self::start_with(false)
    }

    /// Besides the fake nodes (tainted so no app pod lands there), one real node.
    pub fn start_with_real_node() -> KubeCluster {
        Self::start_with(true)
    }

    fn start_with(real_node: bool) -> KubeCluster {
        let guard = real_node.then(one_heavy_test_at_a_time);
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/dev-cluster");
        let output = Command::new(&script)
            .args(["up", dir.path().to_str().unwrap()])
            .env("DEV_CLUSTER_REAL_NODES", if real_node { "1" } else { "0" })
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "scripts/dev-cluster up failed (scripts/test builds the binaries first): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let kubeconfig = PathBuf::from(String::from_utf8(output.stdout).unwrap().lines().last().unwrap().trim());
        KubeCluster { kubeconfig, dir, _real_node: guard }
    }

    /// Lets the real node's containerd pull from a plain-HTTP registry.
    pub fn trust_registry(&self, addr: &str) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/dev-cluster");
        let status =
            Command::new(script).args(["trust-registry", addr, self.dir.path().to_str().unwrap()]).status().unwrap();
        assert!(status.success(), "dev-cluster trust-registry {addr}");
    }

    /// The port of the local Gateway (Traefik) that a real-node cluster runs.
    pub fn gateway_port(&self) -> u16 {
        let env = std::fs::read_to_string(self.dir.path().join("gateway.env"))
            .expect("a cluster with a real node has a gateway");
        env.lines().find_map(|l| l.strip_prefix("GATEWAY_PORT=")).unwrap().trim().parse().unwrap()
    }

    /// A client that sends every request for `url`'s host to that gateway on loopback,
    /// as curl and browsers resolve `*.localhost`.
    pub fn gateway_client(&self, url: &str) -> reqwest::Client {
        let host = url::Url::parse(url).unwrap().host_str().unwrap().to_owned();
        reqwest::Client::builder()
            .resolve(&host, std::net::SocketAddr::from(([127, 0, 0, 1], self.gateway_port())))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// platform.toml's `[kubernetes.gateway]` for that gateway, envs under `localhost`.
    pub fn gateway_config(&self) -> String {
        format!(
            "[kubernetes.gateway]\nname = \"warship\"\nnamespace = \"warship-gateway\"\nbase_url = \"http://localhost:{}\"\n",
            self.gateway_port()
        )
    }

    /// A client of its API server, for checking what warship did.
    pub async fn client(&self) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// A kubeconfig of another admin (`host-a`, `host-b`): its writes are told apart
    /// in the audit log.
    pub fn kubeconfig_of(&self, who: &str) -> PathBuf {
        self.dir.path().join(format!("kubeconfig-{who}"))
    }

    /// Every write to Deployments and Services so far: (user, verb, when, what).
    pub fn audited_writes(&self) -> Vec<(String, String, time::OffsetDateTime, String)> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|e| e["stage"] == "ResponseComplete")
            .map(|e| {
                let at = time::OffsetDateTime::parse(
                    e["requestReceivedTimestamp"].as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap();
                (
                    e["user"]["username"].as_str().unwrap_or_default().to_owned(),
                    e["verb"].as_str().unwrap_or_default().to_owned(),
                    at,
                    e["requestURI"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The named component's log, for failure messages.
    pub fn log(&self, component: &str) -> String {
        let top = self.dir.path().join(format!("{component}.log"));
        let node = self.dir.path().join("node").join(format!("{component}.log"));
        std::fs::read_to_string(top).or_else(|_| std::fs::read_to_string(node)).unwrap_or_default()
    }
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/dev-cluster");
        let _ = Command::new(script).args(["down", self.dir.path().to_str().unwrap()]).output();
    }
}
